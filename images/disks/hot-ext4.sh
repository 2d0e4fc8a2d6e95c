#!/usr/bin/env bash
# Hot snapshots of mounted ext3/ext4 filesystems, for the journal replay tests
# (Tests/FileSystemsTests/Ext4JournalTests.swift). Each variant is made by mke2fs -d, mounted
# read-write by the kernel (loop, commit=1), changed (new, deleted and renamed files and
# directories, xattr and mode changes, truncation, appends, hardlinks made and removed, a file
# kept open after its unlink: an orphan), committed to the journal by fsync (`sync FILE`) and by
# the commit thread (a 3-second wait), and copied while still mounted, long before the flusher
# writes the metadata back home (dirty_expire is 30 s). Not `sync -f`: syncfs also writes the
# block device back, which leaves little for the journal. The copy carries needs_recovery
# (checked with dumpe2fs), and its on-disk state is stale (checked by the tests).
# The reference is the kernel's own view: a writable copy of the snapshot mounted (the kernel
# replays the journal and processes the orphan list) and listed by images/manifest.py.
#   hot-ext4.img          ext4 defaults (4K, 64bit, metadata_csum: journal csum v3, 64-bit tags)
#   hot-ext4-32.img       ext4 -O ^64bit,^metadata_csum (32-bit tags, no journal checksums)
#   hot-ext4-wrap.img     1K blocks, 1 MiB journal (-J size=1), hundreds of transactions: the
#                         log wraps around the end of the journal
#   hot-ext3.img          ext3 (data=ordered, 32-bit tags, no checksums)
#   hot-ext4-dj.img       ext4 mounted data=journal (file data in the journal too)
#   hot-ext4-fc.img       ext4 with fast_commit, one last file written and fsynced (a fast
#                         commit, not a full one) just before the copy: the reader replays the
#                         full commits only and warns that the fast-commit tail was not applied
# For each: NAME.img (the snapshot) and NAME.manifest (the kernel's view after recovery).
# Needs root and loop devices; without them the recipe writes a note and no images (the tests skip).
source "$(dirname "${BASH_SOURCE[0]}")/../lib.sh"

require_loop_mounts hot-ext4

mnt=$WORK/mnt
mkdir -p "$mnt"

# change_tree DIR: the changes made while mounted (each kind the issue lists).
change_tree() {
    local d=$1 i
    mkdir -p "$d/docker/containers/abc"
    for i in $(seq 1 50); do printf 'container file %s\n' "$i" > "$d/docker/containers/abc/f$i"; done
    rm "$d/etc/delete-me" "$d/srv/hardlink-b"
    rm -r "$d/old-dir"
    mv "$d/rename-dir" "$d/renamed-dir"
    mv "$d/etc/rename-me" "$d/etc/renamed"
    setfattr -n user.changed -v after "$d/etc/xattr-file"
    setfattr -x user.remove "$d/etc/xattr-file"
    chmod 0600 "$d/etc/mode-file"
    chown 1000:1000 "$d/etc/mode-file"
    truncate -s 1000 "$d/var/big"
    printf 'appended line\n' >> "$d/var/log"
    head -c 200000 /dev/urandom >> "$d/var/grow"
    ln "$d/etc/hostname" "$d/etc/hostname-link"
    ln -s ../etc/renamed "$d/srv/new-symlink"
    touch -d @1700001234.5 "$d/etc/hostname"
}

# log_wraps IMAGE: true when the live log of IMAGE's journal crosses the end of the journal (a
# live block sits before the block the log starts at), as debugfs's logdump walks it.
log_wraps() {
    debugfs -c -R logdump "$1" 2>/dev/null | awk '
        /^Journal starts at block/ { start = $5 + 0 }
        /^Found expected sequence/ { if ($NF + 0 < start) wrapped = 1 }
        END { exit wrapped ? 0 : 1 }'
}

# make_hot NAME SIZE MOUNT_OPTIONS LOOPS mke2fs-args...: one hot snapshot and its reference.
make_hot() {
    local name=$1 size=$2 opts=$3 loops=$4 i; shift 4
    local img=$WORK/$name.live src=$WORK/src-$name
    rm -rf "$src"; mkdir -p "$src/etc" "$src/srv" "$src/var" "$src/old-dir/sub" "$src/rename-dir"
    printf 'hot\n' > "$src/etc/hostname"
    printf 'delete me\n' > "$src/etc/delete-me"
    printf 'rename me\n' > "$src/etc/rename-me"
    printf 'x\n' > "$src/etc/xattr-file"; setfattr -n user.remove -v before "$src/etc/xattr-file"
    printf 'mode\n' > "$src/etc/mode-file"; chmod 0644 "$src/etc/mode-file"
    printf 'a\n' > "$src/srv/hardlink-a"; ln "$src/srv/hardlink-a" "$src/srv/hardlink-b"
    printf 'old\n' > "$src/old-dir/sub/file"
    printf 'inside\n' > "$src/rename-dir/file"
    head -c 300000 /dev/urandom > "$src/var/big"
    printf 'first line\n' > "$src/var/log"
    head -c 5000 /dev/urandom > "$src/var/grow"
    rm -f "$img"; truncate -s "$size" "$img"
    mke2fs -F -q -E root_owner=0:0 -d "$src" "$@" "$img"
    mount -o "loop,commit=1${opts:+,$opts}" "$img" "$mnt"
    # Many small transactions (each fsync commits one): with a tiny journal the log wraps.
    for i in $(seq 1 "$loops"); do printf '%s\n' "$i" > "$mnt/etc/counter-$((i % 7))"; sync "$mnt/etc/counter-$((i % 7))"; done
    # The wrap variant: more transactions until the live log crosses the end of the journal.
    # `sync -f` writes the block device back (the flusher writes back everything of an inode
    # dirty for over 30 s, and these loops can take longer): the changes below start clean.
    if [ "$name" = hot-ext4-wrap ]; then
        for i in $(seq 1 100); do
            sync -f "$mnt"
            cp --sparse=always "$img" "$WORK/probe.img"
            log_wraps "$WORK/probe.img" && break
            for j in $(seq 1 5); do printf '%s\n' "$i.$j" > "$mnt/etc/counter-$j"; sync "$mnt/etc/counter-$j"; done
        done
        rm -f "$WORK/probe.img"
    fi
    change_tree "$mnt"
    # The orphan: a file unlinked while open stays on the orphan list until closed.
    exec 9> "$mnt/var/orphan"
    head -c 50000 /dev/urandom >&9
    rm "$mnt/var/orphan"
    sleep 3
    if [ "$name" = hot-ext4-fc ]; then printf 'fast\n' > "$mnt/etc/fc-file"; sync "$mnt/etc/fc-file"; fi
    cp --sparse=always "$img" "$OUT/$name.img"
    exec 9>&-
    umount "$mnt"
    dumpe2fs -h "$OUT/$name.img" 2>/dev/null | grep -E '^Filesystem features:' | grep -q needs_recovery \
        || { echo "$name: the snapshot does not need recovery" >&2; exit 1; }
    if [ "$name" = hot-ext4-wrap ] && ! log_wraps "$OUT/$name.img"; then
        echo "$name: the snapshot's live log does not wrap" >&2; exit 1
    fi
    # The reference: the kernel mounts a writable copy (replay + orphan cleanup) and lists it.
    cp --sparse=always "$OUT/$name.img" "$WORK/$name.ref"
    mount -o loop "$WORK/$name.ref" "$mnt"
    python3 "$IMAGES_DIR/manifest.py" "$mnt" > "$OUT/$name.manifest"
    umount "$mnt"
    rm -f "$WORK/$name.ref" "$img"
    dumpe2fs -h "$OUT/$name.img" 2>/dev/null | grep -E 'features|Journal (size|features|sequence|start)|Block size'
}

# make_stale_hot NAME ...: make_hot, again (three tries at most) while the snapshot's on-disk
# state already holds the new container directory: a sync run elsewhere on the machine (another
# build writing its images) wrote the metadata back before the copy, so it is not the stale
# state the --no-replay tests need.
make_stale_hot() {
    local try
    for try in 1 2 3; do
        make_hot "$@"
        debugfs -c -R "stat /docker/containers/abc" "$OUT/$1.img" 2>/dev/null | grep -q '^Inode:' || return 0
        echo "$1: the on-disk state already holds the changes (written back before the copy); again" >&2
    done
    echo "$1: no stale snapshot in three tries" >&2
    exit 1
}

make_stale_hot hot-ext4 64M "" 20 -t ext4 -b 4096
make_stale_hot hot-ext4-32 64M "" 20 -t ext4 -b 4096 -O ^64bit,^metadata_csum
make_stale_hot hot-ext4-wrap 32M "" 400 -t ext4 -b 1024 -J size=1
make_stale_hot hot-ext3 64M "data=ordered" 20 -t ext3 -b 4096
make_stale_hot hot-ext4-dj 64M "data=journal" 20 -t ext4 -b 4096
make_stale_hot hot-ext4-fc 64M "" 20 -t ext4 -b 4096 -O fast_commit

# hot-haos.img: the realistic HAOS disk (make_haos_full) snapshotted while its hassos-overlay (7)
# and hassos-data (8) partitions are mounted read-write and changed (a new container directory
# with 50 files in the Docker data-root, an edited supervisor config, a removed log, a new
# hostname and hosts line on the overlay). hot-haos-p7.manifest and hot-haos-p8.manifest are the
# kernel's views of the two partitions after recovery (a writable copy mounted).
make_hot_haos() {
    local live=$WORK/haos.live copy=$WORK/haos.ref n dev
    local -A off len devs
    make_haos_full "$live"
    for n in 7 8; do
        off[$n]=$(( $(sgdisk -i "$n" "$live" | awk '/^First sector/ {print $3}') * 512 ))
        len[$n]=$(( ($(sgdisk -i "$n" "$live" | awk '/^Last sector/ {print $3}') + 1) * 512 - off[$n] ))
        devs[$n]=$(losetup -f --show -o "${off[$n]}" --sizelimit "${len[$n]}" "$live")
        mkdir -p "$WORK/m$n"; mount -o commit=1 "${devs[$n]}" "$WORK/m$n"
    done
    local d=$WORK/m8 o=$WORK/m7 i
    mkdir -p "$d/docker/containers/abc"
    for i in $(seq 1 50); do printf 'container file %s\n' "$i" > "$d/docker/containers/abc/f$i"; done
    printf '{"version": 2}\n' > "$d/supervisor/config.json"
    rm -r "$d/logs/0123456789abcdef"
    printf 'hot-haos\n' > "$o/etc/hostname"
    printf '10.0.0.2 nas\n' >> "$o/etc/hosts"
    sync "$d/supervisor/config.json" "$o/etc/hostname"
    sleep 3
    cp --sparse=always "$live" "$OUT/hot-haos.img"
    for n in 7 8; do umount "$WORK/m$n"; losetup -d "${devs[$n]}"; done
    cp --sparse=always "$OUT/hot-haos.img" "$copy"
    for n in 7 8; do
        dev=$(losetup -f --show -o "${off[$n]}" --sizelimit "${len[$n]}" "$copy")
        dumpe2fs -h "$dev" 2>/dev/null | grep -E '^Filesystem features:' | grep -q needs_recovery \
            || { losetup -d "$dev"; echo "hot-haos: partition $n does not need recovery" >&2; exit 1; }
        mount "$dev" "$WORK/m$n"
        python3 "$IMAGES_DIR/manifest.py" "$WORK/m$n" > "$OUT/hot-haos-p$n.manifest"
        umount "$WORK/m$n"; losetup -d "$dev"
    done
    rm -f "$live" "$copy"
}
make_hot_haos
