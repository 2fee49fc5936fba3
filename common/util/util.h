/* diskfarm — small helpers shared by every program. */
#ifndef DISKFARM_UTIL_H
#define DISKFARM_UTIL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>
#include <time.h>

#define DF_NAME_MAX 64

/* Names of vDisks, devices, servers, sites, stores, collections and
 * sessions: [A-Za-z0-9._-]{1,64}, and not "." or "..".  A name that
 * passes can be used as one path component.
 */
bool df_name_valid (const char *name);

/* Like df_name_valid, but records "invalid WHAT name ..." with the
 * offending name (quoted, non-printables escaped) and returns -1.
 */
int df_name_check (const char *what, const char *name);

/* Copies s into buf (size n) with non-printable bytes as \xNN and the
 * result cut at n - 1 bytes.  For quoting hostile input in messages.
 */
const char *df_quote (const char *s, char *buf, size_t n);

/* "4096", "64K", "1M", "2G", "1T", with optional "iB"/"B" suffix
 * (powers of 1024).  Returns -1 with a message on bad input or overflow.
 */
int df_parse_size (const char *s, uint64_t *out);
/* "1.5 GiB" style, into buf of at least 32 bytes. */
const char *df_format_size (uint64_t n, char *buf, size_t len);

int df_parse_u64 (const char *s, uint64_t *out);
int df_parse_bool (const char *s, bool *out);

/* MAC address "52:54:00:12:34:56" (also '-' separators, any case). */
int df_parse_mac (const char *s, uint8_t mac[6]);
/* Lower case, ':' separated, into buf of at least 18 bytes. */
const char *df_format_mac (const uint8_t mac[6], char *buf);

/* ---- io.c: full reads and writes, whole files ---- */

/* The loops every caller of read(2), pread(2), write(2) and pwrite(2)
 * needs, written once: they retry on EINTR and after a partial transfer.
 * On failure they return -1 with errno and record no message (they do
 * not know what the fd is): the caller names the file.
 *
 * The reads return how many bytes they read, fewer than len only at
 * the end of the file; the caller decides what a short read means.
 */
ssize_t df_read_full (int fd, void *buf, size_t len);
ssize_t df_pread_full (int fd, void *buf, size_t len, uint64_t off);
int df_write_full (int fd, const void *buf, size_t len);
int df_pwrite_full (int fd, const void *buf, size_t len, uint64_t off);

/* Whole file into a NUL-terminated malloc'd buffer (caller frees).
 * Refuses files over max bytes.
 */
int df_read_file (const char *path, size_t max, char **data, size_t *len);

/* Replaces path atomically: a temporary file beside it is written,
 * given mode, fsync'd and renamed over path, then the directory is
 * fsync'd.  A crash leaves either the old or the new file (and maybe a
 * stray path.tmp.XXXXXX beside it).
 */
int df_write_file_atomic (const char *path, const void *data, size_t len,
                          mode_t mode);
/* The same with the content of the regular file src. */
int df_copy_file_atomic (const char *src, const char *path, mode_t mode);

int df_fsync_dir (const char *dir);

/* What tells whether a file changed since it was last read: the farm's
 * files are replaced by atomic renames (df_write_file_atomic), so a new
 * content comes with a new inode, size, mtime or ctime.  For reloading
 * farm.conf and manifests only when they changed.
 */
struct df_file_stamp {
  dev_t dev;
  ino_t ino;
  off_t size;
  struct timespec mtime, ctime;
};
/* stat()s path; -1 with errno (ENOENT if absent) and a message. */
int df_file_stamp_get (const char *path, struct df_file_stamp *out);
bool df_file_stamp_equal (const struct df_file_stamp *a,
                          const struct df_file_stamp *b);
/* mkdir -p; existing directories are fine. */
int df_mkdir_p (const char *path, mode_t mode);
/* rm -r of a directory tree we created (never follows symlinks). */
int df_remove_tree (const char *path);

/* malloc'd "a/b" (caller frees); NULL with a message on failure. */
char *df_path_join (const char *dir, const char *name);

/* Monotonic and wall clock in nanoseconds. */
uint64_t df_now_mono_ns (void);
uint64_t df_now_real_ns (void);

/* The running kernel's boot id (/proc/sys/kernel/random/boot_id), which
 * changes at every boot: whatever a process wrote into the page cache
 * under one boot id is in its files for any process of the same boot,
 * durable or not.  buf holds DF_BOOT_ID_LEN + 1 bytes.  -1 with a message.
 */
#define DF_BOOT_ID_LEN 36
int df_boot_id (char *buf);

/* 16 random bytes, and their 32-character hex form (buf >= 33). */
int df_random_bytes (void *buf, size_t len);
const char *df_hex (const void *data, size_t len, char *buf);
/* Parses exactly len bytes of hex; -1 on bad input. */
int df_unhex (const char *s, void *out, size_t len);

static inline bool
df_is_power_of_2 (uint64_t v)
{
  return v && !(v & (v - 1));
}

static inline uint64_t
df_round_up (uint64_t v, uint64_t align)
{
  return (v + align - 1) & ~(align - 1);
}

/* True if the len bytes at buf are all zero (fast, word-wise). */
bool df_is_zero (const void *buf, size_t len);

/* Runs fn (arg) on up to max threads at once, one per online CPU, the
 * calling thread being one of them, and waits for all.  For workers that
 * share a job and take its pieces until none are left.  Returns how many
 * ran (at least 1: the caller).
 */
#define DF_PARALLEL_MAX 16
size_t df_parallel (size_t max, void *(*fn) (void *), void *arg);

#endif
