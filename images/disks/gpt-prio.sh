#!/usr/bin/env bash
# A/B roots chosen by GPT attribute bits (the ChromeOS convention Flatcar boots with through
# GRUB's gptprio): GPT p1 ESP (vfat), p2 ROOT-A and p3 ROOT-B (ext4, releases 1.0 and 2.0), the
# bits set by sgdisk --attributes (priority 48-51, tries 52-55, successful 56).
# gpt-prio.img: after an update to B: A priority=1 successful=1, B priority=2 tries=1 (on trial);
# gpt-prio.failed.img: B's tries used up without success (priority=2 tries=0): A boots.
source "$(dirname "$0")/../lib.sh"
disk="$OUT/gpt-prio.img"
rm -f "$disk"; truncate -s 12M "$disk"
sgdisk -Z "$disk" >/dev/null 2>&1 || true
sgdisk -n 1:2048:+2M -t 1:EF00 -c 1:EFI-SYSTEM -n 2:0:+4M -t 2:8300 -c 2:ROOT-A -n 3:0:+4M -t 3:8300 -c 3:ROOT-B "$disk" >/dev/null
vfat_img esp.img 2 EFI-SYSTEM
put_fs "$disk" esp.img "$(part_start "$disk" 1)"
for slot in a b; do
    version=1.0; [ $slot = b ] && version=2.0
    slot_root "root$slot" "$version"
    ext4_img "root$slot.img" 4 "root-$slot" "root$slot"
done
put_fs "$disk" roota.img "$(part_start "$disk" 2)"; put_fs "$disk" rootb.img "$(part_start "$disk" 3)"
# priority 1, successful (bits 48, 56); B: priority 2 (bit 49), tries 1 (bit 52)
sgdisk -A 2:set:48 -A 2:set:56 -A 3:set:49 -A 3:set:52 "$disk" >/dev/null
cp --sparse=always "$disk" "$OUT/gpt-prio.failed.img"
sgdisk -A 3:clear:52 "$OUT/gpt-prio.failed.img" >/dev/null
