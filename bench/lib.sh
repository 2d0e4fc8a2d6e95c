# bench/lib.sh: the settings bench/run.sh and bench/browse.sh share (sourced from the repository
# root): BENCH_OUT (cache directory, default bench/out), BENCH_MB (the bench disk's data-root
# content, default 1500), BENCH_RUNS (default 3), BENCH_DOC (default docs/benchmarks.md; /dev/null
# to only print), BIN (default .build/release/fwassemble), BENCH_DISK (default the bench disk
# bench/out/haos-bench-$BENCH_MB.img, built by bench/build-disk.sh when missing).
OUT=${BENCH_OUT:-bench/out}
MB=${BENCH_MB:-1500}
RUNS=${BENCH_RUNS:-3}
DOC=${BENCH_DOC:-docs/benchmarks.md}
bin=${BIN:-.build/release/fwassemble}
[ -x "$bin" ] || { echo "no fwassemble binary at $bin (make release, or set BIN)" >&2; exit 1; }
mkdir -p "$OUT"
disk=${BENCH_DISK:-$OUT/haos-bench-$MB.img}
[ -f "$disk" ] || bash bench/build-disk.sh "$disk" "$MB"
