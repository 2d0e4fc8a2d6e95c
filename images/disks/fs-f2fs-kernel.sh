#!/usr/bin/env bash
# f2fs images written by Linux itself (Tests/FileSystemsTests/F2FSTests.swift, "kernel-written"):
# the machine's own kernel has no f2fs, so Debian's generic kernel (linux-image-*-amd64, fetched
# with `apt-get download` into the recipe's scratch folder, never installed) boots under QEMU
# (qemu-system-x86, TCG) with a busybox-static initramfs holding the f2fs
# modules and the host's GNU cp. The guest mounts a read-only ext4 copy of the source tree
# (made through a loop mount) and, on each f2fs image (mkfs.f2fs on the host), `cp -a` copies it in (owners,
# permission bits, nanosecond times, xattrs with trusted.* and POSIX ACLs, devices, FIFOs,
# sockets, hardlinks, holes: cp keeps a sparse file sparse), then deletes and renames entries and
# unmounts (a checkpoint). Images:
#   fs-f2fs-kernel.img      -O extra_attr,inode_checksum,sb_checksum,flexible_inline_xattr,
#                           inode_crtime,compression; mounted with compress_algorithm=lz4 and
#                           compress_extension=txt (*.txt files compressed)
#   fs-f2fs-kernel-lzo.img  the same with compress_algorithm=lzo
#   fs-f2fs-kernel-zstd.img the same with compress_algorithm=zstd
#   fs-f2fs-kernel-fsync.img not checkpointed: d/checkpointed (16 KiB of zeros) and d/old-name
#                           written and synced (a checkpoint), then d/checkpointed overwritten
#                           and fsync'd only (roll-forward data), d/old-name renamed to
#                           d/new-name, and the power cut with the filesystem mounted
# fs-f2fs-kernel.manifest is the source tree after the same deletes and renames (images/manifest.py);
# fs-f2fs-kernel.seed a small kernel-written image (/etc, /dev, /srv, two lz4-compressed files) in
# the f2fs fuzz target's sparse form.
# Without qemu-system-x86_64, the network (apt-get download) or a bootable guest, no image is
# made: fs-f2fs-kernel.skipped says why and the tests skip.
source "$(dirname "${BASH_SOURCE[0]}")/../lib.sh"

skip() { echo "$1" > "$OUT/fs-f2fs-kernel.skipped"; echo "skipped: $1"; exit 0; }
rm -f "$OUT"/fs-f2fs-kernel*.img "$OUT/fs-f2fs-kernel.skipped"
command -v qemu-system-x86_64 >/dev/null || skip "qemu-system-x86_64 is not installed (apt-get install qemu-system-x86)"

# --- the kernel and busybox, unpacked (not installed)
debian_kernel fs/f2fs/f2fs

# --- the source tree: make_tree (no 1 GiB file) plus what the kernel writes and sload.f2fs cannot
src=$WORK/src
make_tree "$src" no
setfattr -n system.posix_acl_access \
    -v 0x0200000001000600ffffffff02000400e803000004000400ffffffff10000400ffffffff20000400ffffffff "$src/etc/fstab"
setfattr -n system.posix_acl_default -v 0x0200000001000700ffffffff04000500ffffffff20000500ffffffff "$src/home/user"
python3 - "$src" <<'PY'
import os, random, sys
root = sys.argv[1]
r = random.Random(26)
# holes: data at 0, 5 MiB + 3 and the last byte of 24 MiB
with open(os.path.join(root, "var/holes.img"), "wb") as f:
    f.write(b"start"); f.seek((5 << 20) + 3); f.write(r.randbytes(70000)); f.seek((24 << 20) - 1); f.write(b"e")
# compressible files (*.txt are compressed by the mount's compress_extension), one with a
# random middle (clusters that do not compress stay plain)
os.makedirs(os.path.join(root, "usr/share/doc"))
words = [b"flash", b"friendly", b"file", b"system", b"cluster", b"node", b"segment", b"checkpoint"]
for n, size in (("small.txt", 900), ("medium.txt", 70_000), ("large.txt", 3_000_000)):
    data = b" ".join(r.choice(words) for _ in range(size // 6))[:size]
    open(os.path.join(root, "usr/share/doc", n), "wb").write(data)
mixed = b"compressible " * 40000 + r.randbytes(200_000) + b"tail " * 9000
open(os.path.join(root, "usr/share/doc/mixed.txt"), "wb").write(mixed)
# a directory of several hash levels, small directories (inline dentries), a long xattr value
many = os.path.join(root, "usr/share/many")
os.makedirs(many)
for i in range(2500):
    open(os.path.join(many, "f%05d-%s" % (i, "y" * (i % 30))), "w").write("%d\n" % i)
for d in ("etc/small", "etc/small/sub"):
    os.makedirs(os.path.join(root, d), exist_ok=True)
    for name in ("one", "two"):
        open(os.path.join(root, d, name), "w").write(name + "\n")
os.setxattr(os.path.join(root, "etc/passwd"), "user.big", bytes(range(256)) * 10)
os.setxattr(os.path.join(root, "etc/passwd"), "trusted.overlay.origin", b"\x00\xfb" + bytes(20))
# to be deleted and renamed in the guest
open(os.path.join(root, "etc/delete-me"), "w").write("gone\n")
open(os.path.join(root, "etc/rename-me"), "w").write("renamed\n")
os.makedirs(os.path.join(root, "srv/olddir/inner"))
open(os.path.join(root, "srv/olddir/inner/file"), "w").write("moved with its directory\n")
PY
find "$src/usr/share/doc" "$src/usr/share/many" "$src/etc/small" "$src/etc/delete-me" "$src/etc/rename-me" \
    "$src/srv/olddir" "$src/var/holes.img" -exec touch -h -d @1700000000.5 {} +
touch -h -d @1700000000 "$src/usr/share" "$src/usr" "$src/etc" "$src/srv" "$src/var"
# The guest reads the tree from an ext4 image.
tree_ext4_image "$src" tree.img 200M 8000

# What the guest does after the copy, here on the host tree for the manifest. The parents'
# times are set again (a delete or rename changes them) so that both sides agree.
changes() {   # changes ROOT
    rm "$1/etc/delete-me"
    mv "$1/etc/rename-me" "$1/etc/renamed"
    mv "$1/srv/olddir" "$1/srv/newdir"
    touch -h -d @1700000000 "$1/etc" "$1/srv"
}
cp -a "$src" after
changes after
python3 "$IMAGES_DIR/manifest.py" after > "$OUT/fs-f2fs-kernel.manifest"

# --- the initramfs: busybox, the modules, GNU cp and its libraries, /init
rd=$WORK/initramfs
mkdir -p "$rd"/{bin,lib/modules,lib64,lib/x86_64-linux-gnu,proc,sys,dev,src,mnt}
cp deb/bin/busybox "$rd/bin/busybox"
for m in drivers/virtio/virtio_ring drivers/virtio/virtio drivers/virtio/virtio_pci_modern_dev \
         drivers/virtio/virtio_pci_legacy_dev drivers/virtio/virtio_pci drivers/block/virtio_blk \
         crypto/crc32_generic crypto/crc32c_generic lib/crc16 fs/mbcache fs/jbd2/jbd2 fs/ext4/ext4 \
         lib/lz4/lz4_compress lib/lz4/lz4hc_compress lib/zstd/zstd_compress fs/f2fs/f2fs; do
    cp "$modules/$m.ko" "$rd/lib/modules/"
done
cp /usr/bin/cp "$rd/bin/gnucp"
for lib in $(ldd /usr/bin/cp | grep -o '/lib[^ ]*'); do cp -L "$lib" "$rd$lib"; done
cat > "$rd/init" <<'INIT'
#!/bin/busybox sh
/bin/busybox --install -s /bin
mount -t proc proc /proc; mount -t sysfs sys /sys; mount -t devtmpfs dev /dev
for m in virtio_ring virtio virtio_pci_modern_dev virtio_pci_legacy_dev virtio_pci virtio_blk crc32_generic \
         crc32c_generic crc16 mbcache jbd2 ext4 lz4_compress lz4hc_compress zstd_compress f2fs; do insmod /lib/modules/$m.ko || echo "F2FS-GUEST: insmod $m failed"; done
sleep 1
mount -t ext4 -o ro /dev/vda /src || echo "F2FS-GUEST: no source"
set -- vdb:lz4 vdc:lzo vdd:zstd
for pair in "$@"; do
    dev=/dev/${pair%%:*}; alg=${pair##*:}
    mount -t f2fs -o compress_algorithm=$alg,compress_extension=txt $dev /mnt || { echo "F2FS-GUEST: mount $dev failed"; continue; }
    /bin/gnucp -a /src/. /mnt/ || echo "F2FS-GUEST: cp to $dev failed"
    rm -rf /mnt/lost+found
    rm /mnt/etc/delete-me
    mv /mnt/etc/rename-me /mnt/etc/renamed
    mv /mnt/srv/olddir /mnt/srv/newdir
    touch -h -d @1700000000 /mnt/etc /mnt/srv
    touch -h -d "$(stat -c %y /src)" /mnt 2>/dev/null
    umount /mnt && echo "F2FS-GUEST: $dev $alg done"
done
# A small image for the fuzzer's seed: /etc, /dev, /srv and two compressed files.
if mount -t f2fs -o compress_algorithm=lz4,compress_extension=txt /dev/vdf /mnt; then
    /bin/gnucp -a /src/etc /src/dev /src/srv /mnt/ && mkdir /mnt/doc && \
        /bin/gnucp -a /src/usr/share/doc/small.txt /src/usr/share/doc/medium.txt /mnt/doc/ && \
        umount /mnt && echo "F2FS-GUEST: /dev/vdf seed done"
fi
umount /src
# Not checkpointed: two files written and synced (sync(2) writes a checkpoint); then the 16 KiB
# one overwritten in place and fsync'd (an existing file: f2fs logs it for roll-forward recovery
# instead of checkpointing), the other renamed (nothing persists it), and the power cut with
# the filesystem still mounted.
if mount -t f2fs /dev/vde /mnt; then
    mkdir /mnt/d
    dd if=/dev/zero of=/mnt/d/checkpointed bs=4096 count=4 2>/dev/null
    echo renamed later > /mnt/d/old-name
    sync
    echo FSYNCED-ONLY > /src-fsynced
    dd if=/src-fsynced of=/mnt/d/checkpointed conv=notrunc,fsync 2>/dev/null && echo "F2FS-GUEST: /dev/vde fsynced"
    mv /mnt/d/old-name /mnt/d/new-name
fi
poweroff -f -n   # -n: no sync(2), which would write a checkpoint
INIT
chmod 755 "$rd/init"
( cd "$rd" && find . | "$WORK/deb/bin/busybox" cpio -o -H newc ) 2>/dev/null | gzip -1 > initramfs.gz   # busybox's cpio: Debian has none by default

for name in fs-f2fs-kernel fs-f2fs-kernel-lzo fs-f2fs-kernel-zstd fs-f2fs-kernel-fsync seed; do
    truncate -s 256M "$name.img"
    [ "$name" = seed ] && truncate -s 64M "$name.img"
    mkfs.f2fs -q -f -l "$name" -O extra_attr,inode_checksum,sb_checksum,flexible_inline_xattr,inode_crtime,compression "$name.img"
done
# TCG, not KVM: on the nested machines these tests run on, KVM either refuses `-cpu host` (an
# MSR it cannot set) or does not get past the BIOS; TCG boots in about 10 s.
timeout 900 qemu-system-x86_64 -machine accel=tcg -m 1024 -nographic -no-reboot \
    -kernel "$kernel" -initrd initramfs.gz -append "console=ttyS0 panic=-1 quiet" \
    -drive file=tree.img,if=virtio,format=raw,readonly=on \
    -drive file=fs-f2fs-kernel.img,if=virtio,format=raw \
    -drive file=fs-f2fs-kernel-lzo.img,if=virtio,format=raw \
    -drive file=fs-f2fs-kernel-zstd.img,if=virtio,format=raw \
    -drive file=fs-f2fs-kernel-fsync.img,if=virtio,format=raw \
    -drive file=seed.img,if=virtio,format=raw > guest.log 2>&1 || true
grep "F2FS-GUEST" guest.log || true
for alg in lz4 lzo zstd; do
    grep -q "F2FS-GUEST: .* $alg done" guest.log || skip "the guest did not finish the $alg image: $(grep -a F2FS-GUEST guest.log | tail -1)"
done
grep -q "F2FS-GUEST: /dev/vde fsynced" guest.log || skip "the guest did not write the fsync image"
# The seed image in the f2fs fuzz target's sparse form (Fuzz/seeds.sh takes it when it is here).
if grep -q "F2FS-GUEST: /dev/vdf seed done" guest.log; then
    python3 "$IMAGES_DIR/../Fuzz/sparse-seed.py" seed.img "$OUT/fs-f2fs-kernel.seed"
fi
for name in fs-f2fs-kernel fs-f2fs-kernel-lzo fs-f2fs-kernel-zstd fs-f2fs-kernel-fsync; do
    fsck.f2fs -f --dry-run "$name.img" > "$OUT/$name.fsck" 2>&1 || true
    cp --sparse=always "$name.img" "$OUT/$name.img"
done
ls -l "$OUT"/fs-f2fs-kernel*.img
