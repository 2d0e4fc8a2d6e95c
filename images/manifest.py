#!/usr/bin/env python3
"""Print a manifest of a directory tree (a source tree or a kernel mount), one JSON object per
line, in the walk order fwassemble uses (depth-first, names sorted bytewise). This is the
independent view the reader tests compare against.

Fields: path ("." for the root, else relative), type, perm (permission bits incl. suid/sgid/
sticky), uid, gid, size (regular files), mtime, mtime_ns, target (symlinks), rdev [major, minor]
(devices), xattrs {name: hex}, crc32 (regular files: zlib CRC-32 of the content), link (for a
non-directory with several names: the first path of its inode in walk order).
A name the kernel lists but cannot stat is left out and printed on standard error as
"PATH<TAB>ERRNO" (EUCLEAN for an inode the kernel refuses).
"""
import errno, json, os, stat, sys, zlib

TYPES = {stat.S_IFREG: "regular", stat.S_IFDIR: "directory", stat.S_IFLNK: "symlink",
         stat.S_IFCHR: "characterDevice", stat.S_IFBLK: "blockDevice", stat.S_IFIFO: "fifo",
         stat.S_IFSOCK: "socket"}

def crc32(f):
    """zlib CRC-32 of what the binary file object `f` holds, read 1 MiB at a time."""
    crc = 0
    while chunk := f.read(1 << 20):
        crc = zlib.crc32(chunk, crc)
    return crc

def walk(root, rel=b""):
    full = os.path.join(root, rel) if rel else root
    try:
        st = os.lstat(full)
    except OSError as e:
        # A name the kernel lists but cannot stat (a deleted inode still referenced, an inode it
        # refuses): left out of the manifest, its path on standard error.
        if not rel:
            raise
        print(f"{rel.decode('utf-8', 'backslashreplace')}\t{errno.errorcode.get(e.errno, e.errno)}", file=sys.stderr)
        return
    yield rel, st
    if stat.S_ISDIR(st.st_mode):
        for name in sorted(os.listdir(full)):
            yield from walk(root, os.path.join(rel, name) if rel else name)

def main():
    root = os.fsencode(sys.argv[1])
    first_path = {}
    for rel, st in walk(root):
        full = os.path.join(root, rel) if rel else root
        kind = TYPES[stat.S_IFMT(st.st_mode)]
        e = {"path": rel.decode("utf-8", "backslashreplace") or ".", "type": kind,
             "perm": stat.S_IMODE(st.st_mode), "uid": st.st_uid, "gid": st.st_gid,
             "mtime": st.st_mtime_ns // 1_000_000_000, "mtime_ns": st.st_mtime_ns % 1_000_000_000}
        xattrs = {}
        try:
            for name in os.listxattr(full, follow_symlinks=False):
                xattrs[name] = os.getxattr(full, name, follow_symlinks=False).hex()
        except OSError:
            pass
        e["xattrs"] = xattrs
        if kind == "regular":
            e["size"] = st.st_size
            with open(full, "rb") as f:
                e["crc32"] = crc32(f)
        if kind == "symlink":
            e["target"] = os.readlink(full).decode("utf-8", "backslashreplace")
        if kind in ("characterDevice", "blockDevice"):
            e["rdev"] = [os.major(st.st_rdev), os.minor(st.st_rdev)]
        if kind != "directory" and st.st_nlink > 1:
            key = (st.st_dev, st.st_ino)
            e["link"] = first_path.setdefault(key, e["path"])
        print(json.dumps(e, sort_keys=True))

if __name__ == "__main__":
    main()
