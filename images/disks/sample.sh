#!/usr/bin/env bash
# The sample disk `make demo` runs on: the same HAOS-style GPT layout as haos-gpt.
source "$(dirname "$0")/../lib.sh"
make_haos_gpt "$OUT/sample.img"
