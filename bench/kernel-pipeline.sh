#!/usr/bin/env bash
# bench/kernel-pipeline.sh DISK OUTPUT [COMPRESSOR...]: the privileged pipeline fwassemble is
# measured against, run from scratch so nothing is served from a previous run's cache of the
# mounted filesystems (the disk image's own pages may be cached, as they are for fwassemble):
# loop-mount the HAOS partitions (system0 on /, data on /mnt/data, overlay on /mnt/overlay), bind
# the Docker data-root onto /var/lib/docker, `tar --numeric-owner --xattrs` the tree (without the
# bind-mounted duplicate, which fwassemble writes as hardlinks) through COMPRESSOR (default
# `pigz -p $(nproc) -6`) into OUTPUT, unmount. Needs root. One loop device per partition at its
# offset: partition device nodes need udev, which a container may not have.
set -euo pipefail
disk=${1:?usage: bench/kernel-pipeline.sh DISK OUTPUT [COMPRESSOR...]}
output=${2:?usage: bench/kernel-pipeline.sh DISK OUTPUT [COMPRESSOR...]}
shift 2
[ $# -gt 0 ] || set -- pigz -p "$(nproc)" -6
mnt=$(mktemp -d)
cleanup() { umount -R "$mnt" 2>/dev/null || true; rmdir "$mnt" 2>/dev/null || true; }
trap cleanup EXIT
mount_part() { # mount_part N DIR (mount's loop device is detached on umount: autoclear)
    local start sectors
    read -r start sectors < <(partx -g -o START,SECTORS -n "$1" "$disk")
    mount -o "ro,loop,offset=$((start * 512)),sizelimit=$((sectors * 512))" "$disk" "$2"
}
mount_part 2 "$mnt"; mount_part 4 "$mnt/mnt/data"; mount_part 3 "$mnt/mnt/overlay"
mount --bind "$mnt/mnt/data/docker" "$mnt/var/lib/docker"
(cd "$mnt" && tar --numeric-owner --xattrs --exclude=./var/lib/docker -cf - . 2>/dev/null) | "$@" > "$output"
