#!/usr/bin/env bash
# Two OpenWrt x86-64 "combined-squashfs" disks after their first boot, twins but for rootfs_data
# (field guide §5, images/disks/openwrt.sh for the layout):
#   openwrt-f2fs.img       rootfs_data is f2fs (mkfs.f2fs + sload.f2fs -P from the upper tree):
#                          fstools' rootdisk formats f2fs when at least 100 MiB follow the
#                          squashfs, so 128 MiB follow it here
#   openwrt-f2fs-twin.img  the same disk with an ext4 rootfs_data (mkfs.ext4 -d, 8 MiB: under
#                          100 MiB fstools chooses ext4), which the kernel mounts in the tests
# Both: p1 ext4 `kernel`, p2 squashfs + rootfs_data, p3 ext4 `data` (UUID ...0003) that UCI
# /etc/config/fstab mounts at /mnt/data by uuid; the fstab also has a disabled mount by label
# (/mnt/old), and a swap section. The upper tree holds only what sload.f2fs can write: regular
# files, directories, symlinks (sload.f2fs 1.15 skips character devices, so an overlay whiteout,
# and writes no xattrs, so no trusted.overlay.opaque): a changed /etc/config/network, the fstab,
# a new package file, a new /www/index.html over the squashfs's, a symlink.
# NAME.offset holds rootfs_data's byte offset inside p2.
source "$(dirname "$0")/../lib.sh"
M=2048
# --- the squashfs
openwrt_rom rom x86/64 boot mnt
mksquashfs rom rootfs.sqfs -noappend -comp xz -b 262144 -quiet >/dev/null
sq=$(stat -c %s rootfs.sqfs)
offset=$(( (sq + 65535) / 65536 * 65536 ))
truncate -s "$offset" rootfs.sqfs
# --- the upper tree
d=data
mkdir -p "$d/upper/etc/config" "$d/upper/usr/lib/opkg/info" "$d/upper/www" "$d/upper/mnt/data" "$d/upper/mnt/old" "$d/work/work"
printf 'config interface lan\n\toption proto dhcp\n' > "$d/upper/etc/config/network"
printf 'Package: tcpdump\n' > "$d/upper/usr/lib/opkg/info/tcpdump.control"
printf '<html>overlay</html>\n' > "$d/upper/www/index.html"
ln -s /usr/lib/opkg/info/tcpdump.control "$d/upper/etc/tcpdump.link"
cat > "$d/upper/etc/config/fstab" <<'UCI'
config global
	option anon_swap '0'
	option anon_mount '0'
	option auto_swap '1'
	option auto_mount '1'
	option delay_root '5'
	option check_fs '0'

config mount
	option target '/mnt/data'
	option uuid '0a0b0c0d-0e0e-4222-8333-000000000003'
	option options 'ro'
	option enabled '1'

config mount
	option target '/mnt/old'
	option label 'oldstuff'
	option enabled '0'

config swap
	option device '/dev/sda4'
	option enabled '1'
UCI
chmod 700 "$d/work" "$d/work/work"
find "$d" -exec touch -h -d @1700000300 {} +
# --- rootfs_data: f2fs (128 MiB) and ext4 (8 MiB)
truncate -s 128M data-f2fs.img
mkfs.f2fs -q -f -l rootfs_data -U 0a0b0c0d-0e0e-4222-8333-000000000002 -O extra_attr,inode_checksum,sb_checksum data-f2fs.img
# sload.f2fs ends with its own fsck pass and exits non-zero when it repaired something; a
# read-only fsck afterwards decides (images/disks/fs-f2fs.sh).
sload.f2fs -f "$d" -P data-f2fs.img > sload.log 2>&1 || true
fsck.f2fs -f --dry-run data-f2fs.img > fsck.log 2>&1
if grep -a '\[Fail\]' fsck.log; then cat sload.log fsck.log; exit 1; fi
truncate -s 8M data-ext4.img
mkfs.ext4 -q -F -L rootfs_data -U 0a0b0c0d-0e0e-4222-8333-000000000002 -E root_owner=0:0 -d "$d" data-ext4.img
# --- p1 kernel, p3 data
mkdir -p kernel/boot/grub
head -c 20000 /dev/urandom > kernel/boot/vmlinuz
printf 'menuentry "OpenWrt" {\n\tlinux /boot/vmlinuz root=PARTUUID=0e0e0e0e-02 rootwait\n}\n' > kernel/boot/grub/grub.cfg
find kernel -exec touch -h -d @1700000000 {} +
truncate -s 4M kernel.img
mkfs.ext4 -q -F -L kernel -U 0a0b0c0d-0e0e-4222-8333-000000000001 -E root_owner=0:0 -d kernel kernel.img
mkdir -p extra
printf 'on the data partition\n' > extra/hello.txt
find extra -exec touch -h -d @1700000000 {} +
truncate -s 4M extra.img
mkfs.ext4 -q -F -L data -U 0a0b0c0d-0e0e-4222-8333-000000000003 -E root_owner=0:0 -d extra extra.img
# --- the two disks
for kind in f2fs ext4; do
    name=openwrt-f2fs; [ "$kind" = ext4 ] && name=openwrt-f2fs-twin
    disk="$OUT/$name.img"
    cat rootfs.sqfs "data-$kind.img" > p2.img
    p2sectors=$(( ($(stat -c %s p2.img) + 511) / 512 ))
    p3start=$(( (6*M + p2sectors + M - 1) / M * M ))
    rm -f "$disk"; truncate -s $(( (p3start + 5*M) * 512 )) "$disk"
    sfdisk -q "$disk" <<SF
label: dos
label-id: 0x0e0e0e0e
unit: sectors

start=$((1*M)), size=$((4*M)), type=83, bootable
start=$((6*M)), size=$p2sectors, type=83
start=$p3start, size=$((4*M)), type=83
SF
    put_fs "$disk" kernel.img $((1*M))
    put_fs "$disk" p2.img $((6*M))
    put_fs "$disk" extra.img "$p3start"
    echo "$offset" > "$OUT/$name.offset"
done
ls -l "$OUT"/openwrt-f2fs*.img
