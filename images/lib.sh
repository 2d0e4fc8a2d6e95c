# Shared by the disk recipes in images/disks/ (sourced; the recipe runs in a scratch dir $WORK and
# writes its result into $OUT).
set -euo pipefail
IMAGES_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
source "$IMAGES_DIR/tree.sh"
# Reproducible mkfs: fixed timestamps where the tools honour it.
export SOURCE_DATE_EPOCH=1700000000

# require_loop_mounts NAME [FSTYPE]: recipes whose reference is the kernel's own mount need root
# and loop devices (and FSTYPE in /proc/filesystems); without them this writes $OUT/NAME.skipped
# (the tests skip) and ends the recipe successfully with no image.
require_loop_mounts() {
    if [ "$(id -u)" -ne 0 ] || ! losetup -f >/dev/null 2>&1 || { [ -n "${2:-}" ] && ! grep -qw "$2" /proc/filesystems; }; then
        echo "$1: needs root, loop devices${2:+ and $2 in /proc/filesystems}; no image built (its tests skip)" | tee "$OUT/$1.skipped"
        exit 0
    fi
    rm -f "$OUT/$1.skipped"
}

# mixed_file PATH CHUNKS: a file of CHUNKS 4 KiB chunks, every third one random (seeded, so the
# same each run) and the others compressible text, then a tail that is not block aligned: for
# the compressors of the filesystem recipes, which must store some blocks raw and some packed.
mixed_file() {
    python3 - "$1" "$2" <<'PY'
import random, sys
r = random.Random(1234)
with open(sys.argv[1], "wb") as f:
    for i in range(int(sys.argv[2])):
        if i % 3 == 2:
            f.write(bytes(r.getrandbits(8) for _ in range(4096)))
        else:
            f.write(("line %06d of compressible text\n" % i).encode() * 128)
    f.write(b"tail that is not block aligned\n" * 37)
PY
}

# debian_kernel MODULE...: Debian's generic kernel (linux-image-*-amd64) and busybox-static, for
# the recipes that boot Linux under QEMU where this machine's kernel lacks a filesystem: fetched
# with `apt-get download` into $WORK and unpacked into ./deb (never installed). Sets version,
# kernel (the vmlinuz) and modules (the unpacked kernel/ module tree). Calls the recipe's own
# skip (which writes its .skipped file) when apt has no candidate, the download fails, or the
# kernel or a MODULE (a path below kernel/ without .ko) is missing.
debian_kernel() {
    version=$(apt-cache depends linux-image-amd64 2>/dev/null | sed -n 's/.*Depends: linux-image-\([0-9].*-amd64\)$/\1/p' | head -1)
    [ -n "$version" ] || skip "no linux-image-amd64 candidate in apt's lists"
    ( cd "$WORK" && apt-get download "linux-image-$version" busybox-static ) > download.log 2>&1 || skip "apt-get download failed: $(tail -1 download.log)"
    mkdir -p deb
    local d m
    for d in "$WORK"/*.deb; do dpkg-deb -x "$d" deb; done
    kernel=deb/boot/vmlinuz-$version
    modules=deb/lib/modules/$version/kernel
    [ -f "$kernel" ] || skip "linux-image-$version has no kernel at $kernel"
    for m in "$@"; do
        [ -f "$modules/$m.ko" ] || skip "linux-image-$version has no module $m"
    done
}

# tree_ext4_image SRC IMG SIZE INODES: an ext4 image (label "src") holding a copy of the tree SRC,
# for a QEMU guest to read: copied in through a loop mount of the host's kernel, since cp -a keeps
# every field and mkfs.ext4 -d drops nanoseconds. Calls the recipe's skip without loop mounts.
tree_ext4_image() {
    local src=$1 img=$2 mnt=$WORK/treemnt
    mkfs.ext4 -q -F -L src -b 4096 -I 256 -N "$4" "$img" "$3"
    mkdir -p "$mnt"
    mount -o loop "$img" "$mnt" 2>/dev/null || skip "cannot loop-mount ext4 here (the source tree's copy needs it)"
    trap 'umount "$WORK/treemnt" 2>/dev/null || true' EXIT
    cp -a "$src/." "$mnt/"
    umount "$mnt"
    trap - EXIT
}

# --- partition-table helpers (parts) ---------------------------------------------------------
# put_fs DISK FSIMG START_SECTOR [SECTOR_SIZE]: copy a filesystem image into a disk at a sector,
# keeping the disk sparse.
put_fs() {
    local disk=$1 fs=$2 start=$3 ss=${4:-512}
    dd if="$fs" of="$disk" bs="$ss" seek="$start" conv=notrunc,sparse status=none
}

# minimal_root DIR: the small root tree the partition-table disks carry for now.
minimal_root() {
    local d=$1
    mkdir -p "$d/etc" "$d/usr/lib" "$d/bin"
    printf 'NAME="Test OS"\nID=testos\nVERSION_ID=1.0\n' > "$d/usr/lib/os-release"
    ln -sf ../usr/lib/os-release "$d/etc/os-release"
    printf 'testhost\n' > "$d/etc/hostname"
}

# boot_root_disk DISK LABEL_ID DISK_MB ROOT_MB ROOT_MKFS_OPTIONS [DATA_MB DATA_LABEL]: an MBR disk
# laid out as the container-store test disks need it: p1 16 MiB FAT "BOOT" whose cmdline.txt names
# p2 as the root, p2 ext4 "rootfs" of ROOT_MB from ./root (mkfs.ext4 with ROOT_MKFS_OPTIONS, a
# string, may be empty), and with DATA_MB a p3 ext4 DATA_LABEL (256-byte inodes) from ./data.
boot_root_disk() {
    local disk=$1 id=$2 disk_mb=$3 root_mb=$4 root_opts=$5 data_mb=${6:-} data_label=${7:-}
    local M=2048 root_end=$((17 + root_mb))
    rm -f "$disk"; truncate -s "${disk_mb}M" "$disk"
    {
        printf 'label: dos\nlabel-id: 0x%s\nunit: sectors\n\n' "$id"
        printf 'start=%d, size=%d, type=c\n' $((1*M)) $((16*M))
        if [ -n "$data_mb" ]; then
            printf 'start=%d, size=%d, type=83\nstart=%d, type=83\n' $((17*M)) $((root_mb*M)) $((root_end*M))
        else
            printf 'start=%d, type=83\n' $((17*M))
        fi
    } | sfdisk -q "$disk"
    rm -f boot.img; truncate -s 16M boot.img; mkfs.vfat -n BOOT boot.img >/dev/null
    printf 'console=ttyS0 root=PARTUUID=%s-02 rootfstype=ext4\n' "$id" > cmdline.txt
    mcopy -i boot.img cmdline.txt ::/
    put_fs "$disk" boot.img $((1*M))
    rm -f rootfs.img; truncate -s "${root_mb}M" rootfs.img
    # shellcheck disable=SC2086 # ROOT_MKFS_OPTIONS is a list of words
    mkfs.ext4 -q -F -L rootfs $root_opts -d root rootfs.img
    put_fs "$disk" rootfs.img $((17*M))
    if [ -n "$data_mb" ]; then
        rm -f data.img; truncate -s "${data_mb}M" data.img
        mkfs.ext4 -q -F -L "$data_label" -I 256 -d data data.img
        put_fs "$disk" data.img $((root_end*M))
    fi
}

# haos_gpt_layout DISK DISK_SIZE BOOT KERNEL SYSTEM OVERLAY: a new DISK with HAOS's eight GPT
# partitions (real names and partition UUIDs; bootstate 1M, data the rest), and the caller's
# `local -A start size` arrays filled with each partition's first sector and sector count.
haos_gpt_layout() {
    local disk=$1 total=$2 boot=$3 kernel=$4 system=$5 overlay=$6 i last
    rm -f "$disk"; truncate -s "$total" "$disk"
    sgdisk -Z "$disk" >/dev/null 2>&1 || true
    sgdisk -U 1e4a3d2c-0000-4a5b-9c8d-123456789abc \
        -n 1:2048:+$boot  -t 1:EF00 -c 1:hassos-boot      -u 1:b3dd0952-733c-4c88-8cba-cab9b8b4377f \
        -n 2:0:+$kernel   -t 2:8300 -c 2:hassos-kernel0   -u 2:26700fc6-b0bc-4ccf-9837-ea1a4cba3e65 \
        -n 3:0:+$system   -t 3:8300 -c 3:hassos-system0   -u 3:8d3d53e3-6d49-4c38-8349-aff6859e82fd \
        -n 4:0:+$kernel   -t 4:8300 -c 4:hassos-kernel1   -u 4:fc02a4f0-5350-406f-93a2-56cbed636b5f \
        -n 5:0:+$system   -t 5:8300 -c 5:hassos-system1   -u 5:a3ec664e-32ce-4665-95ea-7ae90ce9aa20 \
        -n 6:0:+1M        -t 6:8300 -c 6:hassos-bootstate -u 6:33236519-7f32-4dff-8002-3390b62c309d \
        -n 7:0:+$overlay  -t 7:8300 -c 7:hassos-overlay   -u 7:f1326040-5236-40eb-b683-aaa100a9afcf \
        -n 8:0:0          -t 8:8300 -c 8:hassos-data      -u 8:a52a4597-fa3a-4851-aefd-2fbe9f849079 \
        "$disk" >/dev/null
    for i in 1 2 3 4 5 6 7 8; do
        start[$i]=$(sgdisk -i "$i" "$disk" | awk '/^First sector/ {print $3}')
        last=$(sgdisk -i "$i" "$disk" | awk '/^Last sector/ {print $3}')
        size[$i]=$(( last - start[$i] + 1 ))
    done
}

# make_haos_gpt DISK: a HAOS-style GPT disk (generic x86-64 layout, sizes scaled down) with the
# eight partitions of the field guide, their GPT names, fixed partition UUIDs and filesystems.
make_haos_gpt() {
    local disk=$1 w; w=$(mktemp -d "$PWD/haos.XXXXXX")
    local -A start size
    haos_gpt_layout "$disk" 128M 32M 4M 16M 16M
    # boot: vfat (FAT16 at 32 MiB), label hassos-boot, a GRUB environment block
    truncate -s $(( size[1] * 512 )) "$w/boot.img"
    mkfs.vfat -n hassos-boot -i 1a2b3c4d "$w/boot.img" >/dev/null
    mkdir -p "$w/boot/EFI/BOOT"
    { printf '# GRUB Environment Block\nORDER=A B\nA_OK=1\nA_TRY=0\nB_OK=0\nB_TRY=0\n'; } > "$w/grubenv0"
    head -c 1024 < <(cat "$w/grubenv0"; yes '#' | tr -d '\n' | head -c 1024) > "$w/boot/EFI/BOOT/grubenv"
    printf 'console=tty0\n' > "$w/boot/cmdline.txt"
    mcopy -s -i "$w/boot.img" "$w/boot/EFI" "$w/boot/cmdline.txt" ::/
    put_fs "$disk" "$w/boot.img" "${start[1]}"
    # kernel0: squashfs with one file
    mkdir -p "$w/kernel"; head -c 100000 /dev/urandom > "$w/kernel/bzImage"
    mksquashfs "$w/kernel" "$w/kernel0.img" -noappend -all-root -quiet >/dev/null
    put_fs "$disk" "$w/kernel0.img" "${start[2]}"
    # system0: erofs root
    minimal_root "$w/root"
    mkfs.erofs -T "$SOURCE_DATE_EPOCH" -U 0a0b0c0d-3333-4222-8333-444455556666 "$w/system0.img" "$w/root" >/dev/null
    put_fs "$disk" "$w/system0.img" "${start[3]}"
    # kernel1, system1: zeros (sparse). bootstate: a U-Boot style environment (raw, no filesystem)
    printf 'BOOT_ORDER=A B\0BOOT_A_LEFT=3\0BOOT_B_LEFT=3\0\0' > "$w/env"
    python3 - "$w/env" "$w/bootstate.img" <<'PY'
import sys, zlib, struct
data = open(sys.argv[1], 'rb').read().ljust(0x4000 - 4, b'\0')
open(sys.argv[2], 'wb').write(struct.pack('<I', zlib.crc32(data)) + data)
PY
    put_fs "$disk" "$w/bootstate.img" "${start[6]}"
    # overlay and data: ext4 with labels
    mkdir -p "$w/overlay/etc" "$w/data/docker" "$w/data/supervisor"
    printf 'haos\n' > "$w/overlay/etc/hostname"
    truncate -s $(( size[7] * 512 )) "$w/overlay.img"
    mkfs.ext4 -q -F -L hassos-overlay -U 0a0b0c0d-1111-4222-8333-444455556666 -d "$w/overlay" "$w/overlay.img"
    put_fs "$disk" "$w/overlay.img" "${start[7]}"
    truncate -s $(( size[8] * 512 )) "$w/data.img"
    mkfs.ext4 -q -F -L hassos-data -U 0a0b0c0d-2222-4222-8333-444455556666 -d "$w/data" "$w/data.img"
    put_fs "$disk" "$w/data.img" "${start[8]}"
    rm -rf "$w"
}

# --- A/B slot disks (RAUC, SWUpdate, tryboot, GPT attribute bits) -----------------------------
# slot_root DIR VERSION: a small root of one A/B slot: os-release VERSION_ID=VERSION, /sbin/init,
# an empty /etc/fstab for the caller to fill; times fixed.
slot_root() {
    local d=$1 version=$2
    minimal_root "$d"; mkdir -p "$d/sbin" "$d/data" "$d/boot"
    printf 'ID=poky\nNAME="Poky"\nVERSION_ID=%s\n' "$version" > "$d/usr/lib/os-release"
    printf '#!/bin/sh\n' > "$d/sbin/init"; chmod 755 "$d/sbin/init"
    : > "$d/etc/fstab"
}

# ext4_img IMG MB LABEL DIR: an ext4 filesystem image of MB MiB from DIR (times fixed first).
ext4_img() {
    find "$4" -exec touch -h -d @"$SOURCE_DATE_EPOCH" {} +
    rm -f "$1"; truncate -s "${2}M" "$1"
    mkfs.ext4 -q -F -L "$3" -E root_owner=0:0 -d "$4" "$1"
}

# vfat_img IMG MB LABEL FILE...: a FAT filesystem image of MB MiB holding FILEs (files or
# directories, copied to its root with mcopy).
vfat_img() {
    local img=$1 mb=$2 label=$3; shift 3
    rm -f "$img"; truncate -s "${mb}M" "$img"; mkfs.vfat -n "$label" "$img" >/dev/null
    [ $# -eq 0 ] || mcopy -s -i "$img" "$@" ::/
}

# part_start DISK N: the first sector of partition N (sfdisk's view, GPT or MBR).
part_start() { sfdisk -d "$1" | awk -v p="$1$2" '$1 == p { sub(",", "", $4); print $4 }'; }

# --- realistic firmware content (e2e) ---------------------------------------------------------
# make_docker_root DIR: a hand-made Docker data-root (overlay2 storage driver, as dockerd 20-26
# lays it out) in DIR, deterministic. Needs root (mknod, chown, trusted.* xattrs).
#   images: example/app:1.0 = [base, app]   example/tool:2.0 = [base, tool]   (shared base layer)
#   base diff: bin/busybox (+ hardlink bin/sh), etc/os-release, etc/motd, etc/app/default.conf,
#              usr/bin/ping with security.capability (cap_net_raw+ep)
#   app diff:  etc/motd as a whiteout (char 0:0), etc/app/ opaque (trusted.overlay.opaque=y) with
#              config.yaml, usr/lib/libshared.so hardlinked ACROSS layers with tool's copy
#   tool diff: usr/local/bin/tool (+ hardlink usr/local/bin/tool-alias), usr/lib/libshared.so
#   containers: 1111.. "homeassistant" (example/app:1.0) running; 2222.. "oneshot"
#              (example/tool:2.0) exited with code 1; each with an -init layer and a rw layer
#              (c1 rw: var/log/app.log; c2 rw: whiteout of etc/os-release), volume "appdata".
# Layer diff ids are the sha256 of a sorted GNU tar of each diff; chain ids follow Docker
# (first = diff id; next = sha256("<parent chain id> <diff id>")); image ids are the sha256 of
# the config bytes. When E2E_DOCKER_IDS names a file, a JSON summary of every id (images, layers
# with cache/diff/chain ids, containers with mount ids) is written there for tests to check.
make_docker_root() {
    local d=$1
    mkdir -p "$d"
    python3 - "$d" "${E2E_DOCKER_IDS:-}" <<'PY'
import hashlib, json, os, subprocess, sys
root, ids_out = sys.argv[1], sys.argv[2]
T = 1700000000
def sha(b): return hashlib.sha256(b).hexdigest()
def w(path, data, mode=0o644, uid=0, gid=0):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "wb") as f: f.write(data if isinstance(data, bytes) else data.encode())
    os.chmod(path, mode); os.lchown(path, uid, gid)
def md(path, mode=0o755):
    os.makedirs(path, exist_ok=True); os.chmod(path, mode)
def short(seed): # Docker's link ids: 26 chars of [A-Z0-9]
    h = int(sha(seed.encode()), 16); s = ""
    for _ in range(26): s += "ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789"[h % 36]; h //= 36
    return s
ov = os.path.join(root, "overlay2"); md(ov, 0o710); md(os.path.join(ov, "l"), 0o700)
def layer(name, lowers):
    cid = sha(("cache-" + name).encode()); lk = short(name)
    base = os.path.join(ov, cid); md(base, 0o710); md(base + "/diff", 0o755)
    w(base + "/link", lk)
    if lowers: w(base + "/lower", ":".join("l/" + l for l in lowers))
    md(base + "/work", 0o700); md(base + "/work/work", 0o000)
    os.symlink("../" + cid + "/diff", os.path.join(ov, "l", lk))
    return cid, lk, base + "/diff"
# --- image layers
b_id, b_lk, b = layer("base", [])
md(b + "/bin"); md(b + "/etc"); md(b + "/etc/app"); md(b + "/usr/bin"); md(b + "/usr/lib")
w(b + "/bin/busybox", b"\x7fELF busybox " * 300, 0o755); os.link(b + "/bin/busybox", b + "/bin/sh")
w(b + "/etc/os-release", 'NAME="Alpine Linux"\nID=alpine\nVERSION_ID=3.19.0\n')
w(b + "/etc/motd", "Welcome to Alpine!\n")
w(b + "/etc/app/default.conf", "level=debug\n")
w(b + "/usr/bin/ping", b"\x7fELF ping", 0o755)
os.setxattr(b + "/usr/bin/ping", "security.capability", bytes.fromhex("0100000200200000000000000000000000000000"))
a_id, a_lk, a = layer("app", [b_lk])
md(a + "/etc"); md(a + "/etc/app"); md(a + "/usr"); md(a + "/usr/lib"); md(a + "/srv")
os.mknod(a + "/etc/motd", 0o020000 | 0o000, os.makedev(0, 0))
os.setxattr(a + "/etc/app", "trusted.overlay.opaque", b"y")
w(a + "/etc/app/config.yaml", "homeassistant:\n  name: Home\n")
w(a + "/usr/lib/libshared.so", b"\x7fELF shared library " * 100, 0o755)
w(a + "/srv/app.py", "print('hello')\n", 0o644, 1000, 1000)
t_id, t_lk, t = layer("tool", [b_lk])
md(t + "/usr"); md(t + "/usr/lib"); md(t + "/usr/local"); md(t + "/usr/local/bin")
w(t + "/usr/local/bin/tool", "#!/bin/sh\nexit 1\n", 0o4755)
os.link(t + "/usr/local/bin/tool", t + "/usr/local/bin/tool-alias")
os.link(a + "/usr/lib/libshared.so", t + "/usr/lib/libshared.so")   # hardlink across layers
def diff_id(path):
    tar = subprocess.run(["tar", "--sort=name", "--numeric-owner", "--xattrs", "--xattrs-include=*",
                          "--mtime=@%d" % T, "--format=posix", "--pax-option=delete=atime,delete=ctime",
                          "-cf", "-", "-C", path, "."], check=True, capture_output=True).stdout
    return "sha256:" + sha(tar), len(tar)
layers = {}
for name, cid, path in (("base", b_id, b), ("app", a_id, a), ("tool", t_id, t)):
    layers[name] = (cid,) + diff_id(path)
chain_base = layers["base"][1]
def chain(parent, diff): return "sha256:" + sha((parent + " " + diff).encode())
chains = {"base": chain_base, "app": chain(chain_base, layers["app"][1]), "tool": chain(chain_base, layers["tool"][1])}
ldb = os.path.join(root, "image/overlay2/layerdb/sha256")
for name, parent in (("base", None), ("app", "base"), ("tool", "base")):
    p = os.path.join(ldb, chains[name][7:]); md(p, 0o755)
    w(p + "/diff", layers[name][1]); w(p + "/cache-id", layers[name][0]); w(p + "/size", str(layers[name][2]))
    if parent: w(p + "/parent", chains[parent])
# --- images
imgs = {}
for ref, top, cmd in (("example/app:1.0", "app", ["python3", "/srv/app.py"]), ("example/tool:2.0", "tool", ["/usr/local/bin/tool"])):
    cfg = {"architecture": "amd64", "os": "linux", "created": "2023-11-14T22:13:20Z",
           "config": {"Cmd": cmd, "Env": ["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"], "WorkingDir": "/"},
           "rootfs": {"type": "layers", "diff_ids": [layers["base"][1], layers[top][1]]},
           "history": [{"created": "2023-11-14T22:13:20Z", "created_by": "ADD rootfs.tar /"},
                       {"created": "2023-11-14T22:13:20Z", "created_by": "COPY . /"}]}
    data = json.dumps(cfg, sort_keys=True, separators=(",", ":")).encode()
    iid = sha(data); imgs[ref] = (iid, top)
    w(os.path.join(root, "image/overlay2/imagedb/content/sha256", iid), data)
    md(os.path.join(root, "image/overlay2/imagedb/metadata/sha256", iid))
    w(os.path.join(root, "image/overlay2/imagedb/metadata/sha256", iid, "lastUpdated"), "2023-11-14T22:13:20Z")
repos = {"Repositories": {}}
for ref, (iid, _) in imgs.items():
    repos["Repositories"].setdefault(ref.split(":")[0], {})[ref] = "sha256:" + iid
w(os.path.join(root, "image/overlay2/repositories.json"), json.dumps(repos, sort_keys=True))
os.chmod(os.path.join(root, "image"), 0o700)
# --- containers
cons = []
for cid, name, ref, running, code in (("1" * 64, "/homeassistant", "example/app:1.0", True, 0),
                                      ("2" * 64, "/oneshot", "example/tool:2.0", False, 1)):
    iid, top = imgs[ref]
    mid = sha(("mount-" + cid).encode())
    init_cid, init_lk = mid + "-init", short(cid + "-init")
    ib = os.path.join(ov, init_cid); md(ib, 0o710); md(ib + "/diff/etc"); md(ib + "/diff/dev")
    for f in ("etc/hostname", "etc/hosts", "etc/resolv.conf", ".dockerenv"): w(ib + "/diff/" + f, "")
    w(ib + "/link", init_lk); w(ib + "/lower", ":".join("l/" + l for l in (short(top), b_lk)))
    md(ib + "/work", 0o700); os.symlink("../" + init_cid + "/diff", os.path.join(ov, "l", init_lk))
    rw_lk = short(cid); rb = os.path.join(ov, mid); md(rb, 0o710); md(rb + "/diff")
    w(rb + "/link", rw_lk); w(rb + "/lower", ":".join("l/" + l for l in (init_lk, short(top), b_lk)))
    md(rb + "/work", 0o700); os.symlink("../" + mid + "/diff", os.path.join(ov, "l", rw_lk))
    if running:
        w(rb + "/diff/var/log/app.log", "started\n"); os.chmod(rb + "/diff/var", 0o755); os.chmod(rb + "/diff/var/log", 0o755)
    else:
        md(rb + "/diff/etc"); os.mknod(rb + "/diff/etc/os-release", 0o020000, os.makedev(0, 0))
    m = os.path.join(root, "image/overlay2/layerdb/mounts", cid); md(m)
    w(m + "/mount-id", mid); w(m + "/init-id", init_cid); w(m + "/parent", chains[top])
    state = {"Running": running, "Paused": False, "Restarting": False, "OOMKilled": False, "RemovalInProgress": False,
             "Dead": False, "Pid": 4242 if running else 0, "ExitCode": code, "Error": "",
             "StartedAt": "2023-11-14T22:13:21.000000000Z",
             "FinishedAt": "0001-01-01T00:00:00Z" if running else "2023-11-14T22:13:22.000000000Z", "Health": None}
    conf = {"ID": cid, "Name": name, "Image": "sha256:" + iid, "Created": "2023-11-14T22:13:20.000000000Z",
            "Path": (["python3"] if running else ["/usr/local/bin/tool"])[0], "Args": ["/srv/app.py"] if running else [],
            "Driver": "overlay2", "State": state, "RestartCount": 0,
            "Config": {"Hostname": name[1:], "Image": ref, "Cmd": ["python3", "/srv/app.py"] if running else ["/usr/local/bin/tool"],
                       "Env": ["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"], "Labels": {}},
            "MountPoints": {"/data": {"Source": "", "Destination": "/data", "RW": True, "Name": "appdata", "Driver": "local", "Type": "volume"}} if running else {}}
    host = {"RestartPolicy": {"Name": "unless-stopped" if running else "no", "MaximumRetryCount": 0},
            "NetworkMode": "host", "Binds": None, "Privileged": running}
    c = os.path.join(root, "containers", cid); md(c, 0o710)
    w(c + "/config.v2.json", json.dumps(conf, sort_keys=True)); w(c + "/hostconfig.json", json.dumps(host, sort_keys=True))
    for f in ("hostname", "hosts", "resolv.conf"): w(c + "/" + f, name[1:] + "\n" if f == "hostname" else "")
    cons.append({"id": cid, "name": name, "image": "sha256:" + iid, "mount_id": mid, "running": running, "exit_code": code})
os.chmod(os.path.join(root, "containers"), 0o710)
md(os.path.join(root, "volumes"), 0o701); md(os.path.join(root, "volumes/appdata/_data"), 0o755)
w(os.path.join(root, "volumes/appdata/_data/state.json"), '{"ok": true}\n', 0o600, 1000, 1000)
for dname in ("network/files", "plugins", "runtimes", "swarm", "tmp", "buildkit"): md(os.path.join(root, dname), 0o700)
if ids_out:
    json.dump({"images": {r: {"id": "sha256:" + i, "top_layer": t} for r, (i, t) in imgs.items()},
               "layers": {n: {"cache_id": layers[n][0], "diff_id": layers[n][1], "chain_id": chains[n]} for n in layers},
               "containers": cons}, open(ids_out, "w"), indent=1, sort_keys=True)
PY
    find "$d" -exec touch -h -d @1700000000 {} +
}

# uboot_env OUTFILE SIZE 'k=v' ...: a U-Boot environment block (CRC-32 LE, then NUL-separated
# pairs, padded with zeros to SIZE bytes).
uboot_env() {
    local out=$1 size=$2; shift 2
    python3 - "$out" "$size" "$@" <<'PY'
import struct, sys, zlib
out, size, pairs = sys.argv[1], int(sys.argv[2], 0), sys.argv[3:]
data = b"".join(p.encode() + b"\0" for p in pairs) + b"\0"
data = data.ljust(size - 4, b"\0")
open(out, "wb").write(struct.pack("<I", zlib.crc32(data)) + data)
PY
}

# grubenv FILE 'k=v' ...: a 1024-byte GRUB environment block.
grubenv() {
    local out=$1; shift
    python3 - "$out" "$@" <<'PY'
import sys
body = b"# GRUB Environment Block\n" + b"".join(p.encode() + b"\n" for p in sys.argv[2:])
open(sys.argv[1], "wb").write(body.ljust(1024, b"#"))
PY
}

# mount_unit DIR NAME WHAT WHERE TYPE OPTIONS [WANTEDBY] [EXTRA-UNIT-LINES]: a .mount unit file.
mount_unit() {
    local dir=$1 name=$2 what=$3 where=$4 type=$5 opts=$6 wanted=${7:-} extra=${8:-}
    mkdir -p "$dir"
    {
        printf '[Unit]\nDescription=Mount %s\nDefaultDependencies=no\n' "$where"
        [ -n "$extra" ] && printf '%s\n' "$extra"
        printf '\n[Mount]\nWhat=%s\nWhere=%s\nType=%s\n' "$what" "$where" "$type"
        [ -n "$opts" ] && printf 'Options=%s\n' "$opts"
        [ -n "$wanted" ] && printf '\n[Install]\nWantedBy=%s\n' "$wanted"
        true
    } > "$dir/$name"
}

# make_haos_root DIR VERSION: a HAOS root filesystem: make_tree's entries (no sparse file) plus
# the real HAOS unit set, /etc/fstab with only a comment, daemon.json, localtime symlink, and
# the mount points of every mount unit.
make_haos_root() {
    local r=$1 version=$2 u="$1/usr/lib/systemd/system" e="$1/etc/systemd/system"
    make_tree "$r" no
    # mkfs.erofs 1.5 fails on a 255-byte name (see fs-erofs.sh): keep 254 bytes.
    local long; long=$(printf 'n%.0s' $(seq 1 255)); mv "$r/etc/$long" "$r/etc/${long:1}"
    mkdir -p "$u" "$e" "$r/mnt/boot" "$r/mnt/overlay" "$r/mnt/data" "$r/mnt/config" "$r/sbin" \
        "$r/etc/NetworkManager/system-connections" "$r/etc/modules-load.d" "$r/etc/docker" \
        "$r/root/.ssh" "$r/var/lib/docker" "$r/var/log/journal" "$r/usr/share/zoneinfo/Europe" "$r/usr/lib/systemd"
    printf 'NAME="Home Assistant OS"\nVERSION="%s"\nID=haos\nVERSION_ID=%s\nPRETTY_NAME="Home Assistant OS %s"\n' \
        "$version" "$version" "$version" > "$r/usr/lib/os-release"
    ln -sf ../usr/lib/os-release "$r/etc/os-release"
    printf '\x7fELF systemd' > "$r/usr/lib/systemd/systemd"; chmod 755 "$r/usr/lib/systemd/systemd"
    ln -s ../usr/lib/systemd/systemd "$r/sbin/init"
    printf '# Root is mounted by the kernel; everything else by systemd units\n' > "$r/etc/fstab"
    printf 'localhost-root\n' > "$r/etc/hostname"
    printf '127.0.0.1 localhost-root\n' > "$r/etc/hosts"
    printf 'loop\n' > "$r/etc/modules-load.d/root.conf"
    printf '{\n  "storage-driver": "overlay2",\n  "data-root": "/mnt/data/docker",\n  "log-driver": "journald"\n}\n' > "$r/etc/docker/daemon.json"
    printf 'TZif2 Amsterdam' > "$r/usr/share/zoneinfo/Europe/Amsterdam"
    ln -s /mnt/overlay/etc/localtime "$r/etc/localtime"
    printf 'root file under /var/lib/docker, hidden by the bind\n' > "$r/var/lib/docker/.root-only"
    printf 'hidden by the bind\n' > "$r/var/log/journal/root-only"
    local t
    for t in multi-user local-fs sysinit; do printf '[Unit]\nDescription=%s\n' "$t" > "$u/$t.target"; done
    ln -s multi-user.target "$u/default.target"
    printf '[Unit]\nDescription=HassOS bind mounts\nRequires=mnt-overlay.mount\n\n[Install]\nWantedBy=multi-user.target\n' > "$u/hassos-bind.target"
    mount_unit "$u" mnt-boot.mount /dev/disk/by-label/hassos-boot /mnt/boot auto sync local-fs.target
    mount_unit "$u" mnt-overlay.mount /dev/disk/by-label/hassos-overlay /mnt/overlay ext4 "" local-fs.target
    mount_unit "$u" mnt-data.mount /dev/disk/by-label/hassos-data /mnt/data ext4 commit=30 local-fs.target
    mount_unit "$u" mnt-config.mount /dev/disk/by-label/CONFIG /mnt/config auto ro
    mount_unit "$u" tmp.mount tmpfs /tmp tmpfs mode=1777,strictatime,nosuid,nodev local-fs.target
    mount_unit "$u" var.mount tmpfs /var tmpfs mode=0755 local-fs.target
    local dep='Requires=mnt-overlay.mount
After=mnt-overlay.mount'
    mount_unit "$u" 'etc-NetworkManager-system\x2dconnections.mount' /mnt/overlay/etc/NetworkManager/system-connections /etc/NetworkManager/system-connections None bind hassos-bind.target "$dep"
    mount_unit "$u" etc-hostname.mount /mnt/overlay/etc/hostname /etc/hostname None bind hassos-bind.target "$dep"
    mount_unit "$u" etc-hosts.mount /mnt/overlay/etc/hosts /etc/hosts None bind hassos-bind.target "$dep"
    mount_unit "$u" 'etc-modules\x2dload.d.mount' /mnt/overlay/etc/modules-load.d /etc/modules-load.d none bind hassos-bind.target "$dep"
    mount_unit "$u" root-.ssh.mount /mnt/overlay/root/.ssh /root/.ssh None bind hassos-bind.target "$dep"
    mount_unit "$u" var-lib-docker.mount /mnt/data/docker /var/lib/docker none bind hassos-bind.target 'Requires=mnt-data.mount
After=mnt-data.mount'
    mount_unit "$u" var-log-journal.mount /mnt/data/logs /var/log/journal none bind hassos-bind.target 'Requires=mnt-data.mount
After=mnt-data.mount'
    # enablement as `systemctl preset-all` leaves it
    mkdir -p "$e/local-fs.target.wants" "$e/multi-user.target.wants" "$e/hassos-bind.target.wants"
    for t in mnt-boot mnt-overlay mnt-data tmp var; do ln -s "/usr/lib/systemd/system/$t.mount" "$e/local-fs.target.wants/$t.mount"; done
    ln -s /usr/lib/systemd/system/hassos-bind.target "$e/multi-user.target.wants/hassos-bind.target"
    for t in 'etc-NetworkManager-system\x2dconnections' etc-hostname etc-hosts 'etc-modules\x2dload.d' root-.ssh var-lib-docker var-log-journal; do
        ln -s "/usr/lib/systemd/system/$t.mount" "$e/hassos-bind.target.wants/$t.mount"
    done
    find "$r" -exec touch -h -d @1700000000 {} +
    touch -h -d @1600000000.123456789 "$r/etc/hostname"
}

# make_haos_overlay DIR: the persisted files HAOS binds from hassos-overlay.
make_haos_overlay() {
    local o=$1
    mkdir -p "$o/etc/NetworkManager/system-connections" "$o/etc/modules-load.d" "$o/root/.ssh" "$o/var/lib/systemd"
    printf 'homeassistant\n' > "$o/etc/hostname"
    printf '127.0.0.1 localhost\n127.0.1.1 homeassistant\n' > "$o/etc/hosts"
    printf '[connection]\nid=my-wifi\ntype=wifi\n[wifi-security]\npsk=secret\n' > "$o/etc/NetworkManager/system-connections/my-wifi.nmconnection"
    chmod 600 "$o/etc/NetworkManager/system-connections/my-wifi.nmconnection"
    printf 'dwc2\n' > "$o/etc/modules-load.d/usb.conf"
    ln -s /usr/share/zoneinfo/Europe/Amsterdam "$o/etc/localtime"
    printf 'ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAITest user@host\n' > "$o/root/.ssh/authorized_keys"
    chmod 600 "$o/root/.ssh/authorized_keys"; chmod 700 "$o/root/.ssh"
    printf 'seed\n' > "$o/var/lib/systemd/random-seed"; chmod 600 "$o/var/lib/systemd/random-seed"
    find "$o" -exec touch -h -d @1700000100 {} +
}

# make_haos_data DIR: hassos-data: docker/ (make_docker_root), supervisor/, logs/.
make_haos_data() {
    local d=$1
    mkdir -p "$d/supervisor/homeassistant" "$d/logs/0123456789abcdef"
    make_docker_root "$d/docker"
    printf 'default_config:\nhomeassistant:\n  name: Home\n' > "$d/supervisor/homeassistant/configuration.yaml"
    printf '{"version": 1}\n' > "$d/supervisor/config.json"; chmod 600 "$d/supervisor/config.json"
    # a big incompressible file (a Home Assistant backup), deterministic bytes
    mkdir -p "$d/supervisor/backup"
    python3 -c 'import random,sys; r=random.Random(7); sys.stdout.buffer.write(r.randbytes(8<<20))' > "$d/supervisor/backup/0badc0de.tar"
    head -c 20000 /dev/urandom > "$d/logs/0123456789abcdef/system.journal"; chown 0:101 "$d/logs/0123456789abcdef/system.journal"
    chmod 2755 "$d/logs" "$d/logs/0123456789abcdef"
    find "$d" -exec touch -h -d @1700000200 {} +
}

# haos_fs DIR: build into DIR the filesystem images of a realistic HAOS disk:
# boot.img (vfat, grubenv from $HAOS_GRUBENV lines, cmdline.txt), kernel.img (squashfs),
# system0.img (EROFS lz4hc root, version $HAOS_VERSION_A), system1.img (squashfs root,
# $HAOS_VERSION_B, only when set), overlay.img, data.img (ext4, sizes in MiB from the caller).
haos_fs() {
    local w=$1 boot_mb=$2 overlay_mb=$3 data_mb=$4
    truncate -s "${boot_mb}M" "$w/boot.img"; mkfs.vfat -n hassos-boot -i 1a2b3c4d "$w/boot.img" >/dev/null
    mkdir -p "$w/bootfs/EFI/BOOT"
    # HAOS_GRUBENV: one key=value per line; "none" for U-Boot boards (no grubenv)
    if [ "${HAOS_GRUBENV:-}" != none ]; then
        local -a kv; mapfile -t kv <<<"${HAOS_GRUBENV:-$'ORDER=A B\nA_OK=1\nA_TRY=0\nB_OK=0\nB_TRY=0'}"
        grubenv "$w/bootfs/EFI/BOOT/grubenv" "${kv[@]}"
    fi
    printf 'zram.enabled=1 zram.num_devices=3 rootwait cgroup_enable=memory fsck.repair=yes console=tty1\n' > "$w/bootfs/cmdline.txt"
    printf 'GRUB config\n' > "$w/bootfs/EFI/BOOT/grub.cfg"
    mcopy -s -i "$w/boot.img" "$w/bootfs/EFI" "$w/bootfs/cmdline.txt" ::/
    mkdir -p "$w/kernel"; head -c 60000 /dev/urandom > "$w/kernel/bzImage"
    mksquashfs "$w/kernel" "$w/kernel.img" -noappend -all-root -quiet >/dev/null
    make_haos_root "$w/rootA" "${HAOS_VERSION_A:-13.2}"
    mkfs.erofs -zlz4hc,12 -T "$SOURCE_DATE_EPOCH" -U 0a0b0c0d-aaaa-4222-8333-444455556666 "$w/system0.img" "$w/rootA" >/dev/null
    if [ -n "${HAOS_VERSION_B:-}" ]; then
        make_haos_root "$w/rootB" "$HAOS_VERSION_B"
        mksquashfs "$w/rootB" "$w/system1.img" -noappend -comp lz4 -b 131072 -quiet >/dev/null
    fi
    make_haos_overlay "$w/overlay"
    truncate -s "${overlay_mb}M" "$w/overlay.img"
    mkfs.ext4 -q -F -L hassos-overlay -U 0a0b0c0d-bbbb-4222-8333-444455556666 -E root_owner=0:0 -d "$w/overlay" "$w/overlay.img"
    make_haos_data "$w/data"
    truncate -s "${data_mb}M" "$w/data.img"
    mkfs.ext4 -q -F -L hassos-data -U 0a0b0c0d-cccc-4222-8333-444455556666 -E root_owner=0:0 -d "$w/data" "$w/data.img"
}

# make_haos_full DISK: the realistic HAOS GPT disk (generic x86-64 layout, scaled down).
# Environment: HAOS_GRUBENV, HAOS_VERSION_A, HAOS_VERSION_B (slot B squashfs when set).
make_haos_full() {
    local disk=$1 w; w=$(mktemp -d "$PWD/haosfull.XXXXXX")
    local -A start size
    haos_gpt_layout "$disk" 96M 8M 1M 12M 8M
    haos_fs "$w" 8 8 $(( size[8] / 2048 ))
    put_fs "$disk" "$w/boot.img" "${start[1]}"
    put_fs "$disk" "$w/kernel.img" "${start[2]}"
    put_fs "$disk" "$w/system0.img" "${start[3]}"
    if [ -f "$w/system1.img" ]; then put_fs "$disk" "$w/kernel.img" "${start[4]}"; put_fs "$disk" "$w/system1.img" "${start[5]}"; fi
    put_fs "$disk" "$w/overlay.img" "${start[7]}"
    put_fs "$disk" "$w/data.img" "${start[8]}"
    rm -rf "$w"
}

# make_haos_mbr_full DISK: the realistic HAOS content on the plain-MBR layout of the
# odroid/khadas boards (signature 0x48617373, p2 extended, logical p5..p9 each behind a 1 MiB
# EBR gap); U-Boot environment in bootstate from $HAOS_UBOOT_ENV (one pair per line).
make_haos_mbr_full() {
    local disk=$1 w; w=$(mktemp -d "$PWD/haosmbr.XXXXXX") M=2048
    rm -f "$disk"; truncate -s 96M "$disk"
    # boot 1-9 MiB; extended 9-40 MiB: kernel0 10-11, system0 12-24, kernel1 25-26,
    # system1 27-39, bootstate 40-41 (extended ends at 41); overlay 41-49; data 49-end
    sfdisk -q "$disk" <<SF
label: dos
label-id: 0x48617373
unit: sectors

start=$((1*M)),  size=$((8*M)), type=c, bootable
start=$((9*M)),  size=$((32*M)), type=f
start=$((41*M)), size=$((8*M)), type=83
start=$((49*M)), type=83
start=$((10*M)), size=$((1*M)), type=83
start=$((12*M)), size=$((12*M)), type=83
start=$((25*M)), size=$((1*M)), type=83
start=$((27*M)), size=$((12*M)), type=83
start=$((40*M)), size=$((1*M)), type=83
SF
    HAOS_GRUBENV=none haos_fs "$w" 8 8 47
    put_fs "$disk" "$w/boot.img" $((1*M))
    put_fs "$disk" "$w/kernel.img" $((10*M))
    put_fs "$disk" "$w/system0.img" $((12*M))
    if [ -f "$w/system1.img" ]; then put_fs "$disk" "$w/kernel.img" $((25*M)); put_fs "$disk" "$w/system1.img" $((27*M)); fi
    local -a kv; mapfile -t kv <<<"${HAOS_UBOOT_ENV:-$'BOOT_ORDER=A B\nBOOT_A_LEFT=3\nBOOT_B_LEFT=3'}"
    uboot_env "$w/bootstate.img" 0x4000 "${kv[@]}"
    put_fs "$disk" "$w/bootstate.img" $((40*M))
    put_fs "$disk" "$w/overlay.img" $((41*M))
    put_fs "$disk" "$w/data.img" $((49*M))
    rm -rf "$w"
}

# make_oci_archives DIR FACTS: two OCI image archives built with python's tarfile, DIR/web.tar
# (docker.io/example/web:1.0) and DIR/job.tar (docker.io/example/job:2.0), for `ctr images
# import` and `podman load`: a shared base layer (tar+gzip: files, a hardlink, a symlink, setuid,
# a sticky directory, a 1000:1000 directory), web's app layer (plain tar: a .wh. whiteout, an
# opaque directory, a 33:33 file), job's layer (tar+zstd, a hardlink). FACTS gets each image's
# manifest, config, diff ids, chain ids and layer blob digests (JSON).
make_oci_archives() {
    mkdir -p "$1"
    python3 - "$1" "$2" <<'PY'
import gzip, hashlib, io, json, os, sys, tarfile
out, facts = sys.argv[1], sys.argv[2]
T = 1700000000
def tar(entries):
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as t:
        for e in entries:
            name, kind = e[0], e[1]
            i = tarfile.TarInfo(name); i.mtime = T; i.uid = i.gid = 0; i.uname = i.gname = ""
            data = b""
            if kind == "dir": i.type = tarfile.DIRTYPE; i.mode = e[2] if len(e) > 2 else 0o755
            elif kind == "file": data = e[2]; i.size = len(data); i.mode = e[3] if len(e) > 3 else 0o644
            elif kind == "link": i.type = tarfile.LNKTYPE; i.linkname = e[2]; i.mode = 0o644
            elif kind == "sym": i.type = tarfile.SYMTYPE; i.linkname = e[2]; i.mode = 0o777
            if len(e) > 4: i.uid, i.gid = e[4]
            t.addfile(i, io.BytesIO(data) if kind == "file" else None)
    return buf.getvalue()
base = tar([("bin", "dir"), ("bin/busybox", "file", b"\x7fELF busybox " * 300, 0o755), ("bin/sh", "link", "bin/busybox"),
            ("etc", "dir"), ("etc/os-release", "file", b'NAME="Alpine Linux"\nID=alpine\n'), ("etc/motd", "file", b"Welcome\n"),
            ("etc/app", "dir"), ("etc/app/default.conf", "file", b"level=debug\n"), ("etc/app/old.conf", "file", b"old\n"),
            ("usr", "dir"), ("usr/bin", "dir"), ("usr/bin/su", "file", b"\x7fELF su", 0o4755),
            ("lib", "dir"), ("lib/libc.so", "sym", "libc.so.6"), ("lib/libc.so.6", "file", b"\x7fELF libc" * 50, 0o755),
            ("tmp", "dir", 0o1777), ("home", "dir"), ("home/user", "dir", 0o750, None, (1000, 1000))])
web = tar([("etc", "dir"), ("etc/.wh.motd", "file", b""), ("etc/app", "dir"), ("etc/app/.wh..wh..opq", "file", b""),
           ("etc/app/config.yaml", "file", b"web:\n  port: 80\n"), ("srv", "dir"), ("srv/index.html", "file", b"<h1>hi</h1>\n", 0o644, (33, 33)),
           ("srv/run.sh", "file", b"#!/bin/sh\nexec httpd\n", 0o755)])
job = tar([("usr", "dir"), ("usr/local", "dir"), ("usr/local/bin", "dir"), ("usr/local/bin/job", "file", b"#!/bin/sh\nexit 1\n", 0o755),
           ("usr/local/bin/job-alias", "link", "usr/local/bin/job")])
def sha(b): return hashlib.sha256(b).hexdigest()
base_gz = gzip.compress(base, mtime=0)
import subprocess
job_zst = subprocess.run(["zstd", "-q", "-c", "-19"], input=job, capture_output=True, check=True).stdout
layers = {"base": (base_gz, "application/vnd.oci.image.layer.v1.tar+gzip", sha(base)),
          "web": (web, "application/vnd.oci.image.layer.v1.tar", sha(web)),
          "job": (job_zst, "application/vnd.oci.image.layer.v1.tar+zstd", sha(job))}
info = {}
for name, tag, top, cmd in (("web", "docker.io/example/web:1.0", "web", ["/srv/run.sh"]), ("job", "docker.io/example/job:2.0", "job", ["/usr/local/bin/job"])):
    d = os.path.join(out, name); blobs = os.path.join(d, "blobs/sha256"); os.makedirs(blobs)
    def put(b):
        open(os.path.join(blobs, sha(b)), "wb").write(b); return "sha256:" + sha(b)
    ls = [layers["base"], layers[top]]
    config = json.dumps({"architecture": "amd64", "os": "linux", "created": "2025-12-01T00:00:00Z",
                         "config": {"Cmd": cmd, "Env": ["PATH=/usr/local/bin:/usr/bin:/bin"]},
                         "rootfs": {"type": "layers", "diff_ids": ["sha256:" + l[2] for l in ls]}}, sort_keys=True).encode()
    cdig = put(config)
    manifest = json.dumps({"schemaVersion": 2, "mediaType": "application/vnd.oci.image.manifest.v1+json",
                           "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": cdig, "size": len(config)},
                           "layers": [{"mediaType": l[1], "digest": put(l[0]), "size": len(l[0])} for l in ls]}, sort_keys=True).encode()
    mdig = put(manifest)
    index = {"schemaVersion": 2, "mediaType": "application/vnd.oci.image.index.v1+json",
             "manifests": [{"mediaType": "application/vnd.oci.image.manifest.v1+json", "digest": mdig, "size": len(manifest),
                            "platform": {"architecture": "amd64", "os": "linux"},
                            "annotations": {"io.containerd.image.name": tag, "org.opencontainers.image.ref.name": tag.split(":")[-1]}}]}
    open(os.path.join(d, "index.json"), "w").write(json.dumps(index))
    open(os.path.join(d, "oci-layout"), "w").write('{"imageLayoutVersion": "1.0.0"}')
    with tarfile.open(os.path.join(out, name + ".tar"), "w") as t:
        for f in sorted(os.listdir(d)): t.add(os.path.join(d, f), arcname=f)
    diffs = ["sha256:" + l[2] for l in ls]
    chains = [diffs[0]]
    for x in diffs[1:]: chains.append("sha256:" + sha((chains[-1] + " " + x).encode()))
    info[tag] = {"manifest": mdig, "config": cdig, "diff_ids": diffs, "chain_ids": chains,
                 "layers": [l[2] for l in ls], "layer_blobs": ["sha256:" + sha(l[0]) for l in ls]}
json.dump(info, open(facts, "w"), indent=1, sort_keys=True)
PY
}

# The squashfs tree of an OpenWrt image (field guide §5), mtimes 1700000000: make_tree's entries
# without its whiteout (a 0:0 character device in the lowest layer is a whiteout to overlayfs:
# the kernel lists its name but cannot stat it), /rom and /overlay, /etc/openwrt_release naming
# TARGET, a loopback network config, a banner and a /www the overlay's upper layers change.
# Further arguments are empty directories to add (boot, mnt).
openwrt_rom() {   # openwrt_rom DIR TARGET [DIR...]
    local r=$1 target=$2 extra
    shift 2
    make_tree "$r" no
    rm "$r/srv/whiteout"
    mkdir -p "$r/rom" "$r/overlay" "$r/etc/config" "$r/www/luci-static" "$r/usr/lib/opkg/info"
    for extra in "$@"; do mkdir -p "$r/$extra"; done
    printf "DISTRIB_ID='OpenWrt'\nDISTRIB_RELEASE='23.05.3'\nDISTRIB_TARGET='%s'\n" "$target" > "$r/etc/openwrt_release"
    printf 'config interface loopback\n\toption proto static\n' > "$r/etc/config/network"
    printf 'OpenWrt banner from the squashfs\n' > "$r/etc/banner"
    printf '<html>rom</html>\n' > "$r/www/index.html"
    printf 'rom\n' > "$r/www/luci-static/rom.css"
    find "$r" -exec touch -h -d @1700000000 {} +
}

# The rootfs_data tree over openwrt_rom, mtimes 1700000300: upper/ with a changed
# /etc/config/network, a new package file, a whiteout of /etc/banner (0:0 device) and, with
# OPAQUE=yes, an opaque /www (trusted.overlay.opaque) holding its own index.html; an empty
# work/work (mode 700) as overlayfs leaves it.
openwrt_upper() {   # openwrt_upper DIR OPAQUE(yes|no)
    local d=$1
    mkdir -p "$d/upper/etc/config" "$d/upper/usr/lib/opkg/info" "$d/upper/www" "$d/work/work"
    printf 'config interface lan\n\toption proto dhcp\n' > "$d/upper/etc/config/network"
    printf 'Package: tcpdump\n' > "$d/upper/usr/lib/opkg/info/tcpdump.control"
    mknod "$d/upper/etc/banner" c 0 0
    if [ "$2" = yes ]; then
        setfattr -n trusted.overlay.opaque -v y "$d/upper/www"
        printf '<html>overlay</html>\n' > "$d/upper/www/index.html"
    fi
    chmod 700 "$d/work" "$d/work/work"
    find "$d" -exec touch -h -d @1700000300 {} +
}

# RAUC's two root slots in system.conf (rootfs-a booted as A, rootfs-b as B, by partlabel), and
# their sections of a status file: releases 1.0 and 2.0, both good, LINE (if any) added to each.
rauc_rootfs_slots() {
    printf '[slot.rootfs.0]\ndevice=/dev/disk/by-partlabel/rootfs-a\ntype=ext4\nbootname=A\n\n'
    printf '[slot.rootfs.1]\ndevice=/dev/disk/by-partlabel/rootfs-b\ntype=ext4\nbootname=B\n'
}
rauc_status_slots() {   # rauc_status_slots COMPATIBLE [LINE]
    local compatible=$1 line=${2:+$2$'\n'}
    printf '[slot.rootfs.0]\nbundle.compatible=%s\nbundle.version=1.0\nstatus=ok\ninstalled.timestamp=2023-11-14T22:13:20Z\n%s\n' "$compatible" "$line"
    printf '[slot.rootfs.1]\nbundle.compatible=%s\nbundle.version=2.0\nstatus=ok\ninstalled.timestamp=2023-11-20T08:00:00Z\n%s' "$compatible" "$line"
}
