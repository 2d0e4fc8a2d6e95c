#!/usr/bin/env bash
# Filesystems with no partition table: bare-fs.img (ext4) and bare-vfat.img (FAT16, whose boot
# sector ends in 0x55AA like an MBR but is not one).
source "$(dirname "$0")/../lib.sh"
minimal_root root
rm -f "$OUT/bare-fs.img" "$OUT/bare-vfat.img"
truncate -s 16M "$OUT/bare-fs.img"
mkfs.ext4 -q -F -L bare-root -U 0a0b0c0d-8888-4222-8333-444455556666 -d root "$OUT/bare-fs.img"
truncate -s 20M "$OUT/bare-vfat.img"
mkfs.vfat -n BAREFAT -i 0badcafe "$OUT/bare-vfat.img" >/dev/null
