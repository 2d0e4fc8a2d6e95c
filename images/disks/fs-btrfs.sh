#!/usr/bin/env bash
# Test filesystems for the btrfs reader (Tests/FileSystemsTests/BtrfsTests.swift), made by
# mkfs.btrfs and filled through a read-write loop mount by the kernel (needs root and btrfs in
# /proc/filesystems), so every extent, inline item, compressed extent and subvolume is one the
# kernel wrote:
#   fs-btrfs.img           defaults (DUP metadata, crc32c, 16 KiB nodes, no-holes)
#   fs-btrfs-xxhash.img    --csum xxhash, 4 KiB nodes (deeper trees), -m single -d single
#   fs-btrfs-sha256.img    --csum sha256, -O ^no-holes (explicit hole extents)
#   fs-btrfs-blake2.img    --csum blake2 (metadata read unverified)
#   fs-btrfs-raid1-a.img + fs-btrfs-raid1-b.img: one filesystem, -m raid1 -d raid1 on two devices
#   fs-btrfs-raid5-{a,b,c}.img: one filesystem, -m raid1c3 -d raid5 on three devices (files/: 60
#                          4 KiB files)
#   fs-btrfs-raid6-{a,b,c,d}.img: one filesystem, -m raid1c3 -d raid6 on four devices (files/: 60
#                          4 KiB files and a 1 MiB one)
# Each holds the shared tree (make_tree: every file type, setuid/setgid/sticky, numeric owners,
# ns mtimes, xattrs incl. security.capability, hardlinks across directories, a sparse 1 GiB file)
# at the top level, plus:
#   zlib/ lzo/ zstd/   `btrfs property set DIR compression ALG`: compressible files (one small
#                      enough to be a compressed inline extent), an incompressible one, and a
#                      compressed file overwritten in the middle (partly referenced extents)
#   var/prealloc.bin   fallocate'd 1 MiB with 4 KiB written at 100 KiB (prealloc + regular)
#   var/overwritten.bin  1 MiB written, synced, 4 KiB overwritten at 500 KiB (extent offsets)
#   var/reflink.bin    cp --reflink of overwritten.bin
#   many/              4000 files (multi-level fs tree)
#   subvol/            a subvolume (id 256) with subvol/nested (a subvolume inside it)
#   snap/              a read-only snapshot of subvol taken before nested existed and before
#                      subvol/changed.txt was changed
#   @/.snapshots/1/snapshot  a snapshot made the default subvolume (set-default)
# fs-btrfs.info: `btrfs subvolume list -a -p` of fs-btrfs.img (the reader's subvolume list is
# compared with it).
source "$(dirname "${BASH_SOURCE[0]}")/../lib.sh"

require_loop_mounts fs-btrfs btrfs

src=$WORK/src
make_tree "$src" yes
mnt=$WORK/mnt
mkdir -p "$mnt"
cleanup() { umount "$mnt" 2>/dev/null || true; }
trap cleanup EXIT

text() {   # text FILE BYTES: compressible text
    python3 -c 'import sys; n=int(sys.argv[2]); s=b"".join(b"line %06d of compressible btrfs text\n" % i for i in range(n // 30 + 1)); open(sys.argv[1], "wb").write(s[:n])' "$1" "$2"
}

populate() {   # populate MOUNTPOINT
    local m=$1 alg
    cp -a "$src/." "$m/"
    for alg in zlib lzo zstd; do
        mkdir "$m/$alg"
        btrfs property set "$m/$alg" compression "$alg"
        text "$m/$alg/text.txt" 700000
        text "$m/$alg/inline.txt" 3000
        head -c 200000 /dev/urandom > "$m/$alg/random.bin"
        text "$m/$alg/overwritten.txt" 400000
        sync
        printf 'OVERWRITTEN IN THE MIDDLE' | dd of="$m/$alg/overwritten.txt" bs=1 seek=200001 conv=notrunc status=none
        setfattr -n user.algorithm -v "$alg" "$m/$alg/text.txt"
        chown 1000:100 "$m/$alg/inline.txt"
        touch -d @1650000000.987654321 "$m/$alg/text.txt"
    done
    fallocate -l 1M "$m/var/prealloc.bin"
    head -c 4096 /dev/urandom | dd of="$m/var/prealloc.bin" bs=4096 seek=25 conv=notrunc status=none
    fallocate -l 64K "$m/var/prealloc-only.bin"
    head -c 1048576 /dev/urandom > "$m/var/overwritten.bin"
    sync
    head -c 4096 /dev/urandom | dd of="$m/var/overwritten.bin" bs=4096 seek=125 conv=notrunc status=none
    cp --reflink=always "$m/var/overwritten.bin" "$m/var/reflink.bin"
    ln "$m/zstd/text.txt" "$m/var/text-hardlink.txt"
    mkdir "$m/many"
    for i in $(seq 1 4000); do printf '%d\n' "$i" > "$m/many/file-$i"; done
    btrfs -q subvolume create "$m/subvol"
    printf 'in the subvolume\n' > "$m/subvol/file.txt"
    printf 'before the snapshot\n' > "$m/subvol/changed.txt"
    chown 1000:1000 "$m/subvol/file.txt"
    btrfs -q subvolume snapshot -r "$m/subvol" "$m/snap"
    printf 'after the snapshot\n' > "$m/subvol/changed.txt"
    btrfs -q subvolume create "$m/subvol/nested"
    printf 'nested\n' > "$m/subvol/nested/deep.txt"
    btrfs -q subvolume create "$m/@"
    mkdir -p "$m/@/.snapshots/1"
    printf 'root of the default subvolume\n' > "$m/@/marker"
    btrfs -q subvolume snapshot "$m/@" "$m/@/.snapshots/1/snapshot"
    printf 'only in the snapshot\n' > "$m/@/.snapshots/1/snapshot/etc-release"
    btrfs subvolume set-default "$m/@/.snapshots/1/snapshot"
    sync
}

build() {   # build NAME MKFS-ARGS... (on $OUT/NAME.img)
    local name=$1; shift
    rm -f "$OUT/$name.img"; truncate -s 300M "$OUT/$name.img"
    mkfs.btrfs -q -f -L "$name" "$@" "$OUT/$name.img"
    mount -o loop "$OUT/$name.img" "$mnt"
    populate "$mnt"
    umount "$mnt"
}

build fs-btrfs
mount -o loop,ro "$OUT/fs-btrfs.img" "$mnt"
btrfs subvolume list -a -p "$mnt" > "$OUT/fs-btrfs.info"
umount "$mnt"
build fs-btrfs-xxhash --csum xxhash --nodesize 4096 -m single -d single
build fs-btrfs-sha256 --csum sha256 -O ^no-holes
build fs-btrfs-blake2 --csum blake2

# Two devices, RAID1 data and metadata: the reader reads either device alone.
a=$OUT/fs-btrfs-raid1-a.img b=$OUT/fs-btrfs-raid1-b.img
rm -f "$a" "$b"; truncate -s 300M "$a" "$b"
mkfs.btrfs -q -f -L raid1 -m raid1 -d raid1 "$a" "$b"
la=$(losetup -f --show "$a"); lb=$(losetup -f --show "$b")
trap 'umount "$mnt" 2>/dev/null || true; losetup -d "$la" "$lb" 2>/dev/null || true' EXIT
mount -o "device=$la,device=$lb" "$la" "$mnt"
cp -a "$src/." "$mnt/"
mkdir "$mnt/zstd"; btrfs property set "$mnt/zstd" compression zstd; text "$mnt/zstd/text.txt" 300000
umount "$mnt"
losetup -d "$la" "$lb"

# parity_set PROFILE LETTER... [-- BYTES]: one filesystem over fs-btrfs-PROFILE-LETTER.img,
# -m raid1c3 -d PROFILE (RAID1C3 metadata, so each device, or any two of four, hold every tree),
# filled through the kernel's mount: files/ with 60 4 KiB files (one sector-aligned block each,
# never across a 64 KiB stripe) and, with BYTES, files/big.bin of that many random bytes.
parity_set() {
    local profile=$1 x big=; shift
    r=()
    while [ $# -gt 0 ]; do
        if [ "$1" = -- ]; then big=$2; break; fi
        x=$OUT/fs-btrfs-$profile-$1.img; rm -f "$x"; truncate -s 300M "$x"; r+=("$x"); shift
    done
    mkfs.btrfs -q -f -L "$profile" -m raid1c3 -d "$profile" "${r[@]}" 2>/dev/null
    l=(); for x in "${r[@]}"; do l+=("$(losetup -f --show "$x")"); done
    trap 'umount "$mnt" 2>/dev/null || true; losetup -d "${l[@]}" 2>/dev/null || true' EXIT
    local devices; devices=$(printf 'device=%s,' "${l[@]}")
    mount -o "${devices%,}" "${l[0]}" "$mnt"
    mkdir "$mnt/files"
    for x in $(seq 1 60); do head -c 4096 /dev/urandom > "$mnt/files/f$x"; done
    if [ -n "$big" ]; then head -c "$big" /dev/urandom > "$mnt/files/big.bin"; fi
    umount "$mnt"
    losetup -d "${l[@]}"
}

# Three devices, RAID5 data: each 4 KiB file read whole from the device that holds its data stripe.
parity_set raid5 a b c
# Four devices, RAID6 data, and a 1 MiB file across many rows: any two devices missing are rebuilt
# from P, from Q, or from both (two data stripes of a row missing).
parity_set raid6 a b c d -- 1048576
ls -l "$OUT"/fs-btrfs*.img
