/*
 * fwassemble.h: the C ABI of libfwassemble.so (docs/library.md).
 *
 * Turns a raw multi-partition firmware disk image into one faithful rootfs archive, and reports
 * what it finds (partitions, mount plan, Docker state) as JSON strings.
 *
 * Conventions:
 *  - Every function returning int returns FWA_OK (0) on success or one of the FWA_ERR_* codes.
 *    On failure, when `err` is not NULL, *err receives an error object (free it with
 *    fwa_error_free); on success *err is set to NULL.
 *  - Strings returned through `char **` are UTF-8, NUL-terminated, owned by the caller and freed
 *    with fwa_string_free. On failure they are set to NULL.
 *  - `options_json` may be NULL or "" for the defaults. It is the job's request: the CLI's long
 *    options with `_` for `-` (docs/library.md lists every key for every job; the same JSON
 *    that `fwassemble assemble --request -` reads). Unknown keys and values out of range are an
 *    error (FWA_ERR_INVALID_ARGUMENT), so a typo never goes unnoticed. Among them:
 *      "compression": "gzip" | "zstd" | "none"   (assemble, extract, export; default: from the
 *                                                  output's suffix, else gzip)
 *      "level":       integer                    (gzip 1-12, default 6; zstd 1-19, default 3)
 *      "threads":     integer 1-256              (compression threads; default: the cores)
 *      "no_devices":  true | false               (assemble: leave device nodes out)
 *      "no_replay":   true | false               (assemble, extract, export: do not replay the
 *                                                  journal of ext3/ext4 filesystems that need recovery)
 *      "root":        "5" | 5 | "hassos-system0" | label (plan, docker, assemble, export)
 *      "report":      "path.json"                (assemble: where the JSON report goes)
 *      "rehost", "hardlinks" ("link"|"copy"), "strict", "format" ("tar"|"ext4"|"qcow2"),
 *      "padding" (MiB), "inodes", "uuid", "add_tar" (list of paths)   (assemble)
 *      "data_root":   "/mnt/data/docker"         (export: which Docker data-root)
 *      "image":       true | false               (export: the reference is an image, not a container)
 *      "backing_dir", "snapshot"                 (fwa_open2 only)
 *  - Outputs are never an input: an out_path (or report) that is the disk image or one of its
 *    backing files, by device and inode, fails with FWA_ERR_INVALID_ARGUMENT before anything is
 *    written. A symlinked out_path writes its target; a device or FIFO is written in place.
 *  - Thread safety: calls on different fwa_disk handles may run concurrently on any threads.
 *    Calls on one handle must not overlap (serialize them yourself).
 *  - No function prints anything; progress goes to the callback.
 */
#ifndef FWASSEMBLE_H
#define FWASSEMBLE_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/* Status codes: FWError.Code in Swift, plus two of the ABI's own. Stable across releases. */
enum {
    FWA_OK = 0,
    FWA_ERR_IO = 1,               /* an operating-system I/O error */
    FWA_ERR_NOT_FOUND = 2,        /* a file, partition, container or path that does not exist */
    FWA_ERR_CORRUPT = 3,          /* on-disk data breaking its format's rules */
    FWA_ERR_UNSUPPORTED = 4,      /* a valid format or feature fwassemble does not handle */
    FWA_ERR_LIMIT_EXCEEDED = 5,   /* a safety limit (size, depth, count) was exceeded */
    FWA_ERR_INVALID_ARGUMENT = 6, /* a bad argument (NULL handle, bad options JSON, bad level) */
    FWA_ERR_NOT_AVAILABLE = 7,    /* the operation is not built into this library */
    FWA_ERR_INTERNAL = 8,         /* any other failure (the message says what) */
    FWA_ERR_CANCELLED = 9         /* stopped by fwa_cancel; nothing was left behind */
};

/* An open disk image. */
typedef struct fwa_disk fwa_disk;

/* An error: a code and a message naming the disk, partition and path involved. */
typedef struct fwa_error fwa_error;

/*
 * Progress of fwa_assemble: entries and content bytes written so far, the bytes of the mounted
 * partitions (an upper bound of what will be read), and the path being written (valid only
 * during the call). Called on the thread that called fwa_assemble, at most about 5 times a
 * second.
 */
typedef void (*fwa_progress_fn)(uint64_t entries, uint64_t content_bytes, uint64_t planned_bytes,
                                const char *current_path, void *user_data);

/* The library version, e.g. "0.1.0" (static storage, do not free). */
const char *fwa_version(void);

/* Opens a disk image (raw file or block device) read-only. Free with fwa_close. */
int fwa_open(const char *path, fwa_disk **disk, fwa_error **err);

/* fwa_open with options: {"backing_dir": "...", "snapshot": "..."} (qcow2 backing files, an
 * internal snapshot); NULL or "" for none. */
int fwa_open2(const char *path, const char *options_json, fwa_disk **disk, fwa_error **err);

/* Closes a disk (NULL is ignored). */
void fwa_close(fwa_disk *disk);

/* The `fwassemble inspect --json` document: image, partition table, partitions. */
int fwa_inspect_json(fwa_disk *disk, char **json, fwa_error **err);

/* The `fwassemble plan --json` document: root slot, mounts in order, skipped mounts. Options: root. */
int fwa_plan_json(fwa_disk *disk, const char *options_json, char **json, fwa_error **err);

/* The `fwassemble docker --json` document: data-roots, images, containers, volumes, integrity.
 * Options: root. */
int fwa_docker_json(fwa_disk *disk, const char *options_json, char **json, fwa_error **err);

/*
 * Writes the booted namespace as one archive to out_path ("-" for standard output; NULL for
 * NAME.rootfs.tar.gz in the current directory), through a temporary file renamed into place only
 * on success. The JSON report (as written to OUTPUT.report.json) is returned in *report_json when
 * report_json is not NULL. progress may be NULL. Options: every assemble option (the CLI's).
 */
int fwa_assemble(fwa_disk *disk, const char *out_path, const char *options_json,
                 fwa_progress_fn progress, void *user_data, char **report_json, fwa_error **err);

/*
 * The same, written to an open file descriptor (a pipe, a socket, a file) from its current
 * position; fd is neither closed nor synced. A report file is written only with the "report"
 * option.
 */
int fwa_assemble_fd(fwa_disk *disk, int fd, const char *options_json,
                    fwa_progress_fn progress, void *user_data, char **report_json, fwa_error **err);

/*
 * Writes one Docker container's merged filesystem (its rw layer over its -init layer over its
 * image's layers, whiteouts applied) as an archive to out_path. `container` is a name, an id or
 * an id prefix (with the "image" option: a tag or image id). *result_json (if not NULL) receives
 * {"what", "output", "layers", "members", "files", "hardlinks", "content_bytes", "tar_bytes",
 * "problems"}. Options: compression, level, threads, root, data_root, image.
 */
int fwa_export_container(fwa_disk *disk, const char *container, const char *out_path,
                         const char *options_json, char **result_json, fwa_error **err);

/*
 * Writes one partition's filesystem (by number, GPT name or label) as an archive to out_path
 * ("-" for standard output). *result_json (if not NULL) receives {"partition", "format",
 * "members", "files", "hardlinks", "content_bytes", "tar_bytes", "problems", "journal"}.
 * Options: compression, level, threads, no_replay, strict.
 */
int fwa_extract(fwa_disk *disk, const char *partition, const char *out_path, const char *options_json,
                char **result_json, fwa_error **err);

/*
 * Stops the job running on `disk` (from any thread, e.g. a signal handler's thread or a progress
 * callback): it returns FWA_ERR_CANCELLED within about a second and leaves no output behind.
 * Each job clears the request when it starts, so a cancel that arrives before the job has
 * started is lost: call it again until the job's call returns (Python's binding does).
 */
void fwa_cancel(fwa_disk *disk);

/*
 * Looking inside (docs/browse.md): a tree is a disk's booted namespace or, with the
 * "partition" option, one partition's filesystem. Options: root, partition, no_replay. Paths are
 * resolved inside the tree (symlinks followed inside it, never outside). Calls on one tree must
 * not overlap. Free with fwa_tree_close (the disk may be closed first).
 */
typedef struct fwa_tree fwa_tree;

/* One JSON line (valid only during the call); return nonzero to stop (the call then succeeds). */
typedef int (*fwa_line_fn)(const char *json_line, void *user_data);

int fwa_tree_open(fwa_disk *disk, const char *options_json, fwa_tree **tree, fwa_error **err);

/* Closes a tree (NULL is ignored). */
void fwa_tree_close(fwa_tree *tree);

/* The `fwassemble ls --json` lines of a directory: name, type, mode, uid, gid, size, mtime,
 * mtime_ns, link, device; one object per line, names sorted bytewise. */
int fwa_tree_list_json(fwa_tree *tree, const char *path, char **json, fwa_error **err);

/* The `fwassemble stat --json` document (follow_symlinks: nonzero follows a symlink at path). */
int fwa_tree_stat_json(fwa_tree *tree, const char *path, int follow_symlinks, char **json, fwa_error **err);

/* The bytes of a regular file (symlinks followed), at most 256 MiB; *data is freed with
 * fwa_string_free. */
int fwa_tree_read(fwa_tree *tree, const char *path, unsigned char **data, size_t *size, fwa_error **err);

/* Walks the subtree at path (NULL: "/") in the archive's order, handing each entry's
 * `fwassemble find --json` line to `each`. *problems_json (if not NULL): a JSON list of the
 * warnings ({"code", "place", "message"}, as an assemble report's "diagnostics"): the tree's,
 * and the entries the walk could not read (code "walk"). */
int fwa_tree_walk(fwa_tree *tree, const char *path, fwa_line_fn each, void *user_data,
                  char **problems_json, fwa_error **err);

/* Compares the trees of two disks (`fwassemble diff`), handing each `diff --json` line to
 * `each`. Options: root, partition, no_replay (for both), path, no_content. *summary_json (if
 * not NULL): {"differences", "problems", "warnings"}, both lists of {"code", "place", "message"};
 * problems mean the comparison is incomplete. */
int fwa_diff(fwa_disk *a, fwa_disk *b, const char *options_json, fwa_line_fn each, void *user_data,
             char **summary_json, fwa_error **err);

/* Frees a string returned by this library (NULL is ignored). */
void fwa_string_free(char *string);

/* The error's FWA_ERR_* code. */
int fwa_error_code(const fwa_error *err);

/* The error's message (valid until fwa_error_free), e.g. "disk.img: no partition table ...". */
const char *fwa_error_message(const fwa_error *err);

/* The code's stable name: "io", "not_found", "corrupt", "unsupported", "limit_exceeded",
 * "invalid_argument", "not_available", "internal", "cancelled" (static storage). */
const char *fwa_error_code_name(int code);

/* Frees an error (NULL is ignored). */
void fwa_error_free(fwa_error *err);

#ifdef __cplusplus
}
#endif

#endif /* FWASSEMBLE_H */
