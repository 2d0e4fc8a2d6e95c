#!/usr/bin/env bash
# Fuzz/seeds.sh OUTDIR: seed corpora for every target from the test disks (small slices; built by
# images/build.sh when missing): OUTDIR/<target>/*. Deterministic.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
out=${1:?usage: Fuzz/seeds.sh OUTDIR}
imgs=${FWA_IMAGES:-$root/images/out}
bash "$root/images/build.sh" "$imgs" haos-full rpi-full haos-mbr-full debian-gpt fs-squashfs fs-erofs fs-fat fs-jffs2 fs-ubi containerd-root podman-root >/dev/null
mkdir -p "$out"/{partition-table,squashfs,erofs,fat,fstab,unit-file,boot-environment,bolt,tar,jbd2,ext4-writer,containerd-store,podman-store,podman-db,layer-export,f2fs,uci-fstab,jffs2,ubi,ubifs}
# jbd2: the journals of the hot snapshots (built only as root with loop devices; images/disks/hot-ext4.sh;
# hot-ext4-fc carries a fast-commit area)
bash "$root/images/build.sh" "$imgs" hot-ext4 >/dev/null || true
for n in hot-ext4-wrap hot-ext4-32 hot-ext4-fc; do
    [ -f "$imgs/$n.img" ] && debugfs -c -R "dump <8> $out/jbd2/$n" "$imgs/$n.img" >/dev/null 2>&1 || true
done
cp "$root"/Tests/Corpus/jbd2/* "$out/jbd2/"
# ubifs and ubi: whole small images (the test images' 124 KiB LEBs put their index roots past
# 256 KiB): a tiny tree in 15 KiB LEBs (NOR-like 8-byte min I/O), and the same in a UBI image of
# 16 KiB PEBs.
tiny=$(mktemp -d)
mkdir -p "$tiny/t/etc" "$tiny/t/bin"
echo hello > "$tiny/t/etc/hostname"; seq 1 3000 > "$tiny/t/etc/numbers"
ln -s /etc/hostname "$tiny/t/bin/link"; ln "$tiny/t/etc/hostname" "$tiny/t/etc/hard"; mknod "$tiny/t/etc/null" c 1 3
find "$tiny/t" -exec touch -h -d @1700000000 {} +
for c in zlib lzo zstd; do mkfs.ubifs -m 8 -e 15360 -c 64 -x $c -r "$tiny/t" -o "$out/ubifs/tiny-$c"; done
mkfs.ubifs -m 8 -e 16256 -c 64 -x lzo -r "$tiny/t" -o "$tiny/u.ubifs"
printf '[data]\nmode=ubi\nimage=%s\nvol_id=0\nvol_type=dynamic\nvol_name=rootfs_data\nvol_size=1MiB\n' "$tiny/u.ubifs" > "$tiny/u.cfg"
ubinize -o "$out/ubi/tiny" -p 16KiB -m 8 -Q 1700000000 "$tiny/u.cfg" 2>/dev/null
rm -rf "$tiny"
python3 - "$imgs" "$out" <<'PY'
import json, os, struct, subprocess, sys
imgs, out = sys.argv[1:3]
def slice_(src, off, n):
    with open(src, "rb") as f:
        f.seek(off); return f.read(n)
def save(target, name, data):
    with open(os.path.join(out, target, name), "wb") as f: f.write(data)
for disk in ("haos-full", "rpi-full", "haos-mbr-full", "debian-gpt"):
    img = os.path.join(imgs, disk + ".img")
    # the tables: the first 64 KiB (MBR, GPT header and entries) and, for EBRs, each EBR sector
    save("partition-table", disk + "-head", slice_(img, 0, 64 * 1024))
    table = json.loads(subprocess.check_output(["sfdisk", "-J", img]))["partitiontable"]
    for p in table["partitions"]:
        start, size = p["start"] * 512, p["size"] * 512
        t = subprocess.run(["blkid", "-p", "-O", str(start), "-S", str(size), "-o", "value", "-s", "TYPE", img],
                           capture_output=True, text=True).stdout.strip()
        target = {"squashfs": "squashfs", "erofs": "erofs", "vfat": "fat"}.get(t)
        # small filesystems whole (a few hundred KiB), larger ones cut: the fuzzer mutates the head
        if target:
            save(target, f"{disk}-p{p['node'][-1]}", slice_(img, start, min(size, 256 * 1024)))
# raw flash: JFFS2 images (both byte orders, several compressors), UBIFS images and a UBI image,
# each cut to 256 KiB (their heads: superblock, masters, log, the start of the index and data).
for name in ("le-zlib", "be-lzo", "le-rtime", "le-none"):
    p = os.path.join(imgs, f"fs-jffs2-{name}.img")
    if os.path.exists(p): save("jffs2", name, slice_(p, 0, 256 * 1024))
for name in ("lzo", "zstd"):
    p = os.path.join(imgs, f"fs-ubi-{name}.ubifs")
    if os.path.exists(p): save("ubifs", name, slice_(p, 0, 256 * 1024))
p = os.path.join(imgs, "fs-ubi.img")
if os.path.exists(p): save("ubi", "ubinize", slice_(p, 0, 256 * 1024))
for name, target in (("fs-squashfs.img", "squashfs"), ("fs-erofs.img", "erofs"), ("fs-fat16.img", "fat"), ("fs-fat12.img", "fat")):
    p = os.path.join(imgs, name)
    if os.path.exists(p): save(target, name, slice_(p, 0, 256 * 1024))
save("fstab", "debian", b"# <fs> <dir> <type> <options> <dump> <pass>\nPARTUUID=5eb1a2b3-0002 / ext4 defaults,noatime 0 1\n"
     b"LABEL=var /var ext4 rw,x-systemd.automount 0 2\nUUID=1234-ABCD /boot/efi vfat umask=0077 0 1\n"
     b"/srv/data /srv/www none bind,ro 0 0\nproc /proc proc defaults 0 0\ntmpfs /tmp tmpfs mode=1777 0 0\n"
     b"/dev/disk/by-label/data\\040x /mnt/data\\040x ext4 defaults 0 2\n")
save("unit-file", "mount", b"[Unit]\nDescription=Data\nBefore=local-fs.target\n\n[Mount]\nWhat=/dev/disk/by-label/hassos-data\n"
     b"Where=/mnt/data\nType=ext4\nOptions=rw,noatime,\\\n  commit=30\n\n[Install]\nWantedBy=local-fs.target\n")
save("unit-file", "bind", b"[Mount]\nWhat=/mnt/data/docker\nWhere=/var/lib/docker\nType=none\nOptions=bind\n# c\n; c\n")
grub = b"# GRUB Environment Block\nORDER=A B\nA_OK=1\nA_TRY=0\nB_OK=1\nB_TRY=0\n"
save("boot-environment", "grubenv", grub + b"#" * (1024 - len(grub)))
import zlib
env = b"BOOT_ORDER=B A\x00BOOT_A_LEFT=3\x00BOOT_B_LEFT=3\x00bootcmd=run x\x00\x00"
body = env + b"\x00" * (4096 - 4 - len(env))
save("boot-environment", "uboot", struct.pack("<I", zlib.crc32(body)) + body)
save("boot-environment", "uenv", b"# uEnv\nrootfs=/dev/mmcblk0p2\nbootargs=console=ttyS0\n")
save("boot-environment", "rauc-system-conf", b"[system]\ncompatible=board\nbootloader=uboot\nstatusfile=/data/rauc.status\n\n"
     b"[slot.kernel.0]\ndevice=/dev/disk/by-partlabel/kernel-a\nbootname=A\n[slot.rootfs.0]\ndevice=/dev/mmcblk0p3\nparent=kernel.0\n")
save("boot-environment", "rauc-status", b"[system]\nboot-id=x\n[slot.rootfs.1]\nbundle.version=2.0\nstatus=ok\ninstalled.timestamp=2023-11-20T08:00:00Z\n")
save("boot-environment", "autoboot", b"[all]\ntryboot_a_b=1\nboot_partition=2\n[pi4]\nboot_partition=4\n[tryboot]\nboot_partition=3\n")
save("boot-environment", "fw-env-config", b"# device offset size\n/dev/mmcblk0 0x400000 0x4000 0x200 2\n/boot/uboot.env 16384 0x4000\n")
PY
# f2fs: a small image mkfs.f2fs + sload.f2fs write (a few files, a symlink, a 40-entry directory,
# inline and block data), in the sparse form of Fuzz/sparse-seed.py; the committed regressions.
tmp=$(mktemp -d)
mkdir -p "$tmp/t/etc" "$tmp/t/usr/bin" "$tmp/t/d"
printf 'hi\n' > "$tmp/t/etc/a"; seq 1 3000 > "$tmp/t/etc/b"; ln -s a "$tmp/t/etc/l"; printf 'x\n' > "$tmp/t/usr/bin/x"
for i in $(seq 1 40); do printf '%s\n' "$i" > "$tmp/t/d/file-$i"; done
head -c 20000 /dev/zero | tr '\0' 'z' > "$tmp/t/big"
truncate -s 64M "$tmp/f2fs.img"
mkfs.f2fs -q -f -O extra_attr,inode_checksum,sb_checksum,inode_crtime "$tmp/f2fs.img"
sload.f2fs -f "$tmp/t" -P "$tmp/f2fs.img" >/dev/null 2>&1 || true   # its closing fsck repairs and exits non-zero
python3 "$root/Fuzz/sparse-seed.py" "$tmp/f2fs.img" "$out/f2fs/sload-small"
rm -rf "$tmp"
cp "$root"/Tests/Corpus/f2fs/* "$out/f2fs/"
[ -f "$imgs/fs-f2fs-kernel.seed" ] && cp "$imgs/fs-f2fs-kernel.seed" "$out/f2fs/kernel-small"   # when the kernel recipe could run
# ubifs: a small UBIFS Linux wrote and dumped while mounted (images/disks/fs-flash-kernel.sh), its
# journal holding a new file, a hardlink and a delete: the replay code's input
bash "$root/images/build.sh" "$imgs" fs-flash-kernel >/dev/null || true
[ -f "$imgs/fs-flash-kernel.seed" ] && cp "$imgs/fs-flash-kernel.seed" "$out/ubifs/kernel-journal"
cp "$root"/Tests/Corpus/uci-fstab/* "$out/uci-fstab/"
# bbolt: the files Debian's containerd wrote (containerd-root recipe) and the committed regressions
cp "$imgs/containerd-root.facts/meta.db" "$out/bolt/containerd-meta.db"
cp "$imgs/containerd-root.facts/metadata.db" "$out/bolt/containerd-metadata.db"
cp "$root"/Tests/Corpus/bolt/* "$out/bolt/"
# tar: the OCI layers of the containerd-root recipe (uncompressed) and the committed regressions
tmp=$(mktemp -d)
( cd "$tmp" && source "$root/images/lib.sh" && make_oci_archives oci facts.json ) >/dev/null
for f in "$tmp"/oci/*/blobs/sha256/*; do
    case "$(head -c 2 "$f" | od -An -tx1 | tr -d ' \n')" in
        1f8b) gzip -dc "$f" > "$out/tar/layer-$(basename "$f" | cut -c1-12)" ;;
        28b5) zstd -dqc "$f" > "$out/tar/layer-$(basename "$f" | cut -c1-12)" ;;
        *) if tar tf "$f" >/dev/null 2>&1; then cp "$f" "$out/tar/layer-$(basename "$f" | cut -c1-12)"; fi ;;
    esac
done
rm -rf "$tmp"
cp "$root"/Tests/Corpus/tar/* "$out/tar/"
# containerd-store, podman-store, layer-export: the stores the real daemons wrote (containerd-root,
# podman-root recipes), each a tar of the store at its default path (Fuzz/store-seed.py: a debugfs
# rdump of the data partition, bbolt files cut at their high-water mark), the committed seeds and
# regressions of Tests/Corpus/, and the content store's layer blobs (tar, gzip, zstd)
python3 "$root/Fuzz/store-seed.py" containerd "$imgs" "$out/containerd-store/containerd-root.tar"
python3 "$root/Fuzz/store-seed.py" podman "$imgs" "$out/podman-store/podman-root.tar"
# Podman 5's store (SQLite db.sql): its seed is committed (Tests/Corpus/podman-store/podman5-root.tar),
# remade here when the podman5-root recipe could run (it needs mmdebstrap and the network).
if bash "$root/images/build.sh" "$imgs" podman5-root >/dev/null && [ -f "$imgs/podman5-root.img" ]; then
    python3 "$root/Fuzz/store-seed.py" podman5 "$imgs" "$out/podman-store/podman5-root-fresh.tar"
fi
for t in containerd-store podman-store podman-db layer-export; do cp "$root"/Tests/Corpus/$t/* "$out/$t/"; done
# tar and ext4-writer: a 10,000-deep and a 100,000-wide tree, gzip-compressed (issue 22), and the
# committed regressions of ext4-writer
mkdir -p "$out/ext4-writer"
python3 "$root/Fuzz/tree-tars.py" "$out/tar"
cp "$out"/tar/tree-* "$out"/tar/layer-* "$out/ext4-writer/" 2>/dev/null || true
cp "$root"/Tests/Corpus/ext4-writer/* "$out/ext4-writer/"
for t in "$out"/*; do [ -n "$(ls -A "$t")" ] || echo "no seeds for $(basename "$t")" >&2; done
# btrfs: sparse images (FuzzEntries.SparseSource: le64 size, then le64 offset + le32 length + bytes
# for each run of non-zero 4 KiB blocks) of small filesystems: one mkfs.btrfs --rootdir made from
# the shared tree (4 KiB nodes), one the kernel filled through a loop mount with zlib, lzo and
# zstd files and a subvolume (root and btrfs in /proc/filesystems only), and btrfs-progs' own
# fuzz images when images/fetch-btrfs-progs.sh can fetch them; each kept when under 1 MiB.
mkdir -p "$out/btrfs"
sparse() {   # sparse IMAGE OUT: Fuzz/sparse-seed.py (written only when under 1 MiB)
    python3 "$root/Fuzz/sparse-seed.py" "$1" "$2"
}
tmp=$(mktemp -d)
( source "$root/images/tree.sh"; make_tree "$tmp/tree" no ) >/dev/null 2>&1 || mkdir -p "$tmp/tree"
rm -rf "$tmp/tree/deep" "$tmp/tree/usr/lib/libbig.so"
truncate -s 128M "$tmp/rootdir.img"
mkfs.btrfs -q -f --nodesize 4096 -r "$tmp/tree" "$tmp/rootdir.img" >/dev/null 2>&1 && sparse "$tmp/rootdir.img" "$out/btrfs/rootdir"
if [ "$(id -u)" = 0 ] && grep -qw btrfs /proc/filesystems; then
    truncate -s 128M "$tmp/kernel.img"
    mkfs.btrfs -q -f --nodesize 4096 -m single "$tmp/kernel.img" >/dev/null 2>&1
    mkdir -p "$tmp/mnt"
    if mount -o loop "$tmp/kernel.img" "$tmp/mnt"; then
        for alg in zlib lzo zstd; do
            mkdir "$tmp/mnt/$alg"; btrfs property set "$tmp/mnt/$alg" compression "$alg"
            seq 1 3000 > "$tmp/mnt/$alg/text"; seq 1 200 > "$tmp/mnt/$alg/inline"
        done
        btrfs -q subvolume create "$tmp/mnt/sub"; printf 'x\n' > "$tmp/mnt/sub/f"; ln -s f "$tmp/mnt/sub/l"
        setfattr -n user.a -v b "$tmp/mnt/sub/f"; fallocate -l 64K "$tmp/mnt/sub/pre"
        umount "$tmp/mnt"
        sparse "$tmp/kernel.img" "$out/btrfs/kernel"
    fi
    # A hot snapshot with a log tree (as images/disks/hot-btrfs.sh): changes fsync'd after a
    # commit, the image copied while mounted, so the log replay is fuzzed too.
    truncate -s 128M "$tmp/hot.img"
    mkfs.btrfs -q -f --nodesize 4096 -m single "$tmp/hot.img" >/dev/null 2>&1
    if mount -o loop,commit=300 "$tmp/hot.img" "$tmp/mnt"; then
        mkdir "$tmp/mnt/d"; printf 'a\n' > "$tmp/mnt/d/a"; printf 'b\n' > "$tmp/mnt/d/b"; seq 1 5000 > "$tmp/mnt/d/big"
        setfattr -n user.x -v y "$tmp/mnt/d/a"
        sync -f "$tmp/mnt"
        mv "$tmp/mnt/d/a" "$tmp/mnt/d/renamed"; sync "$tmp/mnt/d/renamed"
        ln "$tmp/mnt/d/b" "$tmp/mnt/d/b2"; rm "$tmp/mnt/d/b"; sync "$tmp/mnt/d/b2" "$tmp/mnt/d"
        seq 1 100 | dd of="$tmp/mnt/d/big" bs=4096 seek=2 conv=notrunc status=none; sync "$tmp/mnt/d/big"
        setfattr -x user.x "$tmp/mnt/d/renamed"; printf 'new\n' > "$tmp/mnt/d/new"; sync "$tmp/mnt/d/renamed" "$tmp/mnt/d/new"
        cp --sparse=always "$tmp/hot.img" "$tmp/hot-copy.img"
        umount "$tmp/mnt"
        sparse "$tmp/hot-copy.img" "$out/btrfs/hot"
    fi
fi
if bash "$root/images/fetch-btrfs-progs.sh" >/dev/null 2>&1; then
    for x in /tmp/fwassemble-btrfs-progs/tests/fuzz-tests/images/*.raw.xz; do
        xz -dc "$x" > "$tmp/f.raw" 2>/dev/null && sparse "$tmp/f.raw" "$out/btrfs/$(basename "$x" .raw.xz)"
    done
fi
rm -rf "$tmp"
