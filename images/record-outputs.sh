#!/usr/bin/env bash
# images/record-outputs.sh BIN IMAGES OUT: what the fwassemble binary BIN produces on every test
# disk in IMAGES, as one line per output: "<sha256>  <disk> <command>" (plus exit status and the
# hash of stderr for commands that fail). Run before and after a change that must not change
# behaviour and diff the two files (`make outputs` writes outputs.sha256).
#
# Recorded per disk: inspect/plan/docker --json (also plain text), assemble with each option set
# (gzip, none, zstd, --rehost, --no-devices, 1 and 3 threads) and its report, extract of every
# partition, every Docker container and image export. Outputs are written in a scratch folder,
# always under the same names, so reports that name their output compare equal.
set -uo pipefail
bin=$(cd "$(dirname "$1")" && pwd)/$(basename "$1")
images=$(cd "$2" && pwd)
out=$3
scratch=$(mktemp -d /tmp/fwa-outputs.XXXXXX)
trap 'rm -rf "$scratch"' EXIT
: > "$out"
out=$(cd "$(dirname "$out")" && pwd)/$(basename "$out")
cd "$scratch"

# One command: its stdout and any files it wrote (named after it) hashed, or its exit status and
# stderr when it fails.
record() {
    local disk=$1; shift
    local label=$1; shift
    rm -rf "$scratch/o"; mkdir "$scratch/o"
    if "$bin" "$@" > "$scratch/o/stdout" 2> "$scratch/stderr"; then
        for f in "$scratch"/o/*; do
            [ -s "$f" ] || [ "$(basename "$f")" != stdout ] || continue
            echo "$(sha256sum < "$f" | cut -c1-64)  $disk $label $(basename "$f")" >> "$out"
        done
    else
        echo "exit=$? stderr=$(sha256sum < "$scratch/stderr" | cut -c1-16)  $disk $label: $(head -c 300 "$scratch/stderr" | tr '\n' ' ')" >> "$out"
    fi
}

for img in "$images"/*.img "$images"/*.qcow2 "$images"/*.vmdk; do
    [ -f "$img" ] || continue
    d=$(basename "$img")
    ln -sf "$img" "$scratch/$d"
    record "$d" inspect inspect "$d" --json
    record "$d" inspect-text inspect "$d"
    record "$d" plan plan "$d" --json
    record "$d" plan-text plan "$d"
    record "$d" docker docker "$d" --json
    case "$d" in *.qcow2|*.vmdk) continue ;; esac
    record "$d" assemble assemble "$d" -q -o o/a.tar.gz --threads 2
    record "$d" assemble-t1 assemble "$d" -q -o o/a.tar.gz --threads 1
    record "$d" assemble-none assemble "$d" -q -o o/a.tar --compression none
    record "$d" assemble-zstd assemble "$d" -q -o o/a.tar.zst --compression zstd
    record "$d" assemble-rehost assemble "$d" -q -o o/a.tar --compression none --rehost
    record "$d" assemble-nodev assemble "$d" -q -o o/a.tar --compression none --no-devices
    # Every partition by number, as inspect lists it.
    for n in $("$bin" inspect "$d" --json 2>/dev/null | python3 -c '
import json, sys
for p in json.load(sys.stdin).get("partitions", []):
    print(p["index"])' 2>/dev/null); do
        record "$d" "extract-p$n" extract "$d" -q --partition "$n" -o o/p.tar
    done
    "$bin" docker "$d" --json 2>/dev/null > "$scratch/docker.json" || continue
    python3 - "$scratch/docker.json" > "$scratch/exports" <<'PY'
import json, sys
doc = json.load(open(sys.argv[1]))
for root in doc.get("data_roots", doc.get("dataRoots", [])):
    for c in root.get("containers", []):
        print("container", c["id"])
    for i in root.get("images", []):
        print("image", i["id"])
PY
    while read -r kind id; do
        if [ "$kind" = container ]; then
            record "$d" "export-${id:0:12}" docker "$d" --export "$id" -o o/e.tar --compression none
        else
            record "$d" "export-image-${id:7:12}" docker "$d" --export-image "$id" -o o/e.tar --compression none
        fi
    done < "$scratch/exports"
done
echo "$(wc -l < "$out") outputs recorded in $out"
