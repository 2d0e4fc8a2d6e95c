#!/usr/bin/env python3
"""Fuzz/f2fs-seed.py IMAGE OUT: an f2fs image in the f2fs fuzz target's sparse form (an f2fs is
mostly zeros and megabytes long; FuzzEntries.SparseSource reads it back): le32 size in 4 KiB
blocks, then records of le32 byte offset, le16 length and that many bytes, one per run of
non-zero bytes (runs closer than 16 zero bytes joined)."""
import struct, sys

image, out = sys.argv[1:3]
data = open(image, "rb").read()
records = []
i, n = 0, len(data)
while i < n:
    if data[i] == 0:
        i += 1
        continue
    start, last = i, i
    while i < n and i - last < 16 and i - start < 65535:
        if data[i] != 0:
            last = i
        i += 1
    records.append(struct.pack("<IH", start, last + 1 - start) + data[start:last + 1])
    i = last + 1
with open(out, "wb") as f:
    f.write(struct.pack("<I", (n + 4095) // 4096) + b"".join(records))
