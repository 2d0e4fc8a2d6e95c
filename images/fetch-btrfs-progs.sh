#!/bin/bash
# btrfs-progs' own test images (tests/*-tests/*/*.raw.xz, *.img, *.img.xz; GPL-2.0, never
# committed) for Tests/HostileTests/BtrfsProgsImageTests.swift: the Debian source package of the
# release this machine runs, fetched with `apt-get source --download-only` through a PRIVATE apt
# configuration (deb-src of the mirror the system's apt already uses) into DIR (default
# /tmp/fwassemble-btrfs-progs), and its tests/ folder unpacked to DIR/tests.
# Prints nothing and exits 0 when already there; exits 1 (the tests then skip) when it cannot fetch.
set -euo pipefail
DIR=${1:-/tmp/fwassemble-btrfs-progs}
[ -d "$DIR/tests/fuzz-tests/images" ] && exit 0
mkdir -p "$DIR/apt/lists/partial" "$DIR/apt/cache/archives/partial" "$DIR/src"
DIR=$(cd "$DIR" && pwd)
release=$(. /etc/os-release && echo "$VERSION_CODENAME")
mirror=$(apt-get indextargets --format '$(REPO_URI) $(RELEASE)' 2>/dev/null | awk -v r="$release" '$2 == r { print $1; exit }')
[ -n "$mirror" ] || { echo "no Debian $release mirror in the apt sources" >&2; exit 1; }
echo "deb-src [signed-by=/usr/share/keyrings/debian-archive-keyring.gpg] $mirror $release main" > "$DIR/apt/sources.list"
APT=(-o Dir::Etc::sourcelist="$DIR/apt/sources.list" -o Dir::Etc::sourceparts=- -o Dir::State::Lists="$DIR/apt/lists"
     -o Dir::Cache="$DIR/apt/cache" -o Debug::NoLocking=1 -o APT::Sandbox::User=root)
apt-get "${APT[@]}" -qq update
(cd "$DIR/src" && apt-get "${APT[@]}" -qq source --download-only btrfs-progs)
orig=$(ls "$DIR"/src/btrfs-progs_*.orig.tar.* | head -1)
tar -xf "$orig" -C "$DIR/src" --wildcards '*/tests/*'
mv "$DIR"/src/btrfs-progs-*/tests "$DIR/tests"
