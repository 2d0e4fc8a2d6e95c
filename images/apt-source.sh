#!/bin/bash
# images/apt-source.sh PACKAGE DIR: the Debian source package PACKAGE of this machine's release,
# downloaded (nothing built, nothing installed) with a PRIVATE apt configuration (a deb-src line
# for the mirror the system's apt already uses) into DIR/download; prints the path of its .orig
# tarball. Used by the fetch scripts of third-party test data (GPL, never committed). Exits 1
# when it cannot fetch (the tests that need the data then skip).
set -euo pipefail
pkg=${1:?usage: images/apt-source.sh PACKAGE DIR}; DIR=${2:?usage: images/apt-source.sh PACKAGE DIR}
mkdir -p "$DIR/apt/lists/partial" "$DIR/apt/cache/archives/partial" "$DIR/download"
DIR=$(cd "$DIR" && pwd)
release=$(. /etc/os-release && echo "$VERSION_CODENAME")
mirror=$(apt-get indextargets --format '$(REPO_URI) $(RELEASE)' 2>/dev/null | awk -v r="$release" '$2 == r { print $1; exit }')
[ -n "$mirror" ] || { echo "no Debian $release mirror in the apt sources" >&2; exit 1; }
echo "deb-src [signed-by=/usr/share/keyrings/debian-archive-keyring.gpg] $mirror $release main" > "$DIR/apt/sources.list"
APT=(-o Dir::Etc::sourcelist="$DIR/apt/sources.list" -o Dir::Etc::sourceparts=- -o Dir::State::Lists="$DIR/apt/lists"
     -o Dir::Cache="$DIR/apt/cache" -o Debug::NoLocking=1 -o APT::Sandbox::User=root)
apt-get "${APT[@]}" -qq update >&2
(cd "$DIR/download" && apt-get "${APT[@]}" -qq source --download-only "$pkg") >&2
ls "$DIR"/download/"$pkg"_*.orig.tar.* | head -1
