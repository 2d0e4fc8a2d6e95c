# Shared by the disk recipes in images/disks/ (sourced; the recipe runs in a scratch dir $WORK and
# writes its result into $OUT).
set -euo pipefail
IMAGES_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
source "$IMAGES_DIR/tree.sh"
# Reproducible mkfs: fixed timestamps where the tools honour it.
export SOURCE_DATE_EPOCH=1700000000

# --- partition-table helpers (parts) ---------------------------------------------------------
# put_fs DISK FSIMG START_SECTOR [SECTOR_SIZE]: copy a filesystem image into a disk at a sector,
# keeping the disk sparse.
put_fs() {
    local disk=$1 fs=$2 start=$3 ss=${4:-512}
    dd if="$fs" of="$disk" bs="$ss" seek="$start" conv=notrunc,sparse status=none
}

# minimal_root DIR: the small root tree the partition-table disks carry for now.
minimal_root() {
    local d=$1
    mkdir -p "$d/etc" "$d/usr/lib" "$d/bin"
    printf 'NAME="Test OS"\nID=testos\nVERSION_ID=1.0\n' > "$d/usr/lib/os-release"
    ln -sf ../usr/lib/os-release "$d/etc/os-release"
    printf 'testhost\n' > "$d/etc/hostname"
}

# make_haos_gpt DISK: a HAOS-style GPT disk (generic x86-64 layout, sizes scaled down) with the
# eight partitions of the field guide, their GPT names, fixed partition UUIDs and filesystems.
make_haos_gpt() {
    local disk=$1 w; w=$(mktemp -d "$PWD/haos.XXXXXX")
    rm -f "$disk"; truncate -s 128M "$disk"
    sgdisk -Z "$disk" >/dev/null 2>&1 || true
    sgdisk -U 1e4a3d2c-0000-4a5b-9c8d-123456789abc \
        -n 1:2048:+32M  -t 1:EF00 -c 1:hassos-boot      -u 1:b3dd0952-733c-4c88-8cba-cab9b8b4377f \
        -n 2:0:+4M      -t 2:8300 -c 2:hassos-kernel0   -u 2:26700fc6-b0bc-4ccf-9837-ea1a4cba3e65 \
        -n 3:0:+16M     -t 3:8300 -c 3:hassos-system0   -u 3:8d3d53e3-6d49-4c38-8349-aff6859e82fd \
        -n 4:0:+4M      -t 4:8300 -c 4:hassos-kernel1   -u 4:fc02a4f0-5350-406f-93a2-56cbed636b5f \
        -n 5:0:+16M     -t 5:8300 -c 5:hassos-system1   -u 5:a3ec664e-32ce-4665-95ea-7ae90ce9aa20 \
        -n 6:0:+1M      -t 6:8300 -c 6:hassos-bootstate -u 6:33236519-7f32-4dff-8002-3390b62c309d \
        -n 7:0:+16M     -t 7:8300 -c 7:hassos-overlay   -u 7:f1326040-5236-40eb-b683-aaa100a9afcf \
        -n 8:0:0        -t 8:8300 -c 8:hassos-data      -u 8:a52a4597-fa3a-4851-aefd-2fbe9f849079 \
        "$disk" >/dev/null
    local -A start size
    local i
    for i in 1 2 3 4 5 6 7 8; do
        start[$i]=$(sgdisk -i "$i" "$disk" | awk '/^First sector/ {print $3}')
        local last; last=$(sgdisk -i "$i" "$disk" | awk '/^Last sector/ {print $3}')
        size[$i]=$(( last - start[$i] + 1 ))
    done
    # boot: vfat (FAT16 at 32 MiB), label hassos-boot, a GRUB environment block
    truncate -s $(( size[1] * 512 )) "$w/boot.img"
    mkfs.vfat -n hassos-boot -i 1a2b3c4d "$w/boot.img" >/dev/null
    mkdir -p "$w/boot/EFI/BOOT"
    { printf '# GRUB Environment Block\nORDER=A B\nA_OK=1\nA_TRY=0\nB_OK=0\nB_TRY=0\n'; } > "$w/grubenv0"
    head -c 1024 < <(cat "$w/grubenv0"; yes '#' | tr -d '\n' | head -c 1024) > "$w/boot/EFI/BOOT/grubenv"
    printf 'console=tty0\n' > "$w/boot/cmdline.txt"
    mcopy -s -i "$w/boot.img" "$w/boot/EFI" "$w/boot/cmdline.txt" ::/
    put_fs "$disk" "$w/boot.img" "${start[1]}"
    # kernel0: squashfs with one file
    mkdir -p "$w/kernel"; head -c 100000 /dev/urandom > "$w/kernel/bzImage"
    mksquashfs "$w/kernel" "$w/kernel0.img" -noappend -all-root -quiet >/dev/null
    put_fs "$disk" "$w/kernel0.img" "${start[2]}"
    # system0: erofs root
    minimal_root "$w/root"
    mkfs.erofs -T "$SOURCE_DATE_EPOCH" -U 0a0b0c0d-3333-4222-8333-444455556666 "$w/system0.img" "$w/root" >/dev/null
    put_fs "$disk" "$w/system0.img" "${start[3]}"
    # kernel1, system1: zeros (sparse). bootstate: a U-Boot style environment (raw, no filesystem)
    printf 'BOOT_ORDER=A B\0BOOT_A_LEFT=3\0BOOT_B_LEFT=3\0\0' > "$w/env"
    python3 - "$w/env" "$w/bootstate.img" <<'PY'
import sys, zlib, struct
data = open(sys.argv[1], 'rb').read().ljust(0x4000 - 4, b'\0')
open(sys.argv[2], 'wb').write(struct.pack('<I', zlib.crc32(data)) + data)
PY
    put_fs "$disk" "$w/bootstate.img" "${start[6]}"
    # overlay and data: ext4 with labels
    mkdir -p "$w/overlay/etc" "$w/data/docker" "$w/data/supervisor"
    printf 'haos\n' > "$w/overlay/etc/hostname"
    truncate -s $(( size[7] * 512 )) "$w/overlay.img"
    mkfs.ext4 -q -F -L hassos-overlay -U 0a0b0c0d-1111-4222-8333-444455556666 -d "$w/overlay" "$w/overlay.img"
    put_fs "$disk" "$w/overlay.img" "${start[7]}"
    truncate -s $(( size[8] * 512 )) "$w/data.img"
    mkfs.ext4 -q -F -L hassos-data -U 0a0b0c0d-2222-4222-8333-444455556666 -d "$w/data" "$w/data.img"
    put_fs "$disk" "$w/data.img" "${start[8]}"
    rm -rf "$w"
}
