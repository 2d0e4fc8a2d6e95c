#!/usr/bin/env bash
# A disk whose containers live in Podman's store, written by Debian's real podman (offline, rootful,
# private --root/--runroot): the OCI archives of make_oci_archives loaded with `podman load`,
# containers "web" and "job" created (`podman create`), files written and deleted in their rw
# layers through `podman mount`. The store is copied to /var/lib/containers/storage.
#   podman-root.img   p1 vfat boot, p2 ext4 root with /var/lib/containers/storage.
# Beside it: podman-root.facts/ (podman images/ps --format json, layer chains) for the tests.
source "$(dirname "$0")/../lib.sh"
command -v podman >/dev/null || { echo "podman is not installed (make deps)" >&2; exit 1; }
facts="$OUT/podman-root.facts"
rm -rf "$facts"; mkdir -p "$facts" pm
mount -t tmpfs -o size=256m tmpfs pm
run=$(mktemp -d /tmp/fwa-pm.XXXXXX)   # podman wants a runroot of at most 50 characters
trap 'umount pm 2>/dev/null || true; rm -rf "$run"' EXIT
mkdir -p pm/root pm/tmp
P() { podman --root "$PWD/pm/root" --runroot "$run" --tmpdir "$PWD/pm/tmp" --storage-driver overlay \
        --cgroup-manager cgroupfs --events-backend none "$@"; }
make_oci_archives oci "$facts/layers.json"
P load -i oci/web.tar
P load -i oci/job.tar
P create --name web --label role=web docker.io/example/web:1.0
P create --name job --label role=job docker.io/example/job:2.0
m=$(P mount web)
mkdir -p "$m/run"; printf '42\n' > "$m/run/web.pid"; rm "$m/etc/os-release"; rm -r "$m/etc/app"; mkdir "$m/etc/app"
printf 'fresh\n' > "$m/etc/app/new.conf"; printf 'patched\n' >> "$m/srv/index.html"
P umount web
m=$(P mount job)
mkdir -p "$m/var/log"; printf 'failed\n' > "$m/var/log/job.log"; rm "$m/usr/local/bin/job-alias"
P umount job
P images --format json > "$facts/images.json"
P ps -a --format json > "$facts/ps.json"
cp pm/root/overlay-layers/layers.json "$facts/layers-store.json"
rm -rf root; minimal_root root
mkdir -p root/var/lib/containers
cp -a pm/root root/var/lib/containers/storage
rm -rf root/var/lib/containers/storage/tmp
printf 'PARTUUID=c0de0019-02 / ext4 defaults 0 1\n' > root/etc/fstab
disk="$OUT/podman-root.img"
rm -f "$disk"; truncate -s 64M "$disk"
sfdisk -q "$disk" <<SF
label: dos
label-id: 0xc0de0019
unit: sectors

start=2048, size=$((16*2048)), type=c
start=$((17*2048)), type=83
SF
rm -f boot.img; truncate -s 16M boot.img; mkfs.vfat -n BOOT boot.img >/dev/null
printf 'console=ttyS0 root=PARTUUID=c0de0019-02 rootfstype=ext4\n' > cmdline.txt
mcopy -i boot.img cmdline.txt ::/
put_fs "$disk" boot.img 2048
rm -f rootfs.img; truncate -s 46M rootfs.img
mkfs.ext4 -q -F -L rootfs -I 256 -d root rootfs.img
put_fs "$disk" rootfs.img $((17*2048))
