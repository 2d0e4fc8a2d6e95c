#!/usr/bin/env bash
# The sample disk `make demo` runs on: the realistic HAOS GPT disk (same recipe as haos-full: EROFS
# slot A chosen by grubenv, the real systemd mount units, overlay binds, a Docker data-root on
# hassos-data), about 100 MiB sparse.
source "$(dirname "$0")/../lib.sh"
make_haos_full "$OUT/sample.img"
