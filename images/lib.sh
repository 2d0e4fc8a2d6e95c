# Shared by the disk recipes in images/disks/ (sourced; the recipe runs in a scratch dir $WORK and
# writes its result into $OUT).
set -euo pipefail
IMAGES_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
source "$IMAGES_DIR/tree.sh"
# Reproducible mkfs: fixed timestamps where the tools honour it.
export SOURCE_DATE_EPOCH=1700000000
