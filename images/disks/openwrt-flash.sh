#!/usr/bin/env bash
# OpenWrt on raw flash after its first boot, made by mksquashfs and mtd-utils (field guide §5):
#   openwrt-nor.img   the "firmware" MTD partition of a NOR router: a squashfs root, then at the
#                     next 64 KiB erase block rootfs_data, a big-endian JFFS2 (mkfs.jffs2 -b -e
#                     64KiB --with-xattr, as MIPS routers use) whose upper/ is the overlay's upper
#                     layer: a changed /etc/config/network, a new package file, a whiteout of
#                     /etc/banner (0:0 device) and an opaque /www (trusted.overlay.opaque)
#   openwrt-nand.img  a NAND dump (2 KiB pages, 128 KiB erase blocks, ubinize): UBI volumes
#                     "kernel" (raw bytes), "rootfs" (the squashfs) and "rootfs_data" (UBIFS,
#                     autoresize) with the same upper/ but no opaque /www (mkfs.ubifs 2.1.5 writes
#                     no xattrs)
source "$(dirname "$0")/../lib.sh"
openwrt_rom rom ath79/generic
mksquashfs rom rootfs.sqfs -noappend -comp xz -b 262144 -quiet >/dev/null

# NOR: squashfs padded to the 64 KiB erase block, then the JFFS2 padded to its last erase block.
openwrt_upper nor-data yes
mkfs.jffs2 -b -e 64KiB -p --with-xattr -r nor-data -o data.jffs2
sq=$(stat -c %s rootfs.sqfs)
cp rootfs.sqfs nor.img
truncate -s $(( (sq + 65535) / 65536 * 65536 )) nor.img
cat nor.img data.jffs2 > "$OUT/openwrt-nor.img"

# NAND: ubinize's image of kernel, rootfs and rootfs_data volumes.
openwrt_upper nand-data no
mkfs.ubifs -m 2048 -e 126976 -c 128 -x zstd -r nand-data -o data.ubifs
head -c 300000 /dev/urandom > kernel.bin
cat > ubinize.cfg <<CFG
[kernel]
mode=ubi
image=kernel.bin
vol_id=0
vol_type=static
vol_name=kernel
[rootfs]
mode=ubi
image=rootfs.sqfs
vol_id=1
vol_type=dynamic
vol_name=rootfs
[rootfs_data]
mode=ubi
image=data.ubifs
vol_id=2
vol_type=dynamic
vol_name=rootfs_data
vol_size=4MiB
vol_flags=autoresize
CFG
ubinize -o "$OUT/openwrt-nand.img" -p 128KiB -m 2048 -s 2048 -Q 1700000000 ubinize.cfg
ls -l "$OUT"/openwrt-nor.img "$OUT"/openwrt-nand.img
