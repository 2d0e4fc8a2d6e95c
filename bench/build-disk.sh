#!/usr/bin/env bash
# bench/build-disk.sh OUT.img [CONTENT_MB]: a HAOS-style GPT disk for `make bench`: EROFS root with
# the HAOS mount units, ext4 overlay, and an ext4 data partition holding a Docker overlay2
# data-root of about CONTENT_MB (default 1500) MB in tens of thousands of files, copied from this
# machine's /usr (small text files to large shared libraries). Bound onto /var/lib/docker as on
# HAOS. Built once and cached (never committed).
set -euo pipefail
out=${1:?usage: bench/build-disk.sh OUT.img [CONTENT_MB]}
mb=${2:-1500}
here=$(cd "$(dirname "$0")" && pwd)
source "$here/../images/lib.sh"
work=$(mktemp -d "$(dirname "$out")/.bench-work.XXXXXX")
trap 'rm -rf "$work"' EXIT

# Root: a small tree plus the units that mount data and bind the Docker data-root.
make_tree "$work/root" no
# mkfs.erofs 1.5 fails on a 255-byte name (see images/disks/fs-erofs.sh): keep 254 bytes.
long=$(printf 'n%.0s' $(seq 1 255)); mv "$work/root/etc/$long" "$work/root/etc/${long:1}"
lib=$work/root/usr/lib/systemd/system
mkdir -p "$lib" "$work/root/etc/systemd/system/local-fs.target.wants" "$work/root/etc/systemd/system/multi-user.target.wants" \
    "$work/root/mnt/data" "$work/root/mnt/overlay" "$work/root/var/lib/docker" "$work/root/sbin"
printf '[Mount]\nWhat=/dev/disk/by-label/hassos-data\nWhere=/mnt/data\nType=ext4\nOptions=commit=30\n[Install]\nWantedBy=local-fs.target\n' > "$lib/mnt-data.mount"
printf '[Mount]\nWhat=/dev/disk/by-label/hassos-overlay\nWhere=/mnt/overlay\nType=ext4\n[Install]\nWantedBy=local-fs.target\n' > "$lib/mnt-overlay.mount"
printf '[Mount]\nWhat=/mnt/data/docker\nWhere=/var/lib/docker\nType=none\nOptions=bind\n[Install]\nWantedBy=multi-user.target\n' > "$lib/var-lib-docker.mount"
ln -s /usr/lib/systemd/system/mnt-data.mount "$work/root/etc/systemd/system/local-fs.target.wants/mnt-data.mount"
ln -s /usr/lib/systemd/system/mnt-overlay.mount "$work/root/etc/systemd/system/local-fs.target.wants/mnt-overlay.mount"
ln -s /usr/lib/systemd/system/var-lib-docker.mount "$work/root/etc/systemd/system/multi-user.target.wants/var-lib-docker.mount"
mkfs.erofs -zlz4hc -T 1700000000 "$work/root.img" "$work/root" >/dev/null

# Data: Docker layers made of this machine's /usr directories, in order, until about $mb MB
# (shared libraries, text files, headers: tens of thousands of files of every size).
mkdir -p "$work/data/docker/overlay2/l" "$work/data/docker/image/overlay2"
n=0
for src in /usr/lib/x86_64-linux-gnu /usr/share /usr/include /usr/lib/gcc /usr/lib/python3.11 /usr/lib/llvm-14 /usr/lib/jvm /opt/swift/usr/lib; do
    [ -d "$src" ] || continue
    [ "$(du -sm "$work/data" | cut -f1)" -lt "$mb" ] || break
    n=$((n + 1))
    short=$(printf 'L%07d' "$n")
    mkdir -p "$work/data/docker/overlay2/layer$n/diff"
    cp -a "$src/." "$work/data/docker/overlay2/layer$n/diff/" 2>/dev/null || true
    printf '%s' "$short" > "$work/data/docker/overlay2/layer$n/link"
    ln -s "../layer$n/diff" "$work/data/docker/overlay2/l/$short"
done
size_mb=$(( $(du -sm "$work/data" | cut -f1) * 115 / 100 + 64 ))
truncate -s "${size_mb}M" "$work/data.img"
mkfs.ext4 -q -F -L hassos-data -d "$work/data" "$work/data.img"
mkdir -p "$work/overlay/etc"; echo bench > "$work/overlay/etc/hostname"
truncate -s 16M "$work/overlay.img"; mkfs.ext4 -q -F -L hassos-overlay -d "$work/overlay" "$work/overlay.img"

# The disk: boot (small vfat), system0 (EROFS), overlay, data.
root_mb=$(( $(stat -c %s "$work/root.img") / 1048576 + 2 ))
data_mb=$(stat -c %s "$work/data.img"); data_mb=$(( data_mb / 1048576 ))
rm -f "$out"; truncate -s $(( 1 + 16 + root_mb + 16 + data_mb + 2 ))M "$out"
sgdisk -n 1:2048:+16M -c 1:hassos-boot -t 1:EF00 -n 2:0:+${root_mb}M -c 2:hassos-system0 \
       -n 3:0:+16M -c 3:hassos-overlay -n 4:0:+${data_mb}M -c 4:hassos-data "$out" >/dev/null
truncate -s 16M "$work/boot.img"; mkfs.vfat -n hassos-boot "$work/boot.img" >/dev/null
for i in 1 2 3 4; do
    start=$(sgdisk -i "$i" "$out" | awk '/^First sector/ {print $3}')
    img=$(case $i in 1) echo boot;; 2) echo root;; 3) echo overlay;; 4) echo data;; esac)
    put_fs "$out" "$work/$img.img" "$start"
done
echo "built $out: $(du -sh --apparent-size "$out" | cut -f1), data content $(du -sh "$work/data" | cut -f1), $(find "$work/data" | wc -l) entries"
