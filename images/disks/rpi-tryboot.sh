#!/usr/bin/env bash
# Raspberry Pi A/B by the firmware's autoboot.txt (tryboot_a_b, as Rugix and the Raspberry Pi
# documentation lay it out): MBR p1 FAT "config" holding only autoboot.txt, p2/p3 FAT boot A/B
# (each a cmdline.txt whose root= names its root by PARTUUID), p4 extended, p5/p6 ext4 roots A/B
# (releases 1.0 and 2.0).
# rpi-tryboot.img: the update to B was committed ([all] boot_partition=3): p6 boots;
# rpi-tryboot.failed.img: the trial of B never committed ([all] boot_partition=2, [tryboot]
# boot_partition=3): a normal boot loads p2, whose cmdline.txt names p5.
source "$(dirname "$0")/../lib.sh"
disk="$OUT/rpi-tryboot.img"
M=2048
rm -f "$disk"; truncate -s 20M "$disk"
sfdisk -q "$disk" <<SF
label: dos
label-id: 0x7e57b007
unit: sectors

start=$((1*M)), size=$((1*M)), type=c, bootable
start=$((2*M)), size=$((2*M)), type=c
start=$((4*M)), size=$((2*M)), type=c
start=$((6*M)), type=5
start=$((7*M)), size=$((4*M)), type=83
start=$((12*M)), size=$((4*M)), type=83
SF
for s in a b; do
    part=05; version=1.0; [ $s = b ] && { part=06; version=2.0; }
    mkdir -p "boot$s"
    printf 'console=serial0,115200 console=tty1 root=PARTUUID=7e57b007-%s rootfstype=ext4 fsck.repair=yes rootwait\n' "$part" > "boot$s/cmdline.txt"
    printf 'arm_64bit=1\nkernel=kernel8.img\n' > "boot$s/config.txt"
    vfat_img "boot$s.img" 2 "BOOT-${s^^}" "boot$s/cmdline.txt" "boot$s/config.txt"
    slot_root "root$s" "$version"
    printf 'proc /proc proc defaults 0 0\n' > "root$s/etc/fstab"
    ext4_img "root$s.img" 4 "root$s" "root$s"
done
put_fs "$disk" boota.img $((2*M)); put_fs "$disk" bootb.img $((4*M))
put_fs "$disk" roota.img $((7*M)); put_fs "$disk" rootb.img $((12*M))
printf '[all]\ntryboot_a_b=1\nboot_partition=3\n[tryboot]\nboot_partition=2\n' > autoboot.txt
vfat_img config.img 1 CONFIG autoboot.txt
put_fs "$disk" config.img $((1*M))
cp --sparse=always "$disk" "$OUT/rpi-tryboot.failed.img"
printf '[all]\ntryboot_a_b=1\nboot_partition=2\n[tryboot]\nboot_partition=3\n' > autoboot.txt
vfat_img config.failed.img 1 CONFIG autoboot.txt
put_fs "$OUT/rpi-tryboot.failed.img" config.failed.img $((1*M))
