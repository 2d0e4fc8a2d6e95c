#!/usr/bin/env bash
# Test filesystems for the f2fs reader (Tests/FileSystemsTests/F2FSTests.swift), made by Debian's
# mkfs.f2fs + sload.f2fs (f2fs-tools 1.15) from the shared source tree (make_tree, no sparse
# file) plus:
#   var/large.bin       24 MiB: random data at 0 and at 16 MiB, zeros between (sload.f2fs writes
#                       every block, zeros included: the file uses direct and indirect nodes)
#   usr/share/many/     3000 files: a directory of several hash levels (multi-level dentries)
#   etc/small/          three entries (sload.f2fs writes every directory as dentry blocks,
#                       never inline dentries)
#   etc/inline-3000     3000 bytes: inline data; etc/block-4000, 4000 bytes: one data block
# Images (sload.f2fs -P: owners kept):
#   fs-f2fs.img          -O extra_attr,inode_checksum,sb_checksum,inode_crtime,project_quota
#   fs-f2fs-plain.img    no features (no extra attributes, 200-byte inline xattr default)
#   fs-f2fs-flexible.img -O extra_attr,flexible_inline_xattr. sload.f2fs 1.15 writes its inodes
#                        with i_inline_xattr_size 0 and maps their blocks for 0 inline xattr
#                        words; its closing fsck pass then sets the size to 50 in every inode
#                        ("recover inline xattr size from 0 to 50"), which moves the start of a
#                        file's direct nodes by 50 blocks: files over 867 blocks (var/large.bin)
#                        then read, for Linux as for this reader, 50 blocks ahead of their source.
# sload.f2fs keeps: type, permission bits with setuid/setgid/sticky, uid/gid (-P), mtime in
# seconds (no nanoseconds), content, symlink targets, hardlinks, device numbers. It writes no
# xattrs from the source tree (only SELinux labels with -s and capabilities with -C, which these
# images do not use) and gives the root directory the time of the load. Debian's sload.f2fs is
# built without LZO and LZ4, so `-c` fails: no compressed image is made here.
# Manifest: fs-f2fs.manifest (the source tree); NAME.fsck is `fsck.f2fs` output for each image.
source "$(dirname "${BASH_SOURCE[0]}")/../lib.sh"

src=$WORK/src
make_tree "$src" no
python3 - "$src" <<'PY'
import os, random, sys
root = sys.argv[1]
r = random.Random(2026)
with open(os.path.join(root, "var/large.bin"), "wb") as f:
    f.write(r.randbytes(300_000))
    f.seek(16 << 20)
    f.write(r.randbytes(123_457))
    f.truncate(24 << 20)
many = os.path.join(root, "usr/share/many")
os.makedirs(many)
for i in range(3000):
    name = "entry-%04d" % i + ("-" + "x" * (i % 40) if i % 7 == 0 else "")
    with open(os.path.join(many, name), "w") as f:
        f.write("file %d\n" % i)
small = os.path.join(root, "etc/small")
os.makedirs(small)
for name in ("a", "b", "c"):
    with open(os.path.join(small, name), "w") as f:
        f.write(name + "\n")
with open(os.path.join(root, "etc/inline-3000"), "wb") as f:
    f.write(r.randbytes(3000))
with open(os.path.join(root, "etc/block-4000"), "wb") as f:
    f.write(r.randbytes(4000))
PY
find "$src/var/large.bin" "$src/usr/share" "$src/etc/small" "$src/etc/inline-3000" "$src/etc/block-4000" \
    -exec touch -h -d @1700000000 {} +
touch -h -d @1700000000 "$src/etc" "$src/var" "$src/usr"
python3 "$IMAGES_DIR/manifest.py" "$src" > "$OUT/fs-f2fs.manifest"

build() {   # build NAME MKFS-FEATURES
    local name=$1 features=$2
    rm -f "$OUT/$name.img"
    truncate -s 128M "$OUT/$name.img"
    mkfs.f2fs -q -f -l "$name" -U 0a0b0c0d-f2f5-4222-8333-444455556666 ${features:+-O "$features"} "$OUT/$name.img"
    # sload.f2fs ends with its own fsck pass, which repairs what the load left inconsistent
    # (inode checksums, quota files) and then exits non-zero: its status is not the verdict; a
    # read-only fsck afterwards is.
    sload.f2fs -f "$src" -P "$OUT/$name.img" > "$WORK/$name.sload" 2>&1 || true
    fsck.f2fs -f --dry-run "$OUT/$name.img" > "$OUT/$name.fsck" 2>&1
    if grep -a '\[Fail\]' "$OUT/$name.fsck"; then cat "$WORK/$name.sload"; exit 1; fi
}
build fs-f2fs extra_attr,inode_checksum,sb_checksum,inode_crtime,project_quota
build fs-f2fs-plain ""
build fs-f2fs-flexible extra_attr,flexible_inline_xattr
ls -l "$OUT"/fs-f2fs*.img
