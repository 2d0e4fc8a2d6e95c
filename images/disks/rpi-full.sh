#!/usr/bin/env bash
# Raspberry Pi OS (bookworm) with Docker: MBR signature 0x1a2b3c4d, p1 FAT32 `bootfs` with
# cmdline.txt root=PARTUUID=1a2b3c4d-02, p2 ext4 `rootfs` with the real fstab (proc,
# PARTUUID=1a2b3c4d-01 /boot/firmware vfat, PARTUUID=1a2b3c4d-02 / ext4) and a Docker data-root at
# /var/lib/docker on the root itself (make_docker_root).
source "$(dirname "$0")/../lib.sh"
disk="$OUT/rpi-full.img"
rm -f "$disk"; truncate -s 80M "$disk"
M=2048
sfdisk -q "$disk" <<SF
label: dos
label-id: 0x1a2b3c4d
unit: sectors

start=$((4*M)), size=$((36*M)), type=c
start=$((40*M)), type=83
SF
truncate -s 36M boot.img; mkfs.vfat -F 32 -s 1 -n bootfs -i 5e0c3b1a boot.img >/dev/null
printf 'console=serial0,115200 console=tty1 root=PARTUUID=1a2b3c4d-02 rootfstype=ext4 fsck.repair=yes rootwait quiet\n' > cmdline.txt
printf '[all]\narm_64bit=1\ndtoverlay=vc4-kms-v3d\n' > config.txt
head -c 30000 /dev/urandom > kernel8.img
mcopy -i boot.img cmdline.txt config.txt kernel8.img ::/
put_fs "$disk" boot.img $((4*M))
make_tree root no
mkdir -p root/boot/firmware root/etc/docker root/var/lib root/sbin root/usr/lib/systemd
printf 'PRETTY_NAME="Debian GNU/Linux 12 (bookworm)"\nNAME="Debian GNU/Linux"\nVERSION_ID="12"\nID=debian\n' > root/usr/lib/os-release
ln -sf ../usr/lib/os-release root/etc/os-release
printf '\x7fELF systemd' > root/usr/lib/systemd/systemd; ln -s ../usr/lib/systemd/systemd root/sbin/init
printf 'proc            /proc           proc    defaults          0       0\nPARTUUID=1a2b3c4d-01  /boot/firmware  vfat    defaults          0       2\nPARTUUID=1a2b3c4d-02  /               ext4    defaults,noatime  0       1\n' > root/etc/fstab
printf 'raspberrypi\n' > root/etc/hostname
printf '{ "log-driver": "journald" }\n' > root/etc/docker/daemon.json
make_docker_root root/var/lib/docker
find root -exec touch -h -d @1700000000 {} +
touch -h -d @1600000000.123456789 root/etc/hostname
truncate -s 40M rootfs.img
mkfs.ext4 -q -F -L rootfs -U 0a0b0c0d-8888-4222-8333-444455556666 -E root_owner=0:0 -d root rootfs.img
put_fs "$disk" rootfs.img $((40*M))
