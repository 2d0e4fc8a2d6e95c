#!/usr/bin/env bash
# UBIFS and JFFS2 images written by Linux itself (Tests/FileSystemsTests/FlashKernelTests.swift):
# as fs-f2fs-kernel.sh does, Debian's generic kernel (linux-image-*-amd64, fetched with
# `apt-get download` into the recipe's scratch folder, never installed) boots under QEMU
# (qemu-system-x86, TCG) with a busybox-static initramfs holding the MTD, nandsim, mtdram, UBI,
# UBIFS and JFFS2 modules, and the host's GNU cp, setfattr and mtd-utils (ubimkvol, nanddump).
# The guest mounts a read-only ext4 copy of the source tree and:
#  - UBIFS: a simulated NAND chip (nandsim: 2048-byte pages, 64 spare bytes, 128 KiB erase
#    blocks, 256 of them), UBI attached (the kernel formats the empty chip), one volume, UBIFS
#    mounted (the kernel formats the empty volume: LZO, 126 KiB LEBs), the tree copied in with
#    `cp -a`, `sync` (a commit: the tree is in the index), then `changes` below (deletes,
#    renames, a rewritten file, one truncated and grown again (a hole over its old blocks), a
#    new file, hardlink, symlink and directory, chmod, chown, an xattr set and one removed)
#    made durable with fsync(2) (busybox `sync FILE...`) and the flusher's write-back (a 1 s
#    expiry), which write the journal and no commit; the chip is dumped while still mounted,
#    then unmounted (a commit) and dumped again, also with its spare bytes.
#  - JFFS2: a simulated NOR chip (mtdram, 16 MiB, 128 KiB erase blocks), the tree copied in,
#    `sync`, the same `changes`, unmounted and dumped.
#  - a seed for the ubifs fuzz target: a small nandsim (512-byte pages, 16 KiB erase blocks,
#    2 MiB), a few files committed and one more written to the journal, the UBI volume dumped
#    (/dev/ubi0_0) while mounted.
# Images:
#   fs-flash-kernel-journal.img  the UBIFS chip (UBI, no spare bytes) dumped while mounted: its
#                                index holds the tree before `changes`, its journal the changes
#   fs-flash-kernel-clean.img    the same chip after the unmount (everything committed)
#   fs-flash-kernel-oob.img      the same as the clean image with the 64 spare bytes of each page
#   fs-flash-kernel-jffs2.img    the JFFS2 chip (little-endian; LZO, zlib and zero nodes as the
#                                kernel's priority mode picks them; erase-block summary, xattr
#                                and xref nodes)
#   fs-flash-kernel.seed         the seed's UBIFS volume (trailing erased LEBs cut)
# fs-flash-kernel-before.manifest is the source tree, fs-flash-kernel.manifest the tree after the
# same `changes` (images/manifest.py), fs-flash-kernel-jffs2.manifest that tree without the
# 255-byte name (JFFS2 takes 254 bytes at most: cp fails on it in the guest);
# fs-flash-kernel-{ubifs,jffs2}.view the kernel's own view of the mounted filesystem after the
# changes (busybox stat and md5sum in the guest), which this recipe checks against the manifests.
# Without qemu-system-x86_64, the network (apt-get download), the modules or a bootable guest,
# no image is made: fs-flash-kernel.skipped says why and the tests skip.
source "$(dirname "${BASH_SOURCE[0]}")/../lib.sh"

skip() { echo "$1" > "$OUT/fs-flash-kernel.skipped"; echo "skipped: $1"; exit 0; }
rm -f "$OUT"/fs-flash-kernel*.img "$OUT/fs-flash-kernel.skipped" "$OUT/fs-flash-kernel.seed"
command -v qemu-system-x86_64 >/dev/null || skip "qemu-system-x86_64 is not installed (apt-get install qemu-system-x86)"
for tool in ubimkvol nanddump setfattr; do
    command -v $tool >/dev/null || skip "$tool is not installed (apt-get install mtd-utils attr)"
done

# --- the kernel and busybox, unpacked (not installed)
# each module after the ones it depends on (their `depends=` in modinfo)
mods="drivers/virtio/virtio_ring drivers/virtio/virtio drivers/virtio/virtio_pci_modern_dev
      drivers/virtio/virtio_pci_legacy_dev drivers/virtio/virtio_pci drivers/block/virtio_blk
      crypto/crc32_generic crypto/crc32c_generic lib/crc16 fs/mbcache fs/jbd2/jbd2 fs/ext4/ext4
      drivers/mtd/mtd lib/bch drivers/mtd/nand/nandcore drivers/mtd/nand/raw/nand
      drivers/mtd/nand/raw/nandsim drivers/mtd/devices/mtdram lib/zstd/zstd_compress crypto/zstd
      drivers/mtd/ubi/ubi fs/ubifs/ubifs
      fs/jffs2/jffs2"
debian_kernel $mods

# --- the source tree: make_tree (no 1 GiB file) plus a mixed file, a sparse file, a directory
# of many entries (a deeper index), a long xattr value and what `changes` deletes and renames
src=$WORK/src
make_tree "$src" no
mkdir -p "$src/usr/share/many" "$src/srv/olddir/inner"
mixed_file "$src/usr/share/mixed.bin" 64
python3 - "$src" <<'PY'
import os, random, sys
root = sys.argv[1]
r = random.Random(27)
with open(os.path.join(root, "var/holes.img"), "wb") as f:   # data at 0, 300 KiB + 3 and the last byte
    f.write(b"start"); f.seek(300 * 1024 + 3); f.write(r.randbytes(9000)); f.seek((1 << 20) - 1); f.write(b"e")
for i in range(400):
    open(os.path.join(root, "usr/share/many", "f%04d-%s" % (i, "y" * (i % 40))), "w").write("%d\n" % i)
os.setxattr(os.path.join(root, "etc/passwd"), "user.big", bytes(range(256)) * 4)
open(os.path.join(root, "etc/delete-me"), "w").write("gone\n")
open(os.path.join(root, "etc/rename-me"), "w").write("renamed\n")
open(os.path.join(root, "srv/olddir/inner/file"), "w").write("moved with its directory\n")
PY
find "$src/usr/share" "$src/srv/olddir" "$src/var/holes.img" "$src/etc/delete-me" "$src/etc/rename-me" \
    -exec touch -h -d @1700000000 {} +
touch -h -d @1700000000 "$src/usr" "$src/etc" "$src/srv" "$src/var"

# `changes ROOT`: what the guest does after the commit, and the host on a copy for the manifest
# (POSIX sh: busybox in the guest, GNU tools here). Every time it changes is set again.
cat > changes.sh <<'SH'
changes() {
    r=$1
    rm "$r/etc/delete-me"
    mv "$r/etc/rename-me" "$r/etc/renamed"
    mv "$r/srv/olddir" "$r/srv/newdir"
    rm "$r"/usr/share/many/f00[0-4]*
    printf 'rewritten after the commit\n' > "$r/usr/lib/numbers.txt"
    truncate -s 5000 "$r/usr/lib/libbig.so"     # then grown: the old blocks past 5000 must read as zeros
    truncate -s 20000 "$r/usr/lib/libbig.so"
    printf 'new after the commit\n' > "$r/etc/journal-new"
    ln "$r/usr/bin/busybox" "$r/usr/bin/journal-link"
    rm "$r/bin/sh"
    ln -s ../etc/journal-new "$r/bin/journal-symlink"
    mkdir "$r/srv/journal-dir"
    chmod 0600 "$r/etc/hostname"
    chown 1000:1000 "$r/etc/fstab"
    setfattr -n user.journal -v after-commit "$r/etc/fstab"
    setfattr -x user.comment "$r/etc/hostname"
    for p in etc etc/renamed etc/journal-new etc/hostname usr/lib/numbers.txt usr/lib/libbig.so usr/bin \
             usr/share/many bin bin/journal-symlink srv srv/newdir srv/journal-dir; do
        touch -h -d @1700000200 "$r/$p"
    done
}
# the paths `changes` touched, for fsync(2) in the guest
changed="etc etc/renamed etc/journal-new etc/hostname etc/fstab usr/lib/numbers.txt usr/lib/libbig.so usr/bin
         usr/bin/busybox usr/share/many bin srv srv/newdir srv/journal-dir"
SH
# shellcheck disable=SC1091
. ./changes.sh
python3 "$IMAGES_DIR/manifest.py" "$src" > "$OUT/fs-flash-kernel-before.manifest"
cp -a "$src" after
changes after
python3 "$IMAGES_DIR/manifest.py" after > "$OUT/fs-flash-kernel.manifest"
# JFFS2 names have at most 254 bytes (JFFS2_MAX_NAME_LEN): cp cannot make the 255-byte one there
cp -a after after-jffs2
rm after-jffs2/etc/nnnnnnnnnn*
touch -h -r after/etc after-jffs2/etc
python3 "$IMAGES_DIR/manifest.py" after-jffs2 > "$OUT/fs-flash-kernel-jffs2.manifest"

# The guest reads the tree from an ext4 image.
tree_ext4_image "$src" tree.img 64M 4000

# --- the initramfs: busybox, the modules, GNU cp, setfattr, ubimkvol, nanddump and their libraries
rd=$WORK/initramfs
mkdir -p "$rd"/{bin,lib/modules,lib64,lib/x86_64-linux-gnu,proc,sys,dev,src,mnt}
cp deb/bin/busybox "$rd/bin/busybox"
for m in $mods; do cp "$modules/$m.ko" "$rd/lib/modules/"; done
for tool in /usr/bin/cp:gnucp "$(command -v setfattr)":setfattr "$(command -v ubimkvol)":ubimkvol "$(command -v nanddump)":nanddump; do
    cp "${tool%%:*}" "$rd/bin/${tool##*:}"
    for lib in $(ldd "${tool%%:*}" | grep -o '/lib[^ ]*'); do cp -L "$lib" "$rd$lib"; done
done
cp changes.sh "$rd/changes.sh"
echo "$mods" | xargs -n1 basename > "$rd/modules.order"
cat > "$rd/init" <<'INIT'
#!/bin/busybox sh
/bin/busybox --install -s /bin
mount -t proc proc /proc; mount -t sysfs sys /sys; mount -t devtmpfs dev /dev
say() { echo "FLASH-GUEST: $*"; }
for m in $(cat /modules.order); do
    case $m in nandsim|mtdram|ubi|ubifs) continue;; esac
    insmod /lib/modules/$m.ko || say "insmod $m failed"
done
sleep 1
. /changes.sh
mount -t ext4 -o ro /dev/vda /src || say "no source"
# view DIR NAME: the kernel's view of a mounted tree, one line per entry
view() {
    ( cd "$1" && find . | sort | while read -r p; do
        if [ -f "$p" ] && [ ! -L "$p" ]; then sum=$(md5sum < "$p" | cut -d' ' -f1); else sum=-; fi
        echo "VIEW-$2 $(stat -c '%f %u %g %s %Y %h %t %T' "$p") $sum $p"
    done )
}
# --- UBIFS on a 32 MiB NAND chip
insmod /lib/modules/nandsim.ko id_bytes=0xec,0xf1,0x00,0x15 overridesize=8 || say "nandsim failed"
insmod /lib/modules/ubi.ko mtd=0 && insmod /lib/modules/ubifs.ko || say "ubi attach failed"
/bin/ubimkvol /dev/ubi0 -N rootfs -m >/dev/null || say "ubimkvol failed"
if mount -t ubifs ubi0:rootfs /mnt; then
    /bin/gnucp -a /src/. /mnt/ || say "cp to ubifs failed"
    rm -rf /mnt/lost+found
    sync
    # Dirty inodes written back within a second or two (a symlink's new time cannot be
    # fsync'd), as the flusher does it: through the journal, without a commit.
    echo 100 > /proc/sys/vm/dirty_expire_centisecs; echo 50 > /proc/sys/vm/dirty_writeback_centisecs
    changes /mnt
    for p in $changed; do sync "/mnt/$p" || say "fsync $p failed"; done
    sleep 8    # the flusher and the write-buffer timers: nothing is left in memory
    view /mnt ubifs
    dd if=/dev/mtd0 of=/dev/vdb bs=128k 2>/dev/null && say "ubifs journal dumped"
    umount /mnt && dd if=/dev/mtd0 of=/dev/vdc bs=128k 2>/dev/null && say "ubifs clean dumped"
    /bin/nanddump -q --oob -f /dev/vdd /dev/mtd0 && say "ubifs oob dumped"
else
    say "mount ubifs failed"; dmesg | tail -20
fi
for m in ubifs ubi nandsim; do rmmod $m || say "rmmod $m failed"; done
# --- JFFS2 on a 16 MiB NOR chip
insmod /lib/modules/mtdram.ko total_size=16384 erase_size=128 || say "mtdram failed"
mtd=$(grep "mtdram test device" /proc/mtd | cut -d: -f1)
if mount -t jffs2 "$mtd" /mnt; then
    /bin/gnucp -a /src/. /mnt/ 2>/dev/null   # fails on the 255-byte name only (checked below)
    rm -rf /mnt/lost+found
    sync
    changes /mnt
    sync
    view /mnt jffs2
    umount /mnt && dd if=/dev/$mtd of=/dev/vde bs=128k 2>/dev/null && say "jffs2 dumped"
else
    say "mount jffs2 failed"; dmesg | tail -20
fi
for m in jffs2 mtdram; do rmmod $m || say "rmmod $m failed"; done
# --- the fuzz seed: 2 MiB of 512-byte pages and 16 KiB erase blocks
insmod /lib/modules/nandsim.ko id_bytes=0x20,0x35 overridesize=7 || say "seed nandsim failed"
insmod /lib/modules/ubi.ko mtd=0 && insmod /lib/modules/ubifs.ko
/bin/ubimkvol /dev/ubi0 -N seed -m >/dev/null || say "seed ubimkvol failed"
if mount -t ubifs ubi0:seed /mnt; then
    mkdir /mnt/etc /mnt/bin
    /bin/gnucp -a /src/etc/hostname /src/etc/passwd /src/etc/long-link /mnt/etc/
    /bin/gnucp -a /src/dev/null /src/usr/lib/numbers.txt /mnt/bin/
    sync
    printf 'in the journal\n' > /mnt/etc/journal; ln /mnt/etc/passwd /mnt/bin/passwd; rm /mnt/bin/numbers.txt
    sync /mnt/etc/journal /mnt/etc /mnt/bin
    sleep 8
    dd if=/dev/ubi0_0 of=/dev/vdf bs=16k 2>/dev/null && say "seed dumped"
else
    say "seed mount failed"; dmesg | tail -20
fi
umount /src
poweroff -f
INIT
chmod 755 "$rd/init"
( cd "$rd" && find . | "$WORK/deb/bin/busybox" cpio -o -H newc ) 2>/dev/null | gzip -1 > initramfs.gz

truncate -s 32M journal.img clean.img seed.img
truncate -s 33M oob.img        # 32 MiB + 64 spare bytes per 2048-byte page
truncate -s 16M jffs2.img
timeout 900 qemu-system-x86_64 -machine accel=tcg -m 1024 -nographic -no-reboot \
    -kernel "$kernel" -initrd initramfs.gz -append "console=ttyS0 panic=-1 quiet" \
    -drive file=tree.img,if=virtio,format=raw,readonly=on \
    -drive file=journal.img,if=virtio,format=raw \
    -drive file=clean.img,if=virtio,format=raw \
    -drive file=oob.img,if=virtio,format=raw \
    -drive file=jffs2.img,if=virtio,format=raw \
    -drive file=seed.img,if=virtio,format=raw > guest.log 2>&1 || true
grep -av "^VIEW-" guest.log | tr -d "\r" | tail -80 || true
for step in "ubifs journal dumped" "ubifs clean dumped" "ubifs oob dumped" "jffs2 dumped"; do
    grep -aq "FLASH-GUEST: $step" guest.log || skip "the guest did not finish ($step): $(grep -a FLASH-GUEST guest.log | tail -1)"
done
for fs in ubifs jffs2; do
    grep -a "^VIEW-$fs " guest.log | tr -d '\r' | cut -d' ' -f2- > "$OUT/fs-flash-kernel-$fs.view"
done

# The kernel's view must be the manifest's tree (what each filesystem stores of it): the same
# paths, modes, owners, sizes, mtimes (seconds), link counts, device numbers and contents.
check_view() {   # check_view MANIFEST TREE VIEW
python3 - "$@" <<'PY'
import hashlib, json, os, stat, sys
manifest, tree, view = sys.argv[1:]
want = {}
for line in open(manifest):
    e = json.loads(line)
    p = "." if e["path"] == "." else "./" + e["path"]
    full = os.path.join(tree, e["path"])
    st = os.lstat(full)
    md5 = hashlib.md5(open(full, "rb").read()).hexdigest() if e["type"] == "regular" else "-"
    rdev = (os.major(st.st_rdev), os.minor(st.st_rdev)) if e["type"] in ("characterDevice", "blockDevice") else (0, 0)
    want[p] = (st.st_mode, e["uid"], e["gid"], e.get("size"), e["mtime"], st.st_nlink, rdev, md5)
if True:
    got = {}
    for line in open(view, encoding="utf-8", errors="surrogateescape"):
        mode, uid, gid, size, mtime, nlink, major, minor, md5, path = line.rstrip("\n").split(" ", 9)
        mode = int(mode, 16)
        got[path] = (mode, int(uid), int(gid), int(size) if stat.S_ISREG(mode) else None, int(mtime),
                     int(nlink), (int(major, 16), int(minor, 16)), md5)
    bad = [p for p in sorted(set(want) | set(got)) if p != "." and want.get(p) != got.get(p)
           and not (stat.S_ISDIR(want.get(p, (0,))[0]) and want[p][:5] == got.get(p, (0,) * 5)[:5])]
    if bad:
        for p in bad[:20]: print(view, p, want.get(p), got.get(p))
        sys.exit("the kernel's view differs from the manifest")
    print(view, len(got), "entries equal to the manifest")
PY
}
check_view "$OUT/fs-flash-kernel.manifest" after "$OUT/fs-flash-kernel-ubifs.view"
check_view "$OUT/fs-flash-kernel-jffs2.manifest" after-jffs2 "$OUT/fs-flash-kernel-jffs2.view"
if grep -aq "FLASH-GUEST: seed dumped" guest.log; then
    python3 - seed.img "$OUT/fs-flash-kernel.seed" <<'PY'
import struct, sys
data = open(sys.argv[1], "rb").read()[:2 << 20]
leb, count = struct.unpack_from("<II", data, 36)    # the superblock's leb_size and leb_cnt
data = data[:leb * count]
lebs = [data[i:i + leb] for i in range(0, len(data) - len(data) % leb, leb)]
while lebs and lebs[-1] == b"\xff" * leb: lebs.pop()
open(sys.argv[2], "wb").write(b"".join(lebs))
PY
fi
cp journal.img "$OUT/fs-flash-kernel-journal.img"
cp clean.img "$OUT/fs-flash-kernel-clean.img"
cp oob.img "$OUT/fs-flash-kernel-oob.img"
cp jffs2.img "$OUT/fs-flash-kernel-jffs2.img"
ls -l "$OUT"/fs-flash-kernel*
