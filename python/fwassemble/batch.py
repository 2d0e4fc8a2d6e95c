"""Many disks on a Dask cluster: the same records as ``fwassemble batch``, one machine or many.

:func:`run` expands the inputs (disk images, folders searched by content, ``@LIST`` files) and
names the archives with the ``fwassemble`` executable (``batch --list``, so the rules are the
CLI's), then maps the disks onto a Dask cluster. Each task runs ``fwassemble batch`` on its one
disk in a subprocess on the worker: the same child process per disk, with the same time and
memory limits, as the CLI, and the same JSON record, which the task returns. Records stream back
as tasks finish: each is appended to the results file at once (so an interrupted run loses no
finished disk, and ``resume=True`` skips what is done) and handed to ``on_record``.

A task whose worker dies (a killed or crashed worker process) is run again once on another
worker: the scheduler's ``distributed.scheduler.allowed-failures`` is set to 1 for the
``LocalCluster`` made here; set it on your own scheduler for the same behaviour. A task that
raises (the executable could not be started) is retried once too (``retries=1``).

Outputs go to ``out_dir``, which every worker must be able to write (a shared folder on a
cluster; see docs/scale.md).

Command line::

    python -m fwassemble.batch [--scheduler tcp://HOST:8786] INPUTS... -o OUTDIR \\
        [--timeout S] [--memory MiB] [--results FILE.jsonl] [--resume] [--compression gzip] \\
        [--level N] [--threads N] [--root ROOT] [--no-devices] [--rehost] [--hardlinks link|copy] \\
        [--no-replay] [--strict] [--backing-dir DIR] [--snapshot NAME]

The assemble options become one JSON request (``fwassemble batch --request -``), the same for
every disk.
"""

import argparse
import hashlib
import json
import os
import subprocess
import sys
import tempfile
import threading

from . import _value, executable_path

__all__ = ["run", "expand", "run_disk", "main", "REQUEST_KEYS"]

# The keys of a batch request: every key of `fwassemble assemble --request` (AssembleRequest in
# Sources/FirmwareAssembler/Request.swift, docs/library.md) but "disk", "output" and "report",
# which each disk gets of its own.
REQUEST_KEYS = (
    "add_tar", "backing_dir", "compression", "format", "hardlinks", "inodes", "level", "no_devices", "no_replay",
    "padding", "rehost", "root", "snapshot", "strict", "threads", "uuid",
)


def _request(options):
    """The JSON request of ``fwassemble batch --request -`` from the assemble options given as
    keyword arguments (None values left out). An unknown key raises TypeError listing the known
    ones; values are checked by the executable."""
    unknown = sorted(k for k in options if k not in REQUEST_KEYS)
    if unknown:
        raise TypeError("unknown assemble option%s %s (known: %s)" % (
            "" if len(unknown) == 1 else "s", ", ".join(map(repr, unknown)), ", ".join(REQUEST_KEYS)))
    return json.dumps({k: _value(v) for k, v in sorted(options.items()) if v is not None}, sort_keys=True)


def _executable(executable=None):
    exe = executable or executable_path()
    if not exe:
        raise FileNotFoundError("the fwassemble executable was not found (install the wheel, or set FWASSEMBLE_CLI)")
    return exe


def expand(inputs, out_dir, executable=None, **assemble_options):
    """The disks ``inputs`` name, as ``[(image, output_name)]``, by ``fwassemble batch --list``
    (so folders are searched, and archives named, exactly as the CLI does: the image's name
    without its disk suffixes plus the suffix of the format and compression the options choose).
    ``assemble_options`` are those of :func:`run`; the request they make is checked by the
    executable (a bad value raises ValueError with its message)."""
    exe = _executable(executable)
    request = _request(assemble_options)
    cmd = [exe, "batch", "--list", "-o", os.fspath(out_dir), "--request", "-"]
    cmd += [os.fspath(i) for i in inputs]
    p = subprocess.run(cmd, input=request, capture_output=True, text=True)
    if p.returncode != 0:
        raise ValueError(p.stderr.strip() or "fwassemble batch --list failed with status %d" % p.returncode)
    disks = []
    for line in p.stdout.splitlines():
        d = json.loads(line)
        disks.append((d["image"], d["output_name"]))
    return disks


def run_disk(image, out_dir, output_name, timeout=None, memory=None, assemble_arguments=(), executable=None,
             request=None):
    """Runs one disk as ``fwassemble batch`` would (its own process, limits) and returns its
    record. This is what each Dask task calls, on the worker.

    ``request``: the assemble options, as a dict (the keyword arguments of :func:`run`) or as
    the JSON request itself, given to ``fwassemble batch --request -`` on its standard input.
    ``assemble_arguments``: the older form, ``fwassemble batch`` flags (``["--level", "9"]``);
    give one or the other."""
    exe = _executable(executable)
    if assemble_arguments and request is not None:
        raise TypeError("run_disk takes the options as request or as assemble_arguments, not both")
    if not assemble_arguments:
        request = _request(request or {}) if request is None or isinstance(request, dict) else request
    with tempfile.TemporaryDirectory(prefix="fwassemble-task-") as tmp:
        results = os.path.join(tmp, "results.jsonl")
        cmd = [exe, "batch", image, "-o", out_dir, "--output-name", output_name, "--results", results,
               "--jobs", "1", "--quiet"]
        if timeout is not None:
            cmd += ["--timeout", str(timeout)]
        if memory is not None:
            cmd += ["--memory", str(memory)]
        if request is not None:
            cmd += ["--request", "-"]
        p = subprocess.run(cmd + list(assemble_arguments), input=request if request is not None else "",
                           stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
        try:
            with open(results) as f:
                lines = [line for line in f if line.strip()]
        except FileNotFoundError:
            lines = []
        if p.returncode not in (0, 1) or not lines:
            raise RuntimeError("fwassemble batch failed on %s (status %d): %s" % (image, p.returncode, p.stderr.strip()))
        return json.loads(lines[-1])


def _lost(image, error):
    """The record of a disk whose task could not finish on the cluster."""
    try:
        size = os.path.getsize(image)
    except OSError:
        size = None
    return {"image": image, "size": size, "sha256": None, "status": "killed", "exit_code": None, "signal": None,
            "error": "the task did not finish on the Dask cluster: %s: %s" % (type(error).__name__, error),
            "output": None, "output_sha256": None, "summary": None, "seconds": 0.0, "peak_rss_bytes": None}


def _sha256(path):
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def _done(record, out_dir, name):
    """Whether a previous record says this disk is done and its archive is still the same."""
    out = record.get("output")
    if record.get("status") != "ok" or not out or out != os.path.join(out_dir, name):
        return False
    try:
        return _sha256(out) == record.get("output_sha256")
    except OSError:
        return False


def _read_results(path):
    records = {}
    try:
        with open(path) as f:
            for line in f:
                try:
                    r = json.loads(line)
                except ValueError:
                    continue
                records[r.get("image")] = r
    except FileNotFoundError:
        pass
    return records


def local_cluster(n_workers=2, **kwargs):
    """A ``LocalCluster`` of ``n_workers`` worker processes, one thread each, whose scheduler
    re-runs a task once when its worker dies."""
    import dask
    from dask.distributed import LocalCluster

    dask.config.set({"distributed.scheduler.allowed-failures": 1})
    kwargs.setdefault("threads_per_worker", 1)
    kwargs.setdefault("processes", True)
    kwargs.setdefault("dashboard_address", None)
    return LocalCluster(n_workers=n_workers, **kwargs)


def run(inputs, out_dir, client=None, timeout=None, memory=None, results=None, resume=False, on_record=None,
        executable=None, worker_executable=None, **assemble_options):
    """Assembles every disk ``inputs`` name into ``out_dir`` on a Dask cluster; returns the
    records (dicts with the keys of ``fwassemble batch``'s JSON lines), in input order.

    ``client``: a ``dask.distributed.Client``; None makes a ``LocalCluster`` with 2 worker
    processes for the call. ``timeout`` (seconds) and ``memory`` (MiB) limit each disk's process;
    ``results`` is the JSON-lines file (default ``out_dir/results.jsonl``), appended to as each
    disk ends; ``resume`` skips the disks it says are done. ``on_record(record)`` is called in
    this process as each record arrives. ``executable`` is the ``fwassemble`` used here to
    expand the inputs, ``worker_executable`` the one the workers run (default: each worker's
    own, from its installed wheel). Other keyword arguments are the ``assemble`` options every
    disk gets, sent to the executable as one JSON request (``fwassemble batch --request -``):
    ``compression``, ``level``, ``threads``, ``root``, ``no_devices``, ``no_replay``, ``rehost``,
    ``hardlinks`` ("link" or "copy"), ``strict``, ``format`` ("tar", "ext4", "qcow2"),
    ``padding``, ``inodes``, ``uuid``, ``add_tar``, ``backing_dir``, ``snapshot``
    (:data:`REQUEST_KEYS`); an unknown one raises TypeError.
    """
    request = _request(assemble_options)
    out_dir = os.path.abspath(os.fspath(out_dir))
    os.makedirs(out_dir, exist_ok=True)
    disks = expand(inputs, out_dir, executable=executable, **assemble_options)
    results = os.path.abspath(os.fspath(results)) if results else os.path.join(out_dir, "results.jsonl")
    previous = _read_results(results) if resume else {}

    records = [None] * len(disks)
    todo = []
    for i, (image, name) in enumerate(disks):
        old = previous.get(image)
        if old is not None and _done(old, out_dir, name):
            records[i] = old
        else:
            todo.append(i)

    own_cluster = None
    if client is None and todo:
        from dask.distributed import Client

        own_cluster = local_cluster(2)
        client = Client(own_cluster)
    lock = threading.Lock()
    try:
        with open(results, "a" if resume else "w") as out:
            if todo:
                from dask.distributed import as_completed

                futures = {}
                for i in todo:
                    image, name = disks[i]
                    f = client.submit(run_disk, image, out_dir, name, timeout, memory, (), worker_executable, request,
                                      key="fwassemble-%s-%d" % (hashlib.sha256(image.encode()).hexdigest()[:16], i),
                                      pure=False, retries=1)
                    futures[f] = i
                for f in as_completed(list(futures)):
                    i = futures[f]
                    if f.status == "finished":
                        record = f.result()
                    else:  # the task failed twice (its worker died twice, or it raised twice)
                        record = _lost(disks[i][0], f.exception())
                    with lock:
                        records[futures[f]] = record
                        out.write(json.dumps(record, sort_keys=True) + "\n")
                        out.flush()
                        os.fsync(out.fileno())
                    if on_record is not None:
                        on_record(record)
    finally:
        if own_cluster is not None:
            client.close()
            own_cluster.close()
    return records


# The command line's assemble flags (python -m fwassemble.batch), by request key.
_FLAGS = {
    "compression": "--compression", "level": "--level", "threads": "--threads", "root": "--root",
    "backing_dir": "--backing-dir", "snapshot": "--snapshot", "no_devices": "--no-devices",
    "rehost": "--rehost", "hardlinks": "--hardlinks", "no_replay": "--no-replay", "strict": "--strict",
}
_SWITCHES = ("no_devices", "rehost", "no_replay", "strict")


def main(argv=None):
    parser = argparse.ArgumentParser(prog="python -m fwassemble.batch",
                                     description="Assemble many disks on a Dask cluster (fwassemble batch, distributed).")
    parser.add_argument("inputs", nargs="+", help="disk images, folders and @LIST files")
    parser.add_argument("-o", "--output", required=True, help="the folder the archives go to (writable by every worker)")
    parser.add_argument("--scheduler", help="the Dask scheduler (tcp://HOST:8786); default: a LocalCluster of --workers")
    parser.add_argument("--workers", type=int, default=2, help="worker processes of the LocalCluster (default 2)")
    parser.add_argument("--timeout", type=float, help="seconds a disk may take")
    parser.add_argument("--memory", type=int, help="address space of a disk's process, in MiB")
    parser.add_argument("--results", help="the JSON-lines results (default OUTDIR/results.jsonl)")
    parser.add_argument("--resume", action="store_true", help="skip the disks the results say are done")
    parser.add_argument("--quiet", "-q", action="store_true", help="no line per disk on stderr")
    for key, flag in _FLAGS.items():
        if key in _SWITCHES:
            parser.add_argument(flag, dest=key, action="store_true", default=None)
        elif key == "hardlinks":
            parser.add_argument(flag, dest=key, choices=("link", "copy"))
        else:
            parser.add_argument(flag, dest=key, type=int if key in ("level", "threads") else str)
    a = parser.parse_args(argv)
    options = {k: getattr(a, k) for k in _FLAGS}

    def show(record):
        if not a.quiet:
            sys.stderr.write("%s %s%s\n" % (record["status"], record["image"],
                                            (": " + record["error"]) if record.get("error") else ""))

    client = cluster = None
    try:
        from dask.distributed import Client

        if a.scheduler:
            client = Client(a.scheduler)
        else:
            cluster = local_cluster(a.workers)
            client = Client(cluster)
        records = run(a.inputs, a.output, client=client, timeout=a.timeout, memory=a.memory, results=a.results,
                      resume=a.resume, on_record=show, **options)
    except ValueError as e:
        sys.stderr.write("fwassemble.batch: %s\n" % e)
        return 2
    finally:
        if client is not None:
            client.close()
        if cluster is not None:
            cluster.close()
    failed = [r for r in records if r["status"] != "ok"]
    if not a.quiet:
        sys.stderr.write("%d disks: %d ok, %d failed\n" % (len(records), len(records) - len(failed), len(failed)))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
