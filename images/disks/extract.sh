#!/usr/bin/env bash
# Disks for the extract end-to-end tests (Tests/ArchiveTests/ExtractEndToEndTests.swift), all from
# one make_tree source (no sparse file, to keep the archives small):
#   extract-gpt.img       GPT: p1 "boot" vfat (label EXTBOOT), p2 "rootfs" ext4 (label extract-root),
#                         p3 "system" squashfs
#   extract-squashfs.img  the same squashfs, bare (no partition table: partition 1)
#   extract.manifest      the source tree's manifest (images/manifest.py)
source "$(dirname "${BASH_SOURCE[0]}")/../lib.sh"

src=$WORK/src
make_tree "$src" no
python3 "$IMAGES_DIR/manifest.py" "$src" > "$OUT/extract.manifest"

# ext4, every field kept (root time and nanoseconds restored: mke2fs -d copies neither)
truncate -s 48M "$WORK/root.ext4"
mke2fs -F -q -t ext4 -b 4096 -I 256 -E root_owner=0:0 -L extract-root -d "$src" "$WORK/root.ext4"
debugfs -w -R "sif / mtime @1700000000" "$WORK/root.ext4"
debugfs -w -R "sif /etc/hostname mtime_extra $((123456789 << 2))" "$WORK/root.ext4"
e2fsck -fn "$WORK/root.ext4"

# squashfs (keeps owners, modes, xattrs; mtimes in whole seconds)
env -u SOURCE_DATE_EPOCH mksquashfs "$src" "$OUT/extract-squashfs.img" -noappend -quiet -comp gzip -xattrs

# vfat with two files
mkfs.vfat -n EXTBOOT -C "$WORK/boot.vfat" 8192
mcopy -i "$WORK/boot.vfat" "$src/etc/hostname" "$src/etc/fstab" ::/

disk=$OUT/extract-gpt.img
rm -f "$disk"
truncate -s 80M "$disk"
sgdisk -n 1:2048:+8M -c 1:boot -t 1:ef00 -n 2:0:+48M -c 2:rootfs -t 2:8300 -n 3:0:+16M -c 3:system -t 3:8300 "$disk"
start() { sgdisk -i "$1" "$disk" | awk '/First sector:/ {print $3}'; }
dd if="$WORK/boot.vfat" of="$disk" bs=512 seek="$(start 1)" conv=notrunc status=none
dd if="$WORK/root.ext4" of="$disk" bs=512 seek="$(start 2)" conv=notrunc status=none
dd if="$OUT/extract-squashfs.img" of="$disk" bs=512 seek="$(start 3)" conv=notrunc status=none
sgdisk -v "$disk"
