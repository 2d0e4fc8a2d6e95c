#include <zlib.h>

/* deflateInit2/inflateInit2 are macros Swift cannot call. */
static inline int fwa_inflateInit2(z_streamp s, int windowBits) { return inflateInit2(s, windowBits); }
static inline int fwa_deflateInit2(z_streamp s, int level, int windowBits, int memLevel, int strategy) { return deflateInit2(s, level, Z_DEFLATED, windowBits, memLevel, strategy); }
