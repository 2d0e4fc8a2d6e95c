#!/usr/bin/env bash
# A HAOS-style GPT disk: the eight partitions of the field guide (real GPT names and partition
# UUIDs, sizes scaled down): boot vfat, kernel0 squashfs, system0 erofs, kernel1/system1 zeros,
# bootstate raw, overlay and data ext4.
source "$(dirname "$0")/../lib.sh"
make_haos_gpt "$OUT/haos-gpt.img"
