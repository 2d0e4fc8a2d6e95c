#!/usr/bin/env bash
# fedora-btrfs.img: a Fedora-style btrfs disk (Tests/EndToEndTests/BtrfsEndToEndTests.swift).
# GPT: p1 "EFI System Partition" vfat, p2 ext4 /boot holding the Boot Loader Specification entry
# (`options root=UUID=... ro rootflags=subvol=root`), p3 btrfs (made through a read-write loop
# mount by the kernel) whose top level (the default subvolume) holds the subvolumes `root` and
# `home`, as Fedora's installer makes them; fstab mounts / and /home with subvol=.
# Needs root, loop devices and btrfs in /proc/filesystems; without them the recipe writes
# fedora-btrfs.skipped and no image (the tests skip).
source "$(dirname "${BASH_SOURCE[0]}")/../lib.sh"

require_loop_mounts fedora-btrfs btrfs

disk=$OUT/fedora-btrfs.img
rm -f "$disk"; truncate -s 400M "$disk"
sgdisk -Z "$disk" >/dev/null 2>&1 || true
sgdisk -U 66656461-0000-4000-8000-000000000001 \
    -n 1:2048:+16M -t 1:EF00 -c "1:EFI System Partition" \
    -n 2:0:+32M -t 2:8300 \
    -n 3:0:0 -t 3:8300 "$disk" >/dev/null
start() { sgdisk -i "$1" "$disk" | awk '/^First sector/ {print $3}'; }
sectors() { echo $(( $(sgdisk -i "$1" "$disk" | awk '/^Last sector/ {print $3}') - $(start "$1") + 1 )); }

rm -f efi.img; truncate -s 16M efi.img; mkfs.vfat -n EFI -i 46454449 efi.img >/dev/null
put_fs "$disk" efi.img "$(start 1)"

uuid=66656461-6f72-4100-b000-000000000003
mkdir -p boot/loader/entries
cat > boot/loader/entries/0123-6.8.5-301.fc40.x86_64.conf <<EOF
title Fedora Linux (6.8.5-301.fc40.x86_64) 40 (Forty)
version 6.8.5-301.fc40.x86_64
linux /vmlinuz-6.8.5-301.fc40.x86_64
initrd /initramfs-6.8.5-301.fc40.x86_64.img
options root=UUID=$uuid ro rootflags=subvol=root rhgb quiet
EOF
printf 'kernel\n' > boot/vmlinuz-6.8.5-301.fc40.x86_64
rm -f bootfs.img; truncate -s $(( $(sectors 2) * 512 )) bootfs.img
mkfs.ext4 -q -F -L boot -U 66656461-6f72-4100-b000-000000000002 -d boot bootfs.img
put_fs "$disk" bootfs.img "$(start 2)"

rm -f root.img; truncate -s $(( $(sectors 3) * 512 )) root.img
mkfs.btrfs -q -f -L fedora -U "$uuid" root.img
mnt=$WORK/mnt; mkdir -p "$mnt"
trap 'umount "$mnt" 2>/dev/null || true' EXIT
mount -o loop,compress=zstd:1 root.img "$mnt"
btrfs -q subvolume create "$mnt/root"
btrfs -q subvolume create "$mnt/home"
minimal_root "$mnt/root"
mkdir -p "$mnt/root"/{home,boot,var/log,usr/sbin}
printf 'NAME="Fedora Linux"\nID=fedora\nVERSION_ID=40\n' > "$mnt/root/usr/lib/os-release"
seq 1 30000 > "$mnt/root/usr/share-numbers.txt"
printf '#!/bin/sh\n' > "$mnt/root/usr/sbin/ping"; chmod 755 "$mnt/root/usr/sbin/ping"
setfattr -n security.capability -v 0x0100000200200000000000000000000000000000 "$mnt/root/usr/sbin/ping"
cat > "$mnt/root/etc/fstab" <<EOF
UUID=$uuid / btrfs subvol=root,compress=zstd:1 0 0
UUID=66656461-6f72-4100-b000-000000000002 /boot ext4 defaults 1 2
UUID=4645-4449 /boot/efi vfat umask=0077,shortname=winnt 0 2
UUID=$uuid /home btrfs subvol=home,compress=zstd:1 0 0
EOF
mkdir -p "$mnt/home/fedora"; printf 'hello\n' > "$mnt/home/fedora/notes.txt"; chown -R 1000:1000 "$mnt/home/fedora"
sync
umount "$mnt"
put_fs "$disk" root.img "$(start 3)"
