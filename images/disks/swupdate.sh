#!/usr/bin/env bash
# SWUpdate double-copy on U-Boot (as meta-swupdate-boards' examples): MBR p1 vfat boot holding
# uboot.env, p2/p3 ext4 rootfs copies (releases 1.0 and 2.0), p4 ext4 data. Each root has
# /etc/fw_env.config naming /boot/uboot.env (fstab mounts p1 at /boot), as SWUpdate's
# bootloader handler (libubootenv) reads it. The environment is written by fw_setenv.
# swupdate.img: SWUpdate installed copy 2 (rootpart=3) and U-Boot is on the trial boot
# (upgrade_available=1, bootcount=1 of bootlimit=3, ustate=1): partition 3 boots;
# swupdate.failed.img: the trial failed three times (bootcount=3): the next boot runs altbootcmd,
# which switches back to partition 2.
source "$(dirname "$0")/../lib.sh"
disk="$OUT/swupdate.img"
rm -f "$disk"; truncate -s 16M "$disk"
sfdisk -q "$disk" <<SF
label: dos
label-id: 0x5e0a7e00
unit: sectors

start=2048, size=4096, type=c, bootable
start=6144, size=8192, type=83
start=14336, size=8192, type=83
start=22528, type=83
SF
for copy in 2 3; do
    version=1.0; [ $copy = 3 ] && version=2.0
    slot_root "root$copy" "$version"
    printf '/boot/uboot.env 0x0 0x4000\n' > "root$copy/etc/fw_env.config"
    printf '/dev/mmcblk0p1 /boot vfat defaults 0 0\n/dev/mmcblk0p4 /data ext4 defaults 0 2\n' > "root$copy/etc/fstab"
    ext4_img "root$copy.img" 4 "rootfs$copy" "root$copy"
done
put_fs "$disk" root2.img 6144; put_fs "$disk" root3.img 14336
mkdir -p data; ext4_img data.img 4 data data
put_fs "$disk" data.img 22528
# The environment: the board's defaults, then what SWUpdate's bootloader handler sets for copy 2
# ("rootpart 3", "upgrade_available 1", "ustate 1") and U-Boot's bootcount after the first try.
truncate -s 16K uboot.env
printf '%s/uboot.env 0x0 0x4000\n' "$PWD" > fw_env.config
cat > defaults.env <<'ENV'
bootcmd=run mmcboot
mmcboot=setenv bootargs console=ttyS0 root=/dev/mmcblk0p${rootpart} rootwait; load mmc 0:${rootpart} ${loadaddr} /boot/zImage; bootz ${loadaddr}
altbootcmd=if test ${rootpart} = 2; then setenv rootpart 3; else setenv rootpart 2; fi; setenv upgrade_available 0; setenv bootcount 0; saveenv; run bootcmd
bootlimit=3
bootcount=0
upgrade_available=0
rootpart=2
ustate=0
ENV
fw_setenv -c fw_env.config -f defaults.env ustate 0
printf 'rootpart=3\nupgrade_available=1\nustate=1\nbootcount=1\n' > update.script
fw_setenv -c fw_env.config -s update.script
vfat_img boot.img 2 BOOT uboot.env
put_fs "$disk" boot.img 2048
fw_setenv -c fw_env.config bootcount 3
vfat_img boot.failed.img 2 BOOT uboot.env
cp --sparse=always "$disk" "$OUT/swupdate.failed.img"
put_fs "$OUT/swupdate.failed.img" boot.failed.img 2048
