#!/usr/bin/env bash
# A GPT disk whose primary header is corrupt (header CRC no longer matches): readers must fall
# back to the backup header at the last LBA and warn.
source "$(dirname "$0")/../lib.sh"
disk="$OUT/gpt-bad-primary.img"
rm -f "$disk"; truncate -s 40M "$disk"
sgdisk -U 2b2b2b2b-1111-4222-8333-444455556666 \
    -n 1:2048:+8M -t 1:EF00 -c 1:boot -u 1:2b2b2b2b-0001-4222-8333-444455556666 \
    -n 2:0:0      -t 2:8304 -c 2:root -u 2:2b2b2b2b-0002-4222-8333-444455556666 "$disk" >/dev/null
truncate -s 8M boot.img; mkfs.vfat -n BOOT -i 2b2b0001 boot.img >/dev/null
put_fs "$disk" boot.img 2048
minimal_root root
truncate -s 16M root.img
mkfs.ext4 -q -F -L root -U 2b2b2b2b-0003-4222-8333-444455556666 -d root root.img
put_fs "$disk" root.img $((2048 + 8*2048))
# Corrupt the primary header: overwrite its disk GUID (bytes 56..71 of LBA 1).
printf 'CORRUPTCORRUPT!!' | dd of="$disk" bs=1 seek=$((512 + 56)) conv=notrunc status=none
