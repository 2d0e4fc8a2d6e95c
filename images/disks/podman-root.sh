#!/usr/bin/env bash
# A disk whose containers live in Podman's store, written by Debian's real podman (offline, rootful,
# private --root/--runroot): the OCI archives of make_oci_archives loaded with `podman load`,
# containers "web" and "job" created (`podman create`), files written and deleted in their rw
# layers through `podman mount`. The store is copied to /var/lib/containers/storage.
#   podman-root.img          p1 vfat boot, p2 ext4 root with /var/lib/containers/storage.
#   podman-root-broken.img   the same with planted damage (see BROKEN below).
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
make_podman_disk() {
    local name=$1 broken=$2 disk="$OUT/$1.img"
    rm -rf root; minimal_root root
    mkdir -p root/var/lib/containers
    cp -a pm/root root/var/lib/containers/storage
    rm -rf root/var/lib/containers/storage/tmp
    if [ "$broken" = yes ]; then
        # BROKEN: job's rw layer without its diff, web's image config (big data) gone, a container
        # record whose image and layer do not exist.
        python3 - root/var/lib/containers/storage <<'PY'
import base64, json, os, shutil, sys
root = sys.argv[1]
cs = json.load(open(os.path.join(root, "overlay-containers/containers.json")))
job = next(c for c in cs if c["names"] == ["job"])
shutil.rmtree(os.path.join(root, "overlay", job["layer"], "diff"))
web = next(c for c in cs if c["names"] == ["web"])
os.remove(os.path.join(root, "overlay-images", web["image"], "=" + base64.b64encode(("sha256:" + web["image"]).encode()).decode()))
cs.append({"id": "6" * 64, "names": ["ghost"], "image": "7" * 64, "layer": "8" * 64, "metadata": "{}", "created": "2026-01-01T00:00:00Z"})
json.dump(cs, open(os.path.join(root, "overlay-containers/containers.json"), "w"))
PY
    fi
    printf 'PARTUUID=c0de0019-02 / ext4 defaults 0 1\n' > root/etc/fstab
    boot_root_disk "$disk" c0de0019 64 46 "-I 256"
}
make_podman_disk podman-root no
make_podman_disk podman-root-broken yes
