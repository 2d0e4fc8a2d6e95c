#!/usr/bin/env bash
# A hot snapshot of a mounted btrfs with a log tree, for the btrfs reader's log tree handling
# (Tests/FileSystemsTests/BtrfsLogTreeTests.swift): mkfs.btrfs, mounted read-write by the kernel
# (loop, commit=300 so that no transaction commits on its own while the changes are made), the
# tree copied in and committed (`sync -f`), then changes made and each fsync'd (`sync FILE`),
# which writes them to the log tree, not in a transaction, and the image copied while still
# mounted. A sync elsewhere on the machine commits the transaction (and drops the log): the
# recipe checks the copy's superblock (`btrfs inspect-internal dump-super`: log_root not 0) and
# tries again (three tries at most).
#   hot-btrfs.img                  the snapshot
#   hot-btrfs.manifest             the kernel's view after it replays the log (a writable copy
#                                  mounted), by images/manifest.py
#   hot-btrfs.committed.manifest   the kernel's view of the last commit (a copy mounted
#                                  ro,rescue=nologreplay): what a reader that does not replay shows
# Needs root, loop devices and the kernel's btrfs; without them it writes a note and no image.
source "$(dirname "${BASH_SOURCE[0]}")/../lib.sh"

if [ "$(id -u)" -ne 0 ] || ! losetup -f >/dev/null 2>&1 || ! grep -qw btrfs /proc/filesystems; then
    echo "hot-btrfs: needs root, loop devices and the kernel's btrfs; not built (its tests skip)" | tee "$OUT/hot-btrfs.skipped"
    exit 0
fi
rm -f "$OUT/hot-btrfs.skipped"

mnt=$WORK/mnt
mkdir -p "$mnt"
cleanup() { umount "$mnt" 2>/dev/null || true; }
trap cleanup EXIT

src=$WORK/src
mkdir -p "$src/etc" "$src/var" "$src/srv"
printf 'hot\n' > "$src/etc/hostname"
printf 'rename me\n' > "$src/etc/rename-me"
printf 'mode\n' > "$src/etc/mode-file"
head -c 300000 /dev/urandom > "$src/var/big"
printf 'first line\n' > "$src/var/log"

# change MOUNTPOINT: each change made and fsync'd (the file, or the directory of a name change).
change() {
    local m=$1
    mkdir -p "$m/var/lib/docker/containers/abc"
    printf 'created after the commit\n' > "$m/var/lib/docker/containers/abc/config.json"
    sync "$m/var/lib/docker/containers/abc/config.json"
    printf 'appended line\n' >> "$m/var/log"
    sync "$m/var/log"
    head -c 100000 /dev/urandom | dd of="$m/var/big" bs=4096 seek=10 conv=notrunc status=none
    sync "$m/var/big"
    mv "$m/etc/rename-me" "$m/etc/renamed"
    sync "$m/etc/renamed"
    chmod 0600 "$m/etc/mode-file"
    setfattr -n user.changed -v after "$m/etc/mode-file"
    sync "$m/etc/mode-file"
    printf 'new\n' > "$m/srv/new-file"
    ln -s new-file "$m/srv/new-link"
    sync "$m/srv/new-file" "$m/srv"
}

made=
for try in 1 2 3; do
    img=$WORK/hot-btrfs.live
    rm -f "$img"; truncate -s 256M "$img"
    mkfs.btrfs -q -f "$img"
    mount -o loop,commit=300 "$img" "$mnt"
    cp -a "$src/." "$mnt/"
    sync -f "$mnt"
    change "$mnt"
    cp --sparse=always "$img" "$OUT/hot-btrfs.img"
    umount "$mnt"
    if [ "$(btrfs inspect-internal dump-super "$OUT/hot-btrfs.img" | awk '$1 == "log_root" { print $2 }')" != 0 ]; then
        made=1
        break
    fi
    echo "hot-btrfs: the snapshot has no log tree (a transaction committed before the copy); again" >&2
done
[ -n "$made" ] || { echo "hot-btrfs: no snapshot with a log tree in three tries" >&2; exit 1; }
rm -f "$img"

# The references: the committed state (not replayed) and the kernel's replay of a writable copy.
mount -o loop,ro,rescue=nologreplay "$OUT/hot-btrfs.img" "$mnt"
python3 "$IMAGES_DIR/manifest.py" "$mnt" > "$OUT/hot-btrfs.committed.manifest"
umount "$mnt"
cp --sparse=always "$OUT/hot-btrfs.img" "$WORK/hot-btrfs.ref"
mount -o loop "$WORK/hot-btrfs.ref" "$mnt"
python3 "$IMAGES_DIR/manifest.py" "$mnt" > "$OUT/hot-btrfs.manifest"
umount "$mnt"
rm -f "$WORK/hot-btrfs.ref"
btrfs inspect-internal dump-super "$OUT/hot-btrfs.img" | grep -E '^(generation|log_root|log_root_level)'
