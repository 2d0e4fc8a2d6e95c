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
    by_cli = tmp_path / "cli.tar"
    by_lib = tmp_path / "lib.tar"
    run_cli(cli, "assemble", "--quiet", disk, "-o", str(by_cli), *flags)
    report = fwassemble.assemble(disk, str(by_lib), **options)
    assert by_lib.read_bytes() == by_cli.read_bytes()
    assert report["members"] > 0 and report["output"] == str(by_lib)
    # The report returned is the report file written beside the archive, and the CLI's.
    assert json.loads((tmp_path / "lib.tar.report.json").read_text()) == report
    cli_report = json.loads((tmp_path / "cli.tar.report.json").read_text())
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
    assert caught.value.code == fwassemble.INVALID_ARGUMENT and '"compresion"' in caught.value.message
    with pytest.raises(fwassemble.Error) as caught:
        fwassemble.assemble(image(HAOS), str(tmp_path / "x.tar.gz"), level="high")
    assert '"level"' in caught.value.message and "integer" in caught.value.message
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
            assert message.startswith("fwa_plan_json: ") and out.value is None
        # An error pointer is optional: the status alone still says what happened.
        assert lib.fwa_plan_json(handle, b"{", ctypes.byref(out), None) == fwassemble.INVALID_ARGUMENT
        assert lib.fwa_plan_json(handle, b"", ctypes.byref(out), ctypes.byref(err)) == 0 and not err.value
        lib.fwa_string_free(out)
    finally:
        lib.fwa_close(handle)
    lib.fwa_close(None)
    lib.fwa_error_free(None)
    lib.fwa_string_free(None)
    names = [lib.fwa_error_code_name(c).decode() for c in range(0, 10)]
    assert names == ["ok", "io", "not_found", "corrupt", "unsupported", "limit_exceeded", "invalid_argument",
                     "not_available", "internal", "unknown"]


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
