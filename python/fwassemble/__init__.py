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
the package, the checkout, ``PATH``); :mod:`fwassemble.batch` runs it, one process per disk, and
the wheel installs it as the ``fwassemble`` command (:mod:`fwassemble.cli`).

Options are keyword arguments: the job's request, whose keys are the CLI's long options with
``_`` for ``-`` (``compression``, ``level``, ``threads``, ``no_replay``, ``root``...; see
:meth:`Disk.assemble`, :meth:`Disk.extract`, :meth:`Disk.export` and ``docs/library.md``). None
means "the default"; an unknown key or a bad value raises :class:`InvalidArgument` naming it.

Every call releases the GIL while the library works, so several disks can be processed from
several threads at once; calls on one :class:`Disk` are serialized by a lock. The long calls
(assemble, extract, export) run the library on a worker thread while the calling thread waits,
so Ctrl-C (KeyboardInterrupt) stops them within about a second, leaving no output behind, and is
then re-raised; :meth:`Disk.cancel` stops them from another thread.

Errors raise :class:`Error`, which carries the library's message (naming the disk, partition and
path involved), its numeric ``code`` and the code's name (``"not_found"``, ``"corrupt"``...). The
class raised is the code's subclass of :class:`Error` (:class:`NotFound`, :class:`CorruptImage`,
:class:`InvalidArgument`...), which is also the matching built-in exception where there is one
(``FileNotFoundError``, ``OSError``, ``ValueError``; ``PermissionError`` when the message says
"Permission denied", ``IsADirectoryError`` when it says "is a directory").
"""

import ctypes
import ctypes.util
import errno as _errno
import json
import os
import threading
from pathlib import Path

# `open` (fwassemble.open) is left out so that `from fwassemble import *` keeps the builtin.
__all__ = [
    "Error", "IOFailure", "NotFound", "CorruptImage", "UnsupportedFormat", "LimitExceeded", "InvalidArgument",
    "NotAvailable", "InternalError", "Cancelled", "LibraryNotFound", "Disk", "version", "library_path",
    "executable_path", "inspect", "plan", "docker", "assemble", "extract", "export", "Tree", "diff",
    "IO", "NOT_FOUND", "CORRUPT", "UNSUPPORTED", "LIMIT_EXCEEDED", "INVALID_ARGUMENT", "NOT_AVAILABLE",
    "INTERNAL", "CANCELLED",
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
CANCELLED = 9

_CODE_NAMES = {IO: "io", NOT_FOUND: "not_found", CORRUPT: "corrupt", UNSUPPORTED: "unsupported",
               LIMIT_EXCEEDED: "limit_exceeded", INVALID_ARGUMENT: "invalid_argument",
               NOT_AVAILABLE: "not_available", INTERNAL: "internal", CANCELLED: "cancelled"}


class Error(Exception):
    """A failure reported by libfwassemble: the base class of every error this module raises
    for the library.

    ``message`` is the library's message (also ``str(e)``), ``code`` the FWA_ERR_* number and
    ``code_name`` its stable name ("io", "not_found", "corrupt", "unsupported", "limit_exceeded",
    "invalid_argument", "not_available", "internal", "cancelled"). The class raised is the
    code's subclass (:class:`NotFound` for 2...); catching :class:`Error` catches them all.
    """

    def __init__(self, message, code=INTERNAL, code_name=None):
        # Exception.__init__, not super(): a subclass also derives from OSError, whose __init__
        # would read the arguments as (errno, strerror).
        Exception.__init__(self, message)
        self.message = message
        self.code = code
        self.code_name = code_name or _CODE_NAMES.get(code, "unknown")
        if isinstance(self, OSError):
            # The errno the message names ("...: No space left on device"), for OSError users.
            self.errno = _errno_in(message) or getattr(type(self), "_errno", None)
            self.strerror = message

    def __str__(self):
        return self.message

    def __repr__(self):
        return "fwassemble.%s(%r, code=%d (%s))" % (type(self).__name__, self.message, self.code, self.code_name)

    def __reduce__(self):
        return (type(self), (self.message, self.code, self.code_name))


class IOFailure(Error, OSError):
    """FWA_ERR_IO (1): an operating-system I/O error (also an ``OSError``)."""


class NotFound(Error, FileNotFoundError):
    """FWA_ERR_NOT_FOUND (2): a file, partition, container or path that does not exist (also a
    ``FileNotFoundError``)."""
    _errno = _errno.ENOENT


class CorruptImage(Error):
    """FWA_ERR_CORRUPT (3): on-disk data breaking its format's rules."""


class UnsupportedFormat(Error):
    """FWA_ERR_UNSUPPORTED (4): a valid format or feature fwassemble does not handle."""


class LimitExceeded(Error):
    """FWA_ERR_LIMIT_EXCEEDED (5): a safety limit (size, depth, count) was exceeded."""


class InvalidArgument(Error, ValueError):
    """FWA_ERR_INVALID_ARGUMENT (6): a bad argument (an unknown option, a value out of range, an
    output that is an input...); also a ``ValueError``."""


class NotAvailable(Error):
    """FWA_ERR_NOT_AVAILABLE (7): the operation is not built into this library."""


class InternalError(Error):
    """FWA_ERR_INTERNAL (8): any other failure (the message says what)."""


class Cancelled(Error):
    """FWA_ERR_CANCELLED (9): the job was stopped by :meth:`Disk.cancel`; nothing was left
    behind. (A job stopped by Ctrl-C raises KeyboardInterrupt, one stopped by its progress
    callback that callback's exception.)"""


_CLASSES = {IO: IOFailure, NOT_FOUND: NotFound, CORRUPT: CorruptImage, UNSUPPORTED: UnsupportedFormat,
            LIMIT_EXCEEDED: LimitExceeded, INVALID_ARGUMENT: InvalidArgument, NOT_AVAILABLE: NotAvailable,
            INTERNAL: InternalError, CANCELLED: Cancelled}

# The code's class combined with a built-in OSError subclass the message calls for: for each code
# class C, C + "PermissionDenied" (also a PermissionError) and C + "IsADirectory" (also an
# IsADirectoryError), e.g. IOFailurePermissionDenied, InvalidArgumentIsADirectory. Module-level
# names, so they pickle.
_FLAVORS = (
    ("PermissionDenied", PermissionError, ("Permission denied", "Operation not permitted"), _errno.EACCES),
    ("IsADirectory", IsADirectoryError, ("Is a directory", "is a directory"), _errno.EISDIR),
)
_FLAVORED = {}
for _code, _base in _CLASSES.items():
    for _suffix, _builtin, _words, _number in _FLAVORS:
        _name = _base.__name__ + _suffix
        _cls = type(_name, (_base, _builtin), {
            "__doc__": "%s whose message says %r: also a %s." % (_base.__name__, _words[0], _builtin.__name__),
            "__module__": __name__, "_errno": _number})
        globals()[_name] = _cls
        _FLAVORED[_code, _suffix] = _cls
del _code, _base, _suffix, _builtin, _words, _number, _name, _cls

_STRERRORS = None


def _errno_in(message):
    """The errno whose strerror text the message contains (the longest such), or None."""
    global _STRERRORS
    if _STRERRORS is None:
        _STRERRORS = sorted(((os.strerror(n), n) for n in _errno.errorcode), key=lambda t: -len(t[0]))
    for text, number in _STRERRORS:
        if text and text in message:
            return number
    return None


def _error(message, code, code_name=None):
    """The exception for a library failure: the code's class, combined with PermissionError or
    IsADirectoryError when the message says so."""
    for suffix, _, words, _ in _FLAVORS:
        if any(w in message for w in words):
            cls = _FLAVORED.get((code, suffix))
            if cls is not None:
                return cls(message, code, code_name)
    return _CLASSES.get(code, Error)(message, code, code_name)


class LibraryNotFound(OSError):
    """libfwassemble.so could not be found or loaded (see the module documentation)."""


_NAMES = ("libfwassemble.so", "libCFwassemble.so")
# The library and executable a wheel carries (python/setup.py copies them in).
_NATIVE = Path(__file__).resolve().parent / "_native"
_lib = None
_lib_lock = threading.Lock()

_PROGRESS = ctypes.CFUNCTYPE(None, ctypes.c_uint64, ctypes.c_uint64, ctypes.c_uint64, ctypes.c_char_p,
                             ctypes.c_void_p)
# fwa_line_fn: one JSON line; nonzero stops.
_LINE = ctypes.CFUNCTYPE(ctypes.c_int, ctypes.c_char_p, ctypes.c_void_p)


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


def _bundled_executables():
    """The executables this package can run, in order, without searching PATH: FWASSEMBLE_CLI
    (as given), then those of the package and of the checkout's builds that exist."""
    env = os.environ.get("FWASSEMBLE_CLI")
    candidates = [_NATIVE / "fwassemble"]
    repo = Path(__file__).resolve().parent.parent.parent
    if (repo / "Package.swift").exists():
        candidates += [repo / ".build" / config / "fwassemble" for config in ("debug", "release")]
    return ([env] if env else []) + [str(c) for c in candidates if c.is_file() and os.access(str(c), os.X_OK)]


def executable_path():
    """The ``fwassemble`` executable: ``FWASSEMBLE_CLI``, else the one inside this package, else
    the checkout's ``.build/debug`` / ``.build/release``, else ``fwassemble`` on ``PATH``; None
    when there is none."""
    found = _bundled_executables()
    if found:
        return found[0]
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
    # Newer calls: a library without them still serves the others (using one raises NotAvailable).
    newer = {
        "fwa_open2": ([S, S, PP, PP], I),
        "fwa_extract": ([P, S, S, S, PP, PP], I),
        "fwa_cancel": ([P], None),
        "fwa_tree_open": ([P, S, PP, PP], I),
        "fwa_tree_close": ([P], None),
        "fwa_tree_list_json": ([P, S, PP, PP], I),
        "fwa_tree_stat_json": ([P, S, I, PP, PP], I),
        "fwa_tree_read": ([P, S, PP, ctypes.POINTER(ctypes.c_size_t), PP], I),
        "fwa_tree_walk": ([P, S, _LINE, P, PP, PP], I),
        "fwa_diff": ([P, P, S, _LINE, P, PP, PP], I),
    }
    for name, (argtypes, restype) in newer.items():
        try:
            function = getattr(lib, name)
        except AttributeError:
            continue
        function.argtypes, function.restype = argtypes, restype


def _function(lib, name):
    """The library's function `name`, or NotAvailable when this library predates it."""
    try:
        return getattr(lib, name)
    except AttributeError:
        raise NotAvailable("%s is not in %s (an older libfwassemble)" % (name, library_path()), NOT_AVAILABLE) from None


def _check(lib, status, err):
    """Raises the Error subclass of a failed call (freeing the library's error object)."""
    if status == 0:
        return
    if err.value:
        message = lib.fwa_error_message(err).decode("utf-8", "replace")
        code = lib.fwa_error_code(err)
        lib.fwa_error_free(err)
    else:
        message, code = "libfwassemble failed with status %d" % status, status
    raise _error(message, code, lib.fwa_error_code_name(code).decode())


def _take_string(lib, ptr):
    """The library's string as str (None for NULL), freed."""
    if not ptr.value:
        return None
    try:
        return ctypes.string_at(ptr.value).decode("utf-8")
    finally:
        lib.fwa_string_free(ptr)


def _value(v):
    """An option's value as JSON: paths (os.PathLike, bytes) as strings, in lists too."""
    if isinstance(v, (list, tuple)):
        return [_value(x) for x in v]
    if isinstance(v, bytes):
        return os.fsdecode(v)
    if isinstance(v, os.PathLike):
        return os.fspath(v)
    return v


def _options(options):
    """Options as the library's JSON request: None values left out, keys passed as given (the
    library rejects unknown ones with a message listing the allowed keys); paths as strings,
    partition numbers as JSON numbers."""
    given = {k: _value(v) for k, v in options.items() if v is not None}
    return json.dumps(given).encode() if given else None


def _path(p):
    return os.fsencode(os.fspath(p))


def _selector(s):
    """A partition or root selector (number, GPT name or label) as the library's C string."""
    if isinstance(s, bool) or not isinstance(s, (int, str, bytes)):
        raise TypeError("a partition is a number, a GPT partition name or a filesystem label, not %r" % (s,))
    return s if isinstance(s, bytes) else str(s).encode()


# Options of the disk itself (Disk(path, backing_dir=, snapshot=)), not of a job on it.
_SOURCE_KEYS = ("backing_dir", "snapshot", "flash_geometry", "device")


def _refuse_source_keys(options, call):
    given = [k for k in _SOURCE_KEYS + ("disk",) if options.get(k) is not None]
    if given:
        raise InvalidArgument("%s: %s belong to the disk: Disk(path, backing_dir=..., snapshot=...), or the module-level "
                              "functions' keywords" % (call, ", ".join(given)), INVALID_ARGUMENT)


def _split_source(options):
    """(Disk keyword arguments, the job's options) of a module-level call's keywords."""
    source = {k: options.pop(k) for k in _SOURCE_KEYS if k in options}
    return source, options


def version():
    """The library's version string."""
    return _load().fwa_version().decode()


class _Closing:
    """A handle on the library closed by ``close()``: a context manager, closed when collected."""

    def close(self):
        raise NotImplementedError

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def __del__(self):
        try:
            self.close()
        except Exception:
            pass


class Disk(_Closing):
    """An open disk image. Use as a context manager, or call :meth:`close`.

    ``backing_dir`` (where qcow2 backing files are looked up) and ``snapshot`` (a qcow2 internal
    snapshot, name or ID) open the image as ``--backing-dir`` and ``--snapshot`` do;
    ``flash_geometry`` ("2048+64": a raw NAND dump's page and spare sizes) as ``--flash-geometry``;
    ``device`` (a list of paths: other devices of a multi-device btrfs) as ``--device``.

    The methods mirror the CLI: :meth:`inspect`, :meth:`plan`, :meth:`docker` return the
    ``--json`` documents as dicts; :meth:`assemble`, :meth:`extract` and :meth:`export` write
    archives and return their reports. Calls on one disk are serialized by a lock;
    :meth:`cancel` (from any thread) stops the running one.
    """

    def __init__(self, path, backing_dir=None, snapshot=None, flash_geometry=None, device=None):
        self._lib = _load()
        self._lock = threading.Lock()
        # Guards the handle against close() while cancel() uses it (never held during a job).
        self._handle_lock = threading.Lock()
        self._busy = False
        self._cancel_requested = False
        self._handle = None
        self.path = os.fspath(path)
        handle, err = ctypes.c_void_p(), ctypes.c_void_p()
        if backing_dir is None and snapshot is None and flash_geometry is None and not device:
            status = self._lib.fwa_open(_path(path), ctypes.byref(handle), ctypes.byref(err))
        else:
            source = _options({"backing_dir": backing_dir, "snapshot": None if snapshot is None else str(snapshot),
                               "flash_geometry": flash_geometry,
                               "device": None if device is None else [os.fspath(d) for d in device]})
            status = _function(self._lib, "fwa_open2")(_path(path), source, ctypes.byref(handle), ctypes.byref(err))
        _check(self._lib, status, err)
        self._handle = handle

    def close(self):
        """Closes the disk (idempotent); waits for a call running on it to end."""
        with self._lock, self._handle_lock:
            if self._handle is not None:
                self._lib.fwa_close(self._handle)
                self._handle = None

    def cancel(self):
        """Stops the assemble, extract or export running on this disk (call it from another
        thread, or a signal handler): that call then raises :class:`Cancelled` within about a
        second, and leaves no output behind. Does nothing when no such call is running."""
        with self._handle_lock:
            if self._busy and self._handle is not None:
                self._cancel_requested = True
                cancel = getattr(self._lib, "fwa_cancel", None)
                if cancel is not None:
                    cancel(self._handle)

    def _open_handle(self):
        if self._handle is None:
            raise InvalidArgument("the disk %s is closed" % self.path, INVALID_ARGUMENT, "invalid_argument")
        return self._handle

    def _json_call(self, function, *args):
        with self._lock:
            handle = self._open_handle()
            out, err = ctypes.c_void_p(), ctypes.c_void_p()
            status = function(handle, *args, ctypes.byref(out), ctypes.byref(err))
            _check(self._lib, status, err)
            return json.loads(_take_string(self._lib, out))

    def _job(self, function, *args, failures=()):
        """A long call (assemble, extract, export): run on a worker thread (ctypes releases the
        GIL) while this thread waits, so that an exception raised here while waiting (Ctrl-C's
        KeyboardInterrupt) cancels the job (fwa_cancel), waits for it to end and is re-raised.
        ``failures``: exceptions a progress callback raised (it cancels the job itself); the
        first is raised once the call has returned. Returns the call's JSON as a dict."""
        with self._lock:
            handle = self._open_handle()
            lib = self._lib
            cancel = getattr(lib, "fwa_cancel", None)
            out, err = ctypes.c_void_p(), ctypes.c_void_p()
            outcome = []
            entered = threading.Event()

            def work():
                entered.set()
                try:
                    outcome.append(function(handle, *args, ctypes.byref(out), ctypes.byref(err)))
                except BaseException as e:  # a ctypes argument error: raised below, on the caller's thread
                    outcome.append(e)

            worker = threading.Thread(target=work, name="fwassemble-job")
            interrupted = None
            with self._handle_lock:
                self._busy = True
                self._cancel_requested = False
            try:
                try:
                    worker.start()
                except BaseException as e:  # interrupted while starting: the thread may run or not
                    interrupted = e
                    if not entered.wait(1.0) and not worker.is_alive():
                        raise
                while not outcome:
                    try:
                        # Cancelled again each turn: fwa_cancel before the job has begun its work
                        # would be forgotten (each job starts uncancelled).
                        if (interrupted is not None or self._cancel_requested) and cancel is not None:
                            cancel(handle)
                        worker.join(0.1)
                    except BaseException as e:
                        if interrupted is None:
                            interrupted = e
                worker.join()
            finally:
                with self._handle_lock:
                    self._busy = False
            result = outcome[0]
            if isinstance(result, BaseException) and interrupted is None:
                raise result
            if interrupted is not None or failures:
                # The job's own result gives way to what stopped it (a job that had already
                # finished keeps its complete output).
                if result == 0:
                    _take_string(lib, out)
                elif err.value:
                    lib.fwa_error_free(err)
                raise interrupted if interrupted is not None else failures[0]
            _check(lib, result, err)
            return json.loads(_take_string(lib, out))

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
        """Writes the booted filesystem as one archive (or ext4 / qcow2 image) and returns the
        report (a dict).

        ``out``: a path (written to a temporary file renamed into place on success, never the
        disk itself; None for the default name in the current directory: the image's name
        without its disk suffixes, plus ``.rootfs.tar.gz``, ``.rootfs.tar.zst``, ``.rootfs.tar``,
        ``.ext4`` or ``.qcow2``), or an open file / file descriptor (written from its current
        position, not closed).

        Options, as ``fwassemble assemble``'s: ``compression`` ("gzip", "zstd", "none";
        default: from the output's suffix, else gzip), ``level``, ``threads``, ``no_devices``,
        ``no_replay``, ``root`` (number, GPT name or label), ``report`` (the report file's
        path), ``rehost``, ``hardlinks`` ("link" or "copy"), ``strict`` (a warning fails the
        job), ``format`` ("tar", "ext4", "qcow2"), ``padding`` (MiB), ``inodes``, ``uuid``,
        ``add_tar`` (a path or a list of paths), ``output`` (the same as ``out``).

        ``progress(entries, content_bytes, planned_bytes, current_path)`` is called now and then
        (on a worker thread); an exception it raises cancels the job, which stops within about
        a second leaving no output, and is then re-raised here.
        """
        _refuse_source_keys(options, "assemble")
        failures = []
        handle = self._handle

        def relay(entries, content, planned, current, _user):
            if failures:
                return
            try:
                progress(entries, content, planned, current.decode("utf-8", "replace") if current else "")
            except BaseException as e:  # C cannot unwind Python: cancel the job, raise it afterwards
                failures.append(e)
                cancel = getattr(self._lib, "fwa_cancel", None)
                if cancel is not None and handle is not None:
                    cancel(handle)

        callback = _PROGRESS(relay) if progress is not None else _PROGRESS()
        encoded = _options(options)
        fd = None
        if isinstance(out, int) and not isinstance(out, bool):
            fd = out
        elif out is not None and hasattr(out, "fileno"):
            if hasattr(out, "flush"):
                out.flush()
            fd = out.fileno()
        if fd is not None:
            return self._job(self._lib.fwa_assemble_fd, fd, encoded, callback, None, failures=failures)
        return self._job(self._lib.fwa_assemble, _path(out) if out is not None else None, encoded, callback, None,
                         failures=failures)

    def extract(self, partition, out, **options):
        """Writes one partition's filesystem (by number, GPT partition name or filesystem label)
        as an archive to the path ``out`` ("-" for standard output; never the disk itself), as
        ``fwassemble extract`` does, and returns what was written: a dict with ``partition``,
        ``format``, ``members``, ``files``, ``hardlinks``, ``content_bytes``, ``tar_bytes``,
        ``problems``, ``journal``, ``warnings`` (the problems, then the journal replay's warnings).

        Options: ``compression`` (default: from the output's suffix, else gzip), ``level``,
        ``threads``, ``no_replay``, ``strict`` (a problem fails the job).
        """
        _refuse_source_keys(options, "extract")
        if out is None or isinstance(out, int) or hasattr(out, "fileno"):
            raise TypeError("extract writes to a path (or \"-\" for standard output), not %r" % (out,))
        function = _function(self._lib, "fwa_extract")
        return self._job(function, _selector(partition), _path(out), _options(options))

    def export(self, container, out, **options):
        """Writes a Docker container's merged filesystem (``image=True``: an image's) to the path
        ``out`` and returns what was written. Options: ``compression``, ``level``,
        ``threads``, ``root``, ``data_root``, ``image``, ``no_replay``, ``strict``,
        ``max_layer_size`` (bytes a compressed layer blob may decompress to) and
        ``max_layer_ratio`` (docs/limits.md)."""
        _refuse_source_keys(options, "export")
        return self._job(self._lib.fwa_export_container, container.encode(), _path(out), _options(options))


def inspect(path, backing_dir=None, snapshot=None):
    """The ``fwassemble inspect --json`` document of the disk at ``path`` (a dict)."""
    with Disk(path, backing_dir=backing_dir, snapshot=snapshot) as d:
        return d.inspect()


def plan(path, root=None, backing_dir=None, snapshot=None):
    """The ``fwassemble plan --json`` document of the disk at ``path`` (a dict)."""
    with Disk(path, backing_dir=backing_dir, snapshot=snapshot) as d:
        return d.plan(root=root)


def docker(path, root=None, backing_dir=None, snapshot=None):
    """The ``fwassemble docker --json`` document of the disk at ``path`` (a dict)."""
    with Disk(path, backing_dir=backing_dir, snapshot=snapshot) as d:
        return d.docker(root=root)


def assemble(path, out=None, progress=None, **options):
    """Writes the booted filesystem of the disk at ``path`` as one archive to ``out``; returns
    the report (see :meth:`Disk.assemble`). ``backing_dir`` and ``snapshot`` open the disk."""
    source, options = _split_source(options)
    with Disk(path, **source) as d:
        return d.assemble(out, progress=progress, **options)


def extract(path, partition, out, **options):
    """Writes one partition's filesystem of the disk at ``path`` as an archive to ``out``;
    returns what was written (see :meth:`Disk.extract`). ``backing_dir`` and ``snapshot`` open
    the disk."""
    source, options = _split_source(options)
    with Disk(path, **source) as d:
        return d.extract(partition, out, **options)


def export(path, container, out, **options):
    """Writes one Docker container's filesystem from the disk at ``path`` to ``out`` (see
    :meth:`Disk.export`). ``backing_dir`` and ``snapshot`` open the disk."""
    source, options = _split_source(options)
    with Disk(path, **source) as d:
        return d.export(container, out, **options)


# Looking inside a disk without writing an archive (docs/browse.md).

_TREE_KEYS = ("root", "partition", "no_replay")


def _tree_options(root=None, partition=None, no_replay=None):
    return _options({"root": None if root is None else str(root),
                     "partition": None if partition is None else str(partition),
                     "no_replay": no_replay or None})


class Tree(_Closing):
    """A disk's booted namespace (or, with ``partition=``, one partition's filesystem), looked
    at path by path: :meth:`listdir`, :meth:`scandir`, :meth:`read`, :meth:`stat`, :meth:`walk`.
    Paths are resolved inside the tree: symlinks are followed inside it, never outside. The
    dicts are the CLI's ``ls --json``, ``stat --json`` and ``find --json`` objects. Calls are
    serialized by a lock. Use as a context manager (``fwassemble.open``), or call :meth:`close`.
    """

    def __init__(self, path, root=None, partition=None, no_replay=None, backing_dir=None, snapshot=None):
        self._disk = Disk(path, backing_dir=backing_dir, snapshot=snapshot)
        self._lib = self._disk._lib
        self._lock = threading.Lock()
        self._handle = None
        self.path = self._disk.path
        handle, err = ctypes.c_void_p(), ctypes.c_void_p()
        try:
            status = _function(self._lib, "fwa_tree_open")(self._disk._open_handle(), _tree_options(root, partition, no_replay),
                                                           ctypes.byref(handle), ctypes.byref(err))
            _check(self._lib, status, err)
        except BaseException:
            self._disk.close()
            raise
        self._handle = handle
        self.problems = []

    def close(self):
        """Closes the tree and its disk (idempotent)."""
        with self._lock:
            if self._handle is not None:
                self._lib.fwa_tree_close(self._handle)
                self._handle = None
        self._disk.close()

    def _open_handle(self):
        if self._handle is None:
            raise InvalidArgument("the tree of %s is closed" % self.path, INVALID_ARGUMENT, "invalid_argument")
        return self._handle

    def _string_call(self, function, *args):
        with self._lock:
            out, err = ctypes.c_void_p(), ctypes.c_void_p()
            status = function(self._open_handle(), *args, ctypes.byref(out), ctypes.byref(err))
            _check(self._lib, status, err)
            return _take_string(self._lib, out)

    def scandir(self, path="/"):
        """The entries of the directory at ``path`` (``ls --json`` objects: name, type, mode, uid,
        gid, size, mtime, mtime_ns, link, device), sorted by name; a file lists itself."""
        text = self._string_call(self._lib.fwa_tree_list_json, _path(path))
        return [json.loads(line) for line in text.splitlines()]

    def listdir(self, path="/"):
        """The names in the directory at ``path``, sorted bytewise."""
        return [e["name"] for e in self.scandir(path)]

    def stat(self, path, follow_symlinks=False):
        """Every field of the entry at ``path`` and where it comes from (``stat --json``)."""
        return json.loads(self._string_call(self._lib.fwa_tree_stat_json, _path(path), 1 if follow_symlinks else 0))

    def read(self, path):
        """The bytes of the regular file at ``path`` (symlinks followed), at most 256 MiB."""
        with self._lock:
            data, size, err = ctypes.c_void_p(), ctypes.c_size_t(), ctypes.c_void_p()
            status = self._lib.fwa_tree_read(self._open_handle(), _path(path), ctypes.byref(data), ctypes.byref(size),
                                             ctypes.byref(err))
            _check(self._lib, status, err)
            try:
                return ctypes.string_at(data.value, size.value) if size.value else b""
            finally:
                self._lib.fwa_string_free(data)

    def walk(self, path="/"):
        """Yields the subtree at ``path`` in the archive's order, one ``find --json`` dict per
        entry, streamed (the walk runs on a worker thread, a bounded queue between). Once the walk
        has ended, :attr:`problems` holds its warnings (``{"code", "place", "message"}``: the
        tree's, and the entries that could not be read, code ``walk``)."""
        import queue
        lines = queue.Queue(maxsize=256)
        stop = threading.Event()
        done = object()
        outcome = {}

        def each(line, _user):
            if stop.is_set():
                return 1
            lines.put(json.loads(line))
            return 0

        callback = _LINE(each)

        def work():
            try:
                with self._lock:
                    problems, err = ctypes.c_void_p(), ctypes.c_void_p()
                    status = self._lib.fwa_tree_walk(self._open_handle(), _path(path), callback, None,
                                                     ctypes.byref(problems), ctypes.byref(err))
                    _check(self._lib, status, err)
                    outcome["problems"] = json.loads(_take_string(self._lib, problems) or "[]")
            except BaseException as e:
                outcome["error"] = e
            finally:
                lines.put(done)

        worker = threading.Thread(target=work, daemon=True)
        worker.start()
        try:
            while True:
                item = lines.get()
                if item is done:
                    break
                yield item
        finally:
            stop.set()
            while worker.is_alive():
                try:
                    lines.get(timeout=0.1)
                except queue.Empty:
                    pass
            worker.join()
        if "error" in outcome:
            raise outcome["error"]
        self.problems = outcome.get("problems", [])


def open(path, root=None, partition=None, no_replay=None, backing_dir=None, snapshot=None):
    """The :class:`Tree` of the disk at ``path``: its booted namespace, or one partition's
    filesystem with ``partition=``::

        with fwassemble.open("haos.img") as dev:
            print(dev.listdir("/etc"), dev.read("/etc/hostname"))
    """
    return Tree(path, root=root, partition=partition, no_replay=no_replay, backing_dir=backing_dir, snapshot=snapshot)


class DiffResult(list):
    """The differences (``diff --json`` dicts: path, change, fields; docker and name for the
    Docker inventories), with ``problems`` (the comparison is incomplete where these are) and
    ``warnings``, lists of ``{"code", "place", "message"}``. Empty (false) when the trees are
    identical."""
    problems = ()
    warnings = ()


def diff(a, b, path=None, no_content=False, root=None, partition=None, no_replay=None, backing_dir=None, snapshot=None):
    """Compares the disks ``a`` and ``b`` (both opened with the same options) as ``fwassemble
    diff`` does; returns a :class:`DiffResult`."""
    result = DiffResult()

    def each(line, _user):
        result.append(json.loads(line))
        return 0

    callback = _LINE(each)
    with Disk(a, backing_dir=backing_dir, snapshot=snapshot) as da, Disk(b, backing_dir=backing_dir, snapshot=snapshot) as db:
        options = dict(json.loads(_tree_options(root, partition, no_replay) or b"{}"))
        if path is not None:
            options["path"] = os.fsdecode(os.fspath(path))
        if no_content:
            options["no_content"] = True
        lib = da._lib
        with da._lock, db._lock:
            summary, err = ctypes.c_void_p(), ctypes.c_void_p()
            status = _function(lib, "fwa_diff")(da._open_handle(), db._open_handle(), _options(options), callback, None,
                                               ctypes.byref(summary), ctypes.byref(err))
            _check(lib, status, err)
            s = json.loads(_take_string(lib, summary))
    result.problems, result.warnings = s["problems"], s["warnings"]
    return result
