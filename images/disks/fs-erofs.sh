#!/usr/bin/env bash
# Test filesystems for the EROFS reader (Tests/FileSystemsTests/EROFS*.swift), made by Debian's
# mkfs.erofs 1.5 from the shared source tree (make_tree, no sparse file) plus usr/share/mixed.bin,
# 1 MiB alternating compressible text and random blocks (so compressed files hold both compressed
# and PLAIN lclusters and enough lclusters for 2-byte compact index packs):
#   fs-erofs-plain.img        uncompressed, extended inodes (FLAT_PLAIN / FLAT_INLINE)
#   fs-erofs-noinline.img     uncompressed, -Enoinline_data (FLAT_PLAIN only)
#   fs-erofs-compact.img      uncompressed, compact inodes, --ignore-mtime -T1700000000 (mtime =
#                             build time)
#   fs-erofs-chunk.img        --chunksize=8192, block-map chunks; holes from a sparse file
#   fs-erofs-chunkidx.img     --chunksize=16384 -Eforce-chunk-indexes (8-byte chunk indexes)
#   fs-erofs-lz4.img          -zlz4, 4K pclusters, compacted indexes
#   fs-erofs-lz4-legacy.img   -zlz4 -Elegacy-compress (full lcluster indexes, no 0padding)
#   fs-erofs-lz4hc-big.img    -zlz4hc,12 -C262144 (big pclusters, CBLKCNT)
#   fs-erofs-ztail.img        -zlz4hc -Eztailpacking (inline tail pclusters)
#   fs-erofs-ztail-compact.img -zlz4 -Eztailpacking -Eforce-inode-compact --ignore-mtime -T1700000000
# Manifests: fs-erofs.manifest (the source tree) and fs-erofs-chunk.manifest (the tree plus
# var/holes.img used only by the chunk images). NAME.fsck is `fsck.erofs` output for each image.
source "$(dirname "${BASH_SOURCE[0]}")/../lib.sh"

src=$WORK/src
make_tree "$src" no
# mkfs.erofs 1.5 fails ("Could not format the device: No such file or directory") on a 255-byte
# name, which the format allows (EROFS_NAME_LEN): shorten the tree's 255-byte name to 254 bytes.
long=$(printf 'n%.0s' $(seq 1 255))
mv "$src/etc/$long" "$src/etc/${long:1}"
touch -h -d @1700000000 "$src/etc"
mkdir -p "$src/usr/share"
python3 - "$src/usr/share/mixed.bin" <<'PY'
import os, random, sys
r = random.Random(1234)
with open(sys.argv[1], "wb") as f:
    for i in range(256):
        if i % 3 == 2:
            f.write(bytes(r.getrandbits(8) for _ in range(4096)))
        else:
            f.write(("line %06d of compressible text\n" % i).encode() * 128)
    f.write(b"tail that is not block aligned\n" * 37)
PY
touch -h -d @1700000000 "$src/usr/share/mixed.bin" "$src/usr/share" "$src/usr"
python3 "$IMAGES_DIR/manifest.py" "$src" > "$OUT/fs-erofs.manifest"

build() {   # build NAME SRC mkfs-args...
    local name=$1 dir=$2; shift 2
    rm -f "$OUT/$name.img"
    mkfs.erofs --quiet "$@" "$OUT/$name.img" "$dir"
    fsck.erofs "$OUT/$name.img" > "$OUT/$name.fsck" 2>&1
}

build fs-erofs-plain "$src" -Eforce-inode-extended
build fs-erofs-noinline "$src" -Eforce-inode-extended,noinline_data
# mkfs.erofs 1.5 writes extended inodes whenever SOURCE_DATE_EPOCH is set (lib.sh sets it).
( unset SOURCE_DATE_EPOCH; build fs-erofs-compact "$src" -Eforce-inode-compact --ignore-mtime -T1700000000 )
build fs-erofs-lz4 "$src" -zlz4 -Eforce-inode-extended
build fs-erofs-lz4-legacy "$src" -zlz4 -Eforce-inode-extended,legacy-compress
build fs-erofs-lz4hc-big "$src" -zlz4hc,12 -C262144 -Eforce-inode-extended
build fs-erofs-ztail "$src" -zlz4hc -Eforce-inode-extended,ztailpacking
( unset SOURCE_DATE_EPOCH; build fs-erofs-ztail-compact "$src" -zlz4 -Eforce-inode-compact,ztailpacking --ignore-mtime -T1700000000 )

# Chunk-based files: a 4 MiB file with data only at 0 and at 2 MiB+5 (holes in between).
printf 'start' | dd of="$src/var/holes.img" bs=1 conv=notrunc status=none
printf 'middle' | dd of="$src/var/holes.img" bs=1 seek=$(((2 << 20) + 5)) conv=notrunc status=none
truncate -s 4M "$src/var/holes.img"
touch -h -d @1700000000 "$src/var/holes.img" "$src/var"
python3 "$IMAGES_DIR/manifest.py" "$src" > "$OUT/fs-erofs-chunk.manifest"
build fs-erofs-chunk "$src" --chunksize=8192 -Eforce-inode-extended
build fs-erofs-chunkidx "$src" --chunksize=16384 -Eforce-inode-extended,force-chunk-indexes
ls -l "$OUT"/fs-erofs-*.img
