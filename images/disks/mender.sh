#!/usr/bin/env bash
# A Mender (Yocto A/B) disk as meta-mender-raspberrypi lays it out: MBR, p1 vfat boot holding the
# U-Boot environment file uboot.env (mender_boot_part=3, so rootfs B boots), p2/p3 ext4 rootfs
# A/B (B a newer release), p4 ext4 data. fstab with device paths, as Mender's default:
# /dev/mmcblk0p1 /uboot auto defaults,sync and /dev/mmcblk0p4 /data auto defaults.
# (Mender keeps the environment in the raw gap before p1 on many boards; the planner reads only
# partitions and boot files, so this disk uses the uboot.env file of the Raspberry Pi integration.)
source "$(dirname "$0")/../lib.sh"
disk="$OUT/mender.img"
rm -f "$disk"; truncate -s 64M "$disk"
M=2048
sfdisk -q "$disk" <<SF
label: dos
label-id: 0x0d15ea5e
unit: sectors

start=$((8*M)),  size=$((8*M)), type=c, bootable
start=$((16*M)), size=$((16*M)), type=83
start=$((32*M)), size=$((16*M)), type=83
start=$((48*M)), type=83
SF
truncate -s 8M boot.img; mkfs.vfat -n BOOT -i 0b007b00 boot.img >/dev/null
uboot_env uboot.env 0x4000 bootcount=0 upgrade_available=0 mender_boot_part=3 mender_boot_part_hex=3 mender_uboot_root=/dev/mmcblk0p3
printf 'console=serial0,115200 root=${mender_kernel_root} rootwait\n' > cmdline.txt
mcopy -i boot.img uboot.env cmdline.txt ::/
put_fs "$disk" boot.img $((8*M))
mender_root() {
    local r=$1 version=$2
    mkdir -p "$r"/{etc/mender,usr/lib,bin,sbin,uboot,data,var/lib,home/root}
    printf 'ID=poky\nNAME="Poky"\nVERSION_ID=%s\n' "$version" > "$r/usr/lib/os-release"
    ln -s ../usr/lib/os-release "$r/etc/os-release"
    printf '#!/bin/sh\n' > "$r/sbin/init"; chmod 755 "$r/sbin/init"
    printf 'artifact_name=release-%s\n' "$version" > "$r/etc/mender/artifact_info"
    printf '/dev/root            /                    auto       defaults              1  1\nproc                 /proc                proc       defaults              0  0\n/dev/mmcblk0p1       /uboot               auto       defaults,sync         0  0\n/dev/mmcblk0p4       /data                auto       defaults              0  0\n' > "$r/etc/fstab"
    ln -s /data/mender "$r/var/lib/mender"
    find "$r" -exec touch -h -d @1700000000 {} +
}
mender_root rootA 1.0
mender_root rootB 2.0
truncate -s 16M a.img b.img
mkfs.ext4 -q -F -L rootfsa -U 0a0b0c0d-9991-4222-8333-444455556666 -E root_owner=0:0 -d rootA a.img
mkfs.ext4 -q -F -L rootfsb -U 0a0b0c0d-9992-4222-8333-444455556666 -E root_owner=0:0 -d rootB b.img
put_fs "$disk" a.img $((16*M)); put_fs "$disk" b.img $((32*M))
mkdir -p data/mender data/u-boot
printf 'device_type=raspberrypi4\n' > data/mender/device_type
printf '/dev/mmcblk0 0x400000 0x4000\n' > data/u-boot/fw_env.config
find data -exec touch -h -d @1700000000 {} +
truncate -s 16M data.img
mkfs.ext4 -q -F -L data -U 0a0b0c0d-9993-4222-8333-444455556666 -E root_owner=0:0 -d data data.img
put_fs "$disk" data.img $((48*M))
