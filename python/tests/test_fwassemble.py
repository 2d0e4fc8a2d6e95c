"""Tests of the fwassemble Python module, and through it of libfwassemble's C ABI.

Every result is compared with the fwassemble CLI built from the same sources (an independent
code path: ArgumentParser + the Swift façade directly), and the C and Python examples of
docs/library.md are extracted, compiled and run.

Environment: FWASSEMBLE_LIB (the library; `make test` sets it), FWASSEMBLE_CLI (the CLI; default:
`fwassemble` beside the library), FWA_IMAGES (test disks; default images/out, built by
`make images`).
"""

import json
import os
import re
import subprocess
import sys
import threading
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO / "python"))

import fwassemble  # noqa: E402

IMAGES = Path(os.environ.get("FWA_IMAGES") or REPO / "images" / "out")


def image(name):
    p = IMAGES / name
    if not p.exists():
        pytest.fail("test image %s not found in %s: run `make images` (make test does)" % (name, IMAGES))
    return str(p)


@pytest.fixture(scope="session")
def lib_path():
    path = fwassemble.library_path()
    assert path and Path(path).exists(), "libfwassemble not found; set FWASSEMBLE_LIB"
    return Path(path)


@pytest.fixture(scope="session")
def cli(lib_path):
    path = Path(os.environ.get("FWASSEMBLE_CLI") or Path(os.path.realpath(lib_path)).parent / "fwassemble")
    assert path.exists(), "the fwassemble CLI was not found at %s (set FWASSEMBLE_CLI)" % path
    return str(path)


def run_cli(cli, *args):
    return subprocess.run([cli, *args], capture_output=True, check=True, text=True).stdout


def cli_has(cli, command):
    """Whether the CLI has a subcommand (the Docker inspector lands separately)."""
    return command in subprocess.run([cli, "--help"], capture_output=True, text=True).stdout


def doc_block(language):
    """The one ```language block of docs/library.md."""
    text = (REPO / "docs" / "library.md").read_text()
    blocks = re.findall(r"^```%s\n(.*?)^```$" % re.escape(language), text, re.S | re.M)
    assert len(blocks) == 1, "docs/library.md should have exactly one %s block" % language
    return blocks[0]


HAOS = "haos-gpt.img"


def test_version_matches_cli(cli):
    assert run_cli(cli, "--version").strip() == fwassemble.version()


@pytest.mark.parametrize("name", [HAOS, "haos-full.img", "haos-mbr.img", "rpi-mbr.img", "hybrid.img"])
def test_inspect_equals_cli(cli, name):
    disk = image(name)
    assert fwassemble.inspect(disk) == json.loads(run_cli(cli, "inspect", "--json", disk))


@pytest.mark.parametrize("name", [HAOS, "haos-full.img", "haos-mbr.img", "rpi-mbr.img"])
def test_plan_equals_cli(cli, name):
    disk = image(name)
    assert fwassemble.plan(disk) == json.loads(run_cli(cli, "plan", "--json", disk))


def test_plan_with_root_equals_cli(cli):
    disk = image("haos-slotb.img")  # grubenv boots slot B (partition 5)
    forced = fwassemble.plan(disk, root="3")
    assert forced == json.loads(run_cli(cli, "plan", "--json", "--root", "3", disk))
    assert forced["root"]["partition"] == 3
    assert fwassemble.plan(disk)["root"]["partition"] == 5


@pytest.mark.parametrize("options,flags", [
    ({}, []),
    ({"compression": "zstd", "level": 5}, ["--compression", "zstd", "--level", "5"]),
    ({"no_devices": True, "threads": 1}, ["--no-devices", "--threads", "1"]),
    ({"no_replay": True}, ["--no-replay"]),
])
@pytest.mark.parametrize("name", [HAOS, "haos-full.img"])
def test_assemble_byte_identical_to_cli(cli, tmp_path, name, options, flags):
    disk = image(name)
    # The output's suffix must agree with the compression (a contradiction is an error).
    suffix = ".tar.zst" if options.get("compression") == "zstd" else ".tar.gz"
    by_cli = tmp_path / ("cli" + suffix)
    by_lib = tmp_path / ("lib" + suffix)
    run_cli(cli, "assemble", "--quiet", disk, "-o", str(by_cli), *flags)
    report = fwassemble.assemble(disk, str(by_lib), **options)
    assert by_lib.read_bytes() == by_cli.read_bytes()
    assert report["members"] > 0 and report["output"] == str(by_lib)
    # The report returned is the report file written beside the archive, and the CLI's.
    assert json.loads((tmp_path / ("lib%s.report.json" % suffix)).read_text()) == report
    cli_report = json.loads((tmp_path / ("cli%s.report.json" % suffix)).read_text())
    cli_report["output"] = report["output"]
    assert cli_report == report


def test_assemble_to_file_object_and_fd(cli, tmp_path):
    disk = image(HAOS)
    run_cli(cli, "assemble", "--quiet", disk, "-o", str(tmp_path / "cli.tar.gz"))
    expected = (tmp_path / "cli.tar.gz").read_bytes()
    with open(tmp_path / "obj.tar.gz", "wb") as f:
        f.write(b"HEAD")  # written from the current position, after what is already there
        report = fwassemble.assemble(disk, f, report=str(tmp_path / "obj.json"))
    assert (tmp_path / "obj.tar.gz").read_bytes() == b"HEAD" + expected
    assert report["output"].startswith("fd ")
    assert json.loads((tmp_path / "obj.json").read_text()) == report
    r, w = os.pipe()
    chunks = []
    reader = threading.Thread(target=lambda: chunks.extend(iter(lambda: os.read(r, 65536), b"")))
    reader.start()
    try:
        fwassemble.assemble(disk, w)
    finally:
        os.close(w)
        reader.join()
        os.close(r)
    assert b"".join(chunks) == expected
    assert not (tmp_path / "fd 0.report.json").exists()


def test_progress_callback(tmp_path):
    calls = []
    report = fwassemble.assemble(image(HAOS), str(tmp_path / "p.tar.gz"),
                                 progress=lambda *args: calls.append(args))
    assert calls, "progress was never called"
    entries, content, planned, path = calls[0]
    assert 1 <= entries <= report["members"] and content <= planned and path.startswith("/")
    assert all(a[0] <= b[0] for a, b in zip(calls, calls[1:]))


def test_progress_exception_is_raised_after_the_call(tmp_path):
    def boom(*_):
        raise RuntimeError("stop")
    with pytest.raises(RuntimeError, match="stop"):
        fwassemble.assemble(image(HAOS), str(tmp_path / "p.tar.gz"), progress=boom)
    assert os.listdir(str(tmp_path)) == [], "a job stopped by its progress callback left files"


def test_concurrent_disks_from_threads(cli, tmp_path):
    """Several disks at once from several threads: each archive equals the CLI's."""
    names = [HAOS, "haos-mbr.img", "rpi-mbr.img", HAOS]
    expected = {}
    for name in set(names):
        out = tmp_path / ("cli-" + name + ".tar.gz")
        run_cli(cli, "assemble", "--quiet", image(name), "-o", str(out), "--threads", "2")
        expected[name] = out.read_bytes()
    errors = []

    def work(i, name):
        try:
            out = tmp_path / ("t%d.tar.gz" % i)
            fwassemble.assemble(image(name), str(out), threads=2)
            assert out.read_bytes() == expected[name], name
        except BaseException as e:
            errors.append(e)

    threads = [threading.Thread(target=work, args=(i, n)) for i, n in enumerate(names)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors, errors


def cli_error(cli, *args):
    p = subprocess.run([cli, *args], capture_output=True, text=True)
    assert p.returncode == 1, p
    line = p.stderr.strip().splitlines()[-1]
    assert line.startswith("fwassemble: ")
    return line[len("fwassemble: "):]


def test_bad_disk_raises_error_with_the_message(cli, tmp_path):
    zeros = tmp_path / "zeros.img"
    zeros.write_bytes(bytes(1 << 20))
    with pytest.raises(fwassemble.Error) as caught:
        fwassemble.inspect(str(zeros))
    e = caught.value
    assert e.message == cli_error(cli, "inspect", str(zeros)) and str(e) == e.message
    assert str(zeros) in e.message
    assert (e.code, e.code_name) == (fwassemble.UNSUPPORTED, "unsupported")
    with pytest.raises(fwassemble.Error) as caught:
        fwassemble.assemble(str(zeros), str(tmp_path / "out.tar.gz"))
    assert caught.value.message == cli_error(cli, "assemble", str(zeros), "-o", str(tmp_path / "o2.tar.gz"))
    assert not list(tmp_path.glob("*out.tar.gz*")), "a failed assemble left files behind"


def test_missing_disk_and_bad_arguments(cli, tmp_path):
    missing = str(tmp_path / "missing.img")
    with pytest.raises(fwassemble.Error) as caught:
        fwassemble.Disk(missing)
    assert caught.value.code_name == "not_found" and caught.value.message == cli_error(cli, "inspect", missing)
    with pytest.raises(fwassemble.Error) as caught:
        fwassemble.plan(image(HAOS), root="no-such-root")
    assert caught.value.code_name == "invalid_argument"
    assert caught.value.message == cli_error(cli, "plan", "--root", "no-such-root", image(HAOS))
    with pytest.raises(fwassemble.Error) as caught:
        fwassemble.assemble(image(HAOS), str(tmp_path / "x.tar.gz"), compresion="zstd")
    assert caught.value.code == fwassemble.INVALID_ARGUMENT and "compresion" in caught.value.message
    assert "compression" in caught.value.message  # the known keys are listed
    with pytest.raises(fwassemble.Error) as caught:
        fwassemble.assemble(image(HAOS), str(tmp_path / "x.tar.gz"), level="high")
    assert caught.value.code_name == "invalid_argument" and "level" in caught.value.message
    with pytest.raises(fwassemble.Error) as caught:
        fwassemble.assemble(image(HAOS), str(tmp_path / "x.tar.gz"), compression="gzip", level=13)
    assert caught.value.code_name == "invalid_argument" and "13" in caught.value.message
    with pytest.raises(fwassemble.Error) as caught:
        fwassemble.assemble(image(HAOS), str(tmp_path / "x.tar.gz"), threads=0)
    assert caught.value.code_name == "invalid_argument"
    assert not list(tmp_path.iterdir())
    d = fwassemble.Disk(image(HAOS))
    d.close()
    d.close()
    with pytest.raises(fwassemble.Error):
        d.inspect()


def test_docker_equals_cli(cli, tmp_path):
    disk = image("haos-full.img")
    if not cli_has(cli, "docker"):
        # Without the Docker inspector the library must say so, not return something.
        with pytest.raises(fwassemble.Error) as caught:
            fwassemble.docker(disk)
        assert caught.value.code_name == "not_available"
        return
    found = fwassemble.docker(disk)
    assert found == json.loads(run_cli(cli, "docker", "--json", disk))
    roots = found["data_roots"]
    assert roots and roots[0]["containers"]
    container = roots[0]["containers"][0]["name"]
    by_cli = tmp_path / "cli.tar.gz"
    by_lib = tmp_path / "lib.tar.gz"
    run_cli(cli, "docker", disk, "--export", container, "-o", str(by_cli))
    result = fwassemble.export(disk, container, str(by_lib))
    assert by_lib.read_bytes() == by_cli.read_bytes()
    assert result["members"] > 0 and container in result["what"]
    tag = next(t for i in roots[0]["images"] for t in i["tags"])
    run_cli(cli, "docker", disk, "--export-image", tag, "-o", str(tmp_path / "cli-image.tar.gz"))
    result = fwassemble.export(disk, tag, str(tmp_path / "lib-image.tar.gz"), image=True)
    assert (tmp_path / "lib-image.tar.gz").read_bytes() == (tmp_path / "cli-image.tar.gz").read_bytes()
    assert result["what"].startswith("image ")
    with pytest.raises(fwassemble.Error) as caught:
        fwassemble.export(disk, "no-such-container", str(tmp_path / "none.tar.gz"))
    assert caught.value.code_name == "not_found"


# docs/library.md's examples


def test_docs_c_example(cli, lib_path, tmp_path):
    source = tmp_path / "example.c"
    source.write_text(doc_block("c"))
    libdir = Path(os.path.realpath(lib_path)).parent
    binary = tmp_path / "example"
    link = ["-L%s" % libdir, "-l:%s" % lib_path.name, "-Wl,-rpath,%s" % libdir]
    subprocess.run(["gcc", "-std=c99", "-Wall", "-Wextra", "-Werror", "-I", str(REPO / "include"),
                    str(source), "-o", str(binary), *link], check=True)
    disk = image("haos-full.img")
    run = subprocess.run([str(binary), disk, str(tmp_path / "c.tar.gz")], capture_output=True, text=True)
    assert run.returncode == 0, run.stderr
    inspected, docker_inventory = json.loads(run.stdout)
    assert inspected == json.loads(run_cli(cli, "inspect", "--json", disk))
    assert docker_inventory == json.loads(run_cli(cli, "docker", "--json", disk))
    assert docker_inventory["data_roots"][0]["containers"]
    run_cli(cli, "assemble", "--quiet", disk, "-o", str(tmp_path / "cli.tar.gz"))
    assert (tmp_path / "c.tar.gz").read_bytes() == (tmp_path / "cli.tar.gz").read_bytes()
    seen = int(re.search(r"progress saw (\d+) entries", run.stderr).group(1))
    assert seen >= 1
    bad = subprocess.run([str(binary), str(tmp_path / "nope.img"), str(tmp_path / "x.tar.gz")],
                         capture_output=True, text=True)
    assert bad.returncode == 1
    assert bad.stderr.strip() == "error not_found: " + cli_error(cli, "inspect", str(tmp_path / "nope.img"))


def test_header_declares_every_exported_function(lib_path):
    """Each fwa_ symbol the library exports is declared in the header, and the reverse."""
    header = (REPO / "include" / "fwassemble.h").read_text()
    declared = set(re.findall(r"\b(fwa_[a-z_]+)\(", header))
    nm = subprocess.run(["nm", "-D", "--defined-only", os.path.realpath(lib_path)], capture_output=True,
                        text=True, check=True).stdout
    exported = set(re.findall(r" T (fwa_[a-z_]+)$", nm, re.M))
    assert declared == exported


def test_docs_python_example(cli, tmp_path):
    script = tmp_path / "example.py"
    script.write_text(doc_block("python"))
    disk = image(HAOS)
    env = dict(os.environ, PYTHONPATH=str(REPO / "python"))
    run = subprocess.run([sys.executable, str(script), disk, str(tmp_path / "py.tar.gz")], capture_output=True,
                         text=True, env=env)
    assert run.returncode == 0, run.stderr
    plan = json.loads(run_cli(cli, "plan", "--json", disk))
    assert run.stdout.splitlines()[0] == "root: partition %d (%s)" % (plan["root"]["partition"], plan["root"]["reason"])
    run_cli(cli, "assemble", "--quiet", disk, "-o", str(tmp_path / "cli.tar.gz"))
    assert (tmp_path / "py.tar.gz").read_bytes() == (tmp_path / "cli.tar.gz").read_bytes()
    assert "error not_found: " in run.stdout.splitlines()[-1]


@pytest.mark.parametrize("compiler,flags,suffix", [
    ("gcc", ["-std=c89", "-pedantic"], ".c"),
    ("gcc", ["-std=c11"], ".c"),
    ("g++", ["-std=c++11"], ".cpp"),
])
def test_header_compiles_strictly(tmp_path, compiler, flags, suffix):
    source = tmp_path / ("h" + suffix)
    source.write_text('#include "fwassemble.h"\nint main(void) { return FWA_OK; }\n')
    subprocess.run([compiler, *flags, "-Wall", "-Wextra", "-Werror", "-I", str(REPO / "include"), "-c", str(source),
                    "-o", str(tmp_path / "h.o")], check=True)


def test_c_abi_contract_on_bad_arguments():
    """NULL handles and out-parameters, and malformed options JSON, are errors with messages
    (never a crash), and out-parameters are cleared on failure."""
    import ctypes
    lib = fwassemble._load()
    err, out = ctypes.c_void_p(), ctypes.c_void_p(1234)

    def failure(status):
        assert status == fwassemble.INVALID_ARGUMENT
        assert lib.fwa_error_code(err) == status
        message = lib.fwa_error_message(err).decode()
        lib.fwa_error_free(err)
        return message

    assert "NULL" in failure(lib.fwa_open(None, ctypes.byref(out), ctypes.byref(err)))
    assert out.value is None
    assert "NULL" in failure(lib.fwa_inspect_json(None, ctypes.byref(out), ctypes.byref(err)))
    handle = ctypes.c_void_p()
    assert lib.fwa_open(image(HAOS).encode(), ctypes.byref(handle), ctypes.byref(err)) == 0 and not err.value
    try:
        assert "NULL" in failure(lib.fwa_inspect_json(handle, None, ctypes.byref(err)))
        for bad in [b"[]", b"{", b"null", b'"root"', b'{"root": ["3"]}', b'{"compression": "gzip"}']:
            message = failure(lib.fwa_plan_json(handle, bad, ctypes.byref(out), ctypes.byref(err)))
            assert message and out.value is None
        # An error pointer is optional: the status alone still says what happened.
        assert lib.fwa_plan_json(handle, b"{", ctypes.byref(out), None) == fwassemble.INVALID_ARGUMENT
        assert lib.fwa_plan_json(handle, b"", ctypes.byref(out), ctypes.byref(err)) == 0 and not err.value
        lib.fwa_string_free(out)
    finally:
        lib.fwa_close(handle)
    lib.fwa_close(None)
    lib.fwa_error_free(None)
    lib.fwa_string_free(None)
    names = [lib.fwa_error_code_name(c).decode() for c in range(0, 11)]
    assert names == ["ok", "io", "not_found", "corrupt", "unsupported", "limit_exceeded", "invalid_argument",
                     "not_available", "internal", "cancelled", "unknown"]


def test_no_replay_of_a_hot_snapshot(tmp_path):
    """hot-haos.img (images/disks/hot-ext4.sh, needs root to build): the report's journals say the
    ext4 journals were replayed, and not with no_replay=True."""
    candidates = [IMAGES / "hot-haos.img", REPO / "images" / "out" / "hot-haos.img"]
    disk = next((str(p) for p in candidates if p.exists()), None)
    if disk is None:
        pytest.skip("hot-haos.img not built (images/disks/hot-ext4.sh needs root and loop devices)")
    replayed = fwassemble.assemble(disk, str(tmp_path / "a.tar"), compression="none")
    assert sorted(j["index"] for j in replayed["journals"]) == [7, 8]
    assert all(j["journal"]["replayed"] and j["journal"]["transactions"] > 0 for j in replayed["journals"])
    stale = fwassemble.assemble(disk, str(tmp_path / "b.tar"), compression="none", no_replay=True)
    assert not any(j["journal"]["replayed"] for j in stale["journals"])
    assert stale["members"] < replayed["members"]


def test_plan_option_errors_name_the_call():
    """A bad options JSON given to fwa_plan_json is refused with a message that starts with the
    call's name (as the Python and C callers see it), whatever is wrong with it."""
    import ctypes
    lib = fwassemble._load()
    err, out, handle = ctypes.c_void_p(), ctypes.c_void_p(), ctypes.c_void_p()
    assert lib.fwa_open(image(HAOS).encode(), ctypes.byref(handle), ctypes.byref(err)) == 0
    messages = {}
    try:
        for bad in [b"[]", b"{", b"null", b'"root"', b'{"root": ["3"]}', b'{"compression": "gzip"}']:
            assert lib.fwa_plan_json(handle, bad, ctypes.byref(out), ctypes.byref(err)) == fwassemble.INVALID_ARGUMENT
            messages[bad] = lib.fwa_error_message(err).decode()
            lib.fwa_error_free(err)
    finally:
        lib.fwa_close(handle)
    wrong = {k: m for k, m in messages.items() if not m.startswith("fwa_plan_json: ")}
    assert not wrong, wrong


# extract, the requests' options, outputs that are inputs, errors by class, cancellation


def tar_members(path):
    """(name, type, size, mode, uid, gid, linkname) of every member, in order."""
    import tarfile
    with tarfile.open(str(path)) as t:
        return [(m.name, m.type, m.size, m.mode, m.uid, m.gid, m.linkname) for m in t.getmembers()]


@pytest.mark.parametrize("partition,flags,options,suffix", [
    (1, [], {}, ".tar.gz"),                                    # vfat, by number (an int)
    ("hassos-data", ["--compression", "none"], {"compression": "none"}, ".tar"),   # ext4, by label
    ("3", ["--level", "9", "--threads", "1"], {"level": 9, "threads": 1}, ".tar.gz"),  # erofs
])
def test_extract_equals_cli(cli, tmp_path, partition, flags, options, suffix):
    disk = image("sample.img")
    by_cli = tmp_path / ("cli" + suffix)
    by_lib = tmp_path / ("lib" + suffix)
    run_cli(cli, "extract", "--quiet", disk, "-p", str(partition), "-o", str(by_cli), *flags)
    result = fwassemble.extract(disk, partition, str(by_lib), **options)
    members = tar_members(by_lib)
    assert members and members == tar_members(by_cli)
    assert by_lib.read_bytes() == by_cli.read_bytes()
    assert result["members"] == len(members) and isinstance(result["problems"], list)
    assert result["tar_bytes"] > 0 and "partition" in result["partition"]
    with fwassemble.Disk(disk) as d:  # the same through an open Disk, with a pathlib out
        again = d.extract(partition, tmp_path / ("again" + suffix), **options)
    assert (tmp_path / ("again" + suffix)).read_bytes() == by_cli.read_bytes()
    assert again == result


def test_extract_errors(tmp_path):
    disk = image("sample.img")
    with pytest.raises(fwassemble.NotFound) as caught:
        fwassemble.extract(disk, 42, str(tmp_path / "x.tar.gz"))
    assert isinstance(caught.value, FileNotFoundError) and "42" in str(caught.value)
    with pytest.raises(fwassemble.InvalidArgument) as caught:
        fwassemble.extract(disk, 1, str(tmp_path / "x.tar.gz"), root=3)  # an assemble option
    assert isinstance(caught.value, ValueError) and "root" in caught.value.message
    with pytest.raises(TypeError):
        fwassemble.extract(disk, 1, None)
    with pytest.raises(TypeError):
        fwassemble.extract(disk, 1.5, str(tmp_path / "x.tar.gz"))
    assert os.listdir(str(tmp_path)) == []


def test_assemble_request_options_equal_cli(cli, tmp_path):
    """rehost, strict (a disk without warnings), root as an int, hardlinks: the CLI's archive."""
    disk = image("sample.img")
    flags = ["--rehost", "--strict", "--root", "3", "--hardlinks", "copy"]
    run_cli(cli, "assemble", "--quiet", disk, "-o", str(tmp_path / "cli.tar.gz"), *flags)
    report = fwassemble.assemble(disk, str(tmp_path / "lib.tar.gz"), rehost=True, strict=True, root=3,
                                 hardlinks="copy")
    assert (tmp_path / "lib.tar.gz").read_bytes() == (tmp_path / "cli.tar.gz").read_bytes()
    assert report["plan"]["root"]["partition"] == 3 and report["warnings"] == []
    # root as a string is the same root
    again = fwassemble.assemble(disk, str(tmp_path / "str.tar.gz"), rehost=True, strict=True, root="3",
                                hardlinks="copy")
    assert (tmp_path / "str.tar.gz").read_bytes() == (tmp_path / "cli.tar.gz").read_bytes()
    assert again["plan"] == report["plan"]


def test_assemble_ext4_image_equals_cli(cli, tmp_path):
    disk = image("sample.img")
    uuid = "12345678-1234-1234-1234-123456789abc"
    run_cli(cli, "assemble", "--quiet", disk, "-o", str(tmp_path / "cli.ext4"), "--uuid", uuid, "--padding", "8")
    fwassemble.assemble(disk, tmp_path / "lib.ext4", uuid=uuid, padding=8)
    assert (tmp_path / "lib.ext4").read_bytes() == (tmp_path / "cli.ext4").read_bytes()


def test_strict_with_warnings_fails_and_leaves_nothing(tmp_path):
    out = tmp_path / "out"
    out.mkdir()
    with pytest.raises(fwassemble.Error) as caught:
        fwassemble.assemble(image("debian-gpt.img"), str(out / "deb.tar.gz"), strict=True)
    assert "--strict" in caught.value.message
    assert os.listdir(str(out)) == []


def sha256_of(path):
    import hashlib
    h = hashlib.sha256()
    with open(str(path), "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def test_output_that_is_the_input_is_refused(tmp_path):
    import shutil
    copy = tmp_path / "copy.img"
    shutil.copy(image("sample.img"), str(copy))
    before = sha256_of(copy)
    link = tmp_path / "link.tar.gz"
    link.symlink_to(copy)  # a symlinked output writes its target: the input again
    for call in (lambda: fwassemble.assemble(str(copy), str(copy)),
                 lambda: fwassemble.assemble(copy, copy, compression="none"),
                 lambda: fwassemble.assemble(str(copy), str(link)),
                 lambda: fwassemble.assemble(str(copy), str(tmp_path / "x.tar.gz"), report=str(copy)),
                 lambda: fwassemble.extract(str(copy), 1, str(copy))):
        with pytest.raises(fwassemble.InvalidArgument) as caught:
            call()
        assert isinstance(caught.value, ValueError) and caught.value.code == fwassemble.INVALID_ARGUMENT
        assert str(copy) in str(caught.value)
    assert sha256_of(copy) == before
    assert sorted(os.listdir(str(tmp_path))) == ["copy.img", "link.tar.gz"]


def test_missing_disk_is_file_not_found(cli, tmp_path):
    import errno
    missing = str(tmp_path / "missing.img")
    for call in (lambda: fwassemble.Disk(missing), lambda: fwassemble.assemble(missing, str(tmp_path / "x.tar.gz")),
                 lambda: fwassemble.extract(missing, 1, str(tmp_path / "x.tar.gz"))):
        with pytest.raises(FileNotFoundError) as caught:
            call()
        e = caught.value
        assert isinstance(e, fwassemble.NotFound) and isinstance(e, fwassemble.Error)
        assert str(e) == e.message == cli_error(cli, "inspect", missing)
        assert (e.code, e.code_name, e.errno) == (fwassemble.NOT_FOUND, "not_found", errno.ENOENT)
    with pytest.raises(IsADirectoryError) as caught:
        fwassemble.Disk(str(tmp_path))
    assert isinstance(caught.value, fwassemble.InvalidArgument) and str(caught.value) == caught.value.message
    assert os.listdir(str(tmp_path)) == []


def test_error_classes():
    """Each code has its class; all are Error; str() is the library's message, never OSError's
    "[Errno N] ..." form; they pickle."""
    import errno
    import pickle
    expected = {1: (fwassemble.IOFailure, OSError), 2: (fwassemble.NotFound, FileNotFoundError),
                3: (fwassemble.CorruptImage, Exception), 4: (fwassemble.UnsupportedFormat, Exception),
                5: (fwassemble.LimitExceeded, Exception), 6: (fwassemble.InvalidArgument, ValueError),
                7: (fwassemble.NotAvailable, Exception), 8: (fwassemble.InternalError, Exception),
                9: (fwassemble.Cancelled, Exception)}
    for code, (cls, builtin) in expected.items():
        e = fwassemble._error("disk.img: something %d" % code, code)
        assert type(e) is cls and isinstance(e, builtin) and isinstance(e, fwassemble.Error)
        assert str(e) == e.message == "disk.img: something %d" % code and e.args == (e.message,)
        assert e.code == code and e.code_name == fwassemble._load().fwa_error_code_name(code).decode()
        assert cls.__name__ in repr(e) and e.message in repr(e)
        back = pickle.loads(pickle.dumps(e))
        assert type(back) is cls and (back.message, back.code, back.code_name) == (e.message, e.code, e.code_name)
    denied = fwassemble._error("out.tar.gz: cannot create: Permission denied", fwassemble.IO)
    assert isinstance(denied, PermissionError) and isinstance(denied, fwassemble.IOFailure)
    assert denied.errno == errno.EACCES and str(denied) == denied.message and denied.strerror == denied.message
    directory = fwassemble._error("output /tmp is a directory", fwassemble.INVALID_ARGUMENT)
    assert isinstance(directory, IsADirectoryError) and isinstance(directory, fwassemble.InvalidArgument)
    assert isinstance(directory, ValueError) and str(directory) == "output /tmp is a directory"
    assert type(pickle.loads(pickle.dumps(directory))) is type(directory)
    full = fwassemble._error("x: write: No space left on device", fwassemble.IO)
    assert full.errno == errno.ENOSPC and not isinstance(full, PermissionError)
    with pytest.raises(fwassemble.Error):
        raise fwassemble._error("anything", 42)  # a code added later: still an Error
    # The old constructor still works, as the base class.
    old = fwassemble.Error("m", fwassemble.CORRUPT, "corrupt")
    assert (str(old), old.code, old.code_name) == ("m", 3, "corrupt")


@pytest.mark.skipif(os.geteuid() == 0, reason="root reads and writes everything")
def test_permission_denied_is_permission_error(tmp_path):
    import shutil
    copy = tmp_path / "copy.img"
    shutil.copy(image("sample.img"), str(copy))
    copy.chmod(0)
    with pytest.raises(PermissionError) as caught:
        fwassemble.Disk(str(copy))
    assert isinstance(caught.value, fwassemble.Error) and str(caught.value) == caught.value.message
    copy.chmod(0o644)
    locked = tmp_path / "locked"
    locked.mkdir(mode=0o500)
    with pytest.raises(PermissionError):
        fwassemble.assemble(str(copy), str(locked / "x.tar.gz"))


def test_backing_dir_and_snapshot(cli, tmp_path):
    top = image("formats-chain/elsewhere-top.qcow2")
    with pytest.raises(fwassemble.NotFound) as caught:
        fwassemble.Disk(top)
    assert "elsewhere.img" in caught.value.message
    backing = tmp_path / "backing"
    backing.mkdir()
    (backing / "elsewhere.img").symlink_to(image("formats-raw.img"))
    with fwassemble.Disk(top, backing_dir=backing) as d:
        assert d.inspect() == json.loads(run_cli(cli, "inspect", "--json", "--backing-dir", str(backing), top))
    snapshotted = image("formats-snapshot.qcow2")
    assert fwassemble.inspect(snapshotted, snapshot="pristine") == json.loads(
        run_cli(cli, "inspect", "--json", "--snapshot", "pristine", snapshotted))
    run_cli(cli, "assemble", "--quiet", snapshotted, "--snapshot", "pristine", "-o", str(tmp_path / "cli.tar.gz"))
    fwassemble.assemble(snapshotted, str(tmp_path / "lib.tar.gz"), snapshot="pristine")
    assert (tmp_path / "lib.tar.gz").read_bytes() == (tmp_path / "cli.tar.gz").read_bytes()
    with pytest.raises(fwassemble.NotFound):
        fwassemble.Disk(snapshotted, snapshot="no-such-snapshot")
    with fwassemble.Disk(snapshotted) as d:  # the disk's options go to Disk(), not to a job on it
        with pytest.raises(fwassemble.InvalidArgument):
            d.assemble(str(tmp_path / "x.tar.gz"), snapshot="pristine")
    assert not (tmp_path / "x.tar.gz").exists()


@pytest.fixture(scope="session")
def slow_disk(tmp_path_factory):
    """A bare ext4 filesystem holding a 16 GiB sparse file: archiving it takes far longer than
    any cancellation may (gzip of 16 GiB of zeros)."""
    import shutil
    if not shutil.which("mkfs.ext4"):
        pytest.skip("mkfs.ext4 not found")
    root = tmp_path_factory.mktemp("slow")
    tree = root / "tree"
    (tree / "etc").mkdir(parents=True)
    (tree / "usr" / "bin").mkdir(parents=True)  # a root filesystem to assemble
    (tree / "etc" / "hostname").write_text("slow\n")
    with open(str(tree / "usr" / "zeros"), "wb") as f:
        f.truncate(16 << 30)
    disk = root / "slow.img"
    subprocess.run(["mkfs.ext4", "-q", "-F", "-d", str(tree), str(disk), "64M"], check=True, capture_output=True)
    return str(disk)


def test_progress_exception_cancels_the_job(slow_disk, tmp_path):
    """A progress callback that raises stops the job at once (fwa_cancel): the exception comes
    out within seconds, not after the whole archive, and nothing is left in the folder (no
    output, no hidden temporary file)."""
    import time

    class Stop(Exception):
        pass

    seen = []

    def progress(*args):
        seen.append(args)
        raise Stop("enough")

    start = time.monotonic()
    with pytest.raises(Stop, match="enough"):
        fwassemble.assemble(slow_disk, str(tmp_path / "slow.rootfs.tar.gz"), progress=progress, threads=1)
    assert time.monotonic() - start < 10
    assert len(seen) == 1, "progress was called again after it raised"
    assert os.listdir(str(tmp_path)) == []
    # The same through an open Disk, which then still works.
    with fwassemble.Disk(slow_disk) as d:
        with pytest.raises(Stop):
            d.assemble(str(tmp_path / "again.tar.gz"), progress=progress, threads=1)
        assert d.inspect()["partitions"]
    assert os.listdir(str(tmp_path)) == []


@pytest.mark.parametrize("job", ["assemble", "extract", "assemble_fd"])
def test_keyboard_interrupt_cancels_the_job(slow_disk, tmp_path, job):
    """Ctrl-C (KeyboardInterrupt in the waiting thread) cancels the library's job, which ends
    within about a second leaving nothing; the KeyboardInterrupt is then raised."""
    import _thread
    import time
    out = tmp_path / "out"
    out.mkdir()
    timer = threading.Timer(0.5, _thread.interrupt_main)
    start = time.monotonic()
    timer.start()
    try:
        with pytest.raises(KeyboardInterrupt):
            with fwassemble.Disk(slow_disk) as d:
                if job == "assemble":
                    d.assemble(str(out / "slow.tar.gz"), threads=1)
                elif job == "extract":
                    d.extract(1, str(out / "slow.tar.gz"), threads=1)
                else:  # an open file, outside `out` (what was written to it stays)
                    with open(str(tmp_path / "fd.tar.gz"), "wb") as f:
                        d.assemble(f, threads=1)
    finally:
        timer.cancel()
    elapsed = time.monotonic() - start
    assert 0.4 < elapsed < 10, elapsed
    assert os.listdir(str(out)) == []
    assert not [t for t in threading.enumerate() if t.name == "fwassemble-job"]  # the worker has ended


def test_disk_cancel_from_another_thread(slow_disk, tmp_path):
    import time
    with fwassemble.Disk(slow_disk) as d:
        d.cancel()  # nothing running: does nothing, and is not remembered for the next job
        timer = threading.Timer(0.5, d.cancel)
        start = time.monotonic()
        timer.start()
        try:
            with pytest.raises(fwassemble.Cancelled) as caught:
                d.extract(1, str(tmp_path / "slow.tar.gz"), threads=1)
        finally:
            timer.cancel()
        assert 0.4 < time.monotonic() - start < 10
    e = caught.value
    assert (e.code, e.code_name) == (fwassemble.CANCELLED, "cancelled") and isinstance(e, fwassemble.Error)
    assert os.listdir(str(tmp_path)) == []
    # A later job on another disk is not cancelled by anything left over.
    fwassemble.extract(image("sample.img"), 1, str(tmp_path / "p1.tar.gz"))


def test_cli_module_execs_the_executable(cli, tmp_path):
    """fwassemble.cli:main, the `fwassemble` console script of the wheel, replaces itself with
    the executable: same output, same exit status."""
    env = dict(os.environ, FWASSEMBLE_CLI=cli, PYTHONPATH=str(REPO / "python"))
    p = subprocess.run([sys.executable, "-m", "fwassemble.cli", "--version"], capture_output=True, text=True, env=env)
    assert p.returncode == 0 and p.stdout.strip() == fwassemble.version()
    missing = str(tmp_path / "missing.img")
    p = subprocess.run([sys.executable, "-m", "fwassemble.cli", "inspect", missing], capture_output=True, text=True,
                       env=env)
    assert p.returncode == 1 and p.stderr.strip().splitlines()[-1] == "fwassemble: " + cli_error(cli, "inspect", missing)


def test_wheel_installs_the_fwassemble_command(cli, lib_path, tmp_path):
    """A wheel built from python/ (its _native/ filled with the library and executable under
    test) installs a `fwassemble` command that runs the bundled executable, with no
    FWASSEMBLE_* variable set."""
    import shutil
    try:
        import setuptools.command.bdist_wheel  # noqa: F401
    except ImportError:
        pytest.importorskip("wheel.bdist_wheel")
    source = tmp_path / "src"
    shutil.copytree(str(REPO / "python"), str(source), ignore=shutil.ignore_patterns(
        "__pycache__", "build", "dist", "*.egg-info", "_native", "tests"))
    native = source / "fwassemble" / "_native"
    native.mkdir()
    shutil.copy(os.path.realpath(cli), str(native / "fwassemble"))
    shutil.copy(os.path.realpath(str(lib_path)), str(native / "libfwassemble.so"))
    env = {k: v for k, v in os.environ.items() if not k.startswith("FWASSEMBLE") and k != "PYTHONPATH"}
    dist = tmp_path / "dist"
    subprocess.run([sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "--no-build-isolation", "-w", str(dist),
                    str(source)], check=True, capture_output=True, env=env)
    (wheel,) = dist.glob("fwassemble-*.whl")
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True, env=env)
    subprocess.run([str(venv / "bin" / "pip"), "install", "-q", "--no-index", str(wheel)], check=True, env=env,
                   cwd=str(tmp_path))
    command = venv / "bin" / "fwassemble"
    assert command.exists()
    p = subprocess.run([str(command), "--version"], capture_output=True, text=True, env=env, cwd=str(tmp_path))
    assert p.returncode == 0 and p.stdout.strip() == fwassemble.version()
    disk = image("sample.img")
    p = subprocess.run([str(command), "assemble", "--quiet", disk, "-o", str(tmp_path / "cmd.tar.gz")], env=env,
                       cwd=str(tmp_path))
    assert p.returncode == 0
    run_cli(cli, "assemble", "--quiet", disk, "-o", str(tmp_path / "cli.tar.gz"))
    assert (tmp_path / "cmd.tar.gz").read_bytes() == (tmp_path / "cli.tar.gz").read_bytes()


def _cli_options(cli, command):
    """(key, is_flag) of every long option of ``fwassemble COMMAND`` that is part of the job's
    request, from ArgumentParser's own description of the command line."""
    doc = json.loads(run_cli(cli, command, "--experimental-dump-help"))
    presentation = {"quiet", "verbose", "version", "help", "request", "json", "expect"}
    found = []
    for a in doc["command"]["arguments"]:
        names = [n["name"] for n in a.get("names", []) if len(n["name"]) > 1]
        if a["kind"] == "positional" or not names or names[0] in presentation:
            continue
        # The request key is the option's name with "_" for "-" (a repeatable option's key is a list).
        key = names[0].replace("-", "_")
        found.append((key, a["kind"] == "flag"))
    return found


def test_every_assemble_option_of_the_cli_is_a_python_option(cli, tmp_path):
    """Each assemble option of the CLI is accepted by fwassemble.assemble under its request key:
    the call fails on the deliberately bad ``threads``, never on an unknown option."""
    samples = {"level": 1, "padding": 1, "inodes": 1, "add_tar": ["x.tar"], "format": "tar",
               "compression": "gzip", "hardlinks": "link"}
    options = _cli_options(cli, "assemble")
    assert len(options) >= 18
    for key, flag in options:
        if key in ("threads", "backing_dir", "snapshot", "device"):  # the probe itself; Disk(...)'s options
            continue
        value = True if flag else samples.get(key, "x")
        with pytest.raises(fwassemble.InvalidArgument) as e:
            fwassemble.assemble(image(HAOS), str(tmp_path / "o.tar.gz"), **{key: value, "threads": 0})
        assert "unknown" not in str(e.value), (key, str(e.value))
    assert list(tmp_path.iterdir()) == []


DISSECT_BTRFS = REPO / ".build-dissect-btrfs"


def test_device_opens_a_multi_device_btrfs(tmp_path):
    """``device`` (``--device``): dissect.btrfs's RAID0 pair (images/fetch-dissect-btrfs.sh) read
    whole; without the second member the problem names the missing device id."""
    import tarfile

    first, second = DISSECT_BTRFS / "btrfs-raid0-1.bin", DISSECT_BTRFS / "btrfs-raid0-2.bin"
    if not second.exists():
        pytest.skip("dissect.btrfs's test data not fetched (images/fetch-dissect-btrfs.sh)")
    out = tmp_path / "raid0.tar"
    report = fwassemble.extract(first, 1, out, device=[second])
    assert report["files"] == 3 and report["problems"] == []
    with tarfile.open(out) as tar:
        assert tar.extractfile("./large.txt").read() == b"a" * 5242880 + b"\n"
    with fwassemble.Disk(first, device=[second]) as d:
        btrfs = d.inspect()["partitions"][0]["filesystem"]["btrfs"]
        assert [m["id"] for m in btrfs["member_devices"]] == [1, 2]
    # Without it, large.txt's stripes on device 2 cannot be read: the file's problem (written as
    # zeros, as any unreadable file), and with strict the job fails and leaves nothing.
    partial = fwassemble.extract(first, 1, tmp_path / "partial.tar")
    assert "missing device 2 (devid) for the RAID0 chunk at logical" in json.dumps(partial["problems"])
    with pytest.raises(fwassemble.Error, match=r"missing device 2 \(devid\)"):
        fwassemble.extract(first, 1, tmp_path / "strict.tar", strict=True)
    assert not (tmp_path / "strict.tar").exists()
