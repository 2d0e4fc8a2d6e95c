#!/usr/bin/env bash
# fs-squashfs: squashfs 4.0 images of the shared source tree (make_tree), one per compressor and
# layout variant, plus the source tree's manifest (fs-squashfs.manifest) and, for each image,
# `unsquashfs -lln` output (NAME.lln) as an independent listing.
#   fs-squashfs-gzip.img        gzip, 128K blocks (default)
#   fs-squashfs-gzip-w12.img    gzip, window 12 (compressor options stored), 4K blocks
#   fs-squashfs-lzo.img         lzo (lzo1x_999 level 8, options stored)
#   fs-squashfs-lz4.img         lz4 -Xhc (options stored)
#   fs-squashfs-xz.img          xz, 1M blocks, x86 BCJ filter, dictionary 512K
#   fs-squashfs-lzma.img        legacy lzma (lzma_alone)
#   fs-squashfs-zstd.img        zstd level 19
#   fs-squashfs-frag.img        gzip 4K blocks, -always-use-fragments (tail-end packing)
#   fs-squashfs-nofrag.img      gzip, -no-fragments
#   fs-squashfs-nocomp.img      no compression at all (-noI -noD -noF -noX)
source "$(dirname "$0")/../lib.sh"

make_tree "$WORK/src"
python3 "$IMAGES_DIR/manifest.py" "$WORK/src" > "$OUT/fs-squashfs.manifest"

build() {
    local name=$1; shift
    mksquashfs "$WORK/src" "$OUT/fs-squashfs-$name.img" -noappend -xattrs -quiet -no-progress "$@"
    unsquashfs -lln "$OUT/fs-squashfs-$name.img" > "$OUT/fs-squashfs-$name.lln"
}

build gzip   -comp gzip
build gzip-w12 -comp gzip -Xwindow-size 12 -b 4K
build lzo    -comp lzo -Xalgorithm lzo1x_999 -Xcompression-level 8
build lz4    -comp lz4 -Xhc
build xz     -comp xz -b 1M -Xbcj x86 -Xdict-size 512K
build lzma   -comp lzma
build zstd   -comp zstd -Xcompression-level 19
build frag   -comp gzip -b 4K -always-use-fragments
build nofrag -comp gzip -no-fragments
build nocomp -noI -noD -noF -noX
