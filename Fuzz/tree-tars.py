#!/usr/bin/env python3
# Fuzz/tree-tars.py OUTDIR [DEEP WIDE]: gzip-compressed tars of a DEEP-level chain of directories
# (default 10,000) and of WIDE empty files in one directory (default 100,000), as
# OUTDIR/tree-deep-N.tar.gz and OUTDIR/tree-wide-N.tar.gz (issue 22: tar reading stays linear).
import gzip, io, os, sys, tarfile

out = sys.argv[1]
deep = int(sys.argv[2]) if len(sys.argv) > 2 else 10000
wide = int(sys.argv[3]) if len(sys.argv) > 3 else 100000

def write(name, fill):
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.GNU_FORMAT) as t:
        fill(t)
    with open(os.path.join(out, name), "wb") as f:
        f.write(gzip.compress(buf.getvalue(), 9, mtime=0))

def entry(t, name, kind=tarfile.REGTYPE):
    i = tarfile.TarInfo(name); i.type = kind; i.mode = 0o755 if kind == tarfile.DIRTYPE else 0o644
    t.addfile(i, io.BytesIO(b"") if kind == tarfile.REGTYPE else None)

def chain(t):
    p = ""
    for _ in range(deep):
        p = p + ("/" if p else "") + "d"
        entry(t, p, tarfile.DIRTYPE)

def flat(t):
    entry(t, "w", tarfile.DIRTYPE)
    for i in range(wide):
        entry(t, "w/%05d" % i)

write("tree-deep-%d.tar.gz" % deep, chain)
write("tree-wide-%d.tar.gz" % wide, flat)
