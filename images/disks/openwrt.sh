#!/usr/bin/env bash
# An OpenWrt x86-64 "combined-squashfs" disk after its first boot (field guide §5): MBR, p1 ext4
# `kernel` (boot/vmlinuz, boot/grub/grub.cfg: OpenWrt mounts it at /boot and binds its boot/ over
# /boot), p2 a squashfs root (make_tree's entries plus /etc/openwrt_release, /rom, /overlay)
# followed, at its size rounded up to 64 KiB, by rootfs_data (ext4) whose upper/ is the overlay's
# upper layer: a changed /etc/config/network, a new package file, a whiteout of /etc/banner and
# an opaque /www. openwrt.offset holds rootfs_data's byte offset inside p2 for the tests.
source "$(dirname "$0")/../lib.sh"
disk="$OUT/openwrt.img"
M=2048
# --- p2: squashfs + rootfs_data
openwrt_rom rom x86/64 boot
mksquashfs rom rootfs.sqfs -noappend -comp xz -b 262144 -quiet >/dev/null
sq=$(stat -c %s rootfs.sqfs)
offset=$(( (sq + 65535) / 65536 * 65536 ))
openwrt_upper data yes
truncate -s 8M data.img
mkfs.ext4 -q -F -L rootfs_data -U 0a0b0c0d-0e0e-4222-8333-000000000002 -E root_owner=0:0 -d data data.img
truncate -s "$offset" rootfs.sqfs
cat rootfs.sqfs data.img > p2.img
p2sectors=$(( ($(stat -c %s p2.img) + 511) / 512 ))
# --- p1: kernel
mkdir -p kernel/boot/grub
head -c 20000 /dev/urandom > kernel/boot/vmlinuz
printf 'menuentry "OpenWrt" {\n\tlinux /boot/vmlinuz root=PARTUUID=0e0e0e0e-02 rootwait\n}\n' > kernel/boot/grub/grub.cfg
find kernel -exec touch -h -d @1700000000 {} +
truncate -s 4M kernel.img
mkfs.ext4 -q -F -L kernel -U 0a0b0c0d-0e0e-4222-8333-000000000001 -E root_owner=0:0 -d kernel kernel.img
rm -f "$disk"; truncate -s $(( (6*M + p2sectors + 2048) * 512 )) "$disk"
sfdisk -q "$disk" <<SF
label: dos
label-id: 0x0e0e0e0e
unit: sectors

start=$((1*M)), size=$((4*M)), type=83, bootable
start=$((6*M)), size=$p2sectors, type=83
SF
put_fs "$disk" kernel.img $((1*M))
put_fs "$disk" p2.img $((6*M))
echo "$offset" > "$OUT/openwrt.offset"
