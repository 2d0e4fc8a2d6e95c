#include <sqlite3.h>

/// A file of fwassemble's in-memory VFS (SQLiteDB): SQLite's base struct, then the Swift object
/// behind it (an unmanaged reference).
typedef struct fwa_sqlite_file {
    sqlite3_file base;
    void *context;
} fwa_sqlite_file;

/// sqlite3_db_config is variadic (Swift cannot call it): the three settings SQLiteDB makes.
static inline int fwa_sqlite_harden(sqlite3 *db) {
    int rc = sqlite3_db_config(db, SQLITE_DBCONFIG_DEFENSIVE, 1, (int *)0);
    if (rc == SQLITE_OK) rc = sqlite3_db_config(db, SQLITE_DBCONFIG_TRUSTED_SCHEMA, 0, (int *)0);
    if (rc == SQLITE_OK) rc = sqlite3_db_config(db, SQLITE_DBCONFIG_ENABLE_LOAD_EXTENSION, 0, (int *)0);
    return rc;
}

/// SQLite's extended result codes are macro expressions, which Swift does not import.
enum {
    FWA_SQLITE_IOERR_READ = SQLITE_IOERR_READ,
    FWA_SQLITE_IOERR_SHORT_READ = SQLITE_IOERR_SHORT_READ,
    FWA_SQLITE_IOERR_WRITE = SQLITE_IOERR_WRITE,
    FWA_SQLITE_IOERR_TRUNCATE = SQLITE_IOERR_TRUNCATE,
    FWA_SQLITE_IOERR_FSTAT = SQLITE_IOERR_FSTAT,
    FWA_SQLITE_IOERR_ACCESS = SQLITE_IOERR_ACCESS,
    FWA_SQLITE_IOERR_DELETE_NOENT = SQLITE_IOERR_DELETE_NOENT,
};
