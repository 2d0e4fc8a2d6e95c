#!/usr/bin/env bash
# The HAOS-style GPT disk in every container format users hand over, converted by qemu-img, and
# in the compressed wrappers a download has (xz, gzip, zstd, zip, OVA). formats-raw.img is the
# reference: every image here (except the ones named "bad-" and the modified overlay/snapshot
# states described below) must read byte-identical to it.
source "$(dirname "$0")/../lib.sh"
set -x
make_haos_gpt raw.img
cp --sparse=always raw.img "$OUT/formats-raw.img"
R="$OUT/formats-raw.img"
Q() { qemu-img convert -f raw -O "$@"; }

# qcow2: plain v3, v2 (compat=0.10), deflate-compressed, zstd-compressed, extended L2 with
# subclusters, 4 KiB clusters.
Q qcow2 "$R" "$OUT/formats.qcow2"
Q qcow2 -o compat=0.10 "$R" "$OUT/formats-v2.qcow2"
Q qcow2 -c "$R" "$OUT/formats-deflate.qcow2"
Q qcow2 -c -o compression_type=zstd "$R" "$OUT/formats-zstd.qcow2"
Q qcow2 -o extended_l2=on,cluster_size=128k "$R" "$OUT/formats-l2ext.qcow2"
Q qcow2 -o cluster_size=4096 "$R" "$OUT/formats-4k.qcow2"

# Backing chain: base (qcow2) <- mid (empty) <- top, relative names; top writes 64 KiB of 0x5a
# at 54 MiB (inside hassos-kernel1, all zeros in the raw disk) and zeroes 64 KiB at 100 MiB
# (in hassos-data, i.e. reads the zeros and not the backing file).
mkdir -p "$OUT/formats-chain"
Q qcow2 "$R" "$OUT/formats-chain/base.qcow2"
( cd "$OUT/formats-chain"
  qemu-img create -f qcow2 -b base.qcow2 -F qcow2 mid.qcow2
  qemu-img create -f qcow2 -b mid.qcow2 -F qcow2 top.qcow2
  qemu-io -c "write -P 0x5a 54M 64k" top.qcow2
  qemu-io -c "write -z 100M 64k" top.qcow2
  # The same top over a raw backing file in another folder (found with --backing-dir).
  qemu-img create -f qcow2 -u -b elsewhere.img -F raw elsewhere-top.qcow2 128M
  # A loop (a <- b <- a), a missing backing file.
  qemu-img create -f qcow2 -u -b loop-b.qcow2 -F qcow2 loop-a.qcow2 128M
  qemu-img create -f qcow2 -u -b loop-a.qcow2 -F qcow2 loop-b.qcow2 128M
  qemu-img create -f qcow2 -u -b missing.qcow2 -F qcow2 missing-top.qcow2 128M )
# Internal snapshot "pristine" = the raw disk; the active state then gets 0x5a at 54 MiB.
cp "$OUT/formats.qcow2" "$OUT/formats-snapshot.qcow2"
qemu-img snapshot -c pristine "$OUT/formats-snapshot.qcow2"
qemu-io -c "write -P 0x5a 54M 64k" "$OUT/formats-snapshot.qcow2"

# VMDK: streamOptimized (OVA appliances), monolithicSparse, monolithicFlat (descriptor + flat
# extent), twoGbMaxExtentSparse (descriptor + sparse extent).
Q vmdk -o subformat=streamOptimized "$R" "$OUT/formats-stream.vmdk"
Q vmdk -o subformat=monolithicSparse "$R" "$OUT/formats-sparse.vmdk"
mkdir -p "$OUT/formats-vmdk"
Q vmdk -o subformat=monolithicFlat "$R" "$OUT/formats-vmdk/flat.vmdk"
Q vmdk -o subformat=twoGbMaxExtentSparse "$R" "$OUT/formats-vmdk/split.vmdk"

# VHDX dynamic and fixed; VHD (vpc) dynamic and fixed with the exact size; VDI dynamic and static.
Q vhdx "$R" "$OUT/formats.vhdx"
Q vhdx -o subformat=fixed "$R" "$OUT/formats-fixed.vhdx"
Q vpc -o force_size=on "$R" "$OUT/formats.vhd"
Q vpc -o subformat=fixed,force_size=on "$R" "$OUT/formats-fixed.vhd"
Q vdi "$R" "$OUT/formats.vdi"
Q vdi -o static=on "$R" "$OUT/formats-static.vdi"

# Compressed wrappers: the raw disk and the qcow2 in xz (one block, and several blocks), gzip
# (two members), zstd, zip (deflate and stored), and an OVA (tar: .ovf + streamOptimized VMDK).
xz -k -c -T1 "$R" > "$OUT/formats-raw.img.xz"
xz -k -c -T2 --block-size=16MiB "$R" > "$OUT/formats-raw-blocks.img.xz"
xz -k -c -T1 "$OUT/formats.qcow2" > "$OUT/formats.qcow2.xz"
{ head -c 50M "$R" | gzip -c; tail -c +$((50 * 1048576 + 1)) "$R" | gzip -c; } > "$OUT/formats-raw.img.gz"
zstd -q -c "$R" > "$OUT/formats-raw.img.zst"
cp "$OUT/formats-stream.vmdk" disk.vmdk
rm -f "$OUT/formats-stream.vmdk.zip" "$OUT/formats-raw-stored.zip"
zip -q "$OUT/formats-stream.vmdk.zip" disk.vmdk
cp "$R" disk.img
zip -q -0 "$OUT/formats-raw-stored.zip" disk.img
printf '<?xml version="1.0"?>\n<Envelope/>\n' > disk.ovf
tar --format=ustar -cf "$OUT/formats.ova" disk.ovf disk.vmdk

# Hostile: a truncated xz, a zip whose entry declares a smaller size than it decompresses to.
head -c 60000 "$OUT/formats-raw.img.xz" > "$OUT/formats-bad-truncated.img.xz"
python3 - "$OUT/formats-stream.vmdk.zip" "$OUT/formats-bad-bomb.zip" <<'EOF'
import struct, sys
data = bytearray(open(sys.argv[1], 'rb').read())
# Central directory entry: uncompressed size at +24; local header: at +22. Declare 4096 bytes.
cd = data.rfind(b'PK\x01\x02'); data[cd + 24:cd + 28] = struct.pack('<I', 4096)
data[22:26] = struct.pack('<I', 4096)
open(sys.argv[2], 'wb').write(data)
EOF
ls -la "$OUT"/formats*
