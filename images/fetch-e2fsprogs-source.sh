#!/bin/bash
# e2fsprogs' own test images (GPL test data, never committed) for the fast-commit replay tests:
# the source package of this machine's Debian release fetched with a PRIVATE apt configuration
# (a deb-src line for the mirror apt already uses) into DIR (default /tmp/fwassemble-e2fsprogs-src),
# and its tests/ folder unpacked into DIR/tests. Nothing is installed.
# Prints nothing and exits 0 when already there; exits 1 (the tests then skip) when it cannot fetch.
set -euo pipefail
DIR=${1:-/tmp/fwassemble-e2fsprogs-src}
[ -f "$DIR/tests/j_recover_fast_commit/image.gz" ] && exit 0
mkdir -p "$DIR/apt/lists/partial" "$DIR/apt/cache/archives/partial" "$DIR/download"
DIR=$(cd "$DIR" && pwd)
release=$(. /etc/os-release && echo "$VERSION_CODENAME")
mirror=$(apt-get indextargets --format '$(REPO_URI) $(RELEASE)' 2>/dev/null | awk -v r="$release" '$2 == r { print $1; exit }')
[ -n "$mirror" ] || { echo "no Debian $release mirror in the apt sources" >&2; exit 1; }
echo "deb-src [signed-by=/usr/share/keyrings/debian-archive-keyring.gpg] $mirror $release main" > "$DIR/apt/sources.list"
APT=(-o Dir::Etc::sourcelist="$DIR/apt/sources.list" -o Dir::Etc::sourceparts=- -o Dir::State::Lists="$DIR/apt/lists"
     -o Dir::Cache="$DIR/apt/cache" -o Debug::NoLocking=1 -o APT::Sandbox::User=root)
apt-get "${APT[@]}" -qq update
(cd "$DIR/download" && apt-get "${APT[@]}" -qq source --download-only e2fsprogs)
orig=$(ls "$DIR"/download/e2fsprogs_*.orig.tar.* | head -1)
tar -xf "$orig" -C "$DIR" --strip-components=1 --wildcards '*/tests/j_recover_fast_commit/*'
[ -f "$DIR/tests/j_recover_fast_commit/image.gz" ]
