"""The ``fwassemble`` command a wheel installs: runs the executable the package carries.

``fwassemble.cli:main`` is the console script's entry point (python/pyproject.toml,
``[project.scripts]``). It replaces this Python process with the native executable
(``fwassemble/_native/fwassemble``; ``FWASSEMBLE_CLI`` overrides it, and from a checkout the
``.build`` one is used), with the same arguments, so exit status, signals and standard streams
are the executable's own. ``PATH`` is not searched: the ``fwassemble`` found there would be this
script again.
"""

import os
import sys

from . import _bundled_executables


def _is_this_script(path):
    """Whether `path` is the console script running now (FWASSEMBLE_CLI pointing at it)."""
    try:
        return bool(sys.argv and sys.argv[0]) and os.path.samefile(path, sys.argv[0])
    except OSError:
        return False


def main(argv=None):
    """Execs the bundled ``fwassemble`` executable with ``argv`` (default: this command's
    arguments). Returns 127 with a message when there is no executable to run."""
    args = sys.argv[1:] if argv is None else list(argv)
    executable = next((e for e in _bundled_executables() if not _is_this_script(e)), None)
    if executable is None:
        sys.stderr.write("fwassemble: the native executable is missing from the Python package "
                         "(fwassemble/_native/fwassemble; reinstall the wheel, or set FWASSEMBLE_CLI)\n")
        return 127
    sys.stdout.flush()
    sys.stderr.flush()
    try:
        os.execv(executable, [executable] + args)
    except OSError as e:
        sys.stderr.write("fwassemble: cannot run %s: %s\n" % (executable, e.strerror or e))
        return 126


if __name__ == "__main__":
    sys.exit(main())
