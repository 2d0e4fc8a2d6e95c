#!/usr/bin/env bash
# fs-fat: FAT12, FAT16, FAT32 (512-byte sectors) and FAT32 with 4096-byte sectors, made by
# mkfs.vfat and filled by mtools (`mcopy -s -m` keeps mtimes) from one small tree with long
# names, mixed case (NT lowercase flags), non-ASCII names, nested and empty directories, a 3 MB
# file spanning many clusters, an empty file, a fragmented file (frag/c-fragmented.bin is written
# into the hole left by a deleted file, so its chain is not contiguous) and a directory whose
# own cluster chain is fragmented (many/).
# Writes fs-fat12.img, fs-fat16.img, fs-fat32.img, fs-fat32-4k.img and fs-fat.manifest (the
# manifest.py view of the source tree: names, sizes, CRCs and mtimes the images must show).
source "$(dirname "$0")/../lib.sh"
export TZ=UTC MTOOLS_SKIP_CHECK=1 LC_ALL=C.UTF-8

tree=$WORK/tree
rm -rf "$tree"; mkdir -p "$tree"
t() { touch -h -d "$1" "${@:2}"; }   # t DATE PATH...

mkdir -p "$tree"/{Boot/EFI/BOOT,docs,empty-dir,nested/level1/level2/level3,frag,many}
printf 'upper case 8.3 name\n' > "$tree/README.TXT"
printf 'all lower: NT flags 0x08|0x10\n' > "$tree/lower.txt"
printf 'base upper, ext lower: NT flag 0x10\n' > "$tree/UPPER.txt"
printf 'base lower, ext upper: NT flag 0x08\n' > "$tree/base.TXT"
printf 'mixed case needs a long name\n' > "$tree/MixedCase.Txt"
printf 'dot file\n' > "$tree/.hidden-file"
printf 'odd characters\n' > "$tree/name with [brackets] + plus;semi=eq.txt"
printf 'latin\n' > "$tree/café ünïcödé €.txt"
printf 'cjk\n' > "$tree/日本語ファイル名.txt"
printf 'long\n' > "$tree/$(printf 'L%.0s' $(seq 1 255))"
printf 'x%.0s' $(seq 1 200) > "$tree/docs/a file whose name is long enough to need many long-name slots, with spaces and more text to reach about one hundred and twenty characters.md"
: > "$tree/empty.txt"
head -c 3000000 /dev/urandom > "$tree/big.bin"
printf 'timeout 3\n' > "$tree/Boot/EFI/BOOT/grub.cfg"
printf 'deep file\n' > "$tree/nested/level1/level2/level3/deep.txt"
printf 'level one\n' > "$tree/nested/level1/one.txt"
# Mtimes: odd seconds (FAT keeps 2 s), old and new dates within FAT's 1980-2107 range.
t '1980-01-01 00:00:00' "$tree/README.TXT"
t '1999-12-31 23:59:59' "$tree/lower.txt"
t '2000-02-29 12:34:57' "$tree/UPPER.txt"
t '2038-01-19 03:14:08' "$tree/base.TXT"
t '2099-12-31 23:59:58' "$tree/MixedCase.Txt"
t '2107-12-31 23:59:58' "$tree/empty.txt"
t '2021-06-15 08:09:10' "$tree/big.bin"
for d in nested/level1/level2/level3 nested/level1/level2 nested/level1 nested Boot/EFI/BOOT Boot/EFI Boot docs empty-dir; do
    t '2015-05-05 05:05:05' "$tree/$d"
done

# Files written in later steps, to fragment chains.
late=$WORK/late; rm -rf "$late"; mkdir -p "$late"
head -c 100000 /dev/urandom > "$late/a-deleted.bin"
printf 'small file between\n' > "$tree/frag/b-small.txt"
head -c 300000 /dev/urandom > "$tree/frag/c-fragmented.bin"
for i in $(seq -w 1 90); do printf 'entry %s\n' "$i" > "$tree/many/entry-with-a-long-name-$i.txt"; done
t '2010-10-10 10:10:10' "$tree/frag/b-small.txt" "$tree/frag/c-fragmented.bin" "$tree"/many/*
t '2012-12-12 12:12:12' "$tree/frag" "$tree/many"

# mtools allocates on FAT32 from the FSInfo "next free" hint, so it would not reuse a hole:
# mark the hint unknown (0xFFFFFFFF), as the spec allows, and it searches from cluster 2 again.
forget_next_free() {
    python3 - "$1" <<'PY'
import struct, sys
with open(sys.argv[1], "r+b") as f:
    bpb = f.read(512)
    if struct.unpack_from("<H", bpb, 22)[0] != 0:
        sys.exit(0)                                   # FAT12/16: no FSInfo
    bps, fsinfo = struct.unpack_from("<H", bpb, 11)[0], struct.unpack_from("<H", bpb, 48)[0]
    f.seek(fsinfo * bps)
    assert f.read(4) == b"RRaA", "no FSInfo signature"
    f.seek(fsinfo * bps + 492)
    f.write(b"\xff\xff\xff\xff")
PY
}

make_fat() { # make_fat IMAGE MKFS-ARGS...
    local img=$1; shift
    mkfs.vfat "$@" "$img"
    local -a top=()
    for p in "$tree"/* "$tree"/.hidden-file; do
        case $(basename "$p") in frag|many) ;; *) top+=("$p") ;; esac
    done
    mcopy -s -m -i "$img" "${top[@]}" ::
    # frag/: a (deleted later), b, then c fills a's hole and continues after b.
    mkdir -p "$WORK/stage/frag" "$WORK/stage/many"
    touch -r "$tree/frag" "$WORK/stage/frag"; touch -r "$tree/many" "$WORK/stage/many"
    mcopy -s -m -i "$img" "$WORK/stage/frag" "$WORK/stage/many" ::
    mcopy -m -i "$img" "$late/a-deleted.bin" ::/frag/
    mcopy -m -i "$img" "$tree/frag/b-small.txt" ::/frag/
    # many/: half its entries, a file elsewhere, then the rest (its chain gets a gap).
    mcopy -m -i "$img" "$tree"/many/entry-with-a-long-name-[0-4]*.txt ::/many/
    mdel -i "$img" ::/frag/a-deleted.bin
    forget_next_free "$img"
    mcopy -m -i "$img" "$tree/frag/c-fragmented.bin" ::/frag/
    mcopy -m -i "$img" "$tree"/many/entry-with-a-long-name-[5-9]*.txt ::/many/
}

rm -f "$OUT"/fs-fat12.img "$OUT"/fs-fat16.img "$OUT"/fs-fat32.img "$OUT"/fs-fat32-4k.img
truncate -s 8M "$OUT/fs-fat12.img";    make_fat "$OUT/fs-fat12.img" -F 12 -s 8 -n FAT12TEST -i 12121212
truncate -s 24M "$OUT/fs-fat16.img";   make_fat "$OUT/fs-fat16.img" -F 16 -s 4 -f 1 -r 128 -n FAT16TEST -i 16161616
truncate -s 40M "$OUT/fs-fat32.img";   make_fat "$OUT/fs-fat32.img" -F 32 -s 1 -n FAT32TEST -i 32323232
truncate -s 300M "$OUT/fs-fat32-4k.img"; make_fat "$OUT/fs-fat32-4k.img" -F 32 -S 4096 -s 1 -n FAT32K4 -i 32324096

python3 "$IMAGES_DIR/manifest.py" "$tree" > "$OUT/fs-fat.manifest"
