#!/usr/bin/env bash
# Two MBR disks with a hand-made Docker overlay2 data-root on a data partition (no Docker engine):
#   docker-root.img         intact: p1 vfat boot (cmdline root=PARTUUID=d0c4e700-02), p2 ext4 root
#                           (/etc/docker/daemon.json data-root=/mnt/data/docker, fstab mounts p3 at
#                           /mnt/data and binds /mnt/data/docker on /var/lib/docker), p3 ext4 data.
#                           Two images sharing a base layer, a file whiteout, a directory whiteout,
#                           an opaque directory, hardlinks within and across layers, container
#                           "web" running and "job" exited with 1, a volume.
#   docker-root-broken.img  the same with planted damage (see BROKEN below).
# Beside them: docker-root.json (ids, layer cache ids in merge order) for the tests.
source "$(dirname "$0")/../lib.sh"

make_docker_disk() {
    local name=$1 broken=$2 disk="$OUT/$1.img"
    rm -rf data root
    mkdir -p data root
    python3 - data/docker "$broken" "$OUT/$name.json" <<'PY'
import hashlib, json, os, sys
root, broken, meta_out = sys.argv[1], sys.argv[2] == "yes", sys.argv[3]
def h(s): return hashlib.sha256(s.encode()).hexdigest()
def write(path, data, mode=0o644):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "wb") as f: f.write(data if isinstance(data, bytes) else data.encode())
    os.chmod(path, mode)
def whiteout(path):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    os.mknod(path, 0o600 | 0o020000, os.makedev(0, 0))
def opaque(path):
    os.makedirs(path, exist_ok=True)
    os.setxattr(path, "trusted.overlay.opaque", b"y")
o2 = os.path.join(root, "overlay2")
os.makedirs(os.path.join(o2, "l"))
links = {}
def layer(cache, short, lowers):
    d = os.path.join(o2, cache)
    os.makedirs(os.path.join(d, "diff"), exist_ok=True)
    os.makedirs(os.path.join(d, "work"), exist_ok=True)
    write(os.path.join(d, "link"), short)
    os.symlink("../%s/diff" % cache, os.path.join(o2, "l", short))
    links[cache] = short
    if lowers:
        write(os.path.join(d, "lower"), ":".join("l/" + links[c] for c in lowers))
    return os.path.join(d, "diff")
base, app_a, app_b = h("base-cache"), h("app-a-cache"), h("app-b-cache")
# Base layer: shared by both images.
d = layer(base, "BASEBASEBASEBASEBASEBASE01", [])
write(d + "/bin/sh", "#!/bin/true\n", 0o755)
write(d + "/etc/passwd", "root:x:0:0:root:/root:/bin/sh\n")
write(d + "/etc/motd", "welcome\n")
write(d + "/usr/share/doc/a.txt", "doc a\n")
write(d + "/usr/share/doc/b.txt", "doc b\n")
write(d + "/opt/old/file.txt", "old\n")
write(d + "/opt/old/sub/deep.txt", "deeper\n")
write(d + "/var/cache/old.txt", "stale\n")
write(d + "/lib/libx.so.1", b"\x7fELF" + bytes(range(256)) * 20, 0o755)
os.link(d + "/lib/libx.so.1", d + "/lib/libx.so")                  # hardlink within a layer
os.symlink("libx.so.1", d + "/lib/libx-link.so")
os.chmod(d + "/bin/sh", 0o4755)                                      # setuid survives the merge
os.makedirs(d + "/tmp"); os.chmod(d + "/tmp", 0o1777)
os.chown(d + "/etc/motd", 1000, 1000)
# Image A's top layer: a file whiteout, a directory whiteout, an opaque dir, a cross-layer hardlink.
d = layer(app_a, "APPAAPPAAPPAAPPAAPPAAPPA02", [base])
whiteout(d + "/usr/share/doc/a.txt")
whiteout(d + "/opt/old")
opaque(d + "/var/cache")
write(d + "/var/cache/new.txt", "fresh\n")
write(d + "/app/run.sh", "#!/bin/sh\necho web\n", 0o755)
os.link(os.path.join(o2, base, "diff/etc/passwd"), d + "/app/passwd-copy")  # hardlink across layers
os.setxattr(d + "/app/run.sh", "user.comment", b"web entrypoint")
# Image B's top layer.
d = layer(app_b, "APPBAPPBAPPBAPPBAPPBAPPB03", [base])
write(d + "/app/job.sh", "#!/bin/sh\nexit 1\n", 0o755)
write(d + "/etc/motd", "job motd\n")
diff_ids = {c: "sha256:" + h("diff-" + c) for c in (base, app_a, app_b)}
def chain_ids(diffs):
    out = []
    for d in diffs:
        out.append(d if not out else "sha256:" + hashlib.sha256((out[-1] + " " + d).encode()).hexdigest())
    return out
ldb = os.path.join(root, "image/overlay2/layerdb")
def layerdb(chain, diff, cache, parent, size):
    p = os.path.join(ldb, "sha256", chain[7:])
    write(p + "/diff", diff); write(p + "/cache-id", cache); write(p + "/size", str(size))
    if parent: write(p + "/parent", parent)
images = {}
for tag, layers, cmd in (("example.com/web:1.0", [base, app_a], ["/app/run.sh"]), ("example.com/job:latest", [base, app_b], ["/app/job.sh"])):
    diffs = [diff_ids[c] for c in layers]
    chains = chain_ids(diffs)
    for i, c in enumerate(layers):
        layerdb(chains[i], diffs[i], c, chains[i - 1] if i else None, 1000 * (i + 1))
    config = json.dumps({"architecture": "amd64", "os": "linux", "created": "2024-01-0%dT00:00:00Z" % (len(images) + 1),
                         "config": {"Cmd": cmd, "Entrypoint": None, "Env": ["PATH=/bin"]},
                         "rootfs": {"type": "layers", "diff_ids": diffs}}, sort_keys=True)
    image_id = "sha256:" + hashlib.sha256(config.encode()).hexdigest()
    write(os.path.join(root, "image/overlay2/imagedb/content/sha256", image_id[7:]), config)
    images[tag] = {"id": image_id, "layers": layers, "chains": chains}
repos = {"Repositories": {t.split(":")[0]: {t: v["id"]} for t, v in images.items()}}
write(os.path.join(root, "image/overlay2/repositories.json"), json.dumps(repos))
containers = {}
for name, tag, running, code, cmd in (("web", "example.com/web:1.0", True, 0, ["/app/run.sh"]),
                                      ("job", "example.com/job:latest", False, 1, ["/app/job.sh"])):
    cid = h("container-" + name)
    mount = h("mount-" + name)
    img = images[tag]
    # -init layer and rw layer; their lower files name the image layers, nearest first.
    init = layer(mount + "-init", ("INIT" + name.upper() * 8)[:26], list(reversed(img["layers"])))
    write(init + "/etc/hostname", cid[:12] + "\n")
    write(init + "/etc/hosts", "127.0.0.1 localhost\n")
    write(init + "/.dockerenv", "")
    rw = layer(mount, ("RWRW" + name.upper() * 8)[:26], [mount + "-init"] + list(reversed(img["layers"])))
    if name == "web":
        write(rw + "/run/web.pid", "42\n")
        whiteout(rw + "/etc/motd")
        write(rw + "/app/run.sh", "#!/bin/sh\necho patched\n", 0o755)
    else:
        write(rw + "/var/log/job.log", "failed\n")
    m = os.path.join(ldb, "mounts", cid)
    write(m + "/mount-id", mount); write(m + "/init-id", mount + "-init"); write(m + "/parent", img["chains"][-1])
    state = {"Running": running, "Paused": False, "Restarting": False, "OOMKilled": False, "Dead": False,
             "Pid": 42 if running else 0, "ExitCode": code,
             "StartedAt": "2024-02-01T10:00:00.123456789Z", "FinishedAt": "0001-01-01T00:00:00Z" if running else "2024-02-01T10:00:05Z"}
    cfg = {"ID": cid, "Name": "/" + name, "Image": img["id"], "Path": cmd[0], "Args": [],
           "Config": {"Image": tag, "Cmd": cmd, "Labels": {"role": name}}, "State": state, "RestartCount": 2 if name == "job" else 0,
           "Driver": "overlay2"}
    write(os.path.join(root, "containers", cid, "config.v2.json"), json.dumps(cfg))
    write(os.path.join(root, "containers", cid, "hostconfig.json"),
          json.dumps({"RestartPolicy": {"Name": "always" if name == "web" else "on-failure", "MaximumRetryCount": 0}}))
    containers[name] = {"id": cid, "image": img["id"], "tag": tag, "mount": mount,
                        "layers": [mount, mount + "-init"] + list(reversed(img["layers"]))}
write(os.path.join(root, "volumes/webdata/_data/index.html"), "<html>hi</html>\n")
write(os.path.join(root, "volumes/webdata/_data/sub/x.bin"), bytes(3000))
problems = []
if broken:
    # BROKEN: each plants one problem the integrity check must report.
    import shutil
    shutil.rmtree(os.path.join(o2, app_b, "diff"))                     # dangling l/ link + missing diff
    problems.append("l/APPBAPPBAPPBAPPBAPPBAPPB03 dangling")
    shutil.rmtree(os.path.join(ldb, "sha256", images["example.com/job:latest"]["chains"][1][7:]))  # missing layerdb entry
    problems.append("job image layer 2 not in layerdb")
    wm = containers["web"]["mount"]
    write(os.path.join(o2, wm, "lower"), "l/%s:l/%s:l/%s" % (links[wm + "-init"], links[base], links[wm + "-init"]))  # loop
    problems.append("web rw lower loops")
    bad = os.path.join(ldb, "mounts", h("container-evil"))
    write(bad + "/mount-id", "../../../etc")                            # id with / and ..
    write(os.path.join(root, "containers", h("container-evil"), "config.v2.json"),
          json.dumps({"ID": h("container-evil"), "Name": "/evil", "Image": images["example.com/web:1.0"]["id"], "State": {}}))
    problems.append("evil mount-id ../../../etc")
    os.symlink("/etc", os.path.join(o2, "escape"))                      # symlinked layer dir outside
    problems.append("overlay2/escape symlink")
    write(os.path.join(root, "containers", h("container-trunc"), "config.v2.json"), '{"ID": "trunc", "Name": "/tr')
    problems.append("truncated config.v2.json")
    r = json.load(open(os.path.join(root, "image/overlay2/repositories.json")))
    r["Repositories"]["example.com/ghost"] = {"example.com/ghost:1": "sha256:" + h("ghost")}
    write(os.path.join(root, "image/overlay2/repositories.json"), json.dumps(r))
    problems.append("repositories.json ghost")
json.dump({"data_root": "/mnt/data/docker", "images": images, "containers": containers, "diff_ids": diff_ids,
           "planted": problems}, open(meta_out, "w"), indent=1, sort_keys=True)
PY
    # Root filesystem.
    minimal_root root
    mkdir -p root/etc/docker root/mnt/data root/var/lib/docker
    printf '{\n  "data-root": "/mnt/data/docker",\n  "log-driver": "journald"\n}\n' > root/etc/docker/daemon.json
    printf 'PARTUUID=d0c4e700-02 / ext4 defaults 0 1\nPARTUUID=d0c4e700-03 /mnt/data ext4 defaults 0 2\n/mnt/data/docker /var/lib/docker none bind 0 0\n' > root/etc/fstab
    boot_root_disk "$disk" d0c4e700 96 24 "" 54 data
}

make_docker_disk docker-root no
make_docker_disk docker-root-broken yes
