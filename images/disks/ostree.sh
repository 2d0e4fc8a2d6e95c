#!/usr/bin/env bash
# An OSTree (Torizon-style) disk (field guide §5): MBR, one ext4 `otaroot`. Two deployments of
# os "torizon" in /ostree/deploy/torizon/deploy/<checksum>.0; /boot/loader -> loader.1 holds two
# Boot Loader Specification entries: version 2 (ostree=/ostree/boot.1/torizon/<bootB>/0, the newer
# deployment B: it boots) and version 1 (the rollback A). /ostree/boot.1 -> boot.1.1, whose
# <bootcsum>/0 symlinks lead to the deployments. Deployment files are hardlinks into
# /ostree/repo/objects (as `ostree checkout` leaves them). The shared /var
# (/ostree/deploy/torizon/var) holds the Docker data-root (make_docker_root). ostree.ids (JSON)
# names the checksums for the tests.
source "$(dirname "$0")/../lib.sh"
disk="$OUT/ostree.img"
rm -f "$disk"; truncate -s 64M "$disk"
M=2048
sfdisk -q "$disk" <<SF
label: dos
label-id: 0x05c0ffee
unit: sectors

start=$((1*M)), type=83, bootable
SF
r=root
mkdir -p "$r/boot/loader.1/entries" "$r/ostree/repo/objects" "$r/ostree/deploy/torizon/deploy" "$r/ostree/boot.1.1/torizon"
ln -s loader.1 "$r/boot/loader"
ln -s boot.1.1 "$r/ostree/boot.1"
printf '[core]\nrepo_version=1\nmode=bare\n' > "$r/ostree/repo/config"
csumA=$(printf 'deployment A' | sha256sum | cut -c1-64); csumB=$(printf 'deployment B' | sha256sum | cut -c1-64)
bootA=$(printf 'boot A' | sha256sum | cut -c1-64); bootB=$(printf 'boot B' | sha256sum | cut -c1-64)
# object OBJNAME CONTENT MODE: a file in the repo (objects/xx/yyyy.file); prints its path
object() {
    local sum; sum=$(printf '%s' "$2" | sha256sum | cut -c1-64)
    mkdir -p "$r/ostree/repo/objects/${sum:0:2}"
    local f="$r/ostree/repo/objects/${sum:0:2}/${sum:2}.file"
    [ -f "$f" ] || { printf '%s' "$2" > "$f"; chmod "$3" "$f"; }
    printf '%s' "$f"
}
# deployment CSUM VERSION: a deployment whose /usr files are hardlinks into the repo
deployment() {
    local d="$r/ostree/deploy/torizon/deploy/$1.0" v=$2
    mkdir -p "$d"/{usr/bin,usr/lib/systemd/system,usr/etc,etc/systemd/system/multi-user.target.wants,var,sysroot,boot,home,mnt/extra}
    ln "$(object x "NAME=\"TorizonCore\"
ID=torizon
VERSION_ID=$v
" 644)" "$d/usr/lib/os-release"
    ln "$(object x "#!/bin/sh
echo torizon $v
" 755)" "$d/usr/bin/hello"
    ln "$(object x "#!/bin/sh
echo shared by both deployments
" 755)" "$d/usr/bin/shared"
    ln -s ../usr/lib/os-release "$d/etc/os-release"
    ln -s sysroot/ostree "$d/ostree"
    printf 'apalis-imx8-%s\n' "$v" > "$d/etc/hostname"
    printf 'LABEL=otaroot  /  ext4  defaults  0 0\nproc  /proc  proc  defaults  0 0\n' > "$d/etc/fstab"
    local u="$d/usr/lib/systemd/system"
    for t in multi-user local-fs sysinit; do printf '[Unit]\nDescription=%s\n' "$t" > "$u/$t.target"; done
    ln -s multi-user.target "$u/default.target"
    mount_unit "$u" tmp.mount tmpfs /tmp tmpfs mode=1777 local-fs.target
    ln -s /usr/lib/systemd/system/tmp.mount "$d/etc/systemd/system/multi-user.target.wants/tmp.mount"
    # a bind declared by the deployment, from the shared /var
    mount_unit "$u" mnt-extra.mount /var/extra /mnt/extra none bind multi-user.target
    ln -s /usr/lib/systemd/system/mnt-extra.mount "$d/etc/systemd/system/multi-user.target.wants/mnt-extra.mount"
}
deployment "$csumA" 6.0
deployment "$csumB" 6.1
mkdir -p "$r/ostree/boot.1.1/torizon/$bootA" "$r/ostree/boot.1.1/torizon/$bootB"
ln -s "../../../deploy/torizon/deploy/$csumA.0" "$r/ostree/boot.1.1/torizon/$bootA/0"
ln -s "../../../deploy/torizon/deploy/$csumB.0" "$r/ostree/boot.1.1/torizon/$bootB/0"
mkdir -p "$r/boot/ostree/torizon-$bootA" "$r/boot/ostree/torizon-$bootB"
head -c 5000 /dev/urandom > "$r/boot/ostree/torizon-$bootA/vmlinuz"
head -c 5000 /dev/urandom > "$r/boot/ostree/torizon-$bootB/vmlinuz"
printf 'title TorizonCore 6.0 (ostree:1)\nversion 1\noptions root=LABEL=otaroot rootfstype=ext4 ostree=/ostree/boot.1/torizon/%s/0\nlinux /ostree/torizon-%s/vmlinuz\n' \
    "$bootA" "$bootA" > "$r/boot/loader.1/entries/ostree-1-torizon.conf"
printf 'title TorizonCore 6.1 (ostree:0)\nversion 2\noptions root=LABEL=otaroot rootfstype=ext4 ostree=/ostree/boot.1/torizon/%s/0\nlinux /ostree/torizon-%s/vmlinuz\n' \
    "$bootB" "$bootB" > "$r/boot/loader.1/entries/ostree-2-torizon.conf"
# the shared /var
v="$r/ostree/deploy/torizon/var"
mkdir -p "$v/lib" "$v/log" "$v/extra" "$v/rootdirs/home/torizon"
make_docker_root "$v/lib/docker"
printf 'extra data in /var\n' > "$v/extra/data.txt"
printf 'ssh-ed25519 AAAA torizon\n' > "$v/rootdirs/home/torizon/.profile"; chown -R 1000:1000 "$v/rootdirs/home/torizon"
find "$r" -exec touch -h -d @1700000000 {} +
printf '{"os": "torizon", "booted": "%s.0", "rollback": "%s.0"}\n' "$csumB" "$csumA" > "$OUT/ostree.ids"
truncate -s 62M otaroot.img
mkfs.ext4 -q -F -L otaroot -U 0a0b0c0d-05c0-4222-8333-000000000001 -E root_owner=0:0 -d "$r" otaroot.img
put_fs "$disk" otaroot.img $((1*M))
