#!/bin/bash
# btrfs-progs' own test images (tests/*-tests/*/*.raw.xz, *.img, *.img.xz; GPL-2.0, never
# committed) for Tests/HostileTests/BtrfsProgsImageTests.swift: the Debian source package of the
# release this machine runs, fetched by images/apt-source.sh into DIR (default
# /tmp/fwassemble-btrfs-progs), and its tests/ folder unpacked to DIR/tests.
# Prints nothing and exits 0 when already there; exits 1 (the tests then skip) when it cannot fetch.
set -euo pipefail
DIR=${1:-/tmp/fwassemble-btrfs-progs}
[ -d "$DIR/tests/fuzz-tests/images" ] && exit 0
orig=$(bash "$(dirname "$0")/apt-source.sh" btrfs-progs "$DIR")
DIR=$(cd "$DIR" && pwd)
mkdir -p "$DIR/src"
tar -xf "$orig" -C "$DIR/src" --wildcards '*/tests/*'
mv "$DIR"/src/btrfs-progs-*/tests "$DIR/tests"
