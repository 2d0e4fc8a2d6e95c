#!/usr/bin/env bash
# A Raspberry Pi OS-style MBR disk: signature 0x1a2b3c4d, p1 FAT32 `bootfs`, p2 ext4 `rootfs`.
source "$(dirname "$0")/../lib.sh"
disk="$OUT/rpi-mbr.img"
rm -f "$disk"; truncate -s 112M "$disk"
M=2048
sfdisk -q "$disk" <<SF
label: dos
label-id: 0x1a2b3c4d
unit: sectors

start=$((4*M)), size=$((64*M)), type=c
start=$((68*M)), type=83
SF
truncate -s 64M boot.img; mkfs.vfat -F 32 -s 1 -n bootfs -i 5e0c3b1a boot.img >/dev/null
printf 'console=serial0,115200 root=PARTUUID=1a2b3c4d-02 rootfstype=ext4\n' > cmdline.txt
mcopy -i boot.img cmdline.txt ::/
put_fs "$disk" boot.img $((4*M))
minimal_root root
printf 'proc /proc proc defaults 0 0\nPARTUUID=1a2b3c4d-01 /boot/firmware vfat defaults 0 2\nPARTUUID=1a2b3c4d-02 / ext4 defaults,noatime 0 1\n' > root/etc/fstab
truncate -s 44M rootfs.img
mkfs.ext4 -q -F -L rootfs -U 0a0b0c0d-7777-4222-8333-444455556666 -d root rootfs.img
put_fs "$disk" rootfs.img $((68*M))
