#!/usr/bin/env bash
# Disks per minute of `fwassemble batch` (--jobs 1 and 2) and of fwassemble.batch on a Dask
# LocalCluster (1 and 2 worker processes), on a corpus of small test disks: the 8 disks below,
# each copied BENCH_COPIES times under its own name (so each copy is its own disk: hashed,
# assembled, written). The page cache is warmed first; each configuration runs once on a fresh
# output folder. Appends a table to docs/benchmarks.md (BENCH_DOC=/dev/null to only print).
#
# Environment: BIN (fwassemble, default python/fwassemble/_native/fwassemble: the static release
# build of `make native`), PYTHON (with dask.distributed, default .venv-test/bin/python),
# FWA_IMAGES (default images/out), BENCH_COPIES (default 3), BENCH_OUT, BENCH_DOC.
set -euo pipefail
cd "$(dirname "$0")/.."
bin=$(realpath "${BIN:-python/fwassemble/_native/fwassemble}")
py=${PYTHON:-.venv-test/bin/python}
images=${FWA_IMAGES:-images/out}
copies=${BENCH_COPIES:-3}
out=${BENCH_OUT:-bench/out}/batch
doc=${BENCH_DOC:-docs/benchmarks.md}
disks=(sample.img openwrt.img haos-gpt.img rpi-mbr.img mender.img formats.qcow2 haos-full.img debian-gpt.img)

rm -rf "$out"
mkdir -p "$out/in"
for c in $(seq 1 "$copies"); do
    for d in "${disks[@]}"; do
        # Copies, not links: symlinks to one file are one disk, and hardlinks would reach into
        # images/out (which may be another checkout's).
        cp --reflink=auto --sparse=always "$images/$d" "$out/in/c$c-$d"
    done
done
n=$(( ${#disks[@]} * copies ))
bytes=$(du -L -c -b "${disks[@]/#/$images/}" | tail -1 | cut -f1)
cat "$out"/in/* > /dev/null
load_before=$(cut -d' ' -f1-3 /proc/loadavg)

rate() { # rate SECONDS: disks per minute
    python3 -c "import sys; print('%.0f' % ($n * 60 / float(sys.argv[1])))" "$1"
}
seconds() { # seconds CMD...: wall seconds of CMD
    local start end
    start=$(date +%s.%N)
    "$@" > /dev/null 2>&1
    end=$(date +%s.%N)
    python3 -c "import sys; print('%.2f' % (float(sys.argv[2]) - float(sys.argv[1])))" "$start" "$end"
}
check() { # check RESULTS: every disk ok
    python3 -c "import json, sys; r = [json.loads(l) for l in open(sys.argv[1])]; \
        assert len(r) == $n and all(x['status'] == 'ok' for x in r), 'not every disk succeeded'" "$1"
}

declare -A result
for jobs in 1 2; do
    t=$(seconds "$bin" batch "$out/in" -o "$out/cli-$jobs" --jobs "$jobs" --quiet)
    check "$out/cli-$jobs/results.jsonl"
    result[cli-$jobs]="$t $(rate "$t")"
done
for workers in 1 2; do
    # The cluster starts before the clock: its start-up is not part of the rate.
    t=$(PYTHONPATH=$PWD/python${PYTHONPATH:+:$PYTHONPATH} FWASSEMBLE_CLI=$bin "$py" bench/batch_dask.py \
        "$out/in" "$out/dask-$workers" "$workers" 2>/dev/null)
    check "$out/dask-$workers/results.jsonl"
    result[dask-$workers]="$t $(rate "$t")"
done
load_after=$(cut -d' ' -f1-3 /proc/loadavg)

table=$(cat <<EOF2

### Batches: disks per minute ($(date -u +%Y-%m-%d), $(nproc) cores, load average $load_before before, $load_after after)

$n disks ($copies copies of ${#disks[*]} small test disks: ${disks[*]}; $((bytes >> 20)) MiB per copy of the set), each
hashed, assembled (gzip -6, all cores) in its own process and hashed again; binary: \`$(basename "$bin")\`
(static release build). Dask rates are timed from a running cluster.

| runner | workers | seconds | disks per minute |
|---|---|---|---|
| \`fwassemble batch --jobs 1\` | 1 process | ${result[cli-1]% *} | ${result[cli-1]#* } |
| \`fwassemble batch --jobs 2\` | 2 processes | ${result[cli-2]% *} | ${result[cli-2]#* } |
| \`fwassemble.batch.run\`, LocalCluster | 1 worker | ${result[dask-1]% *} | ${result[dask-1]#* } |
| \`fwassemble.batch.run\`, LocalCluster | 2 workers | ${result[dask-2]% *} | ${result[dask-2]#* } |
EOF2
)
echo "$table"
echo "$table" >> "$doc"
