#!/usr/bin/env bash
# make_tree DIR: a source tree holding every kind of entry fwassemble must carry faithfully:
# setuid/setgid/sticky, owners 1000 and 65534, hardlinks, absolute and relative symlinks, a
# 255-byte name (Linux's limit), a path deeper than 255 bytes, a sparse 1 GiB file, character and
# block devices, a 0:0 whiteout, a FIFO, security.capability / trusted.overlay.opaque / user.*
# xattrs, empty files and directories. Needs root (chown, mknod, trusted.* xattrs).
# Sourced by the recipes; `bash images/tree.sh DIR` also works.
set -euo pipefail

make_tree() {
    local d=$1 sparse=${2:-yes}
    rm -rf "$d"; mkdir -p "$d"
    mkdir -p "$d"/{bin,etc,usr/bin,usr/lib,tmp,root,home/user,dev,var/empty,srv/opaque}
    printf 'root:x:0:0:root:/root:/bin/sh\n' > "$d/etc/passwd"
    printf 'hello\n' > "$d/etc/hostname"
    printf '# fstab\n' > "$d/etc/fstab"
    : > "$d/etc/empty-file"
    head -c 300000 /dev/urandom > "$d/usr/lib/libbig.so"      # several blocks, not a multiple of any
    seq 1 20000 > "$d/usr/lib/numbers.txt"                    # compressible
    printf '#!/bin/sh\necho su\n' > "$d/bin/su"
    chmod 4755 "$d/bin/su"
    printf '#!/bin/sh\n' > "$d/usr/bin/wall"; chown 0:5 "$d/usr/bin/wall"; chmod 2755 "$d/usr/bin/wall"
    chmod 1777 "$d/tmp"
    chmod 0700 "$d/root"
    printf 'user file\n' > "$d/home/user/notes.txt"
    chown -R 1000:1000 "$d/home/user"
    printf 'nobody\n' > "$d/var/empty/nobody.txt"; chown 65534:65534 "$d/var/empty/nobody.txt"
    # hardlinks (three names, one inode)
    printf 'linked content\n' > "$d/usr/bin/busybox"
    ln "$d/usr/bin/busybox" "$d/bin/sh"
    ln "$d/usr/bin/busybox" "$d/usr/bin/ls"
    # symlinks: absolute, relative, dangling, long target (slow symlink)
    ln -s /usr/bin/busybox "$d/bin/ash"
    ln -s ../usr/lib/libbig.so "$d/bin/rel-link"
    ln -s /does/not/exist "$d/etc/dangling"
    ln -s "$(printf '/very/long/target/%.0s' $(seq 1 12))end" "$d/etc/long-link"
    # names: 255 bytes (the Linux maximum), non-ASCII, spaces
    local long; long=$(printf 'n%.0s' $(seq 1 255))
    printf 'long name\n' > "$d/etc/$long"
    printf 'utf8\n' > "$d/etc/caf$(printf '\xc3\xa9')"
    printf 'space\n' > "$d/etc/with space"
    # a path deeper than 255 bytes
    local deep="$d/deep"; for i in $(seq 1 30); do deep="$deep/directory$i"; done
    mkdir -p "$deep"; printf 'deep\n' > "$deep/file"
    # devices, a whiteout (0:0 char device), a FIFO
    mknod "$d/dev/null" c 1 3; chmod 666 "$d/dev/null"
    mknod "$d/dev/sda1" b 8 1; chmod 660 "$d/dev/sda1"; chown 0:6 "$d/dev/sda1"
    mknod "$d/dev/bigdev" c 300 70000
    mknod "$d/srv/whiteout" c 0 0
    mkfifo "$d/srv/fifo"
    python3 -c 'import socket,sys; socket.socket(socket.AF_UNIX).bind(sys.argv[1])' "$d/srv/socket"
    # xattrs: a file capability (cap_net_raw+ep), an opaque directory, a user attribute
    printf 'ping\n' > "$d/usr/bin/ping"
    setfattr -n security.capability -v 0x0100000200200000000000000000000000000000 "$d/usr/bin/ping"
    setfattr -n trusted.overlay.opaque -v y "$d/srv/opaque"
    setfattr -n user.comment -v "hello world" "$d/etc/hostname"
    # empty directory
    mkdir -p "$d/var/empty/dir"
    # a sparse 1 GiB file with data at the start and at 512 MiB
    if [ "$sparse" = yes ]; then
        printf 'start' | dd of="$d/var/sparse.img" bs=1 conv=notrunc status=none
        printf 'middle' | dd of="$d/var/sparse.img" bs=1 seek=$((512 << 20)) conv=notrunc status=none
        truncate -s 1G "$d/var/sparse.img"
    fi
    # fixed times so images are reproducible: 2023-11-14 22:13:20 UTC, directories last
    find "$d" -exec touch -h -d @1700000000 {} +
    touch -h -d @1600000000.123456789 "$d/etc/hostname"
}

if [ "${BASH_SOURCE[0]}" = "$0" ]; then make_tree "$@"; fi
