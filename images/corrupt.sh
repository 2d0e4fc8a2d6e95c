#!/usr/bin/env bash
# images/corrupt.sh [OUT]: the hostile-disk corpus (issue 8). From the realistic test disks in OUT
# (default images/out: haos-full, rpi-full, haos-mbr-full, debian-gpt; built first when missing)
# it writes OUT/corrupt/CASE.img plus OUT/corrupt/cases.tsv (name, tab, what the case is).
# Deterministic: every random choice comes from a seed derived from the case name, so the same
# disks give the same corpus. Copies stay sparse. Never committed (images/out is ignored).
# Rebuilt only when this script or one of the source disks is newer than OUT/corrupt/.done.
#
# Cases (150):
#   trunc-*        the disk cut at 25/50/90 % and in the middle of each partition
#   flip-ext4-*    a handful of seeded bit flips in an ext4 superblock, group descriptor table,
#                  inode table and the root directory block (offsets from dumpe2fs / debugfs)
#   flip-sqfs-*    ... in a squashfs superblock, data blocks, inode, directory and id/fragment tables
#   flip-erofs-*   ... in an EROFS superblock, inode area and data (compressed) blocks
#   flip-fat-*     ... in a FAT boot sector and the FAT (cluster chains)
#   ebr-loop-*     the EBR chain of haos-mbr-full points back to itself / to its first EBR
#   gpt-4g-*       GPT headers claiming 4,294,967,295 entries with a valid header CRC
#   ext4-selfdir   /etc contains an entry "self" that is /etc itself (debugfs link)
#   ext4-symchain  /etc/fstab is the start of a chain of 10,000 symlinks (mkfs.ext4 -d)
#   ext4-huge      files claiming 2^63-1 and 2^64-1 bytes (debugfs sif size)
#   ext4-names     directory entries named "a/b", "..", ".", "x\0y", "/abs" and "../../../escape"
#                  (patched in place, directory block checksums recomputed)
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
out=${1:-$here/out}
mkdir -p "$out"; out=$(cd "$out" && pwd)
disks=(haos-full rpi-full haos-mbr-full debian-gpt)
missing=()
for d in "${disks[@]}"; do [ -f "$out/$d.img" ] || missing+=("$d"); done
[ ${#missing[@]} -eq 0 ] || bash "$here/build.sh" "$out" "${missing[@]}"

dir=$out/corrupt
stamp=$dir/.done
fresh=yes
[ -f "$stamp" ] && [ "$stamp" -nt "$0" ] || fresh=no
for d in "${disks[@]}"; do [ "$fresh" = yes ] && [ "$stamp" -nt "$out/$d.img" ] || fresh=no; done
[ "$fresh" = yes ] && exit 0

rm -rf "$dir"; mkdir -p "$dir"
work=$(mktemp -d "$out/.work-corrupt.XXXXXX")
trap 'rm -rf "$work"' EXIT
export SOURCE_DATE_EPOCH=1700000000 E2FSPROGS_FAKE_TIME=1700000000

python3 - "$out" "$dir" "$work" <<'PY'
import hashlib, json, os, random, re, shutil, struct, subprocess, sys, zlib

out, dst, work = sys.argv[1:4]
DISKS = ["haos-full", "rpi-full", "haos-mbr-full", "debian-gpt"]
cases = []

def sh(*args, **kw):
    return subprocess.run(list(args), check=True, capture_output=True, text=True, **kw).stdout

def rng(name):
    return random.Random(int.from_bytes(hashlib.sha256(name.encode()).digest()[:8], "little"))

def copy(disk, name, note):
    path = os.path.join(dst, name + ".img")
    sh("cp", "--sparse=always", os.path.join(out, disk + ".img"), path)
    cases.append((name, note))
    return path

def flip(path, name, lo, hi, count=4):
    """count seeded single-bit flips in [lo, hi) of the file."""
    r = rng(name)
    with open(path, "r+b") as f:
        for _ in range(count):
            off = r.randrange(lo, hi)
            f.seek(off); b = f.read(1)[0]
            f.seek(off); f.write(bytes([b ^ (1 << r.randrange(8))]))

def partitions(disk):
    """[(number, start byte, size bytes, blkid type)] in sfdisk order (logical ones included)."""
    img = os.path.join(out, disk + ".img")
    table = json.loads(sh("sfdisk", "-J", img))["partitiontable"]
    parts = []
    for p in table["partitions"]:
        n = int(re.search(r"(\d+)$", p["node"]).group(1))
        start, size = p["start"] * 512, p["size"] * 512
        t = subprocess.run(["blkid", "-p", "-O", str(start), "-S", str(size), "-o", "value", "-s", "TYPE", img],
                           capture_output=True, text=True).stdout.strip()
        parts.append((n, start, size, t))
    return parts

def extract(disk, start, size, name):
    path = os.path.join(work, name)
    sh("dd", f"if={os.path.join(out, disk + '.img')}", f"of={path}", "bs=512", f"skip={start // 512}",
       f"count={size // 512}", "conv=sparse", "status=none")
    return path

def put(path, fs, start):
    sh("dd", f"if={fs}", f"of={path}", "bs=512", f"seek={start // 512}", "conv=notrunc,sparse", "status=none")

# --- truncations -------------------------------------------------------------------------------
for disk in DISKS:
    size = os.path.getsize(os.path.join(out, disk + ".img"))
    for pct in (25, 50, 90):
        p = copy(disk, f"trunc-{disk}-{pct}", f"{disk} cut at {pct} %")
        os.truncate(p, size * pct // 100 // 512 * 512)
    for n, start, psize, _ in partitions(disk):
        p = copy(disk, f"trunc-{disk}-p{n}", f"{disk} cut in the middle of partition {n}")
        os.truncate(p, (start + psize // 2) // 512 * 512 + 100)

# --- ext4 ------------------------------------------------------------------------------------------
def ext4_regions(fs):
    """superblock, group descriptors, inode table (group 0) and the root directory block, in bytes."""
    head = sh("dumpe2fs", "-h", fs)
    bs = int(re.search(r"Block size:\s+(\d+)", head).group(1))
    groups = sh("dumpe2fs", fs)
    g0 = groups[groups.index("Group 0:"):]
    gd = re.search(r"Group descriptors at (\d+)-(\d+)", g0)
    it = re.search(r"Inode table at (\d+)-(\d+)", g0)
    root = int(sh("debugfs", "-R", "bmap / 0", fs).split()[0])
    return {
        "super": (1024, 2048),
        "gdt": (int(gd.group(1)) * bs, (int(gd.group(2)) + 1) * bs),
        # the first inodes (root, journal, lost+found and the first files) rather than the zeroed tail
        "itable": (int(it.group(1)) * bs, min((int(it.group(2)) + 1) * bs, int(it.group(1)) * bs + 64 * 256)),
        "dir": (root * bs, (root + 1) * bs),
    }

EXT4 = {"haos-full": [8, 7], "rpi-full": [2], "haos-mbr-full": [4], "debian-gpt": [2, 3]}
for disk, nums in EXT4.items():
    parts = {n: (s, z) for n, s, z, _ in partitions(disk)}
    for i, n in enumerate(nums):
        start, size = parts[n]
        fs = extract(disk, start, size, f"{disk}-p{n}.ext4")
        for region, (lo, hi) in ext4_regions(fs).items():
            for seed in ((1, 2) if i == 0 else (1,)):
                name = f"flip-ext4-{disk}-p{n}-{region}-{seed}"
                flip(copy(disk, name, f"bit flips in the ext4 {region} of {disk} partition {n}"), name, start + lo, start + hi)

# --- squashfs ----------------------------------------------------------------------------------------
def sqfs_regions(path, start):
    with open(path, "rb") as f:
        f.seek(start); sb = f.read(96)
    (used, ids, _xattr, inodes, dirs, frags, _lookup) = struct.unpack_from("<QQQQQQQ", sb, 40)
    return {"super": (0, 96), "data": (96, inodes), "inodes": (inodes, dirs), "dirs": (dirs, frags),
            "tables": (frags, used)}

for disk, nums in {"haos-mbr-full": [8, 5], "haos-full": [2]}.items():
    parts = {n: (s, z, t) for n, s, z, t in partitions(disk)}
    for i, n in enumerate(nums):
        start, _, t = parts[n]
        assert t == "squashfs", (disk, n, t)
        for region, (lo, hi) in sqfs_regions(os.path.join(out, disk + ".img"), start).items():
            if hi <= lo: continue
            for seed in ((1, 2) if i == 0 else (1,)):
                name = f"flip-sqfs-{disk}-p{n}-{region}-{seed}"
                flip(copy(disk, name, f"bit flips in the squashfs {region} of {disk} partition {n}"), name,
                     start + lo, start + hi, 2 if region == "super" else 4)

# --- EROFS -------------------------------------------------------------------------------------------
for disk, n in (("haos-full", 3), ("haos-mbr-full", 6)):
    parts = {n: (s, z, t) for n, s, z, t in partitions(disk)}
    start, _, t = parts[n]
    assert t == "erofs", (disk, n, t)
    with open(os.path.join(out, disk + ".img"), "rb") as f:
        f.seek(start + 1024); sb = f.read(128)
    bs = 1 << sb[12]
    blocks, meta = struct.unpack_from("<II", sb, 36)
    root_nid = struct.unpack_from("<H", sb, 14)[0]
    ino = meta * bs + root_nid * 32
    regions = {"super": (1024, 1024 + 128), "inodes": (ino, ino + 2 * bs), "data": (ino + 2 * bs, blocks * bs)}
    for region, (lo, hi) in regions.items():
        for seed in (1, 2, 3):
            name = f"flip-erofs-{disk}-p{n}-{region}-{seed}"
            flip(copy(disk, name, f"bit flips in the EROFS {region} of {disk} partition {n}"), name,
                 start + lo, start + hi, 2 if region == "super" else 4)

# --- FAT ---------------------------------------------------------------------------------------------
for disk in DISKS:
    _, start, _, t = partitions(disk)[0]
    assert t == "vfat", (disk, t)
    with open(os.path.join(out, disk + ".img"), "rb") as f:
        f.seek(start); bpb = f.read(512)
    sector = struct.unpack_from("<H", bpb, 11)[0]
    reserved = struct.unpack_from("<H", bpb, 14)[0]
    nfats = bpb[16]
    fatsz = struct.unpack_from("<H", bpb, 22)[0] or struct.unpack_from("<I", bpb, 36)[0]
    # the used head of the first FAT (a whole 100 KiB FAT is mostly free clusters)
    fat = (reserved * sector, reserved * sector + min(fatsz * sector, 1024))
    for region, (lo, hi) in (("boot", (0, 90)), ("fat", fat)):
        for seed in (1, 2):
            name = f"flip-fat-{disk}-{region}-{seed}"
            flip(copy(disk, name, f"bit flips in the FAT {region} of {disk}"), name, start + lo, start + hi,
                 2 if region == "boot" else 6)
    # every FAT copy: the reader cannot fall back on the second one
    name = f"flip-fat-{disk}-allfats"
    p = copy(disk, name, f"the same bit flips in every FAT of {disk}")
    r = rng(name)
    offs = [(r.randrange(fat[0], fat[1]), 1 << r.randrange(8)) for _ in range(6)]
    with open(p, "r+b") as f:
        for k in range(nfats):
            for off, bit in offs:
                o = start + off + k * fatsz * sector
                f.seek(o); b = f.read(1)[0]; f.seek(o); f.write(bytes([b ^ bit]))

# --- EBR loops ------------------------------------------------------------------------------------------
disk = "haos-mbr-full"
with open(os.path.join(out, disk + ".img"), "rb") as f:
    mbr = f.read(512)
    ext = None
    for i in range(4):
        e = mbr[446 + 16 * i: 462 + 16 * i]
        if e[4] in (0x05, 0x0F, 0x85):
            ext = struct.unpack_from("<I", e, 8)[0]
    assert ext is not None
    ebrs, cur = [], ext
    while True:
        f.seek(cur * 512); ebr = f.read(512)
        ebrs.append(cur)
        nxt = struct.unpack_from("<I", ebr, 446 + 16 + 8)[0]
        if ebr[446 + 16 + 4] == 0 or nxt == 0: break
        cur = ext + nxt
for which, target in (("first", 0), ("self", ebrs[-1] - ext)):
    p = copy(disk, f"ebr-loop-{which}", f"the last EBR of {disk} links back to {'the first EBR' if target == 0 else 'itself'}")
    with open(p, "r+b") as f:
        f.seek(ebrs[-1] * 512 + 446 + 16)
        # a second entry: type 0x05 (extended), start relative to the extended partition
        f.write(struct.pack("<B3sB3sII", 0, b"\0\0\0", 0x05, b"\0\0\0", target, 2048))

# --- GPT claiming 4 billion entries -------------------------------------------------------------------
def gpt_header(p, lba, count):
    with open(p, "r+b") as f:
        f.seek(lba * 512); h = bytearray(f.read(92))
        assert h[:8] == b"EFI PART"
        struct.pack_into("<I", h, 80, count)
        struct.pack_into("<I", h, 16, 0)
        struct.pack_into("<I", h, 16, zlib.crc32(bytes(h)))
        f.seek(lba * 512); f.write(h)

for disk in ("haos-full", "debian-gpt"):
    sectors = os.path.getsize(os.path.join(out, disk + ".img")) // 512
    p = copy(disk, f"gpt-4g-{disk}-primary", f"{disk}: the primary GPT header claims 4,294,967,295 entries (valid header CRC)")
    gpt_header(p, 1, 0xFFFFFFFF)
    p = copy(disk, f"gpt-4g-{disk}-both", f"{disk}: both GPT headers claim 4,294,967,295 entries (valid header CRCs)")
    gpt_header(p, 1, 0xFFFFFFFF); gpt_header(p, sectors - 1, 0xFFFFFFFF)

# --- crafted ext4 trees (rpi-full root, partition 2) ------------------------------------------------------
disk = "rpi-full"
rstart, rsize = [(s, z) for n, s, z, _ in partitions(disk) if n == 2][0]

def with_root(name, note, commands):
    fs = extract(disk, rstart, rsize, name + ".ext4")
    script = os.path.join(work, name + ".debugfs")
    with open(script, "w") as f:
        f.write("\n".join(commands) + "\n")
    sh("debugfs", "-w", "-f", script, fs)
    p = copy(disk, name, note)
    put(p, fs, rstart)
    return fs, p

with_root("ext4-selfdir", "rpi-full: /etc holds 'self', a second link to /etc (a directory containing itself)",
          ["link /etc /etc/self", "link / /usr/rootagain"])
with_root("ext4-huge", "rpi-full: /etc/hostname claims 2^63-1 bytes, /usr/lib/os-release 2^64-1",
          ["sif /etc/hostname size 0x7fffffffffffffff", "sif /usr/lib/os-release size 0xffffffffffffffff"])

# names with '/', '..', '.', NUL: create placeholders of the same length, then patch the bytes.
WEIRD = [(b"Q1Q", b"a/b"), (b"Q2", b".."), (b"Q", b"."), (b"Q3Q", b"x\0y"), (b"Q4Q4", b"/abs"),
         (b"Q5QQQQQQQQQQQQQ", b"../../../escape")]
fs, p = with_root("ext4-names", "rpi-full: /srv holds entries named a/b, .., ., x<NUL>y, /abs and ../../../escape",
                  [f"write /etc/hostname /srv/{ph.decode()}" for ph, _ in WEIRD[:1]] +
                  [f"write /etc/hostname /srv/{ph.decode()}" for ph, _ in WEIRD[1:]])
bs = int(re.search(r"Block size:\s+(\d+)", sh("dumpe2fs", "-h", fs)).group(1))
uuid = re.search(r"Filesystem UUID:\s+(\S+)", sh("dumpe2fs", "-h", fs)).group(1)
stat = sh("debugfs", "-R", "stat /srv", fs)
srv_ino = int(re.search(r"Inode:\s+(\d+)", stat).group(1))
gen = int(re.search(r"Generation:\s+(\d+)", stat).group(1))
blk = int(sh("debugfs", "-R", "bmap /srv 0", fs).split()[0])

def crc32c(crc, data):
    # Castagnoli, reflected, without the final inversion (ext4's ext4_chksum)
    for b in data:
        crc ^= b
        for _ in range(8):
            crc = (crc >> 1) ^ (0x82F63B78 if crc & 1 else 0)
    return crc

with open(fs, "r+b") as f:
    f.seek(blk * bs); block = bytearray(f.read(bs))
    pos = 0
    while pos < bs - 12:
        ino, rec, nlen = struct.unpack_from("<IHB", block, pos)
        if rec < 8: break
        name = bytes(block[pos + 8: pos + 8 + nlen])
        for ph, real in WEIRD:
            if ino and name == ph:
                block[pos + 8: pos + 8 + nlen] = real
        pos += rec
    tail = bs - 12
    if struct.unpack_from("<IHBB", block, tail) == (0, 12, 0, 0xDE):
        seed = crc32c(0xFFFFFFFF, bytes.fromhex(uuid.replace("-", "")))
        c = crc32c(seed, struct.pack("<II", srv_ino, gen))
        struct.pack_into("<I", block, tail + 8, crc32c(c, bytes(block[:tail])))
    f.seek(blk * bs); f.write(block)
put(p, fs, rstart)

# a chain of 10,000 symlinks ending at the real fstab: rebuilt with mkfs.ext4 -d (needs the inodes)
tree = os.path.join(work, "chain-root")
os.mkdir(tree)
fs = extract(disk, rstart, rsize, "chain.ext4")
sh("debugfs", "-R", f"rdump / {tree}", fs)
shutil.rmtree(os.path.join(tree, "lost+found"), ignore_errors=True)
os.makedirs(os.path.join(tree, "chain"))
fstab = os.path.join(tree, "etc", "fstab")
if os.path.lexists(fstab):
    os.rename(fstab, os.path.join(tree, "etc", "fstab.real"))
else:
    open(os.path.join(tree, "etc", "fstab.real"), "w").close()
N = 10000
for i in range(N):
    os.symlink(f"/chain/{i + 1}" if i + 1 < N else "/etc/fstab.real", os.path.join(tree, "chain", str(i)))
os.symlink("/chain/0", fstab)
os.remove(fs)
sh("mkfs.ext4", "-q", "-F", "-N", "16384", "-b", "1024", "-d", tree, fs, str(rsize // 1024))
p = copy(disk, "ext4-symchain", "rpi-full: /etc/fstab -> /chain/0 -> ... -> /chain/9999 -> /etc/fstab.real (10,000 symlinks)")
put(p, fs, rstart)

with open(os.path.join(dst, "cases.tsv"), "w") as f:
    for name, note in cases:
        f.write(f"{name}.img\t{note}\n")
print(f"{len(cases)} cases in {dst}")
PY
touch "$stamp"
