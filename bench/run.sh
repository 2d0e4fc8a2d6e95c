#!/usr/bin/env bash
# make bench: time `fwassemble assemble` against the privileged kernel pipeline on the same disk,
# best of 3 each, and each reader alone; append the table to docs/benchmarks.md.
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH=/opt/swift/usr/bin:$PATH
OUT=${BENCH_OUT:-bench/out}
MB=${BENCH_MB:-1500}
mkdir -p "$OUT"
disk=$OUT/haos-bench-$MB.img
[ -f "$disk" ] || bash bench/build-disk.sh "$disk" "$MB"
bin=.build/release/fwassemble
cores=$(nproc)

best() { # best TIMES_FILE: lowest of the recorded seconds
    sort -n "$1" | head -1
}
run3() { # run3 NAME CMD...: best of 3 wall seconds and peak RSS (KiB) of CMD
    local name=$1; shift
    : > "$OUT/$name.times"; : > "$OUT/$name.rss"
    for i in 1 2 3; do
        /usr/bin/time -f '%e %M' -o "$OUT/$name.one" bash -c "$*"
        awk '{print $1}' "$OUT/$name.one" >> "$OUT/$name.times"
        awk '{print $2}' "$OUT/$name.one" >> "$OUT/$name.rss"
    done
    echo "$(best "$OUT/$name.times") $(sort -n "$OUT/$name.rss" | tail -1)"
}

read -r t_gz rss_gz < <(run3 fwa-gzip "$bin assemble '$disk' -q -o '$OUT/bench.rootfs.tar.gz'")
out_size=$(stat -c %s "$OUT/bench.rootfs.tar.gz")
read -r t_none rss_none < <(run3 fwa-none "$bin assemble '$disk' -q --compression none -o - > /dev/null")
tar_bytes=$(python3 -c "import json,sys; print(json.load(open(sys.argv[1]))['tar_bytes'])" "$OUT/bench.rootfs.tar.gz.report.json")

t_kernel=n/a
if [ "$(id -u)" = 0 ] && grep -qw erofs /proc/filesystems; then
    mnt=$(mktemp -d); loop=$(losetup --show -f -P -r "$disk")
    cleanup() { umount -R "$mnt" 2>/dev/null || true; losetup -d "$loop" 2>/dev/null || true; rmdir "$mnt" 2>/dev/null || true; }
    trap cleanup EXIT
    mount -o ro "${loop}p2" "$mnt"; mount -o ro "${loop}p4" "$mnt/mnt/data"; mount -o ro "${loop}p3" "$mnt/mnt/overlay"
    mount --bind "$mnt/mnt/data/docker" "$mnt/var/lib/docker"
    # The bind-mounted duplicate of the data-root is excluded (fwassemble writes it as hardlinks).
    read -r t_kernel rss_kernel < <(run3 kernel "cd '$mnt' && tar --numeric-owner --xattrs --exclude=./var/lib/docker -cf - . 2>/dev/null | pigz -p $cores -6 > '$OUT/kernel.tar.gz'")
    cleanup; trap - EXIT
fi

readers=""
for img in images/out/fs-ext4.img images/out/fs-squashfs-gzip.img images/out/fs-squashfs-xz.img images/out/fs-squashfs-lzo.img \
           images/out/fs-squashfs-lz4.img images/out/fs-squashfs-zstd.img images/out/fs-erofs-lz4hc-big.img images/out/fs-fat32.img; do
    [ -f "$img" ] || continue
    read -r t _ < <(run3 "reader-$(basename "$img" .img)" "$bin extract '$img' --partition 1 -q --compression none -o - > /dev/null")
    readers+="| $(basename "$img") | $t |"$'\n'
done

ratio=n/a; [ "$t_kernel" != n/a ] && ratio=$(python3 -c "print(round($t_gz/$t_kernel, 2))")
speedup=$(python3 -c "print(round($t_gz/$t_none, 2))")
mbps=$(python3 -c "print(round($tar_bytes/1e6/$t_gz, 1))")
report=$(cat <<MD

## $(date -u +%Y-%m-%d) on $cores cores, data-root content about $MB MB

| run | best of 3 (s) | peak RSS (MiB) | notes |
|---|---|---|---|
| fwassemble assemble, gzip -6 | $t_gz | $((rss_gz / 1024)) | $mbps MB/s of uncompressed tar, output $((out_size / 1048576)) MiB |
| fwassemble assemble, --compression none to /dev/null | $t_none | $((rss_none / 1024)) | gzip path / uncompressed path = $speedup |
| kernel: loop mounts + tar --xattrs + pigz -6 | $t_kernel | ${rss_kernel:-n/a} | root only; the pipeline's tar and pigz RSS is pigz's |

Ratio fwassemble / kernel pipeline: **$ratio** (target <= 1.0).

| reader alone (extract, uncompressed tar to /dev/null) | best of 3 (s) |
|---|---|
$readers
MD
)
echo "$report"
echo "$report" >> docs/benchmarks.md
