#!/usr/bin/env bash
# ext4 inode cases the kernel treats in its own way (issue 23), written by the kernel and damaged
# by debugfs/dd the way copies taken while another writer ran are damaged. ext4-damage.img is
# made by mke2fs -O ea_inode, mounted read-write by the kernel, which writes:
#   ea/fast-link, ea/slow-link     symlinks carrying an 8000-byte trusted xattr: with ea_inode
#                                   the value lives in an EA inode whose blocks count in the
#                                   symlink's i_blocks (the kernel tells fast symlinks by size)
#   cap/v3-root0                   security.capability written as version 3 with root uid 0
#                                   (setfattr): stored as v3, getxattr returns version 2
#   cap/v3-root1000                the same with root uid 1000: stays version 3
#   cap/v2                         a plain setcap (version 2)
#   nul-link                        a 300-byte symlink whose data block is zeroed afterwards (dd):
#                                   readlink returns "" (the kernel cuts at the first NUL)
#   fast-nul                        a fast symlink whose first i_block bytes are zeroed
#                                   afterwards (debugfs sif): the kernel refuses the inode
#   bad-xattr-dir/                  a directory with an xattr block whose header is overwritten
#                                   afterwards (dd), and children: the kernel serves the
#                                   directory and its children, only listxattr fails
#   zero-links                      a file whose link count is set to 0 afterwards (debugfs sif):
#                                   "deleted inode referenced", lookup fails with EUCLEAN
# ext4-damage.manifest is the kernel's view (a writable copy mounted, listed by manifest.py);
# ext4-damage.unreadable the paths it cannot stat, one a line; ext4-damage.raw-caps the stored
# capability values (debugfs ea_get), to show the store holds v3.
# Needs root and loop devices; without them the recipe writes a note and no image (tests skip).
source "$(dirname "${BASH_SOURCE[0]}")/../lib.sh"

require_loop_mounts ext4-damage
mnt=$WORK/mnt
mkdir -p "$mnt"
trap 'umount "$mnt" 2>/dev/null || true' EXIT

img=$WORK/ext4-damage.img
truncate -s 16M "$img"
mkfs.ext4 -q -F -b 4096 -I 256 -O ea_inode -L damage "$img"
mount -o loop "$img" "$mnt"
big=$(head -c 8000 /dev/zero | tr '\0' 'v')
mkdir "$mnt/ea" "$mnt/cap" "$mnt/bad-xattr-dir"
ln -s short-target "$mnt/ea/fast-link"
ln -s "$(printf 'long-target-%.0s' $(seq 1 10))" "$mnt/ea/slow-link"
setfattr -h -n trusted.big -v "$big" "$mnt/ea/fast-link"
setfattr -h -n trusted.big -v "$big" "$mnt/ea/slow-link"
for f in v3-root0 v3-root1000 v2; do printf '#!/bin/sh\n' > "$mnt/cap/$f"; chmod 755 "$mnt/cap/$f"; done
# vfs_ns_cap_data: magic_etc 0x03000001 (v3, effective), permitted 0x3000 (cap_net_bind_service,
# cap_net_raw... bits 12-13), inheritable 0, the second u32 pair 0, rootid.
setfattr -n security.capability -v 0x010000030030000000000000000000000000000000000000 "$mnt/cap/v3-root0"
setfattr -n security.capability -v 0x0100000300300000000000000000000000000000e8030000 "$mnt/cap/v3-root1000"
setcap cap_net_raw+ep "$mnt/cap/v2"
ln -s "$(head -c 300 /dev/zero | tr '\0' 'n')" "$mnt/nul-link"
ln -s fast-target "$mnt/fast-nul"
setfattr -n user.big -v "$(head -c 1000 /dev/zero | tr '\0' 'b')" "$mnt/bad-xattr-dir"
for i in 1 2 3; do printf 'child %s\n' "$i" > "$mnt/bad-xattr-dir/child$i"; done
mkdir "$mnt/bad-xattr-dir/sub"; printf 'grandchild\n' > "$mnt/bad-xattr-dir/sub/file"
printf 'no links\n' > "$mnt/zero-links"
printf 'fine\n' > "$mnt/fine"
umount "$mnt"

for f in v3-root0 v3-root1000 v2; do
    printf '%s ' "$f"; debugfs -R "ea_get -x /cap/$f security.capability" "$img" 2>/dev/null | tr -d ' \n'; echo
done > "$OUT/ext4-damage.raw-caps"
grep -q '^v3-root0 security.capability(24)=01000003' "$OUT/ext4-damage.raw-caps" \
    || { echo "ext4-damage: the kernel did not store a v3 capability:"; cat "$OUT/ext4-damage.raw-caps"; exit 1; } >&2

# The damage: zero the slow symlink's data block, zero a fast symlink's first bytes, overwrite
# the xattr block's header, set a link count to 0.
block_of() { debugfs -R "blocks $1" "$img" 2>/dev/null | awk '{ print $1 }'; }
acl_block_of() { debugfs -R "stat $1" "$img" 2>/dev/null | sed -n 's/.*File ACL: \([0-9]*\).*/\1/p'; }
b=$(block_of /nul-link); [ -n "$b" ] || { echo "no data block for /nul-link" >&2; exit 1; }
dd if=/dev/zero of="$img" bs=4096 seek="$b" count=1 conv=notrunc status=none
x=$(acl_block_of /bad-xattr-dir); [ -n "$x" ] && [ "$x" != 0 ] || { echo "no xattr block for /bad-xattr-dir" >&2; exit 1; }
printf 'BAD!HEADER' | dd of="$img" bs=1 seek=$((x * 4096)) conv=notrunc status=none
debugfs -w -R "sif /fast-nul block[0] 0" "$img" >/dev/null 2>&1
debugfs -w -R "sif /zero-links links_count 0" "$img" >/dev/null 2>&1
cp "$img" "$OUT/ext4-damage.img"

# The reference: the kernel's view of a writable copy; the paths it cannot stat listed apart.
cp "$img" "$WORK/ref.img"
mount -o loop "$WORK/ref.img" "$mnt"
python3 "$IMAGES_DIR/manifest.py" "$mnt" > "$OUT/ext4-damage.manifest" 2> "$OUT/ext4-damage.unreadable"
umount "$mnt"
cat "$OUT/ext4-damage.unreadable"
