"""fwassemble.open / Tree and fwassemble.diff (and through them fwa_tree_* and fwa_diff) give the
CLI's answers (ls, cat, stat, find, diff --json) on the same disks."""

import ctypes
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))
from test_fwassemble import cli, image, lib_path, run_cli  # noqa: E402,F401

import fwassemble  # noqa: E402

HAOS = "haos-full.img"
SLOTB = "haos-slotb.img"


def lines(text):
    return [json.loads(line) for line in text.splitlines()]


def test_listdir_scandir_equal_ls(cli):
    disk = image(HAOS)
    with fwassemble.open(disk) as dev:
        for path in ["/", "/etc", "/mnt/data", "/var/lib/docker", "/etc/hostname"]:
            assert dev.scandir(path) == lines(run_cli(cli, "ls", disk, path, "--json"))
            assert dev.listdir(path) == run_cli(cli, "ls", disk, path).splitlines()


def test_read_equals_cat(cli):
    disk = image(HAOS)
    with fwassemble.open(disk) as dev:
        files = [e["path"] for e in dev.walk("/etc") if e["type"] == "regular"][:20]
        assert files
        for path in files:
            cat = subprocess.run([cli, "cat", disk, path], capture_output=True, check=True).stdout
            assert dev.read(path) == cat
        assert dev.read("/etc/hostname") == subprocess.run([cli, "cat", disk, "/etc/hostname"], capture_output=True).stdout
        with pytest.raises(fwassemble.NotFound) as e:
            dev.read("/no/such/file")
        assert "/no/such/file" in str(e.value)
        with pytest.raises(fwassemble.InvalidArgument):
            dev.read("/etc")


def test_stat_equals_cli(cli):
    disk = image(HAOS)
    with fwassemble.open(disk) as dev:
        for path in ["/", "/etc/hostname", "/bin/ash", "/mnt/data/docker"]:
            assert dev.stat(path) == json.loads(run_cli(cli, "stat", disk, path, "--json"))
        assert dev.stat("/bin/ash", follow_symlinks=True) == json.loads(run_cli(cli, "stat", disk, "/bin/ash", "-L", "--json"))


def test_walk_equals_find_and_streams(cli):
    disk = image(HAOS)
    with fwassemble.open(disk) as dev:
        assert list(dev.walk()) == lines(run_cli(cli, "find", disk, "--json"))
        assert list(dev.walk("/mnt/data")) == lines(run_cli(cli, "find", disk, "/mnt/data", "--json"))
        # Stopping early leaves the tree usable.
        walk = dev.walk()
        assert next(walk)["path"] == "/"
        walk.close()
        assert dev.listdir("/") == run_cli(cli, "ls", disk).splitlines()


def test_partition_tree_equals_cli(cli):
    disk = image(HAOS)
    with fwassemble.open(disk, partition=8) as dev:
        assert dev.listdir("/") == run_cli(cli, "ls", disk, "--partition", "8").splitlines()
    with pytest.raises(fwassemble.InvalidArgument):
        fwassemble.open(disk, partition=8, root=3)


def test_diff_equals_cli(cli):
    a, b = image(HAOS), image(SLOTB)
    result = fwassemble.diff(a, b)
    run = subprocess.run([cli, "diff", a, b, "--json"], capture_output=True, text=True)
    assert run.returncode == 1
    assert list(result) == lines(run.stdout)
    assert result and not result.problems
    assert list(fwassemble.diff(a, b, no_content=True)) == lines(
        subprocess.run([cli, "diff", a, b, "--json", "--no-content"], capture_output=True, text=True).stdout)
    assert list(fwassemble.diff(a, b, path="/usr")) == lines(
        subprocess.run([cli, "diff", a, b, "/usr", "--json"], capture_output=True, text=True).stdout)
    assert not fwassemble.diff(a, a)


def test_c_walk_stops_when_the_callback_asks():
    lib = fwassemble._load()
    disk, tree, err = ctypes.c_void_p(), ctypes.c_void_p(), ctypes.c_void_p()
    assert lib.fwa_open(image(HAOS).encode(), ctypes.byref(disk), ctypes.byref(err)) == 0
    try:
        assert lib.fwa_tree_open(disk, None, ctypes.byref(tree), ctypes.byref(err)) == 0
        seen = []

        def each(line, _user):
            seen.append(json.loads(line)["path"])
            return 1 if len(seen) == 3 else 0

        assert lib.fwa_tree_walk(tree, b"/", fwassemble._LINE(each), None, None, ctypes.byref(err)) == 0
        assert len(seen) == 3
        assert lib.fwa_tree_walk(tree, b"/nope", fwassemble._LINE(each), None, None, ctypes.byref(err)) == fwassemble.NOT_FOUND
        lib.fwa_error_free(err)
        bad = lib.fwa_tree_open(disk, b'{"disk": "x"}', ctypes.byref(tree), ctypes.byref(err))
        assert bad == fwassemble.INVALID_ARGUMENT and tree.value is None
        lib.fwa_error_free(err)
    finally:
        lib.fwa_close(disk)


def test_docs_c_example_gives_the_clis_answers(cli, lib_path, tmp_path):
    """The C block of docs/browse.md, compiled and run: cat's bytes, then find --json's lines."""
    import re
    repo = Path(__file__).resolve().parents[2]
    block = re.findall(r"^```c\n(.*?)^```$", (repo / "docs" / "browse.md").read_text(), re.S | re.M)
    assert len(block) == 1
    helper, body = block[0].split("\n", 1)
    disk = image(HAOS)
    source = tmp_path / "browse.c"
    source.write_text('#include <stdio.h>\n#include "fwassemble.h"\n%s\nint main(void) {\n%s\nfwa_close(disk);\nreturn 0;\n}\n'
                      % (helper, body.replace('"haos.img"', json.dumps(disk))))
    binary = tmp_path / "browse"
    lib_dir = os.path.dirname(os.path.realpath(lib_path))
    subprocess.run(["gcc", "-std=c11", "-Wall", "-Wextra", "-Werror", "-I", str(repo / "include"), str(source),
                    "-L", lib_dir, "-lfwassemble", "-Wl,-rpath," + lib_dir, "-o", str(binary)], check=True)
    out = subprocess.run([str(binary)], capture_output=True, check=True).stdout
    hostname = subprocess.run([cli, "cat", disk, "/etc/hostname"], capture_output=True, check=True).stdout
    assert out.startswith(hostname)
    assert lines(out[len(hostname):].decode()) == lines(run_cli(cli, "find", disk, "/etc", "--json"))
