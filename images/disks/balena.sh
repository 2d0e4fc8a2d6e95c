#!/usr/bin/env bash
# balenaOS on MBR (field guide §3): p1 vfat resin-boot (resinOS_uEnv.txt resin_root_part=3: slot B
# boots), p2 ext4 resin-rootA (an older hostapp), p3 ext4 resin-rootB, p4 extended, p5 ext4
# resin-state (root-overlay/ persisted files), p6 ext4 resin-data (docker/ from make_docker_root,
# resin-data/). Each root partition is a balena-engine data-root at /balena holding the OS as a
# container (the hostapp): two image layers, an -init layer (skipped at boot) and the rw layer,
# /current -> hostapps/<container id>, /boot -> current/boot, /sbin/init -> ../current/boot/init.
# The hostapp carries balenaOS's mount services (resin-partition-mounter), bind-*.service state
# binds and mount units (var-lib-docker.mount, resin-data.mount, a disabled
# mnt-sysroot-inactive.mount). balena.B.ids (JSON) names the ids of slot B's layers for the tests.
source "$(dirname "$0")/../lib.sh"
disk="$OUT/balena.img"
rm -f "$disk"; truncate -s 96M "$disk"
M=2048
# boot 1-9 MiB, rootA 9-25, rootB 25-41, extended 41-96: state 42-50 (EBR at 41), data 51-96
sfdisk -q "$disk" <<SF
label: dos
label-id: 0xba1e0a05
unit: sectors

start=$((1*M)),  size=$((8*M)),  type=c, bootable
start=$((9*M)),  size=$((16*M)), type=83
start=$((25*M)), size=$((16*M)), type=83
start=$((41*M)), type=f
start=$((42*M)), size=$((8*M)),  type=83
start=$((51*M)), type=83
SF

# --- boot
truncate -s 8M boot.img; mkfs.vfat -n resin-boot -i 0ba1e0b0 boot.img >/dev/null
printf 'resin_root_part=3\n' > resinOS_uEnv.txt
printf '{"deviceType":"raspberrypi4-64","hostname":"my-device","persistentLogging":false}\n' > config.json
printf 'console=tty1 rootwait\n' > cmdline.txt
mcopy -i boot.img resinOS_uEnv.txt config.json cmdline.txt ::/
put_fs "$disk" boot.img $((1*M))

# --- a root partition: make_balena_root DIR VERSION IDSFILE
make_balena_root() {
    local r=$1 version=$2 ids=$3
    python3 - "$r" "$version" "$ids" <<'PY'
import hashlib, json, os, sys
root, version, ids_out = sys.argv[1], sys.argv[2], sys.argv[3]
def sha(s): return hashlib.sha256(s.encode()).hexdigest()
def w(path, data, mode=0o644, uid=0, gid=0):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "w") as f: f.write(data)
    os.lchown(path, uid, gid); os.chmod(path, mode)  # chown clears setuid: chmod last
def md(path, mode=0o755):
    os.makedirs(path, exist_ok=True); os.chmod(path, mode)
def short(seed):
    h = int(sha(seed), 16); s = ""
    for _ in range(26): s += "ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789"[h % 36]; h //= 36
    return s
br = root + "/balena"; ov = br + "/overlay2"; md(ov, 0o710); md(ov + "/l", 0o700)
def layer(cache, lowers):
    lk = short(cache); base = ov + "/" + cache; md(base, 0o710); md(base + "/diff")
    w(base + "/link", lk)
    if lowers: w(base + "/lower", ":".join("l/" + short(l) for l in lowers))
    md(base + "/work", 0o700)
    os.symlink("../" + cache + "/diff", ov + "/l/" + lk)
    return base + "/diff"
base_id, top_id = sha("hostapp-base-" + version), sha("hostapp-top-" + version)
cid = sha("hostapp-container-" + version); mid = sha("hostapp-mount-" + version); init_id = mid + "-init"
# base layer: the OS
b = layer(base_id, [])
units = b + "/lib/systemd/system"
for d in ("bin", "sbin", "usr/bin", "etc/docker", "home/root/.ssh", "var/lib/docker", "var/lib/systemd", "resin-data",
          "mnt/boot", "mnt/state", "mnt/data", "mnt/sysroot/active", "mnt/sysroot/inactive", "boot", "etc/systemd/system/multi-user.target.wants",
          "usr/share/doc/balena"):
    md(b + "/" + d)
w(b + "/etc/os-release", 'ID="balena-os"\nNAME="balenaOS"\nVERSION="%s"\nVERSION_ID="%s"\n' % (version, version))
w(b + "/etc/hostname", "balena\n")
w(b + "/etc/motd", "motd from the base layer, whited out by the top layer\n")
w(b + "/etc/fstab", "/dev/root            /                    auto       defaults              1  1\n"
                    "proc                 /proc                proc       defaults              0  0\n"
                    "tmpfs                /run                 tmpfs      mode=0755,nodev,nosuid,strictatime 0  0\n")
w(b + "/bin/sh", "\x7fELF busybox sh", 0o755)
w(b + "/boot/init", "#!/bin/sh\nexec /lib/systemd/systemd\n", 0o755)
w(b + "/usr/share/doc/balena/old.txt", "hidden by the opaque directory above\n")
w(b + "/usr/bin/balena-engine", "\x7fELF balena-engine", 0o755)
def unit(name, text, wanted=True):
    w(units + "/" + name, text)
    if wanted: os.symlink("/lib/systemd/system/" + name, b + "/etc/systemd/system/multi-user.target.wants/" + name)
for t in ("multi-user", "local-fs", "sysinit"): unit(t + ".target", "[Unit]\nDescription=%s\n" % t, False)
os.symlink("multi-user.target", units + "/default.target")
for label in ("boot", "state", "data"):
    unit("resin-%s.service" % label, "[Unit]\nDescription=Resin %s partition mount service\nDefaultDependencies=no\n\n"
         "[Service]\nType=oneshot\nRemainAfterExit=yes\nExecStart=/usr/bin/resin-partition-mounter --mount resin-%s\n"
         "ExecStop=/bin/umount /mnt/%s\n\n[Install]\nWantedBy=multi-user.target\n" % (label, label, label))
def bind(path, enabled=True):
    esc = path.strip("/").replace("-", "\\x2d").replace("/", "-")
    unit("bind-%s.service" % esc, "[Unit]\nDescription=Bind mount for %s\nRequires=resin-state.service\nAfter=resin-state.service\n\n"
         "[Service]\nType=oneshot\nRemainAfterExit=yes\n"
         "ExecStart=/usr/bin/bindmount --target %s --bind-root /mnt/state/root-overlay --command mount\n"
         "ExecStop=/usr/bin/bindmount --target %s --bind-root /mnt/state/root-overlay --command unmount\n\n"
         "[Install]\nWantedBy=multi-user.target\n" % (path, path, path), enabled)
for p in ("/etc/hostname", "/etc/docker", "/home/root/.ssh", "/var/lib/systemd"): bind(p)
bind("/etc/NetworkManager/system-connections", enabled=False)
unit("var-lib-docker.mount", "[Unit]\nDescription=Docker data mountpoint\nRequires=resin-data.service\nAfter=resin-data.service\n\n"
     "[Mount]\nWhat=/mnt/data/docker\nWhere=/var/lib/docker\nType=none\nOptions=bind\n\n[Install]\nWantedBy=multi-user.target\n")
unit("resin\\x2ddata.mount", "[Unit]\nDescription=Resin data mountpoint\n\n"
     "[Mount]\nWhat=/mnt/data/resin-data\nWhere=/resin-data\nType=none\nOptions=bind\n\n[Install]\nWantedBy=multi-user.target\n")
unit("mnt-sysroot-inactive.mount", "[Unit]\nDescription=Inactive sysroot mountpoint\n\n"
     "[Mount]\nWhat=/dev/disk/by-state/inactive\nWhere=/mnt/sysroot/inactive\n", False)
# top layer: a newer /etc/issue, /etc/motd whited out, an opaque directory, a setuid file owned 1000
t = layer(top_id, [base_id])
md(t + "/etc"); md(t + "/usr/share/doc/balena"); md(t + "/usr/bin")
w(t + "/etc/issue", "balenaOS %s\n" % version)
os.mknod(t + "/etc/motd", 0o020000, os.makedev(0, 0))
os.setxattr(t + "/usr/share/doc/balena", "trusted.overlay.opaque", b"y")
w(t + "/usr/share/doc/balena/new.txt", "from the top layer\n")
w(t + "/usr/bin/healthcheck", "#!/bin/sh\nexit 0\n", 0o4755, 1000, 1000)
# the container: -init layer (not part of the booted root) and the rw layer
i = layer(init_id, [top_id, base_id])
md(i + "/etc"); w(i + "/.dockerenv", ""); w(i + "/etc/resolv.conf", "# from the -init layer\n")
rw = layer(mid, [init_id, top_id, base_id])
md(rw + "/etc"); w(rw + "/etc/rw-layer", "written by the container's rw layer\n")
m = br + "/image/overlay2/layerdb/mounts/" + cid; md(m)
w(m + "/mount-id", mid); w(m + "/init-id", init_id); w(m + "/parent", "sha256:" + sha("chain-" + version))
md(br + "/containers/" + cid, 0o710)
# the physical root: /current -> hostapps/<cid>, /boot -> current/boot, /sbin/init -> ../current/boot/init
md(root + "/hostapps/" + cid)
os.symlink("../../balena/overlay2/%s/diff/boot" % base_id, root + "/hostapps/%s/boot" % cid)
os.symlink("hostapps/" + cid, root + "/current")
os.symlink("current/boot", root + "/boot")
md(root + "/sbin"); os.symlink("../current/boot/init", root + "/sbin/init")
md(root + "/lost+found", 0o700)
json.dump({"container": cid, "mount_id": mid, "layers": [mid, top_id, base_id], "init": init_id}, open(ids_out, "w"), indent=1)
PY
    find "$r" -exec touch -h -d @1700000000 {} +
}
make_balena_root rootA 2.0.0 "$OUT/balena.A.ids"
make_balena_root rootB 2.1.0 "$OUT/balena.B.ids"
truncate -s 16M a.img b.img
mkfs.ext4 -q -F -L resin-rootA -U 0a0b0c0d-ba1e-4222-8333-0000000000a2 -E root_owner=0:0 -d rootA a.img
mkfs.ext4 -q -F -L resin-rootB -U 0a0b0c0d-ba1e-4222-8333-0000000000b3 -E root_owner=0:0 -d rootB b.img
put_fs "$disk" a.img $((9*M)); put_fs "$disk" b.img $((25*M))

# --- state: root-overlay/ holds the persisted copies of the bound paths
s=state/root-overlay
mkdir -p "$s/etc/docker" "$s/home/root/.ssh" "$s/var/lib/systemd"
printf 'my-device\n' > "$s/etc/hostname"
printf '{"storage-driver": "overlay2"}\n' > "$s/etc/docker/daemon.json"
printf 'ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIBalena user@host\n' > "$s/home/root/.ssh/authorized_keys"
chmod 600 "$s/home/root/.ssh/authorized_keys"; chmod 700 "$s/home/root/.ssh"
printf 'seed\n' > "$s/var/lib/systemd/random-seed"; chmod 600 "$s/var/lib/systemd/random-seed"
find state -exec touch -h -d @1700000100 {} +
truncate -s 8M state.img
mkfs.ext4 -q -F -L resin-state -U 0a0b0c0d-ba1e-4222-8333-000000000005 -E root_owner=0:0 -d state state.img
put_fs "$disk" state.img $((42*M))

# --- data: the apps' Docker data-root and resin-data/
mkdir -p data/resin-data
make_docker_root data/docker
printf 'app state\n' > data/resin-data/app.txt
find data -exec touch -h -d @1700000200 {} +
truncate -s 45M data.img
mkfs.ext4 -q -F -L resin-data -U 0a0b0c0d-ba1e-4222-8333-000000000006 -E root_owner=0:0 -d data data.img
put_fs "$disk" data.img $((51*M))
