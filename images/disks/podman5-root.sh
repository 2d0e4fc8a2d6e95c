#!/usr/bin/env bash
# A disk whose containers live in Podman 5's store, written by Debian trixie's real podman (5.4)
# with its SQLite state (db.sql at the graph root), run rootful and offline in a trixie root made with
# mmdebstrap (--variant=minbase + podman, crun, conmon, busybox-static; cached in
# ${FWA_CACHE:-$OUT/.cache}/trixie-podman5 and reused), entered through an overlay so the cache
# stays clean. In it: the OCI archives of make_oci_archives loaded with `podman load`, a busybox
# image made with `podman import` (localhost/tool:latest, found by its short name `tool`), and
# containers in podman's states: web and job created (`podman create`, files changed through
# `podman mount`), ready initialised (`podman init`), failed exited with code 3, sleeper running,
# held paused (when the sandbox's cgroup freezer allows it), late created last. The store is
# copied while sleeper and held run, to /var/lib/containers/storage. (Podman 5.4 keeps db.sql in
# rollback-journal mode and opens it per command: between commands there is no journal and no WAL;
# the variants below add them.)
#   podman5-root.img     p1 vfat boot, p2 ext4 root with /var/lib/containers/storage;
#   podman5-root-{hot,wal,truncated,garbage}.img  the same with db.sql changed (see the variants below).
# Beside it: podman5-root.facts/ (podman images/ps -a --format json while it ran, the layer
# chains, the store's listing, wal-present if podman had left a db.sql-wal, paused when held could be
# paused, ps-after-reboot.json: podman ps -a after a simulated power loss and boot).
# When mmdebstrap cannot run (no network) or podman cannot run here, podman5-root.skipped says why
# and no disk is written (the tests skip, saying so); images/build.sh then counts the recipe as
# built: remove OUT/.podman5-root.done to try again.
source "$(dirname "$0")/../lib.sh"
facts="$OUT/podman5-root.facts"
note="$OUT/podman5-root.skipped"
rm -rf "$facts" "$note" "$OUT"/podman5-root*.img; mkdir -p "$facts"
skip() { printf '%s\n' "$*" > "$note"; echo "skipped: $*"; exit 0; }
cache="${FWA_CACHE:-$OUT/.cache}/trixie-podman5"
packages=podman,crun,conmon,busybox-static
if [ ! -f "$cache/.complete" ] || [ "$(cat "$cache/.complete")" != "$packages" ]; then
    command -v mmdebstrap >/dev/null || skip "mmdebstrap is not installed (make deps)"
    rm -rf "$cache" "$cache.tmp"; mkdir -p "$(dirname "$cache")"
    mmdebstrap --variant=minbase --include="$packages" trixie "$cache.tmp" http://deb.debian.org/debian \
        || { rm -rf "$cache.tmp"; skip "mmdebstrap of trixie failed (no network?)"; }
    printf '%s' "$packages" > "$cache.tmp/.complete"; mv "$cache.tmp" "$cache"
fi

# The root, through an overlay (upper on a tmpfs), with /proc /sys /dev, the store and the runroot
# on tmpfs (podman's overlay driver cannot sit on overlayfs). Everything mounted is unmounted by the trap.
mkdir -p t r
mount -t tmpfs -o size=512m tmpfs t
mkdir -p t/upper t/work
R=$PWD/r
cleanup() {
    # podman removes its containers (held is unpaused first: a frozen process ignores SIGKILL),
    # which ends their processes (they live in mount namespaces of their own) and their cgroups.
    if [ -x "$R/usr/bin/podman" ] && mountpoint -q "$R/pm"; then
        P unpause --all >/dev/null 2>&1 || true
        P rm -f -t 0 --all >/dev/null 2>&1 || true
    fi
    # what is left in the root (a conmon) dies with it
    for d in /proc/[0-9]*; do
        [ "$(readlink "$d/root" 2>/dev/null)" = "$R" ] && kill -9 "${d#/proc/}" 2>/dev/null || true
    done
    sleep 1
    for c in /sys/fs/cgroup/*/libpod_parent; do
        for d in "$c"/libpod-* "$c"/conmon; do [ -d "$d" ] && rmdir "$d" 2>/dev/null || true; done
        rmdir "$c" 2>/dev/null || true
    done
    for m in $(awk -v r="$R" 'index($2, r) == 1 { print $2 }' /proc/mounts | sort -r); do umount -l "$m" 2>/dev/null || true; done
    umount "$R" 2>/dev/null || true
    umount t 2>/dev/null || true
}
trap cleanup EXIT
mount -t overlay overlay -o "lowerdir=$cache,upperdir=$PWD/t/upper,workdir=$PWD/t/work" "$R"
mount -t proc proc "$R/proc"
# /sys with the host's cgroup v1 controllers only: crun refuses a hybrid v1 + v2 hierarchy.
mount -t sysfs sysfs "$R/sys"
mount -t tmpfs -o size=1m cgroup "$R/sys/fs/cgroup"
for c in /sys/fs/cgroup/*; do
    [ "$(stat -f -c %T "$c")" = cgroupfs ] || continue
    mkdir -p "$R$c"; mount --bind "$c" "$R$c"
done
mount --rbind /dev "$R/dev"; mount --make-rslave "$R/dev"
mount -t tmpfs -o size=16m tmpfs "$R/dev/shm"   # podman's lock file (libpod_lock) stays private to this run
mkdir -p "$R/pm" "$R/run/pm"
mount -t tmpfs -o size=256m tmpfs "$R/pm"
mount -t tmpfs -o size=64m tmpfs "$R/run/pm"
mkdir -p "$R/pm/root" "$R/pm/tmp" "$R/etc/containers"
printf '[engine]\ndatabase_backend = "sqlite"\n' > "$R/etc/containers/containers.conf"
P() { chroot "$R" podman --root /pm/root --runroot /run/pm --tmpdir /pm/tmp --storage-driver overlay \
        --cgroup-manager cgroupfs --events-backend none "$@"; }
P --version > "$facts/version" || skip "podman 5 does not start in the trixie root"

make_oci_archives "$R/pm/oci" "$facts/layers.json"
P load -i /pm/oci/web.tar
P load -i /pm/oci/job.tar
mkdir -p tool/bin tool/etc tool/tmp
cp "$R/usr/bin/busybox" tool/bin/busybox
ln -s busybox tool/bin/sh; ln -s busybox tool/bin/sleep
printf 'NAME=tool\n' > tool/etc/os-release
tar -C tool --numeric-owner --owner=0 --group=0 -cf "$R/pm/tool.tar" .
P import --change 'CMD=["/bin/sh"]' /pm/tool.tar tool

P create --name web --label role=web docker.io/example/web:1.0
P create --name job --label role=job docker.io/example/job:2.0
m=$(P mount web); m=$R$m
mkdir -p "$m/run"; printf '42\n' > "$m/run/web.pid"; rm "$m/etc/os-release"; rm -r "$m/etc/app"; mkdir "$m/etc/app"
printf 'fresh\n' > "$m/etc/app/new.conf"; printf 'patched\n' >> "$m/srv/index.html"
P umount web
m=$(P mount job); m=$R$m
mkdir -p "$m/var/log"; printf 'failed\n' > "$m/var/log/job.log"; rm "$m/usr/local/bin/job-alias"
P umount job
runs=yes
P create --name ready --network none tool sleep 5
P init ready || runs=no
if [ $runs = yes ]; then
    set +e; P run --name failed --network none --label role=exit tool sh -c 'exit 3'; code=$?; set -e
    [ $code = 3 ] || skip "podman run does not run a container here (exit $code)"
    P run -d --name sleeper --network none tool sleep 100000
    P run -d --name held --network none tool sleep 100000
    if P pause held; then touch "$facts/paused"; fi
else
    skip "podman init cannot create a container in the OCI runtime here"
fi
P create --name late --label role=late tool
P images --format json > "$facts/images.json"
P ps -a --format json > "$facts/ps.json"
cp "$R/pm/root/overlay-layers/layers.json" "$facts/layers-store.json"

rm -rf root; minimal_root root
mkdir -p root/var/lib/containers
# the copy, while sleeper and held run: the filesystem as a disk copy holds it (the containers'
# overlay mounts on merged/ and the shm tmpfs are other filesystems: their mount points stay empty)
cp -a --one-file-system "$R/pm/root" root/var/lib/containers/storage
rm -rf root/var/lib/containers/storage/tmp
ls -la root/var/lib/containers/storage root/var/lib/containers/storage/libpod > "$facts/store.ls"
[ -s root/var/lib/containers/storage/db.sql-wal ] && touch "$facts/wal-present"

# What podman shows after the device loses power and boots again (the disk's copy is taken): every
# container process killed (held thawed first), the containers' mounts gone, the runroot (tmpfs)
# and tmpdir empty; the next podman command finds no alive file and refreshes its state
# (ps-after-reboot.json). Only a fact for docs/docker.md: the report shows the stored states.
# conmon goes first: a power loss leaves no monitor to record an exit code (conmon alive when its
# container is killed writes 137, which is not what a device that lost power shows).
power_loss() {
    local c
    for c in /sys/fs/cgroup/freezer/libpod_parent/libpod-*; do [ -d "$c" ] && echo THAWED > "$c/freezer.state"; done
    for c in /sys/fs/cgroup/pids/libpod_parent/conmon /sys/fs/cgroup/pids/libpod_parent/libpod-*; do
        [ -f "$c/cgroup.procs" ] && for p in $(cat "$c/cgroup.procs"); do kill -9 "$p" 2>/dev/null || true; done
    done
    sleep 1
    for m in $(awk -v r="$R/pm/root/" 'index($2, r) == 1 { print $2 }' /proc/mounts | sort -r); do umount -l "$m" || true; done
    umount -l "$R/run/pm"; mount -t tmpfs -o size=64m tmpfs "$R/run/pm"
    umount -l "$R/dev/shm"; mount -t tmpfs -o size=16m tmpfs "$R/dev/shm"
    rm -rf "$R/pm/tmp"; mkdir -p "$R/pm/tmp"
}
if power_loss && P ps -a --format json > "$facts/ps-after-reboot.json"; then :; else rm -f "$facts/ps-after-reboot.json"; fi
printf 'PARTUUID=c0de0023-02 / ext4 defaults 0 1\n' > root/etc/fstab
boot_root_disk "$OUT/podman5-root.img" c0de0023 64 46 "-I 256"

# Variants of db.sql, each on a disk of its own (the store otherwise the same), made by the real
# SQLite (python3's sqlite3 module) on a copy of podman's db.sql:
#   -hot        a copy taken inside an open transaction that sets every container's state to 3
#               (running) with the page cache so small that SQLite has written the changed pages
#               into db.sql: db.sql-journal is hot (the device's SQLite rolls it back at next open).
#   -wal        db.sql in WAL mode with a committed change still only in db.sql-wal: container
#               late exited with code 42 (copied while the writer holds the database open).
#   -truncated  db.sql cut to its first 3 pages.
#   -garbage    the root page of the ContainerConfig table overwritten with random bytes.
store=root/var/lib/containers/storage
cp "$store/db.sql" db.sql.orig
variant() {
    local name=$1
    rm -f "$store"/db.sql*
    python3 - "$name" db.sql.orig "$store" <<'PY'
import os, random, shutil, sqlite3, sys, filecmp
name, orig, store = sys.argv[1:]
db = os.path.join(store, "db.sql")
shutil.copy(orig, "work.sql")
for extra in ("work.sql-journal", "work.sql-wal"):
    if os.path.exists(extra): os.remove(extra)
if name == "hot":
    c = sqlite3.connect("work.sql", isolation_level=None)
    c.execute("PRAGMA cache_size=2")
    c.execute("BEGIN")
    c.execute("UPDATE ContainerState SET JSON=json_set(JSON, '$.state', 3, '$.pad', hex(randomblob(3000)))")
    shutil.copy("work.sql", db); shutil.copy("work.sql-journal", db + "-journal")
    c.execute("ROLLBACK")
    assert not filecmp.cmp(orig, db, shallow=False), "SQLite did not spill the transaction into db.sql"
elif name == "wal":
    c = sqlite3.connect("work.sql", isolation_level=None)
    assert c.execute("PRAGMA journal_mode=WAL").fetchone()[0] == "wal"
    c.execute("PRAGMA wal_autocheckpoint=0")
    c.execute("UPDATE ContainerState SET JSON=json_set(JSON, '$.exitCode', 42, '$.state', 6) "
              "WHERE ID IN (SELECT ID FROM ContainerConfig WHERE Name='late')")
    shutil.copy("work.sql", db); shutil.copy("work.sql-wal", db + "-wal")
    c.close()
elif name == "truncated":
    data = open(orig, "rb").read()
    open(db, "wb").write(data[:3 * 4096])
elif name == "garbage":
    c = sqlite3.connect(orig)
    page = c.execute("SELECT rootpage FROM sqlite_schema WHERE name='ContainerConfig'").fetchone()[0]
    size = c.execute("PRAGMA page_size").fetchone()[0]
    c.close()
    data = bytearray(open(orig, "rb").read())
    rnd = random.Random(23)
    data[(page - 1) * size:page * size] = bytes(rnd.randrange(256) for _ in range(size))
    open(db, "wb").write(data)
PY
    boot_root_disk "$OUT/podman5-root-$name.img" c0de0023 64 46 "-I 256"
}
for v in hot wal truncated garbage; do variant $v; done
