#!/usr/bin/env bash
# HAOS GPT where slot B (partition 5) holds an older squashfs
# root (lz4, 128 KiB blocks, VERSION 12.4) and grubenv ORDER=B A with B_OK=1 B_TRY=0, so B boots;
# slot A stays the EROFS 13.2 root. The tests flip B_TRY to 3 in a copy to check the fallback to A.
source "$(dirname "$0")/../lib.sh"
HAOS_VERSION_B=12.4 HAOS_GRUBENV=$'ORDER=B A\nA_OK=1\nA_TRY=0\nB_OK=1\nB_TRY=0' make_haos_full "$OUT/haos-slotb.img"
