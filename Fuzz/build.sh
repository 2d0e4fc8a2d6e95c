#!/usr/bin/env bash
# Fuzz/build.sh [TARGET...]: builds one libFuzzer binary per target into .build-fuzz/NAME
# (all of FuzzEntries.targets when none is given). SwiftPM cannot link a fuzzer, so the project's
# modules are compiled by SwiftPM with coverage and ASan (-sanitize=fuzzer,address, no linking:
# --target only) and each binary is linked by swiftc from Fuzz/Entry.swift,
# Tests/HostileTests/FuzzEntries.swift and those objects. Seeds: Fuzz/seeds.sh.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
export PATH=/opt/swift/usr/bin:$PATH
scratch=.build-fuzz
targets=("$@")
[ ${#targets[@]} -gt 0 ] || targets=(partition-table squashfs erofs fat fstab unit-file boot-environment bolt tar jbd2 ext4-writer containerd-store podman-store podman-db layer-export btrfs f2fs uci-fstab jffs2 ubi ubifs)
modules=(DiskImage PartitionTable Codecs DiskFormats FileSystems FileSystemExt4 FileSystemSquashFS FileSystemEROFS FileSystemFAT FileSystemBtrfs FileSystemF2FS FileSystemJFFS2 FileSystemUBIFS Assembly MountPlan BoltDB SQLiteDB FileSystemTar Ext4Image DockerState)
sanitize=(-Xswiftc -sanitize=fuzzer,address -Xcc -fsanitize=fuzzer-no-link,address)
for m in "${modules[@]}"; do
    swift build --scratch-path "$scratch" --target "$m" "${sanitize[@]}" 2>&1 | grep -E "error|Compiling|Build complete" | grep -v "^\[" || true
done
bin=$(swift build --scratch-path "$scratch" --show-bin-path "${sanitize[@]}")
objects=()
for m in "${modules[@]}"; do
    for o in "$bin/$m.build"/*.o; do objects+=("$o"); done
done
cflags=()
for c in Sources/C*/module.modulemap; do cflags+=(-Xcc "-fmodule-map-file=$root/$c" -I "$(dirname "$c")"); done
libs=()
for pc in blkid ext2fs com_err zlib liblz4 libzstd liblzma lzo2 sqlite3; do
    for f in $(pkg-config --libs --cflags "$pc"); do
        case "$f" in -I*) libs+=(-Xcc "$f") ;; *) libs+=("$f") ;; esac
    done
done
mkdir -p "$scratch/fuzz-src"
for t in "${targets[@]}"; do
    printf 'let fuzzTarget = "%s"\n' "$t" > "$scratch/fuzz-src/target-$t.swift"
    echo "linking $scratch/$t"
    swiftc -sanitize=fuzzer,address -parse-as-library -g -Onone -module-name Fuzz \
        -I "$bin/Modules" "${cflags[@]}" \
        Fuzz/Entry.swift Tests/HostileTests/FuzzEntries.swift "$scratch/fuzz-src/target-$t.swift" \
        "${objects[@]}" "${libs[@]}" -o "$scratch/$t" 2>&1 | grep -v "ld.gold: warning: Cannot export local symbol" || true
    [ -x "$scratch/$t" ] || { echo "could not link $scratch/$t" >&2; exit 1; }
done
