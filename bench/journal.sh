#!/usr/bin/env bash
# bench/journal.sh: the cost of replaying a full 128 MiB ext4 journal (issue 14). Builds once
# (cached in $BENCH_OUT, default bench/out; needs root and loop devices) a 1 GiB ext4 filesystem
# with a 128 MiB journal, mounted data=journal and filled with fsynced 1 MiB files until the live
# log covers most of the journal, copied while mounted (needs_recovery). Then times, best of
# $BENCH_RUNS (default 3), `fwassemble extract --compression none` to /dev/null with replay and
# with --no-replay (wall seconds, peak RSS), and prints the live log's size (debugfs logdump).
# Environment: BIN (default .build/release/fwassemble), BENCH_OUT, BENCH_RUNS.
set -euo pipefail
cd "$(dirname "$0")/.."
OUT=${BENCH_OUT:-bench/out}
RUNS=${BENCH_RUNS:-3}
bin=${BIN:-.build/release/fwassemble}
[ -x "$bin" ] || { echo "no fwassemble binary at $bin (make release, or set BIN)" >&2; exit 1; }
mkdir -p "$OUT"
img=$OUT/journal-128m.img
if [ ! -f "$img" ]; then
    [ "$(id -u)" -eq 0 ] || { echo "bench/journal.sh: building the snapshot needs root" >&2; exit 1; }
    work=$(mktemp -d "$OUT/.journal.XXXXXX")
    truncate -s 1G "$work/live.img"
    mkfs.ext4 -q -F -b 4096 -J size=128 "$work/live.img"
    mkdir "$work/mnt"
    mount -o loop,data=journal,commit=600 "$work/live.img" "$work/mnt"
    # 100 files of 1 MiB, each fsynced: about 100 MiB of data blocks in the journal.
    for i in $(seq 1 100); do head -c 1048576 /dev/urandom > "$work/mnt/f$i"; sync "$work/mnt/f$i"; done
    cp --sparse=always "$work/live.img" "$img"
    umount "$work/mnt"
    rm -rf "$work"
fi
# The live log: from the block it starts at to the last block logdump finds (it does not wrap here).
debugfs -c -R logdump "$img" 2>/dev/null | awk '/^Journal starts at block/ { s = $5 } /^Found expected/ { e = $NF }
    END { printf "journal-128m.img: live log blocks %d-%d of 32768 (%d MiB)\n", s, e, (e - s + 1) * 4 / 1024 }'
"$bin" extract -p 1 --compression none -o /dev/null "$img" 2>&1 | grep 'needs recovery'
cat "$img" > /dev/null
best() { # best NAME ARGS...: best wall seconds and highest peak RSS (KiB) of $RUNS runs
    local name=$1; shift
    : > "$OUT/$name.runs"
    for _ in $(seq 1 "$RUNS"); do
        /usr/bin/time -f '%e %M' -o "$OUT/$name.one" "$bin" "$@" > /dev/null 2>&1
        tail -n 1 "$OUT/$name.one" >> "$OUT/$name.runs"
    done
    awk 'NR == 1 || $1 < w { w = $1 } $2 > r { r = $2 } END { printf "%s s, peak RSS %d MiB\n", w, r / 1024 }' "$OUT/$name.runs"
}
echo "extract with replay:   $(best replay extract -q -p 1 --compression none -o /dev/null "$img")"
echo "extract --no-replay:   $(best noreplay extract -q -p 1 --compression none -o /dev/null --no-replay "$img")"
