#!/usr/bin/env bash
# RAUC on U-Boot (a Yocto meta-rauc layout, scaled down): GPT p1 vfat boot, p2 raw uboot-env
# holding a redundant pair of U-Boot environments (0x0 and 0x4000, 16 KiB each) written by
# fw_setenv through a fw_env.config naming the partition's offsets in the image, p3/p4 ext4
# rootfs A/B (releases 1.0 and 2.0), p5 ext4 data with RAUC's status file. Each root has
# /etc/rauc/system.conf (bootloader=uboot, slots by partlabel, bootname A/B,
# statusfile=/data/rauc.status) and /etc/fw_env.config (/dev/disk/by-partlabel/uboot-env).
# rauc-uboot.img: after an update to B (rauc set BOOT_ORDER="B A", the newer environment copy);
# rauc-uboot.failed.img: B's tries exhausted (BOOT_B_LEFT=0, a third copy generation): A boots.
source "$(dirname "$0")/../lib.sh"
disk="$OUT/rauc-uboot.img"
rm -f "$disk"; truncate -s 16M "$disk"
sgdisk -Z "$disk" >/dev/null 2>&1 || true
sgdisk -n 1:2048:+2M -t 1:0700 -c 1:boot -n 2:0:+1M -t 2:8300 -c 2:uboot-env \
    -n 3:0:+4M -t 3:8300 -c 3:rootfs-a -n 4:0:+4M -t 4:8300 -c 4:rootfs-b -n 5:0:0 -t 5:8300 -c 5:data "$disk" >/dev/null
printf 'setenv bootargs console=ttyS0 rauc.slot=${BOOT_SLOT}\n' > boot.cmd
vfat_img boot.img 2 BOOT boot.cmd
put_fs "$disk" boot.img "$(part_start "$disk" 1)"
for slot in a b; do
    version=1.0; [ $slot = b ] && version=2.0
    slot_root "root$slot" "$version"
    mkdir -p "root$slot/etc/rauc"
    { cat <<'CONF'
[system]
compatible=example-board
bootloader=uboot
statusfile=/data/rauc.status

[keyring]
path=/etc/rauc/ca.cert.pem

CONF
      rauc_rootfs_slots; } > "root$slot/etc/rauc/system.conf"
    printf '# device offset size\n/dev/disk/by-partlabel/uboot-env 0x0 0x4000\n/dev/disk/by-partlabel/uboot-env 0x4000 0x4000\n' > "root$slot/etc/fw_env.config"
    printf 'LABEL=data /data ext4 defaults 0 2\n' > "root$slot/etc/fstab"
    ext4_img "root$slot.img" 4 "rootfs-$slot" "root$slot"
done
put_fs "$disk" roota.img "$(part_start "$disk" 3)"; put_fs "$disk" rootb.img "$(part_start "$disk" 4)"
mkdir -p data
rauc_status_slots example-board installed.count=1 > data/rauc.status
ext4_img data.img 2 data data
put_fs "$disk" data.img "$(part_start "$disk" 5)"
# The environments, by fw_setenv (libubootenv) on the image itself: the defaults (A first), then
# what `rauc install` sets for slot B (copy generation 2, in the other half of the pair).
env_at=$(( $(part_start "$disk" 2) * 512 ))
printf '%s 0x%x 0x4000\n%s 0x%x 0x4000\n' "$disk" "$env_at" "$disk" $(( env_at + 0x4000 )) > fw_env.config
printf 'BOOT_ORDER=A B\nBOOT_A_LEFT=3\nBOOT_B_LEFT=3\nbootcmd=run rauc_boot\n' > defaults.env
fw_setenv -c fw_env.config -f defaults.env BOOT_A_LEFT 3
printf 'BOOT_ORDER=B A\nBOOT_B_LEFT=3\n' > update.script  # libubootenv script lines: key=value
fw_setenv -c fw_env.config -s update.script
cp --sparse=always "$disk" "$OUT/rauc-uboot.failed.img"
printf '%s 0x%x 0x4000\n%s 0x%x 0x4000\n' "$OUT/rauc-uboot.failed.img" "$env_at" "$OUT/rauc-uboot.failed.img" $(( env_at + 0x4000 )) > fw_env.failed.config
# U-Boot's boot script counted B's three tries down and saved the environment each time.
fw_setenv -c fw_env.failed.config BOOT_B_LEFT 0
fw_printenv -c fw_env.config > "$OUT/rauc-uboot.env"
fw_printenv -c fw_env.failed.config > "$OUT/rauc-uboot.failed.env"
