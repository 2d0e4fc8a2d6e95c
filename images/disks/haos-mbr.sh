#!/usr/bin/env bash
# The HAOS MBR variant (odroid-c2/c4/n2, khadas-vim3): disk signature 0x48617373, p1 boot (vfat,
# bootable), p2 extended (type 0x0f), p3 overlay, p4 data, logical p5..p9 (kernel0, system0,
# kernel1, system1, bootstate) each with its EBR 1 MiB in front. Sizes scaled down.
source "$(dirname "$0")/../lib.sh"
disk="$OUT/haos-mbr.img"
rm -f "$disk"; truncate -s 128M "$disk"
M=2048   # sectors per MiB
# boot 2-34 MiB; extended 34-84 MiB holding five logicals (4,16,4,16,1 MiB each after a 1 MiB EBR
# gap); overlay 84-100 MiB; data 100 MiB-end
sfdisk -q "$disk" <<SF
label: dos
label-id: 0x48617373
unit: sectors

start=$((2*M)),  size=$((32*M)), type=c, bootable
start=$((34*M)), size=$((50*M)), type=f
start=$((84*M)), size=$((16*M)), type=83
start=$((100*M)), type=83
start=$((35*M)), size=$((4*M)), type=83
start=$((40*M)), size=$((16*M)), type=83
start=$((57*M)), size=$((4*M)), type=83
start=$((62*M)), size=$((16*M)), type=83
start=$((79*M)), size=$((1*M)), type=83
SF
truncate -s 32M boot.img; mkfs.vfat -n hassos-boot -i 48617373 boot.img >/dev/null
put_fs "$disk" boot.img $((2*M))
mkdir -p kernel; head -c 50000 /dev/urandom > kernel/Image
mksquashfs kernel kernel0.img -noappend -all-root -quiet >/dev/null
put_fs "$disk" kernel0.img $((35*M))
minimal_root root
mkfs.erofs -T "$SOURCE_DATE_EPOCH" -U 0a0b0c0d-4444-4222-8333-444455556666 system0.img root >/dev/null
put_fs "$disk" system0.img $((40*M))
head -c 8192 /dev/urandom > bootstate.img
put_fs "$disk" bootstate.img $((79*M))
truncate -s 16M overlay.img
mkfs.ext4 -q -F -L hassos-overlay -U 0a0b0c0d-5555-4222-8333-444455556666 overlay.img
put_fs "$disk" overlay.img $((84*M))
truncate -s 28M data.img
mkfs.ext4 -q -F -L hassos-data -U 0a0b0c0d-6666-4222-8333-444455556666 data.img
put_fs "$disk" data.img $((100*M))
