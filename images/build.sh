#!/usr/bin/env bash
# images/build.sh OUT [NAME...]: build the test and sample disks into OUT, each from its recipe
# images/disks/NAME.sh (all of them when no NAME is given). A disk is rebuilt only when its recipe,
# images/lib.sh or images/tree.sh is newer than it, so a test run builds each disk once.
# Built images are never committed (images/out is in .gitignore).
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
out=${1:?usage: images/build.sh OUT [NAME...]}; shift
mkdir -p "$out"; out=$(cd "$out" && pwd)
names=("$@")
if [ ${#names[@]} -eq 0 ]; then
    for r in "$here"/disks/*.sh; do names+=("$(basename "$r" .sh)"); done
fi
for name in "${names[@]}"; do
    recipe="$here/disks/$name.sh"
    [ -f "$recipe" ] || { echo "no recipe images/disks/$name.sh" >&2; exit 2; }
    stamp="$out/.$name.done"
    if [ -f "$stamp" ] && [ "$stamp" -nt "$recipe" ] && [ "$stamp" -nt "$here/lib.sh" ] && [ "$stamp" -nt "$here/tree.sh" ]; then
        continue
    fi
    echo "building test disk $name"
    work=$(mktemp -d "$out/.work-$name.XXXXXX")
    if ! ( cd "$work" && OUT="$out" WORK="$work" bash "$recipe" ) > "$out/$name.log" 2>&1; then
        echo "recipe $name failed; its log:" >&2; tail -30 "$out/$name.log" >&2; rm -rf "$work"; exit 1
    fi
    rm -rf "$work"
    touch "$stamp"
done
