#!/usr/bin/env bash
# microos.img: an openSUSE MicroOS / SLE Micro style disk (Tests/EndToEndTests/BtrfsEndToEndTests.swift).
# GPT: p1 "EFI" vfat (/boot/efi), p2 "p.lxroot" btrfs made through a read-write loop mount by the
# kernel, laid out as MicroOS's installer does it:
#   @                               id 256
#   @/.snapshots                    a subvolume, mounted at /.snapshots by fstab
#   @/.snapshots/1/snapshot         snapper snapshot 1 (read-only), info.xml beside it
#   @/.snapshots/2/snapshot         snapshot 2 of 1, changed (a newer os-release, an added file),
#                                   read-only, the DEFAULT subvolume: the root that boots
#   @/var @/home @/root             subvolumes mounted by fstab with subvol=/@/...
# fstab as MicroOS writes it (UUID=, `/` read-only without subvol=, x-initrd.mount on /var).
# Needs root, loop devices and btrfs in /proc/filesystems; without them the recipe writes
# microos.skipped and no image (the tests skip).
source "$(dirname "${BASH_SOURCE[0]}")/../lib.sh"

require_loop_mounts microos btrfs

disk=$OUT/microos.img
rm -f "$disk"; truncate -s 400M "$disk"
sgdisk -Z "$disk" >/dev/null 2>&1 || true
sgdisk -U 6d6f6963-726f-4f53-8000-000000000001 \
    -n 1:2048:+32M -t 1:EF00 -c 1:EFI -u 1:6d6f6963-726f-4f53-8000-0000000000e1 \
    -n 2:0:0 -t 2:8304 -c 2:p.lxroot -u 2:6d6f6963-726f-4f53-8000-0000000000f2 "$disk" >/dev/null
start2=$(sgdisk -i 2 "$disk" | awk '/^First sector/ {print $3}')
last2=$(sgdisk -i 2 "$disk" | awk '/^Last sector/ {print $3}')

rm -f efi.img; truncate -s 32M efi.img
mkfs.vfat -n EFI -i 6D6F4546 efi.img >/dev/null
mkdir -p EFI/BOOT; printf 'not a real loader\n' > EFI/BOOT/bootx64.efi
mcopy -s -i efi.img EFI ::/
put_fs "$disk" efi.img 2048

root=root.img
rm -f "$root"; truncate -s $(( (last2 - start2 + 1) * 512 )) "$root"
uuid=4d6f6963-726f-4f53-b200-000000000002
mkfs.btrfs -q -f -L ROOT -U "$uuid" "$root"
mnt=$WORK/mnt; mkdir -p "$mnt"
trap 'umount "$mnt" 2>/dev/null || true' EXIT
mount -o loop "$root" "$mnt"

btrfs -q subvolume create "$mnt/@"
btrfs -q subvolume create "$mnt/@/.snapshots"
mkdir "$mnt/@/.snapshots/1"
btrfs -q subvolume create "$mnt/@/.snapshots/1/snapshot"
for s in var home root; do btrfs -q subvolume create "$mnt/@/$s"; done

# Snapshot 1: the installed system.
s1=$mnt/@/.snapshots/1/snapshot
minimal_root "$s1"
mkdir -p "$s1"/{var,home,root,.snapshots,boot/efi,usr/bin,usr/sbin}
printf 'NAME="openSUSE MicroOS"\nID="opensuse-microos"\nVERSION_ID="20240101"\n' > "$s1/usr/lib/os-release"
printf '#!/bin/sh\necho transactional-update\n' > "$s1/usr/sbin/transactional-update"; chmod 755 "$s1/usr/sbin/transactional-update"
printf '#!/bin/sh\n' > "$s1/usr/bin/su"; chmod 4755 "$s1/usr/bin/su"
setfattr -n security.capability -v 0x0100000200200000000000000000000000000000 "$s1/usr/bin/su"
cat > "$s1/etc/fstab" <<EOF
UUID=$uuid  /  btrfs  ro  0  0
UUID=$uuid  /var  btrfs  subvol=/@/var,x-initrd.mount  0  0
UUID=$uuid  /home  btrfs  subvol=/@/home  0  0
UUID=$uuid  /root  btrfs  subvol=/@/root  0  0
UUID=$uuid  /.snapshots  btrfs  subvol=/@/.snapshots  0  0
UUID=6D6F-4546  /boot/efi  vfat  utf8  0  2
EOF
info() {   # info N TYPE DESCRIPTION
    cat > "$mnt/@/.snapshots/$1/info.xml" <<EOF
<?xml version="1.0"?>
<snapshot>
  <type>$2</type>
  <num>$1</num>
  <date>2024-01-0$1 12:00:00</date>
  <description>$3</description>
  <userdata>
    <key>important</key>
    <value>yes</value>
  </userdata>
</snapshot>
EOF
}
info 1 single "first root filesystem"

# Snapshot 2: transactional-update's new snapshot of 1, changed, made the default.
mkdir "$mnt/@/.snapshots/2"
btrfs -q subvolume snapshot "$s1" "$mnt/@/.snapshots/2/snapshot"
s2=$mnt/@/.snapshots/2/snapshot
printf 'NAME="openSUSE MicroOS"\nID="opensuse-microos"\nVERSION_ID="20240202"\n' > "$s2/usr/lib/os-release"
printf 'package added by transactional-update\n' > "$s2/usr/bin/added-in-2"
info 2 single "Snapshot Update of #1"
btrfs property set -ts "$s1" ro true
btrfs property set -ts "$s2" ro true
btrfs subvolume set-default "$s2"

# The data subvolumes.
mkdir -p "$mnt/@/var/lib/misc" "$mnt/@/var/log" "$mnt/@/home/user"
printf 'state\n' > "$mnt/@/var/lib/misc/state"
printf 'boot log\n' > "$mnt/@/var/log/messages"
printf 'notes\n' > "$mnt/@/home/user/notes.txt"; chown -R 1000:1000 "$mnt/@/home/user"
printf 'export PS1=#\n' > "$mnt/@/root/.bashrc"; chmod 600 "$mnt/@/root/.bashrc"; chmod 700 "$mnt/@/root"
touch -d @1700000000 "$mnt/@/var/log/messages"
sync
umount "$mnt"
put_fs "$disk" "$root" "$start2"
sgdisk -v "$disk" >/dev/null
