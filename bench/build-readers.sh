#!/usr/bin/env bash
# bench/build-readers.sh OUTDIR: one filesystem image per reader (ext4, squashfs per compressor,
# EROFS plain and lz4hc, FAT32) holding the same content from this machine's /usr (about 175 MB:
# Python's many small files and GCC's large binaries; FAT gets the Python part only), so
# `make bench` can time each reader alone. Each image is built once and cached (never committed).
set -euo pipefail
dir=${1:?usage: bench/build-readers.sh OUTDIR}
mkdir -p "$dir"
src=$dir/.content
if [ ! -f "$dir/.content.done" ]; then
    rm -rf "$src"; mkdir -p "$src"
    for s in /usr/lib/python3.11 /usr/lib/gcc; do
        [ -d "$s" ] && mkdir -p "$src/$(basename "$s")" && cp -a "$s/." "$src/$(basename "$s")/" 2>/dev/null || true
    done
    touch "$dir/.content.done"
fi
mb=$(( $(du -sm "$src" | cut -f1) * 130 / 100 + 32 ))
build() { # build NAME CMD...: run CMD (which writes $dir/NAME.img) unless the image exists
    local name=$1; shift
    [ -f "$dir/$name.img" ] && return 0
    "$@" || { rm -f "$dir/$name.img"; echo "cannot build $name" >&2; return 1; }
}
build ext4 bash -c "truncate -s ${mb}M '$dir/ext4.img.tmp' && mkfs.ext4 -q -F -d '$src' '$dir/ext4.img.tmp' && mv '$dir/ext4.img.tmp' '$dir/ext4.img'"
for c in gzip xz lzo lz4 zstd; do
    build "squashfs-$c" bash -c "mksquashfs '$src' '$dir/squashfs-$c.img.tmp' -comp $c -noappend -quiet >/dev/null && mv '$dir/squashfs-$c.img.tmp' '$dir/squashfs-$c.img'"
done
build erofs-plain bash -c "mkfs.erofs --quiet '$dir/erofs-plain.img.tmp' '$src' && mv '$dir/erofs-plain.img.tmp' '$dir/erofs-plain.img'"
build erofs-lz4hc bash -c "mkfs.erofs --quiet -zlz4hc '$dir/erofs-lz4hc.img.tmp' '$src' && mv '$dir/erofs-lz4hc.img.tmp' '$dir/erofs-lz4hc.img'"
# FAT holds no symlinks: the Python part without them.
if [ ! -f "$dir/fat32.img" ]; then
    rm -rf "$dir/.fat"; mkdir -p "$dir/.fat"; cp -a "$src/python3.11" "$dir/.fat/"; find "$dir/.fat" -type l -delete
    fatmb=$(( $(du -sm "$dir/.fat" | cut -f1) * 150 / 100 + 64 ))
    build fat32 bash -c "truncate -s ${fatmb}M '$dir/fat32.img.tmp' && mkfs.vfat -F 32 '$dir/fat32.img.tmp' >/dev/null && MTOOLS_SKIP_CHECK=1 mcopy -s -Q -i '$dir/fat32.img.tmp' '$dir/.fat/python3.11' ::/ && mv '$dir/fat32.img.tmp' '$dir/fat32.img'"
    rm -rf "$dir/.fat"
fi
