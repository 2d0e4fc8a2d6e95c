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
# The tree also gets POSIX ACLs and a shared xattr (see below).
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
# POSIX ACLs (xattr name indexes 2 and 3) and one xattr on six files, which mkfs.erofs moves to
# the shared xattr area (h_shared_xattrs ids into xattr_blkaddr).
setfattr -n system.posix_acl_access \
    -v 0x0200000001000600ffffffff02000400e803000004000400ffffffff10000400ffffffff20000400ffffffff "$src/etc/fstab"
setfattr -n system.posix_acl_default \
    -v 0x0200000001000700ffffffff04000500ffffffff20000500ffffffff "$src/home/user"
for f in etc/passwd etc/fstab bin/su usr/bin/wall usr/bin/ping home/user/notes.txt; do
    setfattr -n user.shared -v "one value for many files" "$src/$f"
done
mkdir -p "$src/usr/share"
mixed_file "$src/usr/share/mixed.bin" 256
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

# fs-erofs-lzma.img: layouts mkfs.erofs 1.5 cannot write, hand-made by the generator below
# (COMPR_CFGS with MicroLZMA and zstd configurations, full lcluster indexes over MicroLZMA
# pclusters made by liblzma's lzma_microlzma_encoder, a file mixing HEAD1 MicroLZMA and HEAD2 zstd
# pclusters, a deduplicated PARTIAL_REF head, a whole-file fragment and a tail fragment in the
# packed inode, INTERLACED uncompressed pclusters, long xattr name prefixes). Linux mounts it (the EROFS tests compare with the kernel);
# fs-erofs-lzma.manifest is the manifest of the files it holds.
cat > "$WORK/mlz.c" <<'C'
/* microlzma encode: stdin -> stdout as [le32 consumed][le32 produced][bytes]; argv[1] = output capacity */
#include <lzma.h>
#include <stdio.h>
#include <stdlib.h>
#include <stdint.h>
int main(int argc, char **argv) {
    size_t cap = (size_t)atoi(argv[1]);
    static uint8_t in[1 << 20];
    size_t n = fread(in, 1, sizeof in, stdin);
    uint8_t *out = malloc(cap);
    lzma_options_lzma opt;
    lzma_lzma_preset(&opt, 6);
    opt.dict_size = 65536;
    lzma_stream s = LZMA_STREAM_INIT;
    if (lzma_microlzma_encoder(&s, &opt) != LZMA_OK) return 2;
    s.next_in = in; s.avail_in = n; s.next_out = out; s.avail_out = cap;
    if (lzma_code(&s, LZMA_FINISH) != LZMA_STREAM_END) return 3;
    uint32_t hdr[2] = { (uint32_t)s.total_in, (uint32_t)s.total_out };
    fwrite(hdr, 4, 2, stdout); fwrite(out, 1, s.total_out, stdout);
    lzma_end(&s);
    return 0;
}
C
gcc -O2 -o "$WORK/mlz" "$WORK/mlz.c" -llzma
cat > "$WORK/mkerofs_lzma.py" <<'PY'
#!/usr/bin/env python3
"""Hand-made EROFS image with MicroLZMA pclusters, HEAD2 zstd pclusters, fragments and a
deduplicated (partially referenced) pcluster, an INTERLACED plain pcluster and long xattr name prefixes -- layouts mkfs.erofs 1.5 cannot write. Laid out per linux
Documentation/filesystems/erofs.rst and erofs_fs.h. usage: mkerofs_lzma.py MLZ SRCDIR IMAGE
(MLZ is the microlzma encoder helper; SRCDIR receives the files, for the manifest)."""
import os, random, struct, subprocess, sys

mlz, srcdir, image = sys.argv[1:4]
BLK = 4096
MTIME = 1700000000

def text(seed, n):
    r = random.Random(seed)
    words = ["erofs", "lzma", "pcluster", "lcluster", "fragment", "dedupe", "inode", "block", "kernel", "tail"]
    out = []
    total = 0
    while total < n:
        line = " ".join(r.choice(words) for _ in range(r.randint(3, 12))) + " %d\n" % r.randint(0, 99999)
        out.append(line); total += len(line)
    return "".join(out).encode()[:n]

file1 = text(1, 200_000)          # text.txt: MicroLZMA pclusters, full indexes
dedupe = file1[:3000]             # dedupe.txt: partial reference to text.txt's first pcluster
whole = text(2, 7000)             # whole-fragment.txt: entirely in the packed inode
taildata = text(3, 120_000)        # tail-fragment.txt: pclusters, then a tail in the packed inode

def compress(data):
    """Cut data into pclusters of one block each: [(logical start, length, payload)]."""
    out, pos = [], 0
    while pos < len(data):
        p = subprocess.run([mlz, str(BLK)], input=data[pos:pos + (1 << 20)], capture_output=True, check=True).stdout
        used, produced = struct.unpack_from("<II", p)
        out.append((pos, used, p[8:8 + produced]))
        pos += used
    return out

def zstd_pcluster(data):
    """The longest prefix of data whose zstd frame fits in one block: (used, frame)."""
    lo, hi, best = 1, min(len(data), 256 * 1024), None
    while lo <= hi:
        mid = (lo + hi) // 2
        frame = subprocess.run(["zstd", "-q", "-19", "--zstd=wlog=17", "-c", "--no-check"], input=data[:mid], capture_output=True, check=True).stdout
        if len(frame) <= BLK:
            best, lo = (mid, frame), mid + 1
        else:
            hi = mid - 1
    return best

def compress_mixed(data):
    """Alternate MicroLZMA (HEAD1) and zstd (HEAD2) pclusters: [(start, length, payload, head2)]."""
    out, pos, n = [], 0, 0
    while pos < len(data):
        if n % 2 == 0:
            p = subprocess.run([mlz, str(BLK)], input=data[pos:pos + (1 << 20)], capture_output=True, check=True).stdout
            used, produced = struct.unpack_from("<II", p)
            payload = p[8:8 + produced]
        else:
            used, payload = zstd_pcluster(data[pos:])
        out.append((pos, used, payload, n % 2 == 1))
        pos += used; n += 1
    return out

blocks = {}                        # block number -> bytes

def put_pclusters(pcs):
    global next_block
    res = []
    for start, length, payload in pcs:
        assert len(payload) <= BLK
        blocks[next_block] = b"\0" * (BLK - len(payload)) + payload   # 0PADDING: right-aligned
        res.append((start, length, next_block)); next_block += 1
    return res

def indexes(size, heads):
    """heads: {lcn: (clusterofs, blkaddr, partial)} -> full lcluster index records."""
    total = (size + BLK - 1) // BLK
    recs = []
    lcns = sorted(heads)
    for lcn in range(total):
        if lcn in heads:
            ofs, blk, partial, kind = heads[lcn]
            advise = kind | (0x8000 if partial else 0)    # PLAIN 0, HEAD1 1, HEAD2 3
            recs.append(struct.pack("<HHI", advise, ofs, blk))
        else:
            back = lcn - max(h for h in lcns if h <= lcn)
            ahead = min([h for h in lcns if h > lcn], default=total) - lcn
            recs.append(struct.pack("<HHHH", 2, 0, back, ahead))  # NONHEAD: delta[0], delta[1]
    return b"".join(recs)

def heads_of(extents, head2=()):
    h = {}
    for start, length, blk in extents:
        assert start // BLK not in h, "two heads in one lcluster"
        h[start // BLK] = (start % BLK, blk, False, 3 if start in head2 else 1)
    return h

def inode(layout, mode, size, iu, nlink=1, icount=0):
    fmt = 1 | (layout << 1)                                      # extended
    return struct.pack("<HHHHQIIIIQII16x", fmt, icount, mode, 0, size, iu, 0, 0, 0, MTIME, 0, nlink)

def xattr_entry(index, name, value):
    e = struct.pack("<BBH", len(name), index, len(value)) + name + value
    return e + b"\0" * (-len(e) % 4)

def zheader(fragoff_or_idata, advise, algs, clusterbits):
    return struct.pack("<IHBB", fragoff_or_idata, advise, algs, clusterbits)

meta = {}                          # nid -> bytes (inode + inline part), each in its own block
NID_ROOT, NID_TEXT, NID_DEDUPE, NID_WHOLE, NID_TAIL, NID_PACKED, NID_MIXED, NID_XATTR, NID_INTERLACED = \
    0, 128, 256, 384, 512, 640, 768, 896, 1024
next_block = 10                    # 0 superblock, 1..9 one inode each

# text.txt
ext1 = put_pclusters(compress(file1))
meta[NID_TEXT] = inode(1, 0o100644, len(file1), len(ext1)) + zheader(0, 0, 1, 0) + b"\0" * 8 + indexes(len(file1), heads_of(ext1))
# dedupe.txt: one HEAD1 with PARTIAL_REF on text.txt's first pcluster (which decodes to more)
assert ext1[0][1] > len(dedupe)
meta[NID_DEDUPE] = inode(1, 0o100644, len(dedupe), 0) + zheader(0, 0, 1, 0) + b"\0" * 8 + indexes(len(dedupe), {0: (0, ext1[0][2], True, 1)})

# interlaced.bin: a MicroLZMA extent, then two uncompressed (PLAIN) extents stored INTERLACED: an
# extent's bytes start at (logical start % block size) inside its block and wrap around to the
# block's start. Linux wants a PLAIN extent to end within the lcluster after its head's, so the
# second one starts there.
first = compress(text(5, 40_000))[0]
u1 = first[1]
skip = u1 % BLK
assert u1 // BLK != 0 and skip > 0
c = min(1000, skip)
r6 = random.Random(6)
plain_b = r6.randbytes(BLK - skip + c)          # wraps around its block
plain_c = r6.randbytes(2000)
interlaced = text(5, 40_000)[:u1] + plain_b + plain_c
exti = put_pclusters([first])
def interlace(data, start):
    blk = bytearray(BLK)
    o = start % BLK
    right = min(BLK - o, len(data))
    blk[o:o + right] = data[:right]
    blk[:len(data) - right] = data[right:]
    return bytes(blk)
blocks[next_block] = interlace(plain_b, u1); block_b = next_block; next_block += 1
blocks[next_block] = interlace(plain_c, u1 + len(plain_b)); block_c = next_block; next_block += 1
meta[NID_INTERLACED] = inode(1, 0o100644, len(interlaced), 3) + zheader(0, 0x10, 1, 0) + b"\0" * 8 + \
    indexes(len(interlaced), {0: (0, exti[0][2], False, 1), u1 // BLK: (skip, block_b, False, 0),
                              u1 // BLK + 1: (c, block_c, False, 0)})

# mixed-algorithms.txt: HEAD1 (MicroLZMA) and HEAD2 (zstd) pclusters in one file
mixed = text(4, 60_000)
mpcs = compress_mixed(mixed)
ext5 = put_pclusters([(a, b, c) for a, b, c, _ in mpcs])
meta[NID_MIXED] = inode(1, 0o100644, len(mixed), len(ext5)) + zheader(0, 0, 1 | (3 << 4), 0) + b"\0" * 8 + \
    indexes(len(mixed), heads_of(ext5, head2={a for a, _, _, h2 in mpcs if h2}))

# packed inode: whole-fragment.txt's bytes, then tail-fragment.txt's tail
pcs = compress(taildata)[:-1]     # the last pcluster's bytes become the tail fragment
assert pcs, "tail-fragment.txt needs at least two pclusters"
a_len = pcs[-1][0] + pcs[-1][1]
assert pcs[-1][0] // BLK != a_len // BLK and a_len < len(taildata)
ext4 = put_pclusters(pcs)
tail = taildata[a_len:]
packed = whole + b"\x5a" * 100 + tail
frag_whole, frag_tail = 0, len(whole) + 100
# Long xattr name prefixes (XATTR_PREFIXES), kept in the packed inode from xattr_prefix_start * 4:
# 4-aligned records of le16 length, base name index, infix.
packed += b"\0" * (-len(packed) % 4)
prefix_start = len(packed) // 4
for base, infix in [(4, b"overlay."), (1, b"com.example.")]:
    rec = bytes([base]) + infix
    packed += struct.pack("<H", len(rec)) + rec
    packed += b"\0" * (-len(packed) % 4)
# long-prefix.txt: an empty file whose inline xattrs use both long prefixes and a short one.
body = b"\0" * 12 + xattr_entry(0x80 | 0, b"opaque", b"y") + xattr_entry(0x80 | 1, b"color", b"blue") + \
    xattr_entry(1, b"plain", b"short prefix")
meta[NID_XATTR] = inode(0, 0o100644, 0, 0, icount=1 + (len(body) - 12) // 4) + body
meta[NID_WHOLE] = inode(1, 0o100644, len(whole), 0) + struct.pack("<Q", frag_whole | (1 << 63))
h4 = heads_of(ext4)
h4[a_len // BLK] = (a_len % BLK, 0, False, 1)
meta[NID_TAIL] = inode(1, 0o100644, len(taildata), len(ext4)) + zheader(frag_tail, 0x20, 1, 0) + b"\0" * 8 + indexes(len(taildata), h4)
packed_start = next_block
for i in range(0, len(packed), BLK):
    blocks[next_block] = packed[i:i + BLK].ljust(BLK, b"\0"); next_block += 1
meta[NID_PACKED] = inode(0, 0o100644, len(packed), packed_start)

# root directory, inline (FLAT_INLINE), names sorted
names = sorted([(b".", NID_ROOT, 2), (b"..", NID_ROOT, 2), (b"dedupe.txt", NID_DEDUPE, 1), (b"tail-fragment.txt", NID_TAIL, 1),
                (b"text.txt", NID_TEXT, 1), (b"whole-fragment.txt", NID_WHOLE, 1), (b"mixed-algorithms.txt", NID_MIXED, 1), (b"long-prefix.txt", NID_XATTR, 1), (b"interlaced.bin", NID_INTERLACED, 1)])
nameoff = 12 * len(names)
dirents, namebytes = b"", b""
for name, nid, ft in names:
    dirents += struct.pack("<QHBB", nid, nameoff + len(namebytes), ft, 0)
    namebytes += name
dirdata = dirents + namebytes
meta[NID_ROOT] = inode(2, 0o040755, len(dirdata), 0xFFFFFFFF, nlink=2) + dirdata

img = bytearray(next_block * BLK)
sb = struct.pack("<IIIBBHQQIIII16s16sIHHHBBIQ", 0xE0F5E1E2, 0, 0, 12, 0, NID_ROOT, 8, MTIME, 0, next_block, 1, 0,
                 b"\x11" * 16, b"lzma-test".ljust(16, b"\0"), 0x1 | 0x2 | 0x8 | 0x20 | 0x40, (1 << 1) | (1 << 3), 0, 0, 0, 2, prefix_start, NID_PACKED)
img[1024:1024 + len(sb)] = sb
img[1024 + 128:1024 + 128 + 16] = struct.pack("<HIH8x", 14, 65536, 0)   # z_erofs_lzma_cfgs (algorithm 1)
img[1024 + 144:1024 + 144 + 8] = struct.pack("<HBB4x", 6, 0, 17 - 10)    # z_erofs_zstd_cfgs (algorithm 3): 128 KiB window
for nid, data in meta.items():
    off = BLK + nid * 32
    assert len(data) <= BLK and off % BLK == 0
    img[off:off + len(data)] = data
for b, data in blocks.items():
    img[b * BLK:(b + 1) * BLK] = data
open(image, "wb").write(img)

os.makedirs(srcdir, exist_ok=True)
for name, data in [("text.txt", file1), ("dedupe.txt", dedupe), ("mixed-algorithms.txt", mixed), ("interlaced.bin", interlaced), ("whole-fragment.txt", whole), ("tail-fragment.txt", taildata)]:
    p = os.path.join(srcdir, name)
    open(p, "wb").write(data); os.chmod(p, 0o644); os.utime(p, (MTIME, MTIME))
p = os.path.join(srcdir, "long-prefix.txt")
open(p, "wb").close(); os.chmod(p, 0o644)
os.setxattr(p, "trusted.overlay.opaque", b"y"); os.setxattr(p, "user.com.example.color", b"blue")
os.setxattr(p, "user.plain", b"short prefix"); os.utime(p, (MTIME, MTIME))
os.chmod(srcdir, 0o755); os.utime(srcdir, (MTIME, MTIME))
print("extents: mixed-algorithms.txt", len(ext5), "text.txt", len(ext1), "tail-fragment.txt", len(ext4), "+ tail", len(tail))
PY
python3 "$WORK/mkerofs_lzma.py" "$WORK/mlz" "$WORK/lzma-src" "$OUT/fs-erofs-lzma.img"
python3 "$IMAGES_DIR/manifest.py" "$WORK/lzma-src" > "$OUT/fs-erofs-lzma.manifest"
