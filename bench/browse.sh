#!/usr/bin/env bash
# bench/browse.sh: looking inside without an archive (issue 24, docs/browse.md). On the bench
# disk (bench/out/haos-bench-$BENCH_MB.img, built by bench/run.sh) or $BENCH_DISK: `fwassemble
# cat` of one file (the largest regular file of the namespace, $BENCH_FILE to choose another) to
# /dev/null, `fwassemble stat` of it, and `fwassemble find` of the whole namespace, best of
# $BENCH_RUNS (default 3) wall seconds and the highest peak RSS. Prints a table; appends it to
# $BENCH_DOC (default docs/benchmarks.md; /dev/null to only print).
# Environment: BIN (default .build/release/fwassemble), BENCH_OUT, BENCH_MB, BENCH_DISK,
# BENCH_FILE, BENCH_RUNS, BENCH_DOC.
set -euo pipefail
cd "$(dirname "$0")/.."
. bench/lib.sh
cat "$disk" > /dev/null

best() { # best NAME ARGS...: best wall seconds and highest peak RSS (KiB) of $RUNS runs, stdout to /dev/null
    local name=$1; shift
    : > "$OUT/$name.runs"
    for _ in $(seq 1 "$RUNS"); do
        /usr/bin/time -f '%e %M' -o "$OUT/$name.one" "$bin" "$@" > /dev/null
        tail -n 1 "$OUT/$name.one" >> "$OUT/$name.runs"
    done
    awk 'NR == 1 || $1 < w { w = $1 } $2 > r { r = $2 } END { printf "%s %d\n", w, r }' "$OUT/$name.runs"
}

# The walk once, for the entry count and the largest file.
"$bin" find "$disk" --json > "$OUT/browse.find.json"
entries=$(wc -l < "$OUT/browse.find.json")
file=${BENCH_FILE:-$(python3 -c "
import json, sys
best = max((json.loads(l) for l in open(sys.argv[1])), key=lambda e: e['size'] if e['type'] == 'regular' else -1)
print(best['path'])" "$OUT/browse.find.json")}
size=$("$bin" stat "$disk" "$file" --json | python3 -c "import json, sys; print(json.load(sys.stdin)['size'])")

read -r t_cat rss_cat < <(best browse-cat cat "$disk" "$file")
read -r t_stat rss_stat < <(best browse-stat stat "$disk" "$file")
read -r t_find rss_find < <(best browse-find find "$disk")
read -r t_findj rss_findj < <(best browse-find-json find "$disk" --json)
mbps=$(python3 -c "print(round($size / 1e6 / max($t_cat, 0.01), 1))")

table="## $(date -u '+%Y-%m-%d %H:%M') UTC on $(nproc) cores: ls, cat, stat, find (bench/browse.sh)

Disk $(basename "$disk") ($(( $(stat -c %s "$disk") / 1048576 )) MiB), $entries entries in the booted namespace;
load average $(cut -d' ' -f1-3 /proc/loadavg). Each command opens the disk and builds the namespace itself.

| command | wall, best of $RUNS (s) | peak RSS (MiB) | notes |
|---|---|---|---|
| fwassemble cat $file > /dev/null | $t_cat | $(( rss_cat / 1024 )) | $size bytes, $mbps MB/s including start-up |
| fwassemble stat $file | $t_stat | $(( rss_stat / 1024 )) | one path resolved, no walk |
| fwassemble find (whole namespace) | $t_find | $(( rss_find / 1024 )) | $entries lines |
| fwassemble find --json | $t_findj | $(( rss_findj / 1024 )) | |
"
echo "$table"
[ "$DOC" = /dev/null ] || printf '\n%s' "$table" >> "$DOC"
