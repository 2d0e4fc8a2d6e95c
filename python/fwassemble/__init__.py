"""fwassemble: turn a raw multi-partition firmware disk image into one faithful rootfs archive.

Pure-Python bindings over ``libfwassemble.so`` (the C ABI declared in ``include/fwassemble.h``),
loaded with :mod:`ctypes`; there is nothing to compile here. See ``docs/library.md``.

The library is found, in this order:

1. ``FWASSEMBLE_LIB``: the path of ``libfwassemble.so`` (or of a directory holding it);
2. the copy inside this package (``fwassemble/_native/``), which a wheel built by ``make wheel``
   or ``pip install ./python`` carries, with the ``fwassemble`` executable beside it;
3. the repository's build directories, when this package is used from a checkout
   (``<repo>/.build/debug`` then ``<repo>/.build/release``, as ``libfwassemble.so`` or
   ``libCFwassemble.so``);
4. the system's library path (``ctypes.util.find_library("fwassemble")``).

:func:`executable_path` finds the ``fwassemble`` executable the same way (``FWASSEMBLE_CLI``,
the package, the checkout, ``PATH``); :mod:`fwassemble.batch` runs it, one process per disk.

Every call releases the GIL while the library works, so several disks can be processed from
several threads at once; calls on one :class:`Disk` are serialized by a lock.

Errors raise :class:`Error`, which carries the library's message (naming the disk, partition and
path involved), its numeric ``code`` and the code's name (``"not_found"``, ``"corrupt"``...).
"""

import ctypes
import ctypes.util
import json
import os
import threading
from pathlib import Path

__all__ = [
    "Error", "LibraryNotFound", "Disk", "version", "library_path", "executable_path", "inspect", "plan", "docker", "assemble", "export",
    "IO", "NOT_FOUND", "CORRUPT", "UNSUPPORTED", "LIMIT_EXCEEDED", "INVALID_ARGUMENT", "NOT_AVAILABLE",
    "INTERNAL",
]

# Status codes (FWA_ERR_* in include/fwassemble.h).
IO = 1
NOT_FOUND = 2
CORRUPT = 3
UNSUPPORTED = 4
LIMIT_EXCEEDED = 5
INVALID_ARGUMENT = 6
NOT_AVAILABLE = 7
INTERNAL = 8


class Error(Exception):
    """A failure reported by libfwassemble.

    ``message`` is the library's message, ``code`` the FWA_ERR_* number and ``code_name`` its
    stable name ("io", "not_found", "corrupt", "unsupported", "limit_exceeded",
    "invalid_argument", "not_available", "internal").
    """

    def __init__(self, message, code, code_name):
        super().__init__(message)
        self.message = message
        self.code = code
        self.code_name = code_name

    def __repr__(self):
        return "fwassemble.Error(%r, code=%d (%s))" % (self.message, self.code, self.code_name)


class LibraryNotFound(OSError):
    """libfwassemble.so could not be found or loaded (see the module documentation)."""


_NAMES = ("libfwassemble.so", "libCFwassemble.so")
# The library and executable a wheel carries (python/setup.py copies them in).
_NATIVE = Path(__file__).resolve().parent / "_native"
_lib = None
_lib_lock = threading.Lock()

_PROGRESS = ctypes.CFUNCTYPE(None, ctypes.c_uint64, ctypes.c_uint64, ctypes.c_uint64, ctypes.c_char_p,
                             ctypes.c_void_p)


def _candidates():
    env = os.environ.get("FWASSEMBLE_LIB")
    if env:
        p = Path(env)
        if p.is_dir():
            return [p / n for n in _NAMES]
        return [p]
    found = [_NATIVE / "libfwassemble.so"]
    repo = Path(__file__).resolve().parent.parent.parent
    if (repo / "Package.swift").exists():  # used from a checkout of the repository
        found += [repo / ".build" / config / n for config in ("debug", "release") for n in _NAMES]
    system = ctypes.util.find_library("fwassemble")
    if system:
        found.append(Path(system))
    return found


def library_path():
    """The path of the library this module loads (or would load)."""
    for c in _candidates():
        if c.exists() or os.sep not in str(c):
            return str(c)
    return None


def executable_path():
    """The ``fwassemble`` executable: ``FWASSEMBLE_CLI``, else the one inside this package, else
    the checkout's ``.build/debug`` / ``.build/release``, else ``fwassemble`` on ``PATH``; None
    when there is none."""
    env = os.environ.get("FWASSEMBLE_CLI")
    if env:
        return env
    candidates = [_NATIVE / "fwassemble"]
    repo = Path(__file__).resolve().parent.parent.parent
    if (repo / "Package.swift").exists():
        candidates += [repo / ".build" / config / "fwassemble" for config in ("debug", "release")]
    for c in candidates:
        if c.is_file() and os.access(str(c), os.X_OK):
            return str(c)
    import shutil
    return shutil.which("fwassemble")


def _load():
    global _lib
    with _lib_lock:
        if _lib is not None:
            return _lib
        tried = []
        for c in _candidates():
            if not c.exists() and os.sep in str(c):
                tried.append(str(c))
                continue
            try:
                lib = ctypes.CDLL(str(c))
            except OSError as e:
                tried.append("%s (%s)" % (c, e))
                continue
            _declare(lib)
            _lib = lib
            return lib
        raise LibraryNotFound(
            "libfwassemble.so not found: build it (make build) and set FWASSEMBLE_LIB to its path; tried: "
            + ", ".join(tried))


def _declare(lib):
    P = ctypes.c_void_p
    PP = ctypes.POINTER(ctypes.c_void_p)
    S = ctypes.c_char_p
    I = ctypes.c_int
    lib.fwa_version.argtypes, lib.fwa_version.restype = [], S
    lib.fwa_open.argtypes, lib.fwa_open.restype = [S, PP, PP], I
    lib.fwa_close.argtypes, lib.fwa_close.restype = [P], None
    lib.fwa_inspect_json.argtypes, lib.fwa_inspect_json.restype = [P, PP, PP], I
    lib.fwa_plan_json.argtypes, lib.fwa_plan_json.restype = [P, S, PP, PP], I
    lib.fwa_docker_json.argtypes, lib.fwa_docker_json.restype = [P, S, PP, PP], I
    lib.fwa_assemble.argtypes, lib.fwa_assemble.restype = [P, S, S, _PROGRESS, P, PP, PP], I
    lib.fwa_assemble_fd.argtypes, lib.fwa_assemble_fd.restype = [P, I, S, _PROGRESS, P, PP, PP], I
    lib.fwa_export_container.argtypes, lib.fwa_export_container.restype = [P, S, S, S, PP, PP], I
    lib.fwa_string_free.argtypes, lib.fwa_string_free.restype = [P], None
    lib.fwa_error_code.argtypes, lib.fwa_error_code.restype = [P], I
    lib.fwa_error_message.argtypes, lib.fwa_error_message.restype = [P], S
    lib.fwa_error_code_name.argtypes, lib.fwa_error_code_name.restype = [I], S
    lib.fwa_error_free.argtypes, lib.fwa_error_free.restype = [P], None


def _check(lib, status, err):
    """Raises Error for a failed call (freeing the library's error object)."""
    if status == 0:
        return
    if err.value:
        message = lib.fwa_error_message(err).decode("utf-8", "replace")
        code = lib.fwa_error_code(err)
        lib.fwa_error_free(err)
    else:
        message, code = "libfwassemble failed with status %d" % status, status
    raise Error(message, code, lib.fwa_error_code_name(code).decode())


def _take_string(lib, ptr):
    """The library's string as str (None for NULL), freed."""
    if not ptr.value:
        return None
    try:
        return ctypes.string_at(ptr.value).decode("utf-8")
    finally:
        lib.fwa_string_free(ptr)


def _options(options):
    """Options as the library's JSON: None values left out, keys passed as given (the library
    rejects unknown ones with a message listing the allowed keys)."""
    given = {k: v for k, v in options.items() if v is not None}
    return json.dumps(given).encode() if given else None


def _path(p):
    return os.fsencode(os.fspath(p))


def version():
    """The library's version string."""
    return _load().fwa_version().decode()


class Disk:
    """An open disk image. Use as a context manager, or call :meth:`close`.

    The methods mirror the CLI: :meth:`inspect`, :meth:`plan`, :meth:`docker` return the
    ``--json`` documents as dicts; :meth:`assemble` and :meth:`export` write archives and return
    their reports.
    """

    def __init__(self, path):
        self._lib = _load()
        self._lock = threading.Lock()
        self.path = os.fspath(path)
        handle, err = ctypes.c_void_p(), ctypes.c_void_p()
        _check(self._lib, self._lib.fwa_open(_path(path), ctypes.byref(handle), ctypes.byref(err)), err)
        self._handle = handle

    def close(self):
        """Closes the disk (idempotent)."""
        with self._lock:
            if self._handle is not None:
                self._lib.fwa_close(self._handle)
                self._handle = None

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def __del__(self):
        try:
            self.close()
        except Exception:
            pass

    def _json_call(self, function, *args):
        with self._lock:
            if self._handle is None:
                raise Error("the disk %s is closed" % self.path, INVALID_ARGUMENT, "invalid_argument")
            out, err = ctypes.c_void_p(), ctypes.c_void_p()
            status = function(self._handle, *args, ctypes.byref(out), ctypes.byref(err))
            _check(self._lib, status, err)
            return json.loads(_take_string(self._lib, out))

    def inspect(self):
        """The ``fwassemble inspect --json`` document: image, table, partitions."""
        return self._json_call(self._lib.fwa_inspect_json)

    def plan(self, root=None):
        """The ``fwassemble plan --json`` document; ``root`` forces the root partition (number,
        GPT name or label)."""
        return self._json_call(self._lib.fwa_plan_json, _options({"root": root}))

    def docker(self, root=None):
        """The ``fwassemble docker --json`` document: data-roots, images, containers, volumes."""
        return self._json_call(self._lib.fwa_docker_json, _options({"root": root}))

    def assemble(self, out=None, progress=None, **options):
        """Writes the booted filesystem as one archive and returns the report (a dict).

        ``out``: a path (written to a temporary file renamed into place on success; None for
        ``NAME.rootfs.tar.gz`` in the current directory), or an open file / file descriptor
        (written from its current position, not closed). Options as the CLI's flags:
        ``compression`` ("gzip", "zstd", "none"), ``level``, ``threads``, ``no_devices``, ``no_replay``,
        ``root``, ``report`` (the report file's path). ``progress(entries, content_bytes,
        planned_bytes, current_path)`` is called now and then; an exception it raises is
        re-raised once the archive is written.
        """
        failures = []

        def relay(entries, content, planned, current, _user):
            try:
                progress(entries, content, planned, current.decode("utf-8", "replace") if current else "")
            except BaseException as e:  # kept for after the call: C cannot unwind Python
                if not failures:
                    failures.append(e)

        callback = _PROGRESS(relay) if progress is not None else _PROGRESS()
        encoded = _options(options)
        fd = None
        if isinstance(out, int):
            fd = out
        elif out is not None and hasattr(out, "fileno"):
            if hasattr(out, "flush"):
                out.flush()
            fd = out.fileno()
        if fd is not None:
            report = self._json_call(self._lib.fwa_assemble_fd, fd, encoded, callback, None)
        else:
            report = self._json_call(self._lib.fwa_assemble, _path(out) if out is not None else None, encoded,
                                     callback, None)
        if failures:
            raise failures[0]
        return report

    def export(self, container, out, **options):
        """Writes a Docker container's merged filesystem (``image=True``: an image's) to ``out``
        and returns what was written. Options: ``compression``, ``level``, ``threads``,
        ``root``, ``data_root``, ``image``."""
        return self._json_call(self._lib.fwa_export_container, container.encode(), _path(out),
                               _options(options))


def inspect(path):
    """The ``fwassemble inspect --json`` document of the disk at ``path`` (a dict)."""
    with Disk(path) as d:
        return d.inspect()


def plan(path, root=None):
    """The ``fwassemble plan --json`` document of the disk at ``path`` (a dict)."""
    with Disk(path) as d:
        return d.plan(root=root)


def docker(path, root=None):
    """The ``fwassemble docker --json`` document of the disk at ``path`` (a dict)."""
    with Disk(path) as d:
        return d.docker(root=root)


def assemble(path, out=None, progress=None, **options):
    """Writes the booted filesystem of the disk at ``path`` as one archive to ``out``; returns
    the report (see :meth:`Disk.assemble`)."""
    with Disk(path) as d:
        return d.assemble(out, progress=progress, **options)


def export(path, container, out, **options):
    """Writes one Docker container's filesystem from the disk at ``path`` to ``out`` (see
    :meth:`Disk.export`)."""
    with Disk(path) as d:
        return d.export(container, out, **options)
