#!/usr/bin/env bash
# Filesystems with no partition table: bare-fs.img (ext4), bare-vfat.img (FAT16, whose boot
# sector ends in 0x55AA like an MBR but is not one), and bare-{ext2,ext3,swap,f2fs,btrfs,xfs}.img
# for the libblkid probe (needs f2fs-tools, btrfs-progs, xfsprogs).
source "$(dirname "$0")/../lib.sh"
minimal_root root
rm -f "$OUT/bare-fs.img" "$OUT/bare-vfat.img"
truncate -s 16M "$OUT/bare-fs.img"
mkfs.ext4 -q -F -L bare-root -U 0a0b0c0d-8888-4222-8333-444455556666 -d root "$OUT/bare-fs.img"
truncate -s 20M "$OUT/bare-vfat.img"
mkfs.vfat -n BAREFAT -i 0badcafe "$OUT/bare-vfat.img" >/dev/null
# More filesystems libblkid must name (sparse files; each mkfs writes little):
rm -f "$OUT"/bare-{ext2,ext3,swap,f2fs,btrfs,xfs}.img
truncate -s 8M "$OUT/bare-ext2.img"
mkfs.ext2 -q -F -L bare-ext2 -U 0a0b0c0d-9999-4222-8333-444455556666 "$OUT/bare-ext2.img"
truncate -s 8M "$OUT/bare-ext3.img"
mkfs.ext3 -q -F -L bare-ext3 -U 0a0b0c0d-aaaa-4222-8333-444455556666 "$OUT/bare-ext3.img"
truncate -s 8M "$OUT/bare-swap.img"
mkswap -L bare-swap -U 0a0b0c0d-bbbb-4222-8333-444455556666 "$OUT/bare-swap.img" >/dev/null
truncate -s 64M "$OUT/bare-f2fs.img"
mkfs.f2fs -q -l bare-f2fs -U 0a0b0c0d-cccc-4222-8333-444455556666 "$OUT/bare-f2fs.img" >/dev/null
truncate -s 128M "$OUT/bare-btrfs.img"
# mkfs.btrfs refuses a UUID that libblkid's cache (/run/blkid/blkid.tab) has seen, and a plain
# `blkid FILE` on an earlier copy of this image puts it there: an empty cache for this command.
BLKID_FILE=/dev/null mkfs.btrfs -q -L bare-btrfs -U 0a0b0c0d-dddd-4222-8333-444455556666 "$OUT/bare-btrfs.img" >/dev/null
truncate -s 320M "$OUT/bare-xfs.img"
mkfs.xfs -q -L bare-xfs -m uuid=0a0b0c0d-eeee-4222-8333-444455556666 "$OUT/bare-xfs.img" >/dev/null
