#!/usr/bin/env bash
# make bench: time `fwassemble assemble` against the privileged kernel pipeline on the same disk,
# best of 3 each, and each reader alone; append the table to docs/benchmarks.md.
#
# Environment: BIN (the fwassemble binary, default .build/release/fwassemble), BENCH_OUT (cache
# directory, default bench/out), BENCH_MB (data-root content, default 1500), BENCH_RUNS (default 3),
# BENCH_READERS=0 skips the per-reader table, BENCH_DOC (default docs/benchmarks.md; /dev/null to
# only print).
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH=/opt/swift/usr/bin:$PATH
OUT=${BENCH_OUT:-bench/out}
MB=${BENCH_MB:-1500}
RUNS=${BENCH_RUNS:-3}
DOC=${BENCH_DOC:-docs/benchmarks.md}
bin=${BIN:-.build/release/fwassemble}
[ -x "$bin" ] || { echo "no fwassemble binary at $bin (make release, or set BIN)" >&2; exit 1; }
mkdir -p "$OUT"
disk=$OUT/haos-bench-$MB.img
[ -f "$disk" ] || bash bench/build-disk.sh "$disk" "$MB"
cores=$(nproc)
load_before=$(cut -d' ' -f1-3 /proc/loadavg)

run3() { # run3 NAME CMD: best of $RUNS wall seconds, and the highest peak RSS (KiB) of CMD
    local name=$1; shift
    : > "$OUT/$name.times"; : > "$OUT/$name.rss"
    for _ in $(seq 1 "$RUNS"); do
        /usr/bin/time -f '%e %M' -o "$OUT/$name.one" bash -c "set -o pipefail; $*"
        awk '{print $1}' "$OUT/$name.one" >> "$OUT/$name.times"
        awk '{print $2}' "$OUT/$name.one" >> "$OUT/$name.rss"
    done
    echo "$(sort -n "$OUT/$name.times" | head -1) $(sort -n "$OUT/$name.rss" | tail -1)"
}
mib() { echo $(( $1 / 1024 )); }

# Warm the page cache so every run reads the disk from memory (as the kernel pipeline does).
cat "$disk" > /dev/null

read -r t_gz rss_gz < <(run3 fwa-gzip "'$bin' assemble '$disk' -q -o '$OUT/bench.rootfs.tar.gz'")
out_size=$(stat -c %s "$OUT/bench.rootfs.tar.gz")
read -r t_none rss_none < <(run3 fwa-none "'$bin' assemble '$disk' -q --compression none -o - > /dev/null")
tar_bytes=$(python3 -c "import json,sys; print(json.load(open(sys.argv[1]))['tar_bytes'])" "$OUT/bench.rootfs.tar.gz.report.json")
members=$(python3 -c "import json,sys; print(json.load(open(sys.argv[1]))['members'])" "$OUT/bench.rootfs.tar.gz.report.json")

# The privileged pipeline: the kernel's drivers through loop mounts, GNU tar, pigz on all cores.
# tar's output goes through a pipe (tar skips reading file contents when it writes to /dev/null).
t_kernel=n/a; rss_kernel=; kernel_size=; t_ktar=n/a
if [ "$(id -u)" = 0 ] && grep -qw erofs /proc/filesystems; then
    mnt=$(mktemp -d)
    # One loop device per partition (offset, size limit): partition nodes need udev, which a
    # container may not have. mount's loop devices are detached on umount (autoclear).
    cleanup() { umount -R "$mnt" 2>/dev/null || true; rmdir "$mnt" 2>/dev/null || true; }
    trap cleanup EXIT
    mount_part() { # mount_part N DIR
        read -r start sectors < <(partx -g -o START,SECTORS -n "$1" "$disk")
        mount -o "ro,loop,offset=$((start * 512)),sizelimit=$((sectors * 512))" "$disk" "$2"
    }
    mount_part 2 "$mnt"; mount_part 4 "$mnt/mnt/data"; mount_part 3 "$mnt/mnt/overlay"
    mount --bind "$mnt/mnt/data/docker" "$mnt/var/lib/docker"
    # The bind-mounted duplicate of the data-root is excluded (fwassemble writes it as hardlinks).
    read -r t_kernel rss_kernel < <(run3 kernel "cd '$mnt' && tar --numeric-owner --xattrs --exclude=./var/lib/docker -cf - . 2>/dev/null | pigz -p $cores -6 > '$OUT/kernel.tar.gz'")
    kernel_size=$(stat -c %s "$OUT/kernel.tar.gz")
    read -r t_ktar _ < <(run3 kernel-tar "cd '$mnt' && tar --numeric-owner --xattrs --exclude=./var/lib/docker -cf - . 2>/dev/null | cat > /dev/null")
    cleanup; trap - EXIT
fi

# Each reader alone on the same content (bench/build-readers.sh), fwassemble extract against
# the kernel's driver through tar where it can mount it.
readers=""
if [ "${BENCH_READERS:-1}" != 0 ]; then
    bash bench/build-readers.sh "$OUT/readers"
    for img in "$OUT"/readers/*.img; do
        name=$(basename "$img" .img)
        read -r t rss < <(run3 "reader-$name" "'$bin' extract '$img' -q --compression none -o - > /dev/null")
        size=$(python3 -c "import sys, os; print(os.path.getsize(sys.argv[1]) // 1048576)" "$img")
        kt=n/a
        fstype=$(case $name in ext4) echo ext4;; squashfs-*) echo squashfs;; erofs-*) echo erofs;; *) echo;; esac)
        if [ -n "$fstype" ] && [ "$(id -u)" = 0 ] && grep -qw "$fstype" /proc/filesystems; then
            m=$(mktemp -d)
            if mount -o loop,ro -t "$fstype" "$img" "$m" 2>/dev/null; then
                read -r kt _ < <(run3 "kreader-$name" "cd '$m' && tar --numeric-owner --xattrs -cf - . 2>/dev/null | cat > /dev/null") || kt=n/a
                umount "$m"
            fi
            rmdir "$m"
        fi
        readers+="| $name | $size | $t | $(mib "$rss") | $kt |"$'\n'
    done
fi

load_after=$(cut -d' ' -f1-3 /proc/loadavg)
ratio=n/a; [ "$t_kernel" != n/a ] && ratio=$(python3 -c "print(round($t_gz/$t_kernel, 2))")
speedup=$(python3 -c "print(round($t_gz/$t_none, 2))")
mbps=$(python3 -c "print(round($tar_bytes/1e6/$t_gz, 1))")
mbps_none=$(python3 -c "print(round($tar_bytes/1e6/$t_none, 1))")
kernel_note="root only"
[ -n "$kernel_size" ] && kernel_note="output $((kernel_size / 1048576)) MiB; GNU tar alone (to a pipe): $t_ktar s"
report=$(cat <<MD

## $(date -u '+%Y-%m-%d %H:%M UTC') on $cores cores, data-root content about $MB MB

Disk $(basename "$disk") ($(( $(stat -c %s "$disk") / 1048576 )) MiB), $members archive members,
$((tar_bytes / 1048576)) MiB of uncompressed tar. Load average before / after: $load_before / $load_after.

| run | best of $RUNS (s) | peak RSS (MiB) | notes |
|---|---|---|---|
| fwassemble assemble, gzip -6 | $t_gz | $(mib "$rss_gz") | $mbps MB/s of uncompressed tar, output $((out_size / 1048576)) MiB |
| fwassemble assemble, --compression none to /dev/null | $t_none | $(mib "$rss_none") | $mbps_none MB/s; gzip path / uncompressed path = $speedup (target >= 3) |
| kernel: loop mounts + tar --xattrs + pigz -p $cores -6 | $t_kernel | ${rss_kernel:+$(mib "$rss_kernel")} | $kernel_note |

Ratio fwassemble / kernel pipeline: **$ratio** (target <= 1.0).
MD
)
if [ -n "$readers" ]; then
    report+=$(cat <<MD


| reader alone (bench/build-readers.sh image) | image MiB | fwassemble extract, uncompressed tar to /dev/null, best of $RUNS (s) | peak RSS (MiB) | kernel mount + GNU tar to a pipe (s) |
|---|---|---|---|---|
$readers
MD
)
fi
echo "$report"
echo "$report" >> "$DOC"
