#!/usr/bin/env bash
# The realistic HAOS GPT disk (field guide §2): slot A EROFS (lz4hc) root with the real systemd
# unit set and enablement, slot B zeros, grubenv ORDER=A B A_OK=1 A_TRY=0, the overlay partition's
# persisted files, the data partition's Docker data-root (make_docker_root), supervisor/ and logs/.
source "$(dirname "$0")/../lib.sh"
make_haos_full "$OUT/haos-full.img"
