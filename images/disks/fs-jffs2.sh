#!/usr/bin/env bash
# Test filesystems for the JFFS2 reader (Tests/FileSystemsTests/JFFS2Tests.swift), made by
# Debian's mkfs.jffs2 (mtd-utils) --with-xattr from the shared source tree (make_tree, no sparse
# file) plus a POSIX ACL and usr/share/mixed.bin (compressible text and random blocks, so nodes
# that do not compress are stored uncompressed beside compressed ones):
#   fs-jffs2-{le,be}-none.img   -m none (every node uncompressed)
#   fs-jffs2-{le,be}-zlib.img   zlib only (-x rtime; lzo is off by default)
#   fs-jffs2-{le,be}-rtime.img  rtime only (-x zlib)
#   fs-jffs2-{le,be}-lzo.img    LZO only (-X lzo -x zlib -x rtime)
#   fs-jffs2-le-size.img        -m size -X lzo: the smallest of zlib, rtime and LZO per node
#   fs-jffs2-le-nocm.img        -n (no cleanmarkers, the first node is a dirent), 16 KiB erase
#                               blocks, padded to the end of the last erase block (-p)
#   fs-jffs2-le-append.img      fs-jffs2-le-zlib.img, then the nodes `mkfs.jffs2 -i` appends for
#                               a changed tree (newer versions of a changed file and directory)
# fs-jffs2.manifest is the source tree (manifest.py); fs-jffs2-append.manifest the changed one.
# JFFS2 keeps mode, uid and gid (16 bits each), mtime in seconds, sizes, data, symlink targets,
# device numbers in 16 bits (old_encode_dev: 300:70000 does not fit) and xattrs.
source "$(dirname "${BASH_SOURCE[0]}")/../lib.sh"

src=$WORK/src
make_tree "$src" no
setfattr -n system.posix_acl_access \
    -v 0x0200000001000600ffffffff02000400e803000004000400ffffffff10000400ffffffff20000400ffffffff "$src/etc/fstab"
mkdir -p "$src/usr/share"
mixed_file "$src/usr/share/mixed.bin" 64
touch -h -d @1700000000 "$src/usr/share/mixed.bin" "$src/usr/share" "$src/usr" "$src/etc/fstab"
python3 "$IMAGES_DIR/manifest.py" "$src" > "$OUT/fs-jffs2.manifest"

build() {   # build NAME mkfs-args...
    local name=$1; shift
    rm -f "$OUT/$name.img"
    mkfs.jffs2 --with-xattr -r "$src" -o "$OUT/$name.img" "$@"
}

for e in le be; do
    flag=-l; [ $e = be ] && flag=-b
    build fs-jffs2-$e-none $flag -m none
    build fs-jffs2-$e-zlib $flag -x rtime
    build fs-jffs2-$e-rtime $flag -x zlib
    build fs-jffs2-$e-lzo $flag -X lzo -x zlib -x rtime
done
build fs-jffs2-le-size -l -m size -X lzo
build fs-jffs2-le-nocm -l -n -e 16KiB -p

# Appended versions: numbers.txt rewritten shorter, hostname's text and mode changed, a file
# added; mkfs.jffs2 -i reads the old image and writes newer nodes for what changed.
cp "$OUT/fs-jffs2-le-zlib.img" "$WORK/base.img"
seq 1 100 > "$src/usr/lib/numbers.txt"
printf 'changed\n' > "$src/etc/hostname"; chmod 600 "$src/etc/hostname"
printf 'new file\n' > "$src/etc/added"
touch -h -d @1700000100 "$src/usr/lib/numbers.txt" "$src/etc/hostname" "$src/etc/added" "$src/etc" "$src/usr/lib"
python3 "$IMAGES_DIR/manifest.py" "$src" > "$OUT/fs-jffs2-append.manifest"
mkfs.jffs2 --with-xattr -l -x rtime -r "$src" -i "$WORK/base.img" -o "$WORK/more.img"
cat "$WORK/base.img" "$WORK/more.img" > "$OUT/fs-jffs2-le-append.img"
ls -l "$OUT"/fs-jffs2-*.img
