#!/usr/bin/env bash
# Raw NAND test images for the UBI layer and the UBIFS reader (Tests/PartitionTableTests/
# UBITests.swift, Tests/FileSystemsTests/UBIFSTests.swift), made by Debian's mtd-utils from the
# shared source tree (make_tree, no sparse file):
#   fs-ubi-rootfs.sqfs          mksquashfs of the tree (the static volume's contents)
#   fs-ubi-{lzo,zlib,zstd,none}.ubifs  mkfs.ubifs -x COMPRESSOR, 2 KiB pages, 124 KiB LEBs
#   fs-ubi.img                  ubinize -p 128KiB -m 2048: volume 0 "rootfs" static (the
#                               squashfs), volumes 1-4 "data-lzo", "data-zlib", "data-zstd",
#                               "data-none" dynamic (the UBIFS images)
#   fs-ubi-worn.img             fs-ubi.img with what worn flash holds (made by the Python step
#                               below from ubinize's PEBs): the PEBs shuffled, two erased PEBs,
#                               a PEB with garbage headers, an older copy of a LEB (lower
#                               sqnum, other data) and a newer wear-levelling copy (copy_flag)
#                               whose data CRC is wrong; UBI must still give the same volumes
#   fs-ubi-oob.img              fs-ubi.img as a NAND dump that keeps the spare area: 64 bytes of
#                               OOB after every 2048-byte page
#   fs-ubi-chip.img             a whole-chip dump: 1 MiB of bootloader-like bytes (an MTD
#                               partition with no filesystem), then fs-ubi.img
# fs-ubi.manifest is the source tree (manifest.py).
source "$(dirname "${BASH_SOURCE[0]}")/../lib.sh"

src=$WORK/src
make_tree "$src" no
mkdir -p "$src/usr/share"
mixed_file "$src/usr/share/mixed.bin" 64
touch -h -d @1700000000 "$src/usr/share/mixed.bin" "$src/usr/share" "$src/usr"
python3 "$IMAGES_DIR/manifest.py" "$src" > "$OUT/fs-ubi.manifest"

mksquashfs "$src" "$OUT/fs-ubi-rootfs.sqfs" -noappend -quiet -comp gzip
for c in lzo zlib zstd none; do
    mkfs.ubifs -m 2048 -e 126976 -c 64 -x $c -r "$src" -o "$OUT/fs-ubi-$c.ubifs"
done

cat > "$WORK/ubinize.cfg" <<CFG
[rootfs]
mode=ubi
image=$OUT/fs-ubi-rootfs.sqfs
vol_id=0
vol_type=static
vol_name=rootfs
CFG
id=1
for c in lzo zlib zstd none; do
    cat >> "$WORK/ubinize.cfg" <<CFG
[data-$c]
mode=ubi
image=$OUT/fs-ubi-$c.ubifs
vol_id=$id
vol_type=dynamic
vol_name=data-$c
vol_size=8MiB
CFG
    id=$((id + 1))
done
ubinize -o "$OUT/fs-ubi.img" -p 128KiB -m 2048 -s 2048 -Q 1700000000 "$WORK/ubinize.cfg"

python3 - "$OUT/fs-ubi.img" "$OUT/fs-ubi-worn.img" "$OUT/fs-ubi-oob.img" <<'PY'
import random, struct, sys, zlib
src, worn_path, oob_path = sys.argv[1:4]
PEB, PAGE, OOB = 128 * 1024, 2048, 64
data = open(src, "rb").read()
pebs = [data[i:i + PEB] for i in range(0, len(data), PEB)]

def crc(b):          # Linux crc32(0xFFFFFFFF, b) = ~zlib.crc32(b) & 0xffffffff
    return ~zlib.crc32(b) & 0xFFFFFFFF

def vid(peb):
    return peb[2048:2048 + 64]

def with_vid(peb, **changes):
    h = bytearray(vid(peb))
    if "sqnum" in changes: struct.pack_into(">Q", h, 40, changes["sqnum"])
    if "copy_flag" in changes: h[6] = changes["copy_flag"]
    if "data_size" in changes: struct.pack_into(">I", h, 20, changes["data_size"])
    if "data_crc" in changes: struct.pack_into(">I", h, 32, changes["data_crc"])
    struct.pack_into(">I", h, 60, crc(bytes(h[:60])))
    return peb[:2048] + bytes(h) + peb[2048 + 64:]

r = random.Random(7)
def garbage_data(peb):
    return peb[:4096] + bytes(r.getrandbits(8) for _ in range(PEB - 4096))

# PEBs of UBIFS volume 1 ("data-lzo") LEB 2 and squashfs volume 0 LEB 1.
def find(vol, lnum):
    for i, p in enumerate(pebs):
        if p[2048:2052] == b"UBI!" and struct.unpack_from(">II", p, 2048 + 8) == (vol, lnum):
            return i
    raise SystemExit("no PEB for volume %d LEB %d" % (vol, lnum))
max_sqnum = max(struct.unpack_from(">Q", p, 2048 + 40)[0] for p in pebs if p[2048:2052] == b"UBI!")
a, b = find(1, 2), find(0, 1)
# ubinize writes sqnum 0 everywhere: make LEB 2's PEB the rewritten copy (sqnum 5) and add
# an older one (sqnum 1) holding other data.
stale = with_vid(garbage_data(pebs[a]), sqnum=1)                       # older copy: ignored
pebs[a] = with_vid(pebs[a], sqnum=5)
bad_copy = with_vid(garbage_data(pebs[b]), sqnum=max_sqnum + 10, copy_flag=1,
                    data_size=PEB - 4096, data_crc=0x12345678)          # newer, bad CRC: ignored
blank = b"\xff" * PEB
junk = bytes(r.getrandbits(8) for _ in range(PEB))                     # bad headers: skipped
worn = pebs[:]
r.shuffle(worn)
worn[3:3] = [stale, blank]
worn[7:7] = [bad_copy, junk, blank]
open(worn_path, "wb").write(b"".join(worn))

out = bytearray()
for i in range(0, len(data), PAGE):
    out += data[i:i + PAGE]
    out += b"\xff\xff" + bytes(r.getrandbits(8) for _ in range(OOB - 2))   # bad-block marker + ECC-like bytes
open(oob_path, "wb").write(out)
boot = bytes(r.getrandbits(8) for _ in range(1 << 20))
open(oob_path.replace("-oob.img", "-chip.img"), "wb").write(boot + data)
PY
ls -l "$OUT"/fs-ubi*
