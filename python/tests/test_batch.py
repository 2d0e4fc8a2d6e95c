"""Batches: `fwassemble batch` (the CLI) and fwassemble.batch on a Dask LocalCluster, the wheel.

One corpus of 11 disks: 8 good ones (two of them named firmware.img in different folders), a
damaged qcow2 (header version field overwritten), an xz-wrapped disk whose LZMA2 dictionary
needs 2 GiB (over --memory 256) and an ext4 root with a 16 GiB sparse file (gzip of 16 GiB
of zeros: over --timeout 10). Every good archive is compared, byte for byte, with a single
`fwassemble assemble` of the same disk.

Runs the native executable of the package (python/fwassemble/_native, `make native`), else the
one fwassemble.executable_path() finds. Needs dask.distributed (the venv `make test` creates).
"""

import hashlib
import json
import os
import shutil
import signal
import struct
import subprocess
import sys
import threading
import time
import zlib
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO / "python"))
os.environ["PYTHONPATH"] = os.pathsep.join([str(REPO / "python")] + [p for p in [os.environ.get("PYTHONPATH")] if p])

import fwassemble  # noqa: E402
import fwassemble.batch  # noqa: E402

IMAGES = Path(os.environ.get("FWA_IMAGES") or REPO / "images" / "out")
NATIVE = REPO / "python" / "fwassemble" / "_native"
GOOD = ["sample.img", "openwrt.img", "haos-gpt.img", "rpi-mbr.img", "mender.img", "formats.qcow2", "haos-full.img",
        "debian-gpt.img"]
TIMEOUT = 10
MEMORY = 256


def sha256(path):
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


@pytest.fixture(scope="module")
def exe():
    native = NATIVE / "fwassemble"
    path = str(native) if native.exists() else fwassemble.executable_path()
    assert path, "no fwassemble executable: run `make native`"
    return path


def big_dictionary_xz(source, target):
    """`source` compressed with xz, then the LZMA2 dictionary size of its block header raised to
    2 GiB (and the header's CRC32 fixed): a valid stream whose decoder needs 2 GiB."""
    data = bytearray(subprocess.run(["xz", "-T1", "--lzma2=preset=0,dict=1MiB", "-c", str(source)],
                                    capture_output=True, check=True).stdout)
    start, size = 12, (data[12] + 1) * 4
    header = data[start:start + size]
    flags, i = header[1], 2
    for present in (flags & 0x40, flags & 0x80):  # compressed and uncompressed size fields (VLIs)
        if present:
            while header[i] & 0x80:
                i += 1
            i += 1
    assert header[i] == 0x21 and header[i + 1] == 1  # the LZMA2 filter and its one property byte
    header[i + 2] = 38  # dictionary 2 GiB
    header[-4:] = struct.pack("<I", zlib.crc32(bytes(header[:-4])))
    data[start:start + size] = header
    Path(target).write_bytes(bytes(data))


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    """The input folder, and the expected status of each disk in it."""
    root = tmp_path_factory.mktemp("corpus")
    expected = {}
    for i, name in enumerate(GOOD):
        src = IMAGES / name
        if not src.exists():
            pytest.fail("test image %s not found in %s: run `make images`" % (name, IMAGES))
        folder = root / ("a" if name == "sample.img" else "b" if name == "openwrt.img" else ".")
        folder.mkdir(exist_ok=True)
        target = folder / ("firmware.img" if name in ("sample.img", "openwrt.img") else name)
        target.symlink_to(src)
        expected[os.path.abspath(str(target))] = "ok"
    broken = root / "damaged.qcow2"
    shutil.copy(IMAGES / "formats.qcow2", broken)
    with open(broken, "r+b") as f:
        f.seek(4)
        f.write(struct.pack(">I", 9))  # qcow2 version 9
    expected[str(broken)] = "failed"
    hog = root / "hog.img.xz"
    big_dictionary_xz(IMAGES / "rpi-mbr.img", hog)
    expected[str(hog)] = "failed"
    tree = tmp_path_factory.mktemp("slowtree")
    (tree / "etc").mkdir()
    (tree / "usr" / "bin").mkdir(parents=True)
    (tree / "etc" / "hostname").write_text("slow\n")
    with open(tree / "usr" / "zeros", "wb") as f:
        f.truncate(16 << 30)
    slow = root / "slow.img"
    subprocess.run(["mkfs.ext4", "-q", "-F", "-d", str(tree), str(slow), "64M"], check=True, capture_output=True)
    expected[str(slow)] = "timeout"
    (root / "notes.txt").write_text("not a disk\n")
    (root / "random.bin").write_bytes(os.urandom(100000))
    return root, expected


@pytest.fixture(scope="module")
def references(exe, corpus, tmp_path_factory):
    """SHA-256 of a single `fwassemble assemble` of each good disk."""
    out = tmp_path_factory.mktemp("single")
    root, expected = corpus
    refs = {}
    for i, (image, status) in enumerate(sorted(expected.items())):
        if status == "ok":
            target = out / ("%d.tar.gz" % i)
            subprocess.run([exe, "assemble", image, "-q", "-o", str(target)], check=True, capture_output=True)
            refs[image] = sha256(target)
    return refs


def read_records(path):
    with open(path) as f:
        return [json.loads(line) for line in f if line.strip()]


KEYS = {"image", "size", "sha256", "status", "exit_code", "signal", "error", "output", "output_sha256", "summary",
        "seconds", "peak_rss_bytes"}


def check_records(records, corpus, references, out_dir):
    root, expected = corpus
    by_image = {r["image"]: r for r in records}
    assert set(by_image) == set(expected), "the folder search found other disks"
    outputs = set()
    for image, want in expected.items():
        r = by_image[image]
        assert set(r) == KEYS
        assert r["status"] == want, r
        assert r["size"] == os.path.getsize(image)
        assert r["sha256"] == sha256(image)
        if want == "ok":
            assert r["exit_code"] == 0 and r["error"] is None
            assert os.path.dirname(r["output"]) == str(out_dir)
            assert r["output"] not in outputs
            outputs.add(r["output"])
            assert sha256(r["output"]) == r["output_sha256"] == references[image], image
            report = json.load(open(r["output"] + ".report.json"))
            assert r["summary"] == {"members": report["members"], "files": report["files"],
                                    "hardlinks": report["hardlinks"], "content_bytes": report["content_bytes"],
                                    "warnings": len(report["warnings"])}
            assert r["peak_rss_bytes"] > 1 << 20 and r["seconds"] > 0
        else:
            assert r["output"] is None and r["output_sha256"] is None and r["error"]
    assert "qcow2 version 9" in by_image[str(root / "damaged.qcow2")]["error"]
    assert "out of memory" in by_image[str(root / "hog.img.xz")]["error"]
    assert by_image[str(root / "slow.img")]["seconds"] >= TIMEOUT
    names = sorted(os.path.basename(r["output"]) for r in records if r["output"])
    assert len([n for n in names if n.startswith("firmware-")]) == 2, names


def test_native_parts_need_no_swift_runtime(exe):
    if not (NATIVE / "libfwassemble.so").exists():
        pytest.skip("python/fwassemble/_native not built (make native)")
    out = subprocess.run(["ldd", str(NATIVE / "fwassemble"), str(NATIVE / "libfwassemble.so")], capture_output=True,
                         text=True, check=True).stdout
    assert "libswift" not in out and "not found" not in out, out


def test_cli_batch(exe, corpus, references, tmp_path):
    root, expected = corpus
    out = tmp_path / "out"
    p = subprocess.run([exe, "batch", str(root), "-o", str(out), "--jobs", "2", "--timeout", str(TIMEOUT),
                        "--memory", str(MEMORY)], capture_output=True, text=True)
    assert p.returncode == 1, p.stderr
    assert p.stdout == ""
    records = read_records(out / "results.jsonl")
    assert len(records) == len(expected)
    check_records(records, corpus, references, out)
    assert "11 disks: 8 ok, 3 failed" in p.stderr


def test_cli_batch_exit_codes(exe, corpus, tmp_path):
    root, _ = corpus
    good = root / "mender.img"
    assert subprocess.run([exe, "batch", str(good), "-o", str(tmp_path / "o")], capture_output=True).returncode == 0
    for args in (["batch", str(tmp_path / "missing.img"), "-o", str(tmp_path / "o")],
                 ["batch", str(good)], ["batch", str(good), "-o", str(tmp_path / "o"), "--jobs", "0"],
                 ["batch", str(root / "notes.txt") + ".none", "-o", str(tmp_path)]):
        p = subprocess.run([exe, *args], capture_output=True, text=True)
        assert p.returncode == 2, (args, p.stderr)
    empty = tmp_path / "empty"
    empty.mkdir()
    p = subprocess.run([exe, "batch", str(empty), "-o", str(tmp_path / "o")], capture_output=True, text=True)
    assert p.returncode == 2 and "no disk images" in p.stderr


def test_cli_list_files(exe, corpus, tmp_path):
    root, _ = corpus
    listing = tmp_path / "disks.txt"
    listing.write_text("# two disks\n%s\n\nmender.img\n" % (root / "rpi-mbr.img"))
    shutil.copy(IMAGES / "mender.img", tmp_path / "mender.img")
    p = subprocess.run([exe, "batch", "@" + str(listing), "-o", str(tmp_path / "o"), "--list"], capture_output=True,
                       text=True, check=True)
    listed = [json.loads(line) for line in p.stdout.splitlines()]
    assert [d["image"] for d in listed] == [str(root / "rpi-mbr.img"), str(tmp_path / "mender.img")]
    assert [d["output_name"] for d in listed] == ["rpi-mbr.rootfs.tar.gz", "mender.rootfs.tar.gz"]


def test_cli_resume_after_kill(exe, corpus, references, tmp_path):
    root, expected = corpus
    good = sorted(i for i, s in expected.items() if s == "ok")
    listing = tmp_path / "good.txt"
    listing.write_text("\n".join(good) + "\n")
    out = tmp_path / "out"
    results = out / "results.jsonl"
    p = subprocess.Popen([exe, "batch", "@" + str(listing), "-o", str(out), "--jobs", "1", "--threads", "1"],
                         stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    deadline = time.time() + 120
    while time.time() < deadline and (not results.exists() or len(read_records(results)) < 3):
        time.sleep(0.05)
    os.killpg(p.pid, signal.SIGKILL)
    p.wait()
    done = {r["image"] for r in read_records(results)}
    assert 3 <= len(done) < len(good), "the batch was not killed halfway"
    before = len(read_records(results))
    p = subprocess.run([exe, "batch", "@" + str(listing), "-o", str(out), "--jobs", "2", "--resume"],
                       capture_output=True, text=True)
    assert p.returncode == 0, p.stderr
    records = read_records(results)
    redone = [r["image"] for r in records[before:]]
    assert sorted(redone) == sorted(set(good) - done)
    for r in records:
        assert r["status"] == "ok" and r["output_sha256"] == references[r["image"]]
    # An archive changed since: redone; everything else skipped.
    victim = records[0]
    with open(victim["output"], "ab") as f:
        f.write(b"x")
    before = len(records)
    p = subprocess.run([exe, "batch", "@" + str(listing), "-o", str(out), "--resume"], capture_output=True, text=True)
    assert p.returncode == 0, p.stderr
    assert [r["image"] for r in read_records(results)[before:]] == [victim["image"]]
    assert sha256(victim["output"]) == references[victim["image"]]


@pytest.fixture(scope="module")
def client():
    distributed = pytest.importorskip("dask.distributed")
    cluster = fwassemble.batch.local_cluster(2)
    c = distributed.Client(cluster)
    yield c
    c.close()
    cluster.close()


def test_dask_batch_same_records_as_cli(exe, corpus, references, client, tmp_path):
    root, expected = corpus
    out = tmp_path / "out"
    seen = []
    records = fwassemble.batch.run([str(root)], out, client=client, timeout=TIMEOUT, memory=MEMORY,
                                   on_record=seen.append, executable=exe, worker_executable=exe)
    assert len(records) == len(seen) == len(expected)
    check_records(records, corpus, references, out)
    assert read_records(out / "results.jsonl") == seen  # streamed in the order they finished
    assert len(client.scheduler_info()["workers"]) == 2


def test_dask_resume(exe, corpus, references, client, tmp_path):
    root, expected = corpus
    good = sorted(i for i, s in expected.items() if s == "ok")
    out = tmp_path / "out"
    fwassemble.batch.run(good[:3], out, client=client, executable=exe, worker_executable=exe)
    redone = []
    records = fwassemble.batch.run(good, out, client=client, resume=True, on_record=redone.append, executable=exe,
                                   worker_executable=exe)
    assert sorted(r["image"] for r in redone) == good[3:]
    assert [r["output_sha256"] for r in records] == [references[i] for i in good]


def test_dask_worker_killed_mid_task_is_retried(exe, corpus, references, client, tmp_path):
    """The worker running a disk is killed (SIGKILL) while the disk's process runs; the task runs
    again on another worker and the disk ends ok, its archive the same as a single run's."""
    image = str(IMAGES / "fs-squashfs-gzip.img")
    reference = tmp_path / "single.tar.gz"
    subprocess.run([exe, "assemble", image, "-q", "-o", str(reference)], check=True, capture_output=True)
    out = tmp_path / "out"
    result = {}
    thread = threading.Thread(target=lambda: result.update(records=fwassemble.batch.run(
        [image], out, client=client, executable=exe, worker_executable=exe)))
    thread.start()
    killed = None
    deadline = time.time() + 60
    while killed is None and time.time() < deadline:
        for pid in os.listdir("/proc"):
            if not pid.isdigit():
                continue
            try:
                # The disk's process: `fwassemble assemble --request - ...` (its disk and output
                # come in the request, on stdin), child of the task's `fwassemble batch IMAGE -o OUT`.
                cmd = open("/proc/%s/cmdline" % pid, "rb").read().split(b"\0")
                if cmd[1:2] != [b"assemble"]:
                    continue
                batch_pid = int(open("/proc/%s/stat" % pid).read().rsplit(")", 1)[1].split()[1])
                parent = open("/proc/%d/cmdline" % batch_pid, "rb").read().split(b"\0")
                if parent[1:3] == [b"batch", image.encode()] and str(out).encode() in parent:
                    worker_pid = int(open("/proc/%d/stat" % batch_pid).read().rsplit(")", 1)[1].split()[1])
                    assert b"python" in open("/proc/%d/cmdline" % worker_pid, "rb").read()
                    os.kill(worker_pid, signal.SIGKILL)
                    killed = worker_pid
                    break
            except (OSError, IndexError, ValueError):
                continue
        time.sleep(0.02)
    assert killed, "the disk's process was never seen"
    thread.join(180)
    assert not thread.is_alive()
    (record,) = result["records"]
    assert record["status"] == "ok"
    assert record["output_sha256"] == sha256(reference)
    client.wait_for_workers(2, timeout=60)


def test_dask_command_line(exe, corpus, client, tmp_path):
    root, _ = corpus
    address = client.scheduler.address
    env = dict(os.environ, FWASSEMBLE_CLI=exe)
    p = subprocess.run([sys.executable, "-m", "fwassemble.batch", "--scheduler", address, str(root / "mender.img"),
                        str(root / "damaged.qcow2"), "-o", str(tmp_path / "out"), "--hardlinks", "copy", "--no-replay",
                        "--compression", "zstd"], capture_output=True, text=True, env=env, cwd=str(REPO / "python"))
    assert p.returncode == 1, p.stderr
    records = read_records(tmp_path / "out" / "results.jsonl")
    assert sorted(r["status"] for r in records) == ["failed", "ok"]
    (ok,) = [r for r in records if r["status"] == "ok"]
    single = tmp_path / "single.tar.zst"
    subprocess.run([exe, "assemble", str(root / "mender.img"), "-q", "-o", str(single), "--hardlinks", "copy",
                    "--no-replay"], check=True, capture_output=True)
    assert ok["output"].endswith("mender.rootfs.tar.zst") and ok["output_sha256"] == sha256(single)


def test_python_batch_command_line_flags():
    p = subprocess.run([sys.executable, "-m", "fwassemble.batch", "--help"], capture_output=True, text=True,
                       cwd=str(REPO / "python"), check=True)
    for flag in ("--compression", "--level", "--threads", "--root", "--no-devices", "--rehost", "--hardlinks",
                 "--no-replay", "--strict", "--backing-dir", "--snapshot"):
        assert flag in p.stdout, flag


def test_expand_sends_the_request(exe, corpus, tmp_path):
    """expand() names the archives by the options' request (fwassemble batch --list --request -):
    the compression and format choose the suffix; an unknown key is a TypeError listing the known
    ones, a bad value a ValueError with the executable's message."""
    root, _ = corpus
    disks = [str(root / "mender.img"), str(root / "rpi-mbr.img")]
    out = tmp_path / "out"
    assert fwassemble.batch.expand(disks, out, executable=exe) == [
        (disks[0], "mender.rootfs.tar.gz"), (disks[1], "rpi-mbr.rootfs.tar.gz")]
    named = fwassemble.batch.expand(disks, out, executable=exe, compression="zstd", hardlinks="copy", no_replay=True,
                                    root=None, level=5)
    assert [n for _, n in named] == ["mender.rootfs.tar.zst", "rpi-mbr.rootfs.tar.zst"]
    assert [n for _, n in fwassemble.batch.expand(disks, out, executable=exe, format="ext4", padding=16)] == [
        "mender.ext4", "rpi-mbr.ext4"]
    with pytest.raises(TypeError) as caught:
        fwassemble.batch.expand(disks, out, executable=exe, hardlink="copy")
    assert "hardlink" in str(caught.value) and "hardlinks" in str(caught.value) and "no_replay" in str(caught.value)
    with pytest.raises(TypeError):
        fwassemble.batch.run(disks, out, executable=exe, output="x.tar.gz")  # each disk gets its own output
    with pytest.raises(ValueError) as caught:
        fwassemble.batch.expand(disks, out, executable=exe, hardlinks="symlink")
    assert "symlink" in str(caught.value)
    assert not out.exists()


def test_run_disk_request(exe, corpus, tmp_path):
    """run_disk (a Dask task's body) with the options as a request, and with the older flags."""
    root, _ = corpus
    image = str(root / "mender.img")
    single = tmp_path / "single.tar.gz"
    subprocess.run([exe, "assemble", image, "-q", "-o", str(single), "--hardlinks", "copy", "--no-replay",
                    "--level", "9"], check=True, capture_output=True)
    out = tmp_path / "out"
    out.mkdir()
    record = fwassemble.batch.run_disk(image, str(out), "a.rootfs.tar.gz", executable=exe,
                                       request={"hardlinks": "copy", "no_replay": True, "level": 9})
    assert record["status"] == "ok" and record["output_sha256"] == sha256(single)
    record = fwassemble.batch.run_disk(image, str(out), "b.rootfs.tar.gz", executable=exe,
                                       request=json.dumps({"hardlinks": "copy", "no_replay": True, "level": 9}))
    assert record["status"] == "ok" and record["output_sha256"] == sha256(single)
    record = fwassemble.batch.run_disk(image, str(out), "c.rootfs.tar.gz", None, None,
                                       ["--hardlinks", "copy", "--no-replay", "--level", "9"], exe)
    assert record["status"] == "ok" and record["output_sha256"] == sha256(single)
    with pytest.raises(TypeError):
        fwassemble.batch.run_disk(image, str(out), "d.tar.gz", executable=exe, request={"bogus": 1})


def test_dask_batch_request_options(exe, corpus, client, tmp_path):
    """Options reach every disk through the request: the archives are those of single
    `fwassemble assemble` runs with the same flags."""
    root, _ = corpus
    disks = [str(root / "mender.img"), str(root / "rpi-mbr.img")]
    out = tmp_path / "out"
    records = fwassemble.batch.run(disks, out, client=client, executable=exe, worker_executable=exe,
                                   hardlinks="copy", no_replay=True, compression="zstd", rehost=True)
    for image, record in zip(disks, records):
        single = tmp_path / (os.path.basename(image) + ".tar.zst")
        subprocess.run([exe, "assemble", image, "-q", "-o", str(single), "--hardlinks", "copy", "--no-replay",
                        "--rehost"], check=True, capture_output=True)
        assert record["status"] == "ok", record
        assert record["output"].endswith(".rootfs.tar.zst") and record["output_sha256"] == sha256(single)


def test_wheel_in_a_fresh_venv(exe, references, corpus, tmp_path):
    """The wheel carries the library and the executable: a fresh venv with nothing else
    assembles a disk with no FWASSEMBLE_* variable."""
    if not (NATIVE / "libfwassemble.so").exists():
        pytest.skip("python/fwassemble/_native not built (make native)")
    dist = tmp_path / "dist"
    subprocess.run([sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "--no-build-isolation", "-w", str(dist),
                    str(REPO / "python")], check=True, capture_output=True)
    (wheel,) = dist.glob("fwassemble-*.whl")
    assert "-py3-none-linux_" in wheel.name
    # Nothing of the checkout visible: no FWASSEMBLE_* variable, no PYTHONPATH (through which pip
    # would also see the checkout's egg-info and call the wheel already installed).
    env = {k: v for k, v in os.environ.items() if not k.startswith("FWASSEMBLE") and k != "PYTHONPATH"}
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True, env=env)
    subprocess.run([str(venv / "bin" / "pip"), "install", "-q", "--no-index", str(wheel)], check=True, env=env,
                   cwd=str(tmp_path))
    root, expected = corpus
    image = str(root / "mender.img")
    out = tmp_path / "mender.tar.gz"
    code = ("import fwassemble, sys; r = fwassemble.assemble(sys.argv[1], sys.argv[2]); "
            "print(fwassemble.library_path()); print(fwassemble.executable_path()); print(r['members'])")
    p = subprocess.run([str(venv / "bin" / "python"), "-c", code, image, str(out)], capture_output=True, text=True,
                       env=env, cwd=str(tmp_path), check=True)
    lib, executable, members = p.stdout.split()
    assert str(venv) in lib and str(venv) in executable
    assert int(members) > 0
    assert sha256(out) == references[image]
    # The `fwassemble` command the wheel installs runs the executable it carries.
    p = subprocess.run([str(venv / "bin" / "fwassemble"), "--version"], capture_output=True, text=True, env=env,
                       cwd=str(tmp_path), check=True)
    assert p.stdout.strip() == fwassemble.version()


def test_cli_jobs_beyond_the_cores_run_at_once(exe, corpus, tmp_path):
    """--jobs 4 on 2 cores: four disks that each need longer than --timeout 3 all run at once
    (each child is waited for by its own thread), so the batch takes about 3 s, not 6 or 12."""
    root, _ = corpus
    disks = []
    for i in range(4):
        disks.append(tmp_path / ("slow%d.img" % i))
        shutil.copy(root / "slow.img", disks[-1])
    start = time.time()
    p = subprocess.run([exe, "batch", *map(str, disks), "-o", str(tmp_path / "out"), "--jobs", "4", "--timeout", "3"],
                       capture_output=True, text=True)
    elapsed = time.time() - start
    assert p.returncode == 1
    assert [r["status"] for r in read_records(tmp_path / "out" / "results.jsonl")] == ["timeout"] * 4
    assert elapsed < 5.5, elapsed
