#!/usr/bin/env python3
"""Fuzz/store-seed.py containerd|podman|podman5 IMAGES_DIR OUT.tar: the seed of the containerd-store or
podman-store fuzz target (Tests/Corpus/<target>/), from the disk the real daemon's recipe made
(images/disks/containerd-root.sh, podman-root.sh, podman5-root.sh: Podman 5's SQLite db.sql; its
busybox binary, the one file over 64 KiB in a layer, is stored empty to keep the seed under
libFuzzer's 1 MiB): the store copied out of the data partition with
`debugfs rdump`, written as a tar at its default path in the namespace (/var/lib/docker with
the HAOS flag file for containerd, /var/lib/containers/storage for Podman). bbolt files are cut at
their high-water mark (the pages past it are unused) and runtime files are left out, so the seed
stays near 300 KiB. Deterministic (mtime 0, owner 0, sorted)."""
import io, json, os, struct, subprocess, sys, tarfile, tempfile

SKIP = ('volumes', 'network', 'buildkit', 'image', 'plugins', 'runtimes', 'swarm', 'tmp', 'trust', 'engine-id', 'hostname',
        'hosts', 'resolv.conf', 'json.log', 'mounts', 'checkpoints', 'storage.lock', 'defaultNetworkBackend', 'overlay/l',
        'layers.lock', 'images.lock', 'containers.lock', 'volatile-containers.json', 'userdata')


def hwm(data):
    """A bbolt file cut at its high-water mark (meta pgid x page size); other files unchanged."""
    if len(data) < 8192 or struct.unpack_from('<I', data, 16)[0] != 0xED0CDAED:
        return data
    psz = struct.unpack_from('<I', data, 24)[0]
    pgid = max(struct.unpack_from('<Q', data, p * psz + 16 + 40)[0] for p in (0, 1))
    return data[:pgid * psz]


def build(src, prefix, out, extra=(), layer_file_limit=None):
    entries = []
    for dirpath, dirs, files in os.walk(src):
        dirs.sort()
        rel = os.path.relpath(dirpath, src)
        if rel != '.' and any(rel.startswith(s) for s in SKIP):
            dirs[:] = []
            continue
        for name in [None] + sorted(files):
            path = dirpath if name is None else os.path.join(dirpath, name)
            r = os.path.relpath(path, src)
            if name and any(r.startswith(s) or name == s for s in SKIP):
                continue
            entries.append((path, prefix + ('' if r == '.' else '/' + r)))
    with tarfile.open(out, 'w', format=tarfile.GNU_FORMAT) as t:
        for path, arc in entries:
            st = os.lstat(path)
            i = tarfile.TarInfo(arc)
            i.mode, i.mtime, i.uid, i.gid = st.st_mode & 0o7777, 0, 0, 0
            if os.path.islink(path):
                i.type, i.linkname = tarfile.SYMTYPE, os.readlink(path)
                t.addfile(i)
            elif os.path.isdir(path):
                i.type = tarfile.DIRTYPE
                t.addfile(i)
            elif os.path.isfile(path):
                data = hwm(open(path, 'rb').read())
                if layer_file_limit is not None and '/diff/' in arc and len(data) > layer_file_limit:
                    data = b''
                i.size = len(data)
                t.addfile(i, io.BytesIO(data))
            else:  # overlay whiteouts (0:0 character devices)
                i.type = tarfile.CHRTYPE
                i.devmajor, i.devminor = os.major(st.st_rdev), os.minor(st.st_rdev)
                t.addfile(i)
        for arc, data in extra:
            i = tarfile.TarInfo(arc)
            i.size, i.mtime = len(data), 0
            t.addfile(i, io.BytesIO(data))


def main():
    kind, images, out = sys.argv[1:4]
    disk, part, fs_path, prefix, extra = {
        'containerd': ('containerd-root.img', 3, '/docker', 'var/lib/docker',
                       [('var/lib/.docker-use-containerd-snapshotter', b'')]),
        'podman': ('podman-root.img', 2, '/var/lib/containers/storage', 'var/lib/containers/storage', []),
        'podman5': ('podman5-root.img', 2, '/var/lib/containers/storage', 'var/lib/containers/storage', []),
    }[kind]
    img = os.path.join(images, disk)
    table = json.loads(subprocess.check_output(['sfdisk', '-J', img]))['partitiontable']
    start = table['partitions'][part - 1]['start'] * 512
    with tempfile.TemporaryDirectory() as tmp:
        subprocess.run(['debugfs', '-R', f'rdump {fs_path} {tmp}', f'{img}?offset={start}'], check=True, capture_output=True)
        build(os.path.join(tmp, os.path.basename(fs_path)), prefix, out, extra,
              layer_file_limit=65536 if kind == 'podman5' else None)


if __name__ == '__main__':
    main()
