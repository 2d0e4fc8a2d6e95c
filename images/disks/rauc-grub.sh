#!/usr/bin/env bash
# RAUC on GRUB (an x86-64 EFI layout as meta-rauc's qemu example): GPT p1 ESP (vfat) with
# EFI/BOOT/grubenv written by grub-editenv, p2/p3 ext4 rootfs A/B (releases 1.0 and 2.0), p4
# ext4 data holding RAUC's central status (data-directory=/data/rauc -> central.raucs). Each root
# has /etc/rauc/system.conf (bootloader=grub, grubenv=/boot/efi/EFI/BOOT/grubenv, slots by
# partlabel) and an fstab mounting the ESP at /boot/efi and data at /data.
# rauc-grub.img: after an update to B (rauc set ORDER="B A", B_OK=1, B_TRY=0);
# rauc-grub.failed.img: B was tried and never marked good (B_TRY=1 left by grub.cfg): A boots.
source "$(dirname "$0")/../lib.sh"
disk="$OUT/rauc-grub.img"
rm -f "$disk"; truncate -s 16M "$disk"
sgdisk -Z "$disk" >/dev/null 2>&1 || true
sgdisk -n 1:2048:+3M -t 1:EF00 -c 1:esp -n 2:0:+4M -t 2:8300 -c 2:rootfs-a -n 3:0:+4M -t 3:8300 -c 3:rootfs-b \
    -n 4:0:0 -t 4:8300 -c 4:data "$disk" >/dev/null
for slot in a b; do
    version=1.0; [ $slot = b ] && version=2.0
    slot_root "root$slot" "$version"
    mkdir -p "root$slot/etc/rauc" "root$slot/boot/efi"
    { cat <<'CONF'
[system]
compatible=example-x86
bootloader=grub
grubenv=/boot/efi/EFI/BOOT/grubenv
data-directory=/data/rauc

[slot.efi.0]
device=/dev/disk/by-partlabel/esp
type=vfat

CONF
      rauc_rootfs_slots; } > "root$slot/etc/rauc/system.conf"
    printf 'PARTLABEL=esp /boot/efi vfat defaults 0 2\nLABEL=data /data ext4 defaults 0 2\n' > "root$slot/etc/fstab"
    ext4_img "root$slot.img" 4 "rootfs-$slot" "root$slot"
done
put_fs "$disk" roota.img "$(part_start "$disk" 2)"; put_fs "$disk" rootb.img "$(part_start "$disk" 3)"
mkdir -p data/rauc
{ printf '[system]\nboot-id=4a0c9c3f-3b8e-4ad5-a9ad-2e3d3f5e6a7b\n\n'; rauc_status_slots example-x86; } > data/rauc/central.raucs
ext4_img data.img 2 data data
put_fs "$disk" data.img "$(part_start "$disk" 4)"
# The ESP: RAUC's reference grub.cfg and the grubenv as `rauc install` leaves it for slot B.
mkdir -p esp/EFI/BOOT
cat > esp/EFI/BOOT/grub.cfg <<'CFG'
load_env
for SLOT in $ORDER; do
  if [ "$SLOT" == "A" ]; then INDEX=0; OK=$A_OK; TRY=$A_TRY; A_TRY=1; fi
  if [ "$SLOT" == "B" ]; then INDEX=1; OK=$B_OK; TRY=$B_TRY; B_TRY=1; fi
  if [ "$OK" -eq 1 -a "$TRY" -eq 0 ]; then default=$INDEX; break; fi
done
save_env A_TRY B_TRY
menuentry "Slot A" { linux (hd0,gpt2)/boot/bzImage root=PARTLABEL=rootfs-a rauc.slot=A }
menuentry "Slot B" { linux (hd0,gpt3)/boot/bzImage root=PARTLABEL=rootfs-b rauc.slot=B }
CFG
grub-editenv esp/EFI/BOOT/grubenv create
grub-editenv esp/EFI/BOOT/grubenv set "ORDER=B A" A_OK=1 A_TRY=0 B_OK=1 B_TRY=0
vfat_img esp.img 3 ESP esp/EFI
put_fs "$disk" esp.img "$(part_start "$disk" 1)"
grub-editenv esp/EFI/BOOT/grubenv set B_TRY=1
vfat_img esp.failed.img 3 ESP esp/EFI
cp --sparse=always "$disk" "$OUT/rauc-grub.failed.img"
put_fs "$OUT/rauc-grub.failed.img" esp.failed.img "$(part_start "$disk" 1)"
