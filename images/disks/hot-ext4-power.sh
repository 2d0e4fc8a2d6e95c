#!/usr/bin/env bash
# Hot snapshots of mounted ext4 filesystems for the journal cases real power loss makes
# (Tests/FileSystemsTests/Ext4PowerLossTests.swift). Made like hot-ext4.sh: mke2fs -d, mounted
# read-write by the kernel (loop, commit=1), changed, committed (fsync and the 1-second commit
# thread), copied while still mounted. The reference is the kernel's own view: a writable copy
# of each snapshot mounted (the kernel replays the journal, processes the orphans) and listed by
# images/manifest.py into NAME.manifest.
#   hot-ext4-torn.img      ext4 defaults (journal csum v3). After the copy the tails of two
#                          commit blocks (the last one and the one before it) are overwritten
#                          past their 64-byte header, as a torn write at power loss leaves them;
#                          the kernel's log must say "Find incomplete commit block" for both.
#   hot-ext4-grow.img      1K blocks, made 8 MiB and grown online to 40 MiB by resize2fs while
#                          mounted, then filled: the journal holds blocks past the on-disk
#                          superblock's block count (the new groups). Online resize needs
#                          CAP_SYS_RESOURCE: without it NAME.skipped says so and no image is made.
#   hot-ext4-trunc.img     ext4 without orphan_file: a file kept open after its unlink (an
#                          orphan to delete) and a file whose truncate is in progress at the copy
#                          (an orphan with links: the kernel finishes the truncate at mount). The
#                          truncate is slowed down by a blkio cgroup read limit on the loop device
#                          (its extent blocks are read at 1 KiB/s), so it is still running when
#                          the copy is made; the kernel's mount must say "1 truncate cleaned up".
#   hot-ext4-orphanfile.img the same with -O orphan_file (the orphans are in the orphan file).
#   hot-ext4-fc2.img       ext4 with fast_commit mounted commit=60: after a full commit (syncfs), an
#                          append, a punched hole, a truncate, a hardlink, an unlink, a create and
#                          a rename, then one fsync: a fast commit carrying every kind of record
#                          (the recipe checks debugfs logdump shows ADD_RANGE, DEL_RANGE,
#                          CREAT_DENTRY, ADD_ENTRY, DEL_ENTRY and INODE tags), copied at once.
#   NAME.info              lines "key value" the tests check against: the torn transactions,
#                          the block counts before and after the grow, the truncated file.
# Needs root, loop devices and (for the truncate) the cgroup v1 blkio controller; without root or
# loop devices the recipe writes a note and no images (the tests skip).
source "$(dirname "${BASH_SOURCE[0]}")/../lib.sh"

require_loop_mounts hot-ext4-power

mnt=$WORK/mnt
slow=/sys/fs/cgroup/blkio/fwassemble-hot-$$
mkdir -p "$mnt"
cleanup() {
    # A failed step may leave the throttled truncate running and the orphan's descriptor open:
    # wait for the one, close the other, then unmount and remove the cgroup.
    wait 2>/dev/null || true
    exec 9>&- 2>/dev/null || true
    mountpoint -q "$mnt" && umount "$mnt"
    [ -d "$slow" ] && rmdir "$slow"
    return 0
}
trap cleanup EXIT

# hot_tree DIR: the source tree every variant starts from.
hot_tree() {
    local d=$1
    rm -rf "$d"; mkdir -p "$d/etc" "$d/var" "$d/old-dir/sub" "$d/rename-dir"
    printf 'hot\n' > "$d/etc/hostname"
    printf 'delete me\n' > "$d/etc/delete-me"
    printf 'x\n' > "$d/etc/xattr-file"; setfattr -n user.remove -v before "$d/etc/xattr-file"
    printf 'old\n' > "$d/old-dir/sub/file"
    printf 'inside\n' > "$d/rename-dir/file"
    head -c 100000 /dev/urandom > "$d/var/big"
}

# hot_changes DIR TAG: one transaction's worth of changes, committed by fsync.
hot_changes() {
    local d=$1 tag=$2 i
    mkdir -p "$d/$tag"
    for i in $(seq 1 10); do printf '%s %s\n' "$tag" "$i" > "$d/$tag/f$i"; done
    setfattr -n "user.$tag" -v "$tag" "$d/etc/xattr-file"
    printf '%s\n' "$tag" >> "$d/var/log"
    sync "$d/$tag/f10" "$d/var/log" "$d/etc/xattr-file"
}

# hot_mount NAME SIZE mke2fs-args...: a fresh image $WORK/NAME.live mounted at $mnt (commit=1).
hot_mount() {
    local name=$1 size=$2; shift 2
    hot_tree "$WORK/src-$name"
    rm -f "$WORK/$name.live"; truncate -s "$size" "$WORK/$name.live"
    mke2fs -F -q -E root_owner=0:0 -d "$WORK/src-$name" "$@" "$WORK/$name.live"
    mount -o loop,commit=1 "$WORK/$name.live" "$mnt"
}

# hot_copy NAME: the snapshot, copied while mounted; it must need recovery.
hot_copy() {
    cp --sparse=always "$WORK/$1.live" "$OUT/$1.img"
    dumpe2fs -h "$OUT/$1.img" 2>/dev/null | grep -E '^Filesystem features:' | grep -q needs_recovery \
        || { echo "$1: the snapshot does not need recovery" >&2; exit 1; }
}

# hot_reference NAME [KERNEL-LOG-PATTERN...]: the kernel's view of a writable copy; each pattern
# must appear in what the kernel logged while mounting it.
hot_reference() {
    local name=$1 log since dev; shift
    cp --sparse=always "$OUT/$name.img" "$WORK/$name.ref"
    # The kernel's lines about this mount: after the last timestamp logged before it, naming its
    # loop device or from jbd2 (whose recovery notices name no device); counting lines fails
    # once the ring buffer is full.
    since=$(dmesg 2>/dev/null | tail -1 | sed -n 's/^\[ *\([0-9.]*\)\].*/\1/p')
    dev=$(losetup -f --show "$WORK/$name.ref")
    mount "$dev" "$mnt"
    log=$(dmesg 2>/dev/null | awk -v t="${since:-0}" -v d="($(basename "$dev"))" '
        { s = $0; sub(/^\[ */, "", s); sub(/\].*/, "", s); if (s + 0 > t + 0 && (index($0, d) || index($0, "JBD2:"))) print }')
    python3 "$IMAGES_DIR/manifest.py" "$mnt" > "$OUT/$name.manifest"
    umount "$mnt"
    losetup -d "$dev"
    rm -f "$WORK/$name.ref" "$WORK/$name.live"
    for pattern in "$@"; do
        grep -q -- "$pattern" <<< "$log" || { echo "$name: the kernel did not log '$pattern':" >&2; echo "$log" >&2; exit 1; }
    done
    dumpe2fs -h "$OUT/$name.img" 2>/dev/null | grep -E 'features|Journal (size|features|sequence|start)|Block (size|count)'
}

# commit_blocks IMAGE: "sequence journal-block" of every commit block of the live log.
commit_blocks() {
    debugfs -c -R logdump "$1" 2>/dev/null | awk '/type 2 \(commit block\)/ { print $4 + 0, $NF }'
}

# --- a torn commit block ---------------------------------------------------------------------
make_torn() {
    local name=hot-ext4-torn bs=4096 seq block phys tag
    hot_mount "$name" 64M -t ext4 -b 4096
    hot_changes "$mnt" early
    rm "$mnt/etc/delete-me"; rm -r "$mnt/old-dir"; mv "$mnt/rename-dir" "$mnt/renamed-dir"
    sleep 2
    for tag in t1 t2 t3; do hot_changes "$mnt" "$tag"; sleep 1.5; done
    sleep 2
    hot_copy "$name"
    umount "$mnt"
    # The last two commit blocks: their tails past the header become random bytes.
    : > "$OUT/$name.info"
    while read -r seq block; do
        phys=$(debugfs -c -R "bmap <8> $block" "$OUT/$name.img" 2>/dev/null)
        [[ "$phys" =~ ^[0-9]+$ ]] || { echo "$name: journal block $block does not map: $phys" >&2; exit 1; }
        head -c $((bs - 64)) /dev/urandom | dd of="$OUT/$name.img" bs=1 seek=$((phys * bs + 64)) conv=notrunc status=none
        echo "torn $seq $block" >> "$OUT/$name.info"
    done < <(commit_blocks "$OUT/$name.img" | tail -2)
    [ "$(grep -c '^torn' "$OUT/$name.info")" = 2 ] || { echo "$name: fewer than two commit blocks" >&2; exit 1; }
    local patterns=()
    while read -r _ seq _; do patterns+=("Find incomplete commit block in transaction $seq"); done < "$OUT/$name.info"
    hot_reference "$name" "${patterns[@]}"
}

# --- an online grow ----------------------------------------------------------------------------
make_grow() {
    local name=hot-ext4-grow dev i
    hot_mount "$name" 8M -t ext4 -b 1024
    dev=$(findmnt -n -o SOURCE "$mnt")
    echo "blocks_before $(dumpe2fs -h "$dev" 2>/dev/null | awk '/^Block count:/ {print $3}')" > "$OUT/$name.info"
    truncate -s 40M "$WORK/$name.live"
    losetup -c "$dev"
    # Online resize needs CAP_SYS_RESOURCE (EXT4_IOC_RESIZE_FS); a container without it gets
    # EPERM: then no grow snapshot (the tests skip it and say why).
    if ! resize2fs "$dev" > "$WORK/resize.log" 2>&1; then
        umount "$mnt"; rm -f "$WORK/$name.live" "$OUT/$name.info"
        echo "$name: online resize refused here ($(tail -1 "$WORK/resize.log")); no grow snapshot" | tee "$OUT/$name.skipped"
        return 0
    fi
    rm -f "$OUT/$name.skipped"
    # Directories spread over the groups (Orlov), files and data in the new groups.
    for i in $(seq 1 12); do
        mkdir "$mnt/grown-$i"
        head -c 1500000 /dev/urandom > "$mnt/grown-$i/data"
        printf '%s\n' "$i" > "$mnt/grown-$i/small"
    done
    hot_changes "$mnt" after-grow
    sync "$mnt"/grown-*/data "$mnt"/grown-*/small
    sleep 3
    hot_copy "$name"
    umount "$mnt"
    # The grow must be in the journal only: the snapshot's superblock still has the old count.
    echo "blocks_on_disk $(dumpe2fs -h "$OUT/$name.img" 2>/dev/null | awk '/^Block count:/ {print $3}')" >> "$OUT/$name.info"
    echo "blocks_after $((40 * 1024))" >> "$OUT/$name.info"
    hot_reference "$name"
}

# --- orphans: deleted and being truncated -----------------------------------------------------
# orphan_attempt NAME mke2fs-args...: one try; true when the copy in $OUT/NAME.img was taken
# while the truncate was in progress with its orphan record committed.
orphan_attempt() {
    local name=$1 dev pid try found=; shift
    hot_mount "$name" 64M -t ext4 -b 4096 "$@"
    # A file of 4000 one-block extents (a two-level extent tree), written, then the filesystem
    # remounted so that none of its extent blocks is cached.
    python3 -c "
import os, sys
fd = os.open(sys.argv[1], os.O_WRONLY | os.O_CREAT, 0o644)
for i in range(4000):
    os.pwrite(fd, bytes([65 + i % 26]) * 4096, i * 8192)
os.fsync(fd); os.close(fd)" "$mnt/var/truncating"
    umount "$mnt"
    mount -o loop,commit=1 "$WORK/$name.live" "$mnt"
    dev=$(findmnt -n -o SOURCE "$mnt")
    hot_changes "$mnt" before
    rm "$mnt/etc/delete-me"; mv "$mnt/rename-dir" "$mnt/renamed-dir"
    exec 9> "$mnt/var/orphan"
    head -c 50000 /dev/urandom >&9
    rm "$mnt/var/orphan"
    sync "$mnt/var/big"
    mkdir "$slow"
    echo "$(lsblk -dno MAJ:MIN "$dev" | tr -d ' ') 1024" > "$slow/blkio.throttle.read_bps_device"
    ( echo "$BASHPID" > "$slow/tasks"; exec truncate -s 10000 "$mnt/var/truncating" ) > /dev/null 2>&1 &
    pid=$!
    # The transaction with the orphan record commits when the truncate's handle lets it (between
    # handles, or when its credits run out): copy once a second until a copy has the record, as
    # e2fsck sees it after replaying the journal of a scratch copy ("Truncating orphaned inode").
    for try in $(seq 1 40); do
        sleep 1
        kill -0 "$pid" 2>/dev/null || { echo "$name: the truncate ended after $try s"; break; }
        hot_copy "$name"
        cp --sparse=always "$OUT/$name.img" "$WORK/probe.img"
        if (e2fsck -fy "$WORK/probe.img" 2>&1 || true) | grep 'orphaned inode' | grep -q '^Truncating'; then found=1; break; fi
    done
    rm -f "$WORK/probe.img"
    wait "$pid" || true
    rmdir "$slow"
    exec 9>&-
    umount "$mnt"
    [ -n "$found" ]
}

# make_orphans NAME mke2fs-args...: up to three tries for a copy with a truncate in progress;
# without one, the snapshot has the deleted orphan only (NAME.info says "truncating none").
make_orphans() {
    local name=$1 attempt; shift
    for attempt in 1 2 3; do
        if orphan_attempt "$name" "$@"; then
            echo "truncating var/truncating 10000" > "$OUT/$name.info"
            hot_reference "$name" "1 orphan inode deleted" "1 truncate cleaned up"
            return
        fi
        echo "$name: attempt $attempt: no copy with the truncate in progress"
    done
    echo "truncating none" > "$OUT/$name.info"
    hot_reference "$name" "1 orphan inode deleted"
}

# --- a fast commit with every kind of record --------------------------------------------------
make_fast_commit() {
    local name=hot-ext4-fc2 tags kind
    hot_tree "$WORK/src-$name"
    head -c 100000 /dev/urandom > "$WORK/src-$name/var/punch"
    printf 'gone\n' > "$WORK/src-$name/var/gone"
    rm -f "$WORK/$name.live"; truncate -s 64M "$WORK/$name.live"
    mke2fs -F -q -E root_owner=0:0 -d "$WORK/src-$name" -t ext4 -b 4096 -O fast_commit "$WORK/$name.live"
    mount -o loop,commit=60 "$WORK/$name.live" "$mnt"
    sync -f "$mnt"   # a full commit: what follows is in the fast commit only
    head -c 30000 /dev/urandom >> "$mnt/var/big"
    fallocate -p -o 8192 -l 16384 "$mnt/var/punch"
    truncate -s 50000 "$mnt/var/punch"
    ln "$mnt/var/big" "$mnt/var/big-link"
    rm "$mnt/var/gone"
    printf 'new\n' > "$mnt/var/new"
    mv "$mnt/var/new" "$mnt/var/renamed"
    chmod 0600 "$mnt/var/punch"
    sync "$mnt/var/big"
    hot_copy "$name"
    umount "$mnt"
    tags=$(debugfs -c -R logdump "$OUT/$name.img" 2>/dev/null | awk '/^ *tag / { print $2 }' | tr -d , | sort -u | tr '\n' ' ')
    for kind in ADD_RANGE DEL_RANGE CREAT_DENTRY ADD_ENTRY DEL_ENTRY INODE; do
        grep -qw "$kind" <<< "$tags" || { echo "$name: no $kind tag in the fast commit (tags: $tags)" >&2; exit 1; }
    done
    echo "tags $tags" > "$OUT/$name.info"
    hot_reference "$name"
}

make_fast_commit
make_torn
make_grow
make_orphans hot-ext4-trunc -O ^orphan_file
make_orphans hot-ext4-orphanfile -O orphan_file
