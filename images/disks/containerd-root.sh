#!/usr/bin/env bash
# Two MBR disks, HAOS-17-style, whose Docker data-root uses the containerd image store, written
# by Debian's real containerd (no Docker engine): images imported with `ctr images import` of OCI
# archives built here, container snapshots prepared and committed as Docker 29 does
# (`<id>-init` committed over the image's top chain id, `<id>` active over it, files written and
# deleted through the kernel's overlay mount), then the daemon stopped and its root copied.
#   containerd-root.img         p1 vfat boot, p2 ext4 root (/etc/docker/daemon.json data-root
#                               /mnt/data/docker, fstab mounts p3 at /mnt/data and binds
#                               /mnt/data/docker on /var/lib/docker), p3 ext4 data with
#                               /mnt/data/.docker-use-containerd-snapshotter and docker/containerd/daemon.
#                               Images docker.io/example/web:1.0 (gzip base + plain app layer with a
#                               whiteout and an opaque directory) and docker.io/example/job:2.0
#                               (same base + a tar+zstd layer); containers "web" (running)
#                               and "job" (exited 1), config.v2.json/hostconfig.json as Docker 29
#                               writes them (Driver overlayfs, Image = the target digest).
#                               More names as Docker keeps them: docker.io/library/web:latest,
#                               registry.example:5000/x/web:1, docker.io/example/web@<manifest>,
#                               docker.io/realdev/base:1 (job); job's index named only
#                               docker.io/library/job@<index>, web's index moby-dangling@<index>;
#                               docker.io/example/multi:1, an index of an arm64 manifest then web's
#                               amd64 one; /bin/sh an amd64 ELF header (the device's architecture).
#   containerd-root-broken.img  the same with planted damage (see BROKEN below).
#   containerd-root-nosnap.img  the same without any snapshot directory (image exports from the blobs).
#   containerd-k3s.img          containerd alone as k3s keeps it (namespace k8s.io), see the end.
# Beside them: containerd-root.facts/ (ctr images ls, ctr snapshots ls, ctr content ls -q output
# while the daemon ran; ids.json; indexes.txt: job's and web's index digests) for the tests.
source "$(dirname "$0")/../lib.sh"
command -v containerd >/dev/null && command -v ctr >/dev/null || { echo "containerd is not installed (make deps)" >&2; exit 1; }

facts="$OUT/containerd-root.facts"
rm -rf "$facts"; mkdir -p "$facts"
mkdir -p ctd oci
mount -t tmpfs -o size=256m tmpfs ctd
cleanup() {
    [ -n "${pid:-}" ] && kill "$pid" 2>/dev/null && wait "$pid" 2>/dev/null
    umount ctd/mnt 2>/dev/null || true
    umount ctd 2>/dev/null || true
}
trap cleanup EXIT
# start_containerd NAME: a containerd with its own root, state and socket below ctd/NAME.
start_containerd() {
    R=$PWD/ctd/$1/root S=$PWD/ctd/$1/state SOCK=$PWD/ctd/$1/containerd.sock
    mkdir -p "$R" "$S" ctd/mnt
    cat > "ctd/$1/config.toml" <<TOML
version = 2
root = "$R"
state = "$S"
disabled_plugins = ["io.containerd.grpc.v1.cri", "io.containerd.internal.v1.opt",
  "io.containerd.snapshotter.v1.btrfs", "io.containerd.snapshotter.v1.zfs", "io.containerd.snapshotter.v1.devmapper",
  "io.containerd.snapshotter.v1.aufs", "io.containerd.tracing.processor.v1.otlp"]
[grpc]
  address = "$SOCK"
[ttrpc]
  address = "$SOCK.ttrpc"
# Garbage collection never runs (the hand-made container snapshots are referenced by nothing but
# Docker's config.v2.json, as Docker's own are held by its lease).
[plugins."io.containerd.gc.v1.scheduler"]
  deletion_threshold = 0
  mutation_threshold = 1000000000
  startup_delay = "1000h"
  schedule_delay = "1000h"
TOML
    containerd --config "ctd/$1/config.toml" > "ctd/$1/containerd.log" 2>&1 &
    pid=$!
    for _ in $(seq 100); do [ -S "$SOCK" ] && break; sleep 0.1; done
}
start_containerd moby
ctr() { command ctr -a "$SOCK" -n moby "$@"; }

make_oci_archives oci "$facts/layers.json"
ctr images import --snapshotter overlayfs --platform linux/amd64 oci/web.tar
ctr images import --snapshotter overlayfs --platform linux/amd64 oci/job.tar
# Names as Docker 26+ keeps them on the containerd image store (issue 23): containerd holds full
# names (docker.io/library/NAME:TAG for official images, docker.io/USER/NAME:TAG, other
# registries as written), a digest name (NAME@<target digest>, as `docker pull NAME@sha256:...`
# stores it), and `moby-dangling@<target digest>` for an image whose last name was removed.
# Two more targets are the archives' indexes (`--index-name` keeps an index as an image record):
# job's index named only by a digest, web's index only dangling.
web_manifest=$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["docker.io/example/web:1.0"]["manifest"])' "$facts/layers.json")
ctr images tag docker.io/example/web:1.0 docker.io/library/web:latest registry.example:5000/x/web:1 "docker.io/example/web@$web_manifest"
ctr images tag docker.io/example/job:2.0 docker.io/realdev/base:1
index_target() { ctr images ls | awk -v n="$1" '$1 == n { print $3 }'; }
ctr images import --index-name import-index:job --snapshotter overlayfs --platform linux/amd64 oci/job.tar
job_index=$(index_target import-index:job)
ctr images tag import-index:job "docker.io/library/job@$job_index"
ctr images rm import-index:job
ctr images import --index-name import-index:web --snapshotter overlayfs --platform linux/amd64 oci/web.tar
web_index=$(index_target import-index:web)
ctr images tag import-index:web "moby-dangling@$web_index"
ctr images rm import-index:web
# A multi-platform index (docker.io/example/multi:1): an arm64 manifest first, then web's amd64
# one, both present (--all-platforms); the same layers, so the same chain ids and snapshots.
python3 - oci <<'PY'
import hashlib, json, os, shutil, sys, tarfile
oci = sys.argv[1]; src = os.path.join(oci, "web"); d = os.path.join(oci, "multi"); blobs = os.path.join(d, "blobs/sha256")
shutil.copytree(os.path.join(src, "blobs"), os.path.join(d, "blobs"))
def put(b):
    h = hashlib.sha256(b).hexdigest(); open(os.path.join(blobs, h), "wb").write(b); return "sha256:" + h
amd64 = json.load(open(os.path.join(src, "index.json")))["manifests"][0]
manifest = json.load(open(os.path.join(blobs, amd64["digest"][7:])))
config = json.load(open(os.path.join(blobs, manifest["config"]["digest"][7:])))
config["architecture"] = "arm64"; config["variant"] = "v8"
cfg = json.dumps(config, sort_keys=True).encode()
manifest["config"] = dict(manifest["config"], digest=put(cfg), size=len(cfg))
m = json.dumps(manifest, sort_keys=True).encode()
arm64 = {"mediaType": manifest["mediaType"], "digest": put(m), "size": len(m), "platform": {"architecture": "arm64", "os": "linux", "variant": "v8"}}
index = {"schemaVersion": 2, "mediaType": "application/vnd.oci.image.index.v1+json",
         "manifests": [arm64, {k: v for k, v in amd64.items() if k != "annotations"}]}   # named by --index-name only
open(os.path.join(d, "index.json"), "w").write(json.dumps(index))
open(os.path.join(d, "oci-layout"), "w").write('{"imageLayoutVersion": "1.0.0"}')
with tarfile.open(os.path.join(oci, "multi.tar"), "w") as t:
    for f in sorted(os.listdir(d)): t.add(os.path.join(d, f), arcname=f)
print(arm64["digest"], amd64["digest"])
PY
ctr images import --all-platforms --snapshotter overlayfs --index-name docker.io/example/multi:1 oci/multi.tar
multi_index=$(index_target docker.io/example/multi:1)
printf '%s\n%s\n%s\n' "$job_index" "$web_index" "$multi_index" > "$facts/indexes.txt"

# Containers as Docker 29 makes them: <id>-init prepared over the image's top chain id (under a
# temporary key), /etc/hostname, /etc/hosts, /.dockerenv written, committed as <id>-init; <id>
# prepared over it, files written and deleted through the overlay mount.
python3 - "$facts/layers.json" > ctd/chains <<'PY'
import json, sys
j = json.load(open(sys.argv[1]))
print(j["docker.io/example/web:1.0"]["chain_ids"][-1], j["docker.io/example/job:2.0"]["chain_ids"][-1])
PY
read -r web_chain job_chain < ctd/chains
web_id=$(printf container-web | sha256sum | cut -c1-64)
job_id=$(printf container-job | sha256sum | cut -c1-64)
with_mount() { # KEY COMMANDS...
    local key=$1; shift
    ctr snapshots --snapshotter overlayfs mounts "$PWD/ctd/mnt" "$key" | sh
    ( cd ctd/mnt && eval "$@" )
    umount ctd/mnt
}
container() { # ID CHAIN INIT_KEY RW_COMMANDS
    local id=$1 chain=$2 tmp=$3; shift 3
    ctr snapshots --snapshotter overlayfs prepare "$tmp" "$chain"
    with_mount "$tmp" "printf '%s\n' ${id:0:12} > etc/hostname; printf '127.0.0.1 localhost\n' > etc/hosts; : > .dockerenv"
    ctr snapshots --snapshotter overlayfs commit "$id-init" "$tmp"
    ctr snapshots --snapshotter overlayfs prepare "$id" "$id-init"
    with_mount "$id" "$@"
}
container "$web_id" "$web_chain" "$(printf init-web | sha256sum | cut -c1-64)" \
    "mkdir -p run var/log; printf '42\n' > run/web.pid; rm etc/os-release; rm -r etc/app; mkdir etc/app; printf 'fresh\n' > etc/app/new.conf; printf 'patched\n' >> srv/index.html"
container "$job_id" "$job_chain" "$(printf init-job | sha256sum | cut -c1-64)" \
    "mkdir -p var/log; printf 'failed\n' > var/log/job.log; rm usr/local/bin/job-alias"

ctr images ls > "$facts/images.txt"
ctr snapshots --snapshotter overlayfs ls > "$facts/snapshots.txt"
ctr content ls > "$facts/content.txt"
printf '%s\n%s\n' "$web_id" "$job_id" > "$facts/containers.txt"
# containerd's own mount of each container (its snapshot directories, upper first), with the
# root as a placeholder, for the kernel comparison of the exports.
for c in web:$web_id job:$job_id; do
    ctr snapshots --snapshotter overlayfs mounts /target "${c#*:}" | sed "s|$R|@ROOT@|g" > "$facts/mounts-${c%%:*}.txt"
done
kill "$pid"; wait "$pid" || true; pid=
cp ctd/moby/containerd.log "$facts/"
moby_root=$R
cp "$R/io.containerd.metadata.v1.bolt/meta.db" "$R/io.containerd.snapshotter.v1.overlayfs/metadata.db" "$facts/"

make_containerd_disk() {
    local name=$1 broken=$2 disk="$OUT/$1.img"
    rm -rf data root
    mkdir -p data/docker/containerd root
    cp -a "$moby_root" data/docker/containerd/daemon
    : > data/.docker-use-containerd-snapshotter
    python3 - data/docker "$facts" "$broken" <<'PY'
import hashlib, json, os, shutil, sys
root, facts, broken = sys.argv[1], sys.argv[2], sys.argv[3] == "yes"
layers = json.load(open(os.path.join(facts, "layers.json")))
ids = open(os.path.join(facts, "containers.txt")).read().split()
def w(path, data):
    os.makedirs(os.path.dirname(path), exist_ok=True); open(path, "w").write(data)
for (name, tag, running, code, cmd), cid in zip((("web", "docker.io/example/web:1.0", True, 0, ["/srv/run.sh"]),
                                                  ("job", "docker.io/example/job:2.0", False, 1, ["/usr/local/bin/job"])), ids):
    state = {"Running": running, "Paused": False, "Restarting": False, "OOMKilled": False, "RemovalInProgress": False, "Dead": False,
             "Pid": 4242 if running else 0, "ExitCode": code, "Error": "",
             "StartedAt": "2026-01-20T10:00:00.123456789Z", "FinishedAt": "0001-01-01T00:00:00Z" if running else "2026-01-20T10:00:05.5Z",
             "Health": None}
    cfg = {"StreamConfig": {}, "State": state, "ID": cid, "Created": "2026-01-20T09:59:59.5Z", "Managed": False,
           "Path": cmd[0], "Args": [], "Config": {"Hostname": cid[:12], "Image": tag, "Cmd": cmd, "Labels": {"role": name},
           "Env": ["PATH=/usr/local/bin:/usr/bin:/bin"]}, "Image": layers[tag]["manifest"], "ImageManifest": None,
           "NetworkSettings": {}, "LogPath": "", "Name": "/" + name, "Driver": "overlayfs", "OS": "linux",
           "RestartCount": 3 if name == "job" else 0, "MountLabel": "", "ProcessLabel": "", "AppArmorProfile": "",
           "HasBeenStartedBefore": True, "HasBeenManuallyStopped": False, "MountPoints": {}}
    w(os.path.join(root, "containers", cid, "config.v2.json"), json.dumps(cfg))
    w(os.path.join(root, "containers", cid, "hostconfig.json"),
      json.dumps({"RestartPolicy": {"Name": "always" if name == "web" else "on-failure", "MaximumRetryCount": 0}, "NetworkMode": "bridge"}))
w(os.path.join(root, "volumes/webdata/_data/index.html"), "<html>hi</html>\n")
if broken:
    # BROKEN: each plants one problem the integrity check must report.
    cs = os.path.join(root, "containerd/daemon/io.containerd.content.v1.content/blobs/sha256")
    job = layers["docker.io/example/job:2.0"]
    os.remove(os.path.join(cs, job["config"][7:]))                                   # missing blob (job's config)
    p = os.path.join(cs, job["layer_blobs"][1][7:])                                  # blob whose hash differs
    b = bytearray(open(p, "rb").read()); b[len(b) // 2] ^= 0xFF; open(p, "wb").write(bytes(b))
    db = os.path.join(root, "containerd/daemon/io.containerd.metadata.v1.bolt/meta.db")
    data = open(db, "rb").read()
    old = b"parent" + (ids[1] + "-init").encode()                                   # job's parent renamed: missing parent
    assert data.count(old) == 1, data.count(old)
    open(db, "wb").write(data.replace(old, b"parent" + (ids[1] + "-lost").encode()))
    ghost = hashlib.sha256(b"container-ghost").hexdigest()                           # dangling container
    w(os.path.join(root, "containers", ghost, "config.v2.json"),
      json.dumps({"ID": ghost, "Name": "/ghost", "Image": layers["docker.io/example/web:1.0"]["manifest"], "Driver": "overlayfs",
                  "Config": {"Image": "docker.io/example/web:1.0"}, "State": {"Running": False, "ExitCode": 0}}))
PY
    # NOSNAP: every snapshot directory gone (images must come from the content store's blobs).
    [ "$broken" = nosnap ] && rm -rf data/docker/containerd/daemon/io.containerd.snapshotter.v1.overlayfs/snapshots/*
    minimal_root root
    # The device's architecture, as an ELF header of /bin/sh (e_machine at 18): amd64 (0x3e), or
    # riscv64 (0xf3: no index has a manifest for it) on the broken disk.
    case $broken in yes) m='\363';; *) m='\076';; esac
    printf "\\177ELF\\002\\001\\001\\000\\000\\000\\000\\000\\000\\000\\000\\000\\002\\000$m\\000" > root/bin/sh
    mkdir -p root/etc/docker root/mnt/data root/var/lib/docker
    printf '{\n  "data-root": "/mnt/data/docker",\n  "log-driver": "journald"\n}\n' > root/etc/docker/daemon.json
    printf 'PARTUUID=c0de0017-02 / ext4 defaults 0 1\nPARTUUID=c0de0017-03 /mnt/data ext4 defaults 0 2\n/mnt/data/docker /var/lib/docker none bind 0 0\n' > root/etc/fstab
    boot_root_disk "$disk" c0de0017 128 24 "" 86 hassos-data
}
make_containerd_disk containerd-root no
make_containerd_disk containerd-root-broken yes
make_containerd_disk containerd-root-nosnap nosnap

# containerd alone, as k3s keeps it: root /var/lib/rancher/k3s/agent/containerd, namespace k8s.io,
# the web image and a containerd container record (`ctr containers create`: an Active snapshot
# named by the container id over the image). containerd-k3s.img: p1 vfat boot, p2 ext4 root.
start_containerd k3s
k3s() { command ctr -a "$SOCK" -n k8s.io "$@"; }
k3s images import --snapshotter overlayfs --platform linux/amd64 oci/web.tar
k3s containers create --snapshotter overlayfs docker.io/example/web:1.0 k3s-web
k3s images ls > "$facts/k3s-images.txt"
k3s snapshots --snapshotter overlayfs ls > "$facts/k3s-snapshots.txt"
k3s content ls > "$facts/k3s-content.txt"
k3s containers ls > "$facts/k3s-containers.txt"
k3s snapshots --snapshotter overlayfs mounts /target k3s-web | sed "s|$R|@ROOT@|g" > "$facts/mounts-k3s-web.txt"
kill "$pid"; wait "$pid" || true; pid=
rm -rf root; minimal_root root
mkdir -p root/var/lib/rancher/k3s/agent
cp -a "$R" root/var/lib/rancher/k3s/agent/containerd
printf 'PARTUUID=c0de0018-02 / ext4 defaults 0 1\n' > root/etc/fstab
disk="$OUT/containerd-k3s.img"
boot_root_disk "$disk" c0de0018 64 46 "-I 256"
