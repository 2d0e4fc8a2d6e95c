#!/usr/bin/env bash
# A GPT disk with 4096-byte logical sectors (as on 4Kn drives and some eMMC/UFS): GPT header at
# byte 4096. Partitioned through a 4K loop device so sgdisk sees the real sector size.
source "$(dirname "$0")/../lib.sh"
disk="$OUT/gpt-4k.img"
rm -f "$disk"; truncate -s 64M "$disk"
loop=$(losetup --find --show --sector-size 4096 "$disk")
trap 'losetup -d "$loop"' EXIT
sgdisk -U 4d4d4d4d-1111-4222-8333-444455556666 \
    -n 1:256:+16M -t 1:EF00 -c 1:esp  -u 1:4d4d4d4d-0001-4222-8333-444455556666 \
    -n 2:0:0      -t 2:8305 -c 2:root -u 2:4d4d4d4d-0002-4222-8333-444455556666 "$loop" >/dev/null
sync
losetup -d "$loop"; trap - EXIT
truncate -s 16M boot.img; mkfs.vfat -S 4096 -n ESP4K -i 4d4d0001 boot.img >/dev/null
put_fs "$disk" boot.img 256 4096
minimal_root root
truncate -s 32M root.img
mkfs.ext4 -q -F -b 4096 -L root4k -U 4d4d4d4d-0003-4222-8333-444455556666 -d root root.img
put_fs "$disk" root.img $((256 + 16*256)) 4096
