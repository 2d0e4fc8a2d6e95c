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
. bench/lib.sh
cores=$(nproc)
load_before=$(cut -d' ' -f1-3 /proc/loadavg)

run3() { # run3 NAME CMD: best of $RUNS wall seconds, the highest peak RSS (KiB) of CMD, and the
          # lowest CPU seconds (user + system, all threads and processes) of the runs
    local name=$1; shift
    : > "$OUT/$name.runs"
    for _ in $(seq 1 "$RUNS"); do
        /usr/bin/time -f '%e %M %U %S' -o "$OUT/$name.one" bash -c "set -o pipefail; $*"
        tail -n 1 "$OUT/$name.one" >> "$OUT/$name.runs"
    done
    awk 'NR == 1 || $1 < w { w = $1 } $2 > r { r = $2 } NR == 1 || $3 + $4 < c { c = $3 + $4 }
         END { printf "%s %d %.2f\n", w, r, c }' "$OUT/$name.runs"
}
mib() { echo $(( $1 / 1024 )); }

# Warm the page cache so every run reads the disk from memory (as the kernel pipeline does).
cat "$disk" > /dev/null

read -r t_gz rss_gz cpu_gz < <(run3 fwa-gzip "'$bin' assemble '$disk' -q -o '$OUT/bench.rootfs.tar.gz'")
out_size=$(stat -c %s "$OUT/bench.rootfs.tar.gz")
read -r t_zst rss_zst cpu_zst < <(run3 fwa-zstd "'$bin' assemble '$disk' -q --compression zstd -o '$OUT/bench.rootfs.tar.zst'")
zst_size=$(stat -c %s "$OUT/bench.rootfs.tar.zst")
read -r t_none rss_none cpu_none < <(run3 fwa-none "'$bin' assemble '$disk' -q --compression none -o - > /dev/null")
tar_bytes=$(python3 -c "import json,sys; print(json.load(open(sys.argv[1]))['tar_bytes'])" "$OUT/bench.rootfs.tar.gz.report.json")
members=$(python3 -c "import json,sys; print(json.load(open(sys.argv[1]))['members'])" "$OUT/bench.rootfs.tar.gz.report.json")

# The privileged pipeline: the kernel's drivers through loop mounts, GNU tar, pigz on all cores.
# tar's output goes through a pipe (tar skips reading file contents when it writes to /dev/null).
t_kernel=n/a; rss_kernel=; cpu_kernel=n/a; kernel_size=; t_ktar=n/a; cpu_ktar=n/a; t_kzst=n/a; rss_kzst=; cpu_kzst=n/a; kzst_size=
if [ "$(id -u)" = 0 ] && grep -qw erofs /proc/filesystems; then
    read -r t_kernel rss_kernel cpu_kernel < <(run3 kernel "bash bench/kernel-pipeline.sh '$disk' '$OUT/kernel.tar.gz'")
    kernel_size=$(stat -c %s "$OUT/kernel.tar.gz")
    read -r t_ktar _ cpu_ktar < <(run3 kernel-tar "bash bench/kernel-pipeline.sh '$disk' /dev/null cat")
    read -r t_kzst rss_kzst cpu_kzst < <(run3 kernel-zstd "bash bench/kernel-pipeline.sh '$disk' '$OUT/kernel.tar.zst' zstd -q -T0 -3")
    kzst_size=$(stat -c %s "$OUT/kernel.tar.zst")
fi

# Container formats (issue 10): the same disk as qcow2 and VMDK (monolithicSparse), read through
# fwassemble's DiskFormats layer on the uncompressed path, where reading is all the work.
formats=""
if [ "${BENCH_FORMATS:-1}" != 0 ] && command -v qemu-img >/dev/null; then
    for fmt in qcow2 vmdk; do
        conv=$OUT/haos-bench-$MB.$fmt
        [ -f "$conv" ] || qemu-img convert -O "$fmt" "$disk" "$conv"
        read -r t_fmt rss_fmt cpu_fmt < <(run3 "fwa-none-$fmt" "'$bin' assemble '$conv' -q --compression none -o - > /dev/null")
        overhead=$(python3 -c "print(round(100 * ($t_fmt / $t_none - 1), 1))")
        formats+="| $fmt | $t_fmt | $cpu_fmt | $(mib "$rss_fmt") | ${overhead} % |"$'\n'
    done
fi

# Each reader alone on the same content (bench/build-readers.sh), fwassemble extract against
# the kernel's driver through tar where it can mount it.
readers=""
if [ "${BENCH_READERS:-1}" != 0 ]; then
    bash bench/build-readers.sh "$OUT/readers"
    for img in "$OUT"/readers/*.img; do
        name=$(basename "$img" .img)
        read -r t rss cpu < <(run3 "reader-$name" "'$bin' extract '$img' --partition 1 -q --compression none -o - > /dev/null")
        size=$(python3 -c "import sys, os; print(os.path.getsize(sys.argv[1]) // 1048576)" "$img")
        kt=n/a; kcpu=n/a
        fstype=$(case $name in ext4) echo ext4;; squashfs-*) echo squashfs;; erofs-*) echo erofs;; *) echo;; esac)
        if [ -n "$fstype" ] && [ "$(id -u)" = 0 ] && grep -qw "$fstype" /proc/filesystems; then
            # Mounted afresh in each run, so no run reads the previous one's decompressed pages.
            m=$(mktemp -d)
            read -r kt _ kcpu < <(run3 "kreader-$name" "mount -o loop,ro -t $fstype '$img' '$m' && (cd '$m' && tar --numeric-owner --xattrs -cf - . 2>/dev/null | cat > /dev/null); umount '$m'") || { kt=n/a; kcpu=n/a; }
            rmdir "$m"
        fi
        readers+="| $name | $size | $t | $cpu | $(mib "$rss") | $kt | $kcpu |"$'\n'
    done
fi

# --format ext4 (issue 18) against the same content through tar and `mke2fs -d` (e2fsprogs >=
# 1.47.1 reads a tar; images/fetch-e2fsprogs.sh unpacks one beside the system's): both with the
# same block and inode counts, 256 MiB of padding instead of penguin's 4 GiB (a sparse file either way).
ext4_rows=""
if [ "${BENCH_EXT4:-1}" != 0 ]; then
    read -r t_x4 rss_x4 cpu_x4 < <(run3 fwa-ext4 "'$bin' assemble '$disk' -q --format ext4 --padding 256 -o '$OUT/bench.ext4'")
    geometry=$(python3 -c "import json,sys; e=json.load(open(sys.argv[1]))['ext4']; print(e['blocks'], e['inodes'])" "$OUT/bench.ext4.report.json")
    ext4_rows+="| fwassemble assemble --format ext4 | $t_x4 | $cpu_x4 | $(mib "$rss_x4") | $geometry (blocks, inodes) |"$'\n'
    e2=.build-e2fsprogs
    if bash images/fetch-e2fsprogs.sh "$e2" >/dev/null 2>&1; then
        read -r blocks inodes <<<"$geometry"
        "$bin" assemble "$disk" -q --compression none -o "$OUT/bench.tar"
        read -r t_mk rss_mk cpu_mk < <(run3 mke2fs-d "rm -f '$OUT/mke2fs.ext4'; LD_LIBRARY_PATH='$e2/root/lib/x86_64-linux-gnu' '$e2/root/sbin/mke2fs' -q -F -t ext4 -b 4096 -N $inodes -d '$OUT/bench.tar' '$OUT/mke2fs.ext4' $blocks")
        ext4_rows+="| tar (fwassemble --compression none, $t_none s) then mke2fs -d | $t_mk (+ $t_none) | $cpu_mk (+ $cpu_none) | $(mib "$rss_mk") | same blocks and inodes |"$'\n'
        rm -f "$OUT/bench.tar" "$OUT/mke2fs.ext4"
    fi
    rm -f "$OUT/bench.ext4"
fi

load_after=$(cut -d' ' -f1-3 /proc/loadavg)
ratio=n/a; cpu_ratio=n/a; size_ratio=n/a; zratio=n/a; zcpu_ratio=n/a; zsize_ratio=n/a
if [ "$t_kernel" != n/a ]; then
    ratio=$(python3 -c "print(round($t_gz/$t_kernel, 2))")
    cpu_ratio=$(python3 -c "print(round($cpu_gz/$cpu_kernel, 2))")
    size_ratio=$(python3 -c "print(round($out_size/$kernel_size, 3))")
    zratio=$(python3 -c "print(round($t_zst/$t_kzst, 2))")
    zcpu_ratio=$(python3 -c "print(round($cpu_zst/$cpu_kzst, 2))")
    zsize_ratio=$(python3 -c "print(round($zst_size/$kzst_size, 3))")
fi
speedup=$(python3 -c "print(round($t_gz/$t_none, 2))")
mbps=$(python3 -c "print(round($tar_bytes/1e6/$t_gz, 1))")
mbps_none=$(python3 -c "print(round($tar_bytes/1e6/$t_none, 1))")
kernel_note="root only"
[ -n "$kernel_size" ] && kernel_note="output $((kernel_size / 1048576)) MiB; GNU tar alone (to a pipe): $t_ktar s wall, $cpu_ktar s CPU"
report=$(cat <<MD

## $(date -u '+%Y-%m-%d %H:%M UTC') on $cores cores, data-root content about $MB MB

Disk $(basename "$disk") ($(( $(stat -c %s "$disk") / 1048576 )) MiB), $members archive members,
$((tar_bytes / 1048576)) MiB of uncompressed tar. Load average before / after: $load_before / $load_after.

| run | wall, best of $RUNS (s) | CPU, user + system (s) | peak RSS (MiB) | notes |
|---|---|---|---|---|
| fwassemble assemble, gzip -6 | $t_gz | $cpu_gz | $(mib "$rss_gz") | $mbps MB/s of uncompressed tar, output $((out_size / 1048576)) MiB |
| fwassemble assemble, --compression none to /dev/null | $t_none | $cpu_none | $(mib "$rss_none") | $mbps_none MB/s; gzip path / uncompressed path = $speedup (target >= 3) |
| kernel: loop mounts + tar --xattrs + pigz -p $cores -6 | $t_kernel | $cpu_kernel | ${rss_kernel:+$(mib "$rss_kernel")} | $kernel_note |
| fwassemble assemble, --compression zstd (level 3) | $t_zst | $cpu_zst | $(mib "$rss_zst") | output $((zst_size / 1048576)) MiB |
| kernel: loop mounts + tar --xattrs + zstd -T0 -3 | $t_kzst | $cpu_kzst | ${rss_kzst:+$(mib "$rss_kzst")} | ${kzst_size:+output $((kzst_size / 1048576)) MiB} |

Ratio fwassemble / kernel pipeline at gzip -6: **$ratio** wall (target <= 0.5 on a quiet machine,
<= 0.7 at load ~3), $cpu_ratio in CPU seconds (less sensitive to the other load on the machine);
output size fwassemble / pigz -6: $size_ratio (target <= 1.02). zstd -3: $zratio wall, $zcpu_ratio CPU,
output size $zsize_ratio.
MD
)
if [ -n "$readers" ]; then
    report+=$(cat <<MD


| reader alone (bench/build-readers.sh image) | image MiB | fwassemble extract, uncompressed tar to /dev/null: wall (s) | CPU (s) | peak RSS (MiB) | kernel mount + GNU tar to a pipe: wall (s) | CPU (s) |
|---|---|---|---|---|---|---|
$readers
MD
)
fi
if [ -n "$ext4_rows" ]; then
    report+=$(cat <<MD


| ext4 image of the booted namespace | wall, best of $RUNS (s) | CPU (s) | peak RSS (MiB) | notes |
|---|---|---|---|---|
$ext4_rows
MD
)
fi
if [ -n "$formats" ]; then
    report+=$(cat <<MD


| same disk as (assemble --compression none to /dev/null) | wall (s) | CPU (s) | peak RSS (MiB) | time over raw ($t_none s) |
|---|---|---|---|---|
$formats
MD
)
fi
echo "$report"
echo "$report" >> "$DOC"

# Batches (issue 17): disks per minute of `fwassemble batch --jobs 1/2` and of fwassemble.batch on
# a LocalCluster of 1 and 2 workers, on small test disks (bench/batch.sh; BENCH_BATCH=0 skips it).
if [ "${BENCH_BATCH:-1}" != 0 ]; then
    BIN=$bin BENCH_DOC=$DOC bash bench/batch.sh
fi
