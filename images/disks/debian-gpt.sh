#!/usr/bin/env bash
# A plain Debian-like GPT disk, no bootloader state: the root is found only by its Discoverable
# Partitions type GUID (root-x86-64 on p2), although p6 also holds a Linux-looking tree.
#   p1 ESP vfat  p2 root ext4 (DPS root type)  p3 /var ext4 LABEL=var  p4 /home ext4 by UUID
#   p5 ext4 LABEL=srvdata (PARTLABEL data)    p6 ext4 LABEL=backup (a stale root copy, noauto)
# fstab: UUID=/LABEL= lines, a noauto line, a bind whose source is missing, proc and tmpfs.
# units: a masked unit (-> /dev/null), a /usr/lib unit shadowed by /etc, a drop-in changing
# Options=, a disabled unit (has [Install], no symlink), a unit whose Where= disagrees with its name.
source "$(dirname "$0")/../lib.sh"
disk="$OUT/debian-gpt.img"
rm -f "$disk"; truncate -s 72M "$disk"
sgdisk -Z "$disk" >/dev/null 2>&1 || true
sgdisk -U 5eb1a2b3-0000-4c5d-8e9f-0123456789ab \
    -n 1:2048:+8M -t 1:EF00 -c 1:EFI    -u 1:5eb1a2b3-0001-4c5d-8e9f-0123456789ab \
    -n 2:0:+24M   -t 2:8304 -c 2:root   -u 2:5eb1a2b3-0002-4c5d-8e9f-0123456789ab \
    -n 3:0:+8M    -t 3:8300 -c 3:var    -u 3:5eb1a2b3-0003-4c5d-8e9f-0123456789ab \
    -n 4:0:+8M    -t 4:8300 -c 4:home   -u 4:5eb1a2b3-0004-4c5d-8e9f-0123456789ab \
    -n 5:0:+8M    -t 5:8300 -c 5:data   -u 5:5eb1a2b3-0005-4c5d-8e9f-0123456789ab \
    -n 6:0:0      -t 6:8300 -c 6:backup -u 6:5eb1a2b3-0006-4c5d-8e9f-0123456789ab \
    "$disk" >/dev/null
declare -A start size
for i in 1 2 3 4 5 6; do
    start[$i]=$(sgdisk -i "$i" "$disk" | awk '/^First sector/ {print $3}')
    last=$(sgdisk -i "$i" "$disk" | awk '/^Last sector/ {print $3}')
    size[$i]=$(( last - start[$i] + 1 ))
done
ext4() { # ext4 N LABEL UUID DIR
    truncate -s $(( size[$1] * 512 )) "p$1.img"
    mkfs.ext4 -q -F -L "$2" -U "$3" -E root_owner=0:0 -d "$4" "p$1.img"; put_fs "$disk" "p$1.img" "${start[$1]}"
}
truncate -s $(( size[1] * 512 )) esp.img; mkfs.vfat -n ESP -i 0e5f0e5f esp.img >/dev/null
mkdir -p esp/EFI/debian; printf 'shim\n' > esp/EFI/debian/shimx64.efi; mcopy -s -i esp.img esp/EFI ::/
put_fs "$disk" esp.img "${start[1]}"
r=root u=root/usr/lib/systemd/system e=root/etc/systemd/system
mkdir -p root/{etc,bin,sbin,usr/bin,var,home,boot/efi,srv/data,srv/www,mnt/backup,mnt/masked,mnt/extra,mnt/other,mnt/wrong,tmp,proc} "$u" "$e/local-fs.target.wants" "$e/multi-user.target.wants"
printf 'PRETTY_NAME="Debian GNU/Linux 12 (bookworm)"\nID=debian\nVERSION_ID="12"\n' > root/usr/lib/os-release 2>/dev/null || { mkdir -p root/usr/lib; printf 'ID=debian\nVERSION_ID="12"\n' > root/usr/lib/os-release; }
ln -s ../usr/lib/os-release root/etc/os-release
printf '#!/bin/sh\n' > root/sbin/init; chmod 755 root/sbin/init
printf 'debian\n' > root/etc/hostname
printf 'root var file, hidden by the /var partition\n' > root/var/hidden
cat > root/etc/fstab <<'FS'
# /etc/fstab: static file system information.
# <file system> <mount point>   <type>  <options>       <dump>  <pass>
UUID=0a0b0c0d-d002-4222-8333-444455556666 /               ext4    errors=remount-ro 0       1
UUID=0E5F-0E5F  /boot/efi       vfat    umask=0077      0       1
LABEL=var       /var            ext4    defaults        0       2
UUID=0a0b0c0d-d004-4222-8333-444455556666 /home ext4 defaults,nodev 0 2
LABEL=backup    /mnt/backup     ext4    noauto,ro       0       0
/srv/missing    /srv/www        none    bind            0       0
proc            /proc           proc    defaults        0       0
tmpfs           /tmp            tmpfs   mode=1777       0       0
FS
printf '[Unit]\nDescription=Local\n' > "$u/local-fs.target"; printf '[Unit]\nDescription=MU\n' > "$u/multi-user.target"
ln -s multi-user.target "$u/default.target"
# masked: enabled in /usr/lib, masked by /etc -> /dev/null
mount_unit "$u" mnt-masked.mount LABEL=srvdata /mnt/masked ext4 "" local-fs.target
ln -s /usr/lib/systemd/system/mnt-masked.mount "$e/local-fs.target.wants/mnt-masked.mount"
ln -s /dev/null "$e/mnt-masked.mount"
# shadowed: /usr/lib says LABEL=backup read-only; /etc says PARTLABEL=data; a drop-in sets Options
mount_unit "$u" srv-data.mount /dev/disk/by-label/backup /srv/data ext4 ro local-fs.target
mount_unit "$e" srv-data.mount /dev/disk/by-partlabel/data /srv/data ext4 defaults local-fs.target
mkdir -p "$e/srv-data.mount.d"; printf '[Mount]\nOptions=nosuid,nodev,noexec\n' > "$e/srv-data.mount.d/50-options.conf"
ln -s /etc/systemd/system/srv-data.mount "$e/local-fs.target.wants/srv-data.mount"
# disabled: has [Install] but no .wants symlink
mount_unit "$u" mnt-extra.mount LABEL=srvdata /mnt/extra ext4 "" multi-user.target
# Where= disagrees with the file name (systemd refuses it)
mount_unit "$e" mnt-wrong.mount LABEL=srvdata /mnt/other ext4 "" multi-user.target
ln -s /etc/systemd/system/mnt-wrong.mount "$e/multi-user.target.wants/mnt-wrong.mount"
find root -exec touch -h -d @1700000000 {} +
mkdir -p var/log var/lib/apt home/alice srvdata backup/etc backup/usr/lib backup/sbin
printf 'var log\n' > var/log/syslog
printf 'alice\n' > home/alice/notes; chown -R 1000:1000 home/alice
printf 'served\n' > srvdata/index.html
printf 'ID=debian\nVERSION_ID="11"\n' > backup/usr/lib/os-release; ln -s ../usr/lib/os-release backup/etc/os-release
printf '#!/bin/sh\n' > backup/sbin/init; chmod 755 backup/sbin/init
find var home srvdata backup -exec touch -h -d @1700000000 {} +
ext4 2 root 0a0b0c0d-d002-4222-8333-444455556666 root
ext4 3 var 0a0b0c0d-d003-4222-8333-444455556666 var
ext4 4 home 0a0b0c0d-d004-4222-8333-444455556666 home
ext4 5 srvdata 0a0b0c0d-d005-4222-8333-444455556666 srvdata
ext4 6 backup 0a0b0c0d-d006-4222-8333-444455556666 backup
