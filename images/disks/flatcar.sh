#!/usr/bin/env bash
# Flatcar Container Linux's layout, scaled down: GPT p1 EFI-SYSTEM (vfat), p2 BIOS-BOOT, p3 USR-A
# and p4 USR-B (type "CoreOS usr" 5dfbf5f4-..., ext2 as Flatcar's /usr was before btrfs; releases
# 1.0 and 2.0, each with /usr/lib/systemd/system/oem.mount), p6 OEM (ext4), p9 ROOT (ext4, type
# "CoreOS resize" 3884dd41-..., /etc enabling oem.mount from /usr). The /usr slot is chosen by
# the GPT attribute bits, set by sgdisk --attributes.
# flatcar.img: after an update to USR-B (priority 2, tries 1, on trial; USR-A priority 1, successful);
# flatcar.failed.img: USR-B's tries used up without success (tries 0): USR-A is mounted at /usr.
source "$(dirname "$0")/../lib.sh"
disk="$OUT/flatcar.img"
rm -f "$disk"; truncate -s 24M "$disk"
sgdisk -Z "$disk" >/dev/null 2>&1 || true
sgdisk -n 1:2048:+2M -t 1:EF00 -c 1:EFI-SYSTEM -n 2:0:+1M -t 2:EF02 -c 2:BIOS-BOOT \
    -n 3:0:+4M -t 3:5dfbf5f4-2848-4bac-aa5e-0d9a20b745a6 -c 3:USR-A -n 4:0:+4M -t 4:5dfbf5f4-2848-4bac-aa5e-0d9a20b745a6 -c 4:USR-B \
    -n 6:0:+2M -t 6:8300 -c 6:OEM -n 9:0:0 -t 9:3884dd41-8582-4404-b9a8-e9b84f2df50e -c 9:ROOT "$disk" >/dev/null
vfat_img esp.img 2 EFI-SYSTEM
put_fs "$disk" esp.img "$(part_start "$disk" 1)"
for s in a b; do
    version=1.0; [ $s = b ] && version=2.0
    mkdir -p "usr$s/lib/systemd/system" "usr$s/bin" "usr$s/share/flatcar"
    printf 'NAME="Flatcar Container Linux by Kinvolk"\nID=flatcar\nVERSION_ID=%s\n' "$version" > "usr$s/lib/os-release"
    printf '[Mount]\nWhat=/dev/disk/by-label/OEM\nWhere=/oem\nType=ext4\n\n[Install]\nWantedBy=local-fs.target\n' > "usr$s/lib/systemd/system/oem.mount"
    printf '#!/bin/sh\n' > "usr$s/bin/bash"; chmod 755 "usr$s/bin/bash"
    find "usr$s" -exec touch -h -d @"$SOURCE_DATE_EPOCH" {} +
    rm -f "usr$s.img"; truncate -s 4M "usr$s.img"
    mkfs.ext2 -q -F -L "USR-${s^^}" -E root_owner=0:0 -d "usr$s" "usr$s.img"
done
put_fs "$disk" usra.img "$(part_start "$disk" 3)"; put_fs "$disk" usrb.img "$(part_start "$disk" 4)"
mkdir -p oem; printf 'oem config\n' > oem/oem-release
ext4_img oem.img 2 OEM oem
put_fs "$disk" oem.img "$(part_start "$disk" 6)"
mkdir -p root/etc/systemd/system/local-fs.target.wants root/usr root/var root/home root/oem
ln -s ../usr/lib/os-release root/etc/os-release
ln -s /usr/lib/systemd/system/oem.mount root/etc/systemd/system/local-fs.target.wants/oem.mount
printf 'flatcar\n' > root/etc/hostname
ext4_img root.img 8 ROOT root
put_fs "$disk" root.img "$(part_start "$disk" 9)"
# USR-A: priority 1, successful (bits 48, 56); USR-B: priority 2 (bit 49), tries 1 (bit 52)
sgdisk -A 3:set:48 -A 3:set:56 -A 4:set:49 -A 4:set:52 "$disk" >/dev/null
cp --sparse=always "$disk" "$OUT/flatcar.failed.img"
sgdisk -A 4:clear:52 "$OUT/flatcar.failed.img" >/dev/null
