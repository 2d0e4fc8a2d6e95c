#!/usr/bin/env bash
# Fuzz/run.sh SECONDS TARGET...: builds the fuzzers (Fuzz/build.sh), makes the seed corpora
# (Fuzz/seeds.sh), runs each target for SECONDS and copies every crashing input (crash-*,
# timeout-*, oom-*, leak-*) into Tests/Corpus/<target>/. Exits 1 when a target found something.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
seconds=${1:?usage: Fuzz/run.sh SECONDS TARGET...}; shift
targets=("$@")
bash Fuzz/build.sh "${targets[@]}"
work=.build-fuzz/work
mkdir -p "$work"
bash Fuzz/seeds.sh "$work/seeds"
found=0
for t in "${targets[@]}"; do
    mkdir -p "$work/corpus/$t" "$work/artifacts/$t"
    echo "fuzzing $t for $seconds s"
    # -rss_limit_mb: 2 GiB (ASan's shadow memory counts); -timeout: one input over 25 s is a hang.
    set +e
    # -max_len: 256 KiB, 1 MiB for the tar targets (their gzip seeds: 10,000-deep and 100,000-wide trees)
    # and the store targets (a tar of a whole store: meta.db alone is 144 KiB).
    # For the tar targets, no allocation stacks and no leak pass (ASan's bookkeeping of the many small
    # allocations of an 8 MiB tree was most of the time): one seed then runs in about 3 s.
    max_len=262144
    extra=()
    case "$t" in
        tar|ext4-writer) max_len=1048576; extra=(-detect_leaks=0) ;;
        containerd-store|podman-store) max_len=1048576 ;;
        podman-db) max_len=524288 ;;
        btrfs) max_len=1048576 ;;   # a sparse image: a btrfs's non-zero blocks (Fuzz/seeds.sh)
        f2fs) max_len=524288 ;;   # a sparse image (Fuzz/sparse-seed.py): the seed is about 50 KiB
    esac
    ASAN_OPTIONS=${ASAN_OPTIONS:-malloc_context_size=0} \
    ".build-fuzz/$t" "$work/corpus/$t" "$work/seeds/$t" -max_total_time="$seconds" -timeout="${FUZZ_TIMEOUT:-25}" -rss_limit_mb=2048 \
        -max_len="$max_len" "${extra[@]}" -artifact_prefix="$work/artifacts/$t/" -print_final_stats=1 > "$work/$t.log" 2>&1
    status=$?
    set -e
    grep -E "^stat::number_of_executed_units|^stat::peak_rss_mb" "$work/$t.log" | sed "s/^/  $t /" || true
    for a in "$work/artifacts/$t"/*; do
        [ -f "$a" ] || continue
        mkdir -p "Tests/Corpus/$t"
        cp "$a" "Tests/Corpus/$t/$(basename "$a")"
        echo "  $t: kept Tests/Corpus/$t/$(basename "$a") (log: $work/$t.log)"
        found=1
    done
    [ $status -eq 0 ] || { echo "  $t exited $status (log: $work/$t.log)"; found=1; }
done
exit $found
