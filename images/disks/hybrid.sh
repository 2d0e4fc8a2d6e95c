#!/usr/bin/env bash
# A hybrid MBR disk (HAOS rpi3/4 style): a GPT plus an MBR whose entry 1 is type 0x0C over the
# boot partition and entry 2 is 0xEE over the rest.
source "$(dirname "$0")/../lib.sh"
disk="$OUT/hybrid.img"
rm -f "$disk"; truncate -s 64M "$disk"
sgdisk -U 3c3c3c3c-1111-4222-8333-444455556666 \
    -n 1:2048:+16M -t 1:EF00 -c 1:hassos-boot    -u 1:b3dd0952-733c-4c88-8cba-cab9b8b4377f \
    -n 2:0:+16M    -t 2:8300 -c 2:hassos-system0 -u 2:8d3d53e3-6d49-4c38-8349-aff6859e82fd \
    -n 3:0:0       -t 3:8300 -c 3:hassos-data    -u 3:a52a4597-fa3a-4851-aefd-2fbe9f849079 "$disk" >/dev/null
truncate -s 16M boot.img; mkfs.vfat -n hassos-boot -i 3c3c0001 boot.img >/dev/null
put_fs "$disk" boot.img 2048
minimal_root root
mksquashfs root system0.img -noappend -all-root -quiet >/dev/null
put_fs "$disk" system0.img $((2048 + 16*2048))
truncate -s 20M data.img
mkfs.ext4 -q -F -L hassos-data -U 3c3c3c3c-0003-4222-8333-444455556666 data.img
put_fs "$disk" data.img $((2048 + 32*2048))
# The hybrid MBR: entry 1 = 0x0C (FAT32 LBA) over boot, entry 2 = 0xEE from LBA 1 to the end.
python3 - "$disk" <<'PY'
import struct, sys, os
path = sys.argv[1]
sectors = os.path.getsize(path) // 512
def entry(boot, ptype, start, count):
    return struct.pack('<B3sB3sII', boot, b'\xfe\xff\xff', ptype, b'\xfe\xff\xff', start, count)
with open(path, 'r+b') as f:
    f.seek(446)
    f.write(entry(0x80, 0x0C, 2048, 16 * 2048))
    f.write(entry(0x00, 0xEE, 1, min(sectors - 1, 0xFFFFFFFF)))
    f.write(bytes(32))
    f.write(b'\x55\xaa')
PY
