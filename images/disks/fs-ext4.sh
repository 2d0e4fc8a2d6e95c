#!/usr/bin/env bash
# Test filesystems for the ext2/3/4 reader (Tests/FileSystemsTests/Ext4*.swift), each made by
# mke2fs -d from the shared source tree (make_tree) plus a 3000-entry directory `many/` that
# e2fsck -D turns into an htree (hashed) directory:
#   fs-ext4.img         ext4 defaults: 4K blocks, 64bit, metadata_csum, extents, 256-byte inodes
#   fs-ext4-inline.img  ext4 with inline_data (small files, dirs and symlinks inside the inode)
#   fs-ext4-bigalloc.img  ext4 with bigalloc (64 KiB clusters of 4 KiB blocks)
#   fs-ext2.img         ext2, 1K blocks, 128-byte inodes (no extents, no nanoseconds)
#   fs-ext3.img         ext3, 2K blocks, has_journal
# fs-ext4.manifest is the source tree's manifest (images/manifest.py), written before $WORK goes.
source "$(dirname "${BASH_SOURCE[0]}")/../lib.sh"

src=$WORK/src
make_tree "$src" yes
mkdir "$src/many"
for i in $(seq -w 1 3000); do printf '%s\n' "$i" > "$src/many/entry-with-a-longish-name-$i"; done
# POSIX ACLs (stored by ext4 in its own compact format, read back by getxattr in the VFS one):
# an access ACL granting uid 1000 rw, and a default ACL on a directory.
printf 'acl\n' > "$src/etc/acl-file"
setfattr -n system.posix_acl_access \
    -v 0x0200000001000600ffffffff02000600e803000004000400ffffffff10000600ffffffff20000400ffffffff "$src/etc/acl-file"
mkdir "$src/srv/acl-dir"
setfattr -n system.posix_acl_default -v 0x0200000001000700ffffffff04000500ffffffff20000500ffffffff "$src/srv/acl-dir"
touch -h -d @1700000000 "$src/etc/acl-file" "$src/srv/acl-dir" "$src/etc" "$src/srv"
find "$src/many" "$src" -maxdepth 0 -exec touch -h -d @1700000000 {} +
find "$src/many" -exec touch -h -d @1700000000 {} +
python3 "$IMAGES_DIR/manifest.py" "$src" > "$OUT/fs-ext4.manifest"

make_fs() {   # make_fs NAME SIZE mke2fs-args...
    local name=$1 size=$2; shift 2
    rm -f "$OUT/$name.img"
    truncate -s "$size" "$OUT/$name.img"
    mke2fs -F -q -E root_owner=0:0 -L "$name" -d "$src" "$@" "$OUT/$name.img"
    # -D rebuilds (and indexes) directories: many/ becomes an htree.
    e2fsck -fyD "$OUT/$name.img" || [ $? -le 1 ]
    # mke2fs 1.47.0 -d copies neither the root directory's times nor nanoseconds: restore both,
    # as they are in the source tree, so the reader's view can be compared with every field.
    debugfs -w -R "sif / mtime @1700000000" "$OUT/$name.img"
    if [ "$(dumpe2fs -h "$OUT/$name.img" 2>/dev/null | awk '/^Inode size:/ {print $3}')" -gt 128 ]; then
        debugfs -w -R "sif /etc/hostname mtime_extra $((123456789 << 2))" "$OUT/$name.img"
    fi
    e2fsck -fn "$OUT/$name.img"
    debugfs -R "htree many" "$OUT/$name.img" 2>/dev/null | grep -q "Root node dump" \
        || { echo "$name: many/ is not an htree" >&2; exit 1; }
}

make_fs fs-ext4 128M -t ext4 -b 4096 -I 256 -O 64bit,metadata_csum,extents
make_fs fs-ext4-inline 128M -t ext4 -b 4096 -I 256 -O 64bit,metadata_csum,extents,inline_data
make_fs fs-ext4-bigalloc 256M -t ext4 -b 4096 -I 256 -O 64bit,metadata_csum,extents,bigalloc -C 65536
make_fs fs-ext2 128M -t ext2 -b 1024 -I 128
make_fs fs-ext3 128M -t ext3 -b 2048 -I 256
for f in fs-ext4 fs-ext4-inline fs-ext4-bigalloc fs-ext2 fs-ext3; do dumpe2fs -h "$OUT/$f.img" 2>/dev/null | grep -E 'features|Block size|Inode size'; done
