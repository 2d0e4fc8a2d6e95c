#!/usr/bin/env python3
"""Fuzz/sparse-seed.py IMAGE OUT [MAX]: a filesystem image in the sparse form of the btrfs and f2fs
fuzz targets (both are megabytes of mostly zeros, larger than a fuzz input; FuzzEntries.SparseSource
reads it back): le64 size in bytes, then for each run of non-zero bytes (runs closer than 16 zero
bytes joined) a record of le64 offset, le32 length and those bytes. Nothing is written when the
result is over MAX bytes (default 1 MiB). The image is read in 1 MiB pieces, never whole."""
import os, re, struct, sys

image, out = sys.argv[1:3]
limit = int(sys.argv[3]) if len(sys.argv) > 3 else 1 << 20
size = os.path.getsize(image)
records, total = [], 8
run_start = run_end = None   # the current run: [run_start, run_end) plus its bytes
run = bytearray()

def flush():
    global run, run_start, total
    if run_start is not None:
        records.append(struct.pack("<QI", run_start, len(run)) + bytes(run))
        total += 12 + len(run)
    run, run_start = bytearray(), None

with open(image, "rb") as f:
    offset = 0
    while total <= limit:
        piece = f.read(1 << 20)
        if not piece:
            break
        for m in re.finditer(rb"[^\x00]+", piece):
            at = offset + m.start()
            if run_start is not None and at - run_end < 16:
                run += bytes(at - run_end) + m.group()
            else:
                flush()
                run_start, run = at, bytearray(m.group())
            run_end = offset + m.end()
        offset += len(piece)
flush()
if total <= limit:
    with open(out, "wb") as f:
        f.write(struct.pack("<Q", size) + b"".join(records))
