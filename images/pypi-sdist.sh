#!/bin/bash
# images/pypi-sdist.sh PACKAGE==VERSION DIR: the source distribution of a PyPI package, downloaded
# (nothing built, nothing installed) with pip from a private venv made in DIR and removed again,
# into DIR; prints the path of its .tar.gz. Used by the fetch scripts of third-party test data
# (dissect.* under AGPL, never committed). pip needs setuptools >= 77 and setuptools_scm >= 8 to
# prepare the dissect packages' metadata (Debian 12's are older). Exits 1 when it cannot fetch
# (the tests that need the data then skip).
set -euo pipefail
spec=${1:?usage: images/pypi-sdist.sh PACKAGE==VERSION DIR}; DIR=${2:?usage: images/pypi-sdist.sh PACKAGE==VERSION DIR}
mkdir -p "$DIR"
DIR=$(cd "$DIR" && pwd)
trap 'rm -rf "$DIR/venv"' EXIT
python3 -m venv "$DIR/venv" >&2
"$DIR/venv/bin/pip" install -q "setuptools>=77" "setuptools_scm>=8" wheel >&2
"$DIR/venv/bin/pip" download -q "$spec" --no-deps --no-binary :all: --no-build-isolation -d "$DIR" >&2
name=${spec%%==*}; version=${spec#*==}
ls "$DIR/${name//./_}-$version.tar.gz"
