#include <lzo/lzo1x.h>

static inline int fwa_lzo_init(void) { return lzo_init(); }
