#!/bin/bash
# Real btrfs images nobody here made: the test data of dissect.btrfs (Fox-IT, AGPL-3.0, so fetched
# at test time and never committed), from its PyPI sdist, into DIR (default .build-dissect-btrfs):
# btrfs-*.bin (default, compression, sparse, four subvolume layouts, and the members of
# multi-device filesystems in every profile: dup, raid0, raid1, raid10, raid1c3, raid1c4, raid5,
# raid6) and test_btrfs.py, whose assertions Tests/FileSystemsTests/BtrfsDissectTests.swift
# translates. pip runs from a private venv (images/pypi-sdist.sh). Exits 0 when already
# there; 1 (the tests of this data then skip) when it cannot fetch.
set -euo pipefail
DIR=${1:-.build-dissect-btrfs}
VERSION=1.10
[ -f "$DIR/done-$VERSION" ] && exit 0
trap 'echo "images/fetch-dissect-btrfs.sh: could not fetch dissect.btrfs $VERSION into $DIR" >&2; exit 1' ERR
mkdir -p "$DIR"
DIR=$(cd "$DIR" && pwd)
sdist=$(bash "$(dirname "$0")/pypi-sdist.sh" "dissect.btrfs==$VERSION" "$DIR")
tar -xzf "$sdist" -C "$DIR" "dissect_btrfs-$VERSION/tests/_data" "dissect_btrfs-$VERSION/tests/test_btrfs.py"
for f in "$DIR/dissect_btrfs-$VERSION/tests/_data/"btrfs-*.bin.gz; do
    name=$(basename "$f" .gz)
    gunzip -c "$f" > "$DIR/$name.tmp"
    fallocate --dig-holes "$DIR/$name.tmp" 2>/dev/null || true   # 3.7 GB of mostly zeros -> 260 MB where holes are supported
    mv "$DIR/$name.tmp" "$DIR/$name"
done
cp "$DIR/dissect_btrfs-$VERSION/tests/test_btrfs.py" "$DIR/test_btrfs.py"
touch "$DIR/done-$VERSION"
