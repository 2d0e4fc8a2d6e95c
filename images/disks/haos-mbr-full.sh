#!/usr/bin/env bash
# HAOS on the plain-MBR layout (odroid-c2/c4/n2, khadas-vim3) with the realistic content: slot B
# holds an older squashfs root but has no tries left (U-Boot env in bootstate p9:
# BOOT_ORDER="B A", BOOT_B_LEFT=0, BOOT_A_LEFT=3), so slot A (p6, EROFS) boots.
source "$(dirname "$0")/../lib.sh"
HAOS_VERSION_B=12.4 HAOS_UBOOT_ENV=$'BOOT_ORDER=B A\nBOOT_B_LEFT=0\nBOOT_A_LEFT=3' make_haos_mbr_full "$OUT/haos-mbr-full.img"
