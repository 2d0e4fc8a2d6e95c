"""Packaging of the fwassemble Python module with its native parts.

A wheel (``make wheel``) and ``pip install ./python`` carry ``fwassemble/_native/``: the C ABI
``libfwassemble.so`` and the ``fwassemble`` executable (which ``fwassemble.batch`` runs, one
process per disk), built with the Swift runtime linked statically (``make native``). When that
folder is empty and the package is built from a checkout, ``make native`` is run first.
The wheel is tagged for this platform (it holds machine code) but for any Python 3 (ctypes).

The wheel also installs a ``fwassemble`` command (console script ``fwassemble.cli:main``), which
execs the executable in ``fwassemble/_native/``. It is declared in pyproject.toml's
``[project.scripts]``, with the rest of the metadata: with a ``[project]`` table, setuptools takes
entry points from pyproject.toml, not from setup() (unless listed as dynamic).
"""

import subprocess
from pathlib import Path

from setuptools import setup
from setuptools.command.build_py import build_py
from setuptools.dist import Distribution

try:
    from setuptools.command.bdist_wheel import bdist_wheel
except ImportError:  # setuptools < 70
    from wheel.bdist_wheel import bdist_wheel

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
NATIVE = HERE / "fwassemble" / "_native"


class BuildPyWithNative(build_py):
    def run(self):
        if not ((NATIVE / "libfwassemble.so").exists() and (NATIVE / "fwassemble").exists()):
            if not (REPO / "Package.swift").exists():
                raise SystemExit("fwassemble/_native/ is empty and there is no checkout to build it from "
                                 "(run `make native` in the repository)")
            subprocess.check_call(["make", "-C", str(REPO), "native"])
        super().run()


class BinaryDistribution(Distribution):
    """Holds machine code: the wheel is a platform wheel installed into platlib."""

    def has_ext_modules(self):
        return True


class PlatformWheel(bdist_wheel):
    def get_tag(self):
        _, _, platform = super().get_tag()
        return "py3", "none", platform


setup(distclass=BinaryDistribution, cmdclass={"build_py": BuildPyWithNative, "bdist_wheel": PlatformWheel})
