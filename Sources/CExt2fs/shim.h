#include <ext2fs/ext2fs.h>
#include <et/com_err.h>

/* libext2fs exposes its io managers as C globals, which Swift 6 rejects as not
   concurrency-safe; these accessors hand them over as plain values. */
static inline io_manager fwa_unix_io_manager(void) { return unix_io_manager; }
