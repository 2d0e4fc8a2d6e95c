#!/bin/bash
# e2fsprogs >= 1.47.1 (its mke2fs -d reads a tar; Debian 12 has 1.47.0) for the penguin-recipe
# tests: the bookworm-backports .debs fetched with a PRIVATE apt configuration and unpacked into
# DIR/root (default .build-e2fsprogs), never installed over the system's.
# Prints nothing and exits 0 when already there; exits 1 (tests then skip) when it cannot fetch.
set -euo pipefail
DIR=${1:-.build-e2fsprogs}
[ -x "$DIR/root/sbin/mke2fs" ] && exit 0
mkdir -p "$DIR/apt/lists/partial" "$DIR/apt/cache/archives/partial"
DIR=$(cd "$DIR" && pwd)
# The backports suite of the Debian mirror this machine's apt already uses (its main suite's URI).
release=$(. /etc/os-release && echo "$VERSION_CODENAME")
mirror=$(apt-get indextargets --format '$(REPO_URI) $(RELEASE)' 2>/dev/null | awk -v r="$release" '$2 == r { print $1; exit }')
[ -n "$mirror" ] || { echo "no Debian $release mirror in the apt sources" >&2; exit 1; }
echo "deb [signed-by=/usr/share/keyrings/debian-archive-keyring.gpg] $mirror $release-backports main" > "$DIR/apt/sources.list"
APT=(-o Dir::Etc::sourcelist="$DIR/apt/sources.list" -o Dir::Etc::sourceparts=- -o Dir::State::Lists="$DIR/apt/lists"
     -o Dir::Cache="$DIR/apt/cache" -o Debug::NoLocking=1 -o APT::Sandbox::User=root)
apt-get "${APT[@]}" -qq update
(cd "$DIR" && apt-get "${APT[@]}" -qq download "e2fsprogs/$release-backports" "libext2fs2/$release-backports")
for deb in "$DIR"/*.deb; do dpkg-deb -x "$deb" "$DIR/root"; done
LD_LIBRARY_PATH="$DIR/root/lib/x86_64-linux-gnu" "$DIR/root/sbin/mke2fs" -V 2>&1 | head -1
