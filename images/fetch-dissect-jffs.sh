#!/bin/bash
# Real JFFS2 dumps nobody here made: the test data of dissect.jffs (Fox-IT, AGPL-3.0, so fetched
# at test time and never committed), from its PyPI sdist, into DIR (default .build-dissect-jffs):
# jffs2.bin (uncompressed), jffs2.zlib.bin and router.bin (an OpenWrt rootfs_data from the
# 2023 "first CTF"). pip runs from a private venv (images/pypi-sdist.sh). Exits 0 when already
# there; 1 (the JFFS2 tests of this data then skip) when it cannot fetch.
set -euo pipefail
DIR=${1:-.build-dissect-jffs}
VERSION=1.6
[ -f "$DIR/router.bin" ] && exit 0
mkdir -p "$DIR"
DIR=$(cd "$DIR" && pwd)
sdist=$(bash "$(dirname "$0")/pypi-sdist.sh" "dissect.jffs==$VERSION" "$DIR")
tar -xzf "$sdist" -C "$DIR" "dissect_jffs-$VERSION/tests/_data" "dissect_jffs-$VERSION/tests/test_jffs2.py"
for f in jffs2 jffs2.zlib router; do
    gunzip -c "$DIR/dissect_jffs-$VERSION/tests/_data/$f.bin.gz" > "$DIR/$f.bin.tmp" && mv "$DIR/$f.bin.tmp" "$DIR/$f.bin"
done
