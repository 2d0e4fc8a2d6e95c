#!/bin/bash
# e2fsprogs' own test images (GPL test data, never committed) for the fast-commit replay tests:
# the source package of this machine's Debian release fetched by images/apt-source.sh into DIR
# (default /tmp/fwassemble-e2fsprogs-src),
# and its tests/ folder unpacked into DIR/tests. Nothing is installed.
# Prints nothing and exits 0 when already there; exits 1 (the tests then skip) when it cannot fetch.
set -euo pipefail
DIR=${1:-/tmp/fwassemble-e2fsprogs-src}
[ -f "$DIR/tests/j_recover_fast_commit/image.gz" ] && exit 0
orig=$(bash "$(dirname "$0")/apt-source.sh" e2fsprogs "$DIR")
DIR=$(cd "$DIR" && pwd)
tar -xf "$orig" -C "$DIR" --strip-components=1 --wildcards '*/tests/j_recover_fast_commit/*'
[ -f "$DIR/tests/j_recover_fast_commit/image.gz" ]
