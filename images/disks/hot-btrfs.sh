#!/usr/bin/env bash
# Hot snapshots of a mounted btrfs with a log tree, for the btrfs reader's log replay
# (Tests/FileSystemsTests/BtrfsLogTreeTests.swift): mkfs.btrfs, mounted read-write by the kernel
# (loop, commit=300 so that no transaction commits on its own while the changes are made), a
# tree copied in and committed (`sync -f`), then changes made and each fsync'd (`sync FILE`, a
# directory's too), which writes them to the log tree, not in a transaction, and the image
# copied while still mounted. A sync elsewhere on the machine commits the transaction (and
# drops the log): the recipe checks the copy's superblock (`btrfs inspect-internal
# dump-super`: log_root not 0) and that the kernel's two views differ, and tries again (three
# tries at most). Variants (the changes each one logs):
#   hot-btrfs          a rename in one directory, chmod and a new xattr, a new file and symlink
#   hot-btrfs-extents  an append, 100 KB overwritten in the middle of a file, a file truncated,
#                      a new file, a zstd-compressed file overwritten in its middle
#   hot-btrfs-names    an unlink (the directory fsync'd), a hardlink added, a file moved to
#                      another directory, a rename over an existing file, an xattr removed, an
#                      empty directory removed, one name of a hardlinked file removed
#   hot-btrfs-many     2,000 files created and 500 removed in one directory, all fsync'd (a
#                      log of thousands of items)
# For each NAME: NAME.img (the snapshot), NAME.manifest (the kernel's view after it replays the
# log: a writable copy mounted, listed by images/manifest.py) and NAME.committed.manifest (the
# kernel's view of the last commit, mounted ro,rescue=nologreplay: what a reader that does not
# replay shows).
# Needs root, loop devices and the kernel's btrfs; without them it writes a note and no image.
source "$(dirname "${BASH_SOURCE[0]}")/../lib.sh"

require_loop_mounts hot-btrfs btrfs

mnt=$WORK/mnt
mkdir -p "$mnt"
cleanup() { umount "$mnt" 2>/dev/null || true; }
trap cleanup EXIT

# The tree each variant starts from (committed before the changes).
base_tree() {
    local m=$1
    mkdir -p "$m/etc/empty-dir" "$m/var/zstd" "$m/srv"
    printf 'hot\n' > "$m/etc/hostname"
    printf 'rename me\n' > "$m/etc/rename-me"
    printf 'mode\n' > "$m/etc/mode-file"
    printf 'delete me\n' > "$m/etc/delete-me"
    printf 'move me\n' > "$m/etc/move-me"
    printf 'over source\n' > "$m/etc/over-src"
    printf 'over destination, replaced\n' > "$m/etc/over-dst"
    printf 'x\n' > "$m/etc/xattr-file"; setfattr -n user.remove -v before "$m/etc/xattr-file"
    printf 'a\n' > "$m/srv/hardlink-a"
    mkdir "$m/srv/many"; for i in $(seq 1 1000); do printf 'old %s\n' "$i" > "$m/srv/many/old-$i"; done
    printf 'multi\n' > "$m/srv/multi-a"; ln "$m/srv/multi-a" "$m/srv/multi-b"; ln "$m/srv/multi-a" "$m/srv/multi-c"
    head -c 300000 /dev/urandom > "$m/var/big"
    head -c 300000 /dev/urandom > "$m/var/trunc"
    printf 'first line\n' > "$m/var/log"
    btrfs property set "$m/var/zstd" compression zstd
    python3 -c 'import sys; open(sys.argv[1], "wb").write(b"".join(b"line %06d of compressible text\n" % i for i in range(20000)))' "$m/var/zstd/text"
}

changes_hot-btrfs() {
    local m=$1
    mv "$m/etc/rename-me" "$m/etc/renamed"
    sync "$m/etc/renamed"
    chmod 0600 "$m/etc/mode-file"
    setfattr -n user.changed -v after "$m/etc/mode-file"
    sync "$m/etc/mode-file"
    printf 'new\n' > "$m/srv/new-file"
    ln -s new-file "$m/srv/new-link"
    sync "$m/srv/new-file" "$m/srv"
}

changes_hot-btrfs-extents() {
    local m=$1
    printf 'appended line\n' >> "$m/var/log"
    sync "$m/var/log"
    head -c 100000 /dev/urandom | dd of="$m/var/big" bs=4096 seek=10 conv=notrunc status=none
    sync "$m/var/big"
    truncate -s 1000 "$m/var/trunc"
    sync "$m/var/trunc"
    head -c 200000 /dev/urandom > "$m/var/new.bin"
    sync "$m/var/new.bin"
    printf 'OVERWRITTEN IN THE MIDDLE' | dd of="$m/var/zstd/text" bs=1 seek=300001 conv=notrunc status=none
    sync "$m/var/zstd/text"
}

changes_hot-btrfs-names() {
    local m=$1
    rm "$m/etc/delete-me"
    sync "$m/etc"
    ln "$m/srv/hardlink-a" "$m/srv/hardlink-b"
    sync "$m/srv/hardlink-a"
    mv "$m/etc/move-me" "$m/var/moved"
    sync "$m/var/moved"
    mv "$m/etc/over-src" "$m/etc/over-dst"
    sync "$m/etc/over-dst"
    setfattr -x user.remove "$m/etc/xattr-file"
    sync "$m/etc/xattr-file"
    rmdir "$m/etc/empty-dir"
    sync "$m/etc"
    rm "$m/srv/multi-b"
    sync "$m/srv/multi-a"
}

changes_hot-btrfs-many() {
    local m=$1 i
    for i in $(seq 1 500); do rm "$m/srv/many/old-$i"; done
    sync "$m/srv/many"
    for i in $(seq 1 2000); do printf 'file %s\n' "$i" > "$m/srv/many/new-$i"; sync "$m/srv/many/new-$i"; done
}

# make_hot NAME: one snapshot with a log tree and the kernel's two views of it.
make_hot() {
    local name=$1 try img=$WORK/$1.live made=
    for try in 1 2 3; do
        rm -f "$img"; truncate -s 256M "$img"
        mkfs.btrfs -q -f "$img"
        mount -o loop,commit=300 "$img" "$mnt"
        base_tree "$mnt"
        sync -f "$mnt"
        "changes_$name" "$mnt"
        cp --sparse=always "$img" "$OUT/$name.img"
        umount "$mnt"
        if [ "$(btrfs inspect-internal dump-super "$OUT/$name.img" | awk '$1 == "log_root" { print $2 }')" != 0 ]; then
            # The references: the last commit (not replayed) and the kernel's replay of a writable copy.
            mount -o loop,ro,rescue=nologreplay "$OUT/$name.img" "$mnt"
            python3 "$IMAGES_DIR/manifest.py" "$mnt" > "$OUT/$name.committed.manifest"
            umount "$mnt"
            cp --sparse=always "$OUT/$name.img" "$WORK/$name.ref"
            mount -o loop "$WORK/$name.ref" "$mnt"
            python3 "$IMAGES_DIR/manifest.py" "$mnt" > "$OUT/$name.manifest"
            umount "$mnt"
            rm -f "$WORK/$name.ref"
            if ! cmp -s "$OUT/$name.manifest" "$OUT/$name.committed.manifest"; then made=1; break; fi
        fi
        echo "$name: the snapshot's log holds none of the changes (a transaction committed before the copy); again" >&2
    done
    [ -n "$made" ] || { echo "$name: no snapshot with the changes in its log tree in three tries" >&2; exit 1; }
    rm -f "$img"
    echo "$name:"
    btrfs inspect-internal dump-super "$OUT/$name.img" | grep -E '^(generation|log_root|log_root_level)'
    diff "$OUT/$name.committed.manifest" "$OUT/$name.manifest" || true
}

make_hot hot-btrfs
make_hot hot-btrfs-extents
make_hot hot-btrfs-names
make_hot hot-btrfs-many
