#!/usr/bin/env python3
"""Print the manifest of a tar archive (plain, gzip or zstd; "-" reads stdin) in the format of
images/manifest.py, one JSON object per line in archive order, read with Python's tarfile (an
independent reader of fwassemble's output).

Member names lose their "./" prefix and trailing "/" ("./" is "."); mtime_ns comes from the exact
PAX mtime string; xattrs from SCHILY.xattr.* records (raw bytes, hex); a hardlink member ('1')
gets link = its target, and the member it names gets link = its own path, as manifest.py does.
With --check (not for stdin), also verifies the conventions of docs/archive-format.md and exits 1 on a breach.
"""
import gzip, io, json, stat, subprocess, sys, tarfile

from manifest import crc32

TYPES = {tarfile.REGTYPE: "regular", tarfile.AREGTYPE: "regular", tarfile.DIRTYPE: "directory",
         tarfile.SYMTYPE: "symlink", tarfile.CHRTYPE: "characterDevice", tarfile.BLKTYPE: "blockDevice",
         tarfile.FIFOTYPE: "fifo", tarfile.LNKTYPE: "hardlink"}

def raw(s):
    return s.encode("utf-8", "surrogateescape")

def text(b):
    return b.decode("utf-8", "backslashreplace")

def rel(name):
    b = raw(name)
    if b in (b"./", b"."):
        return "."
    if b.startswith(b"./"):
        b = b[2:]
    return text(b.rstrip(b"/"))

def open_stream(path):
    f = sys.stdin.buffer if path == "-" else open(path, "rb")
    head = f.peek(4)[:4] if hasattr(f, "peek") else b""
    if head[:2] == b"\x1f\x8b":
        return gzip.open(f)
    if head == b"\x28\xb5\x2f\xfd":
        if path == "-":
            sys.exit("tar_manifest.py: zstd from stdin is not supported; pass a file")
        proc = subprocess.Popen(["zstd", "-dcq", path], stdout=subprocess.PIPE)
        return proc.stdout
    return f

def split_time(value, fallback):
    if value is None:
        return fallback, 0
    neg = value.startswith("-")
    whole, _, frac = value.lstrip("-").partition(".")
    frac = (frac + "000000000")[:9]
    total = int(whole) * 1_000_000_000 + int(frac)
    if neg:
        total = -total
    return total // 1_000_000_000, total % 1_000_000_000

def octal(field):
    if field[:1] and field[0] & 0x80:
        return int.from_bytes(field[1:], "big")
    field = field.split(b"\0")[0].strip()
    return int(field, 8) if field else 0

def raw_names(path):
    """Member names exactly as stored (tarfile strips the trailing "/" of directories): the ustar
    name field, or the PAX path record when there is one. Yields (name, typeflag, uname, gname)."""
    f = open_stream(path)
    pax_path = None
    while True:
        block = f.read(512)
        if len(block) < 512 or block == bytes(512):
            return
        size = octal(block[124:136])
        data = f.read((size + 511) // 512 * 512)[:size]
        kind = block[156:157]
        if kind == b"x":
            pos = 0
            while pos < len(data):
                sp = data.index(b" ", pos)
                length = int(data[pos:sp])
                key, _, value = data[sp + 1:pos + length - 1].partition(b"=")
                if key == b"path":
                    pax_path = value
                pos += length
            continue
        name = pax_path if pax_path is not None else block[0:100].split(b"\0")[0]
        pax_path = None
        yield name, kind, block[265:297].strip(b"\0"), block[297:329].strip(b"\0")

def check_conventions(path, errors):
    for i, (name, kind, uname, gname) in enumerate(raw_names(path)):
        if i == 0 and name != b"./":
            errors.append(f"first member is {name!r}, not './'")
        if not name.startswith(b"./"):
            errors.append(f"member {name!r} does not start with './'")
        if (kind == b"5") != name.endswith(b"/"):
            errors.append(f"member {name!r}: directory iff trailing '/' broken")
        if uname or gname:
            errors.append(f"member {name!r} has owner names {uname!r}/{gname!r}")

def main():
    args = [a for a in sys.argv[1:] if not a.startswith("--")]
    check = "--check" in sys.argv
    errors = []
    if check and args and args[0] != "-":
        check_conventions(args[0], errors)
    entries = []
    linked = set()
    with tarfile.open(fileobj=open_stream(args[0] if args else "-"), mode="r|*") as tar:
        for i, m in enumerate(tar):
            kind = TYPES.get(m.type)
            if kind is None:
                errors.append(f"member {m.name!r} has unexpected type {m.type!r}")
                continue
            mtime, mtime_ns = split_time(m.pax_headers.get("mtime"), int(m.mtime))
            e = {"path": rel(m.name), "type": kind, "perm": stat.S_IMODE(m.mode), "uid": m.uid,
                 "gid": m.gid, "mtime": mtime, "mtime_ns": mtime_ns,
                 "xattrs": {k[len("SCHILY.xattr."):]: raw(v).hex() for k, v in m.pax_headers.items()
                            if k.startswith("SCHILY.xattr.")}}
            if kind == "regular":
                e["size"] = m.size
                e["crc32"] = crc32(tar.extractfile(m))
            elif kind == "hardlink":
                e["link"] = rel(m.linkname)
                linked.add(e["link"])
            if kind == "symlink":
                e["target"] = text(raw(m.linkname))
            if kind in ("characterDevice", "blockDevice"):
                e["rdev"] = [m.devmajor, m.devminor]
            entries.append(e)
    # A hardlink member carries its target's fields in manifest.py's view (same inode).
    by_path = {e["path"]: e for e in entries}
    for e in entries:
        if e["path"] in linked:
            e["link"] = e["path"]
        if e["type"] == "hardlink":
            first = by_path.get(e["link"])
            if first is None:
                errors.append(f"hardlink {e['path']!r} names {e['link']!r}, not an earlier member")
                continue
            e["type"] = first["type"]
            for k in ("perm", "uid", "gid", "mtime", "mtime_ns", "xattrs", "size", "crc32", "target", "rdev"):
                if k in first:
                    e[k] = first[k]
    for e in entries:
        print(json.dumps(e, sort_keys=True))
    for err in errors:
        print(err, file=sys.stderr)
    sys.exit(1 if errors else 0)

if __name__ == "__main__":
    main()
