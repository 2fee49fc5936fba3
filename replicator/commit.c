/* diskfarm-replicator — staged files in place (see commit.h). */
#include <config.h>

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <libgen.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "cleanup.h"
#include "commit.h"
#include "error.h"
#include "io.h"
#include "log.h"
#include "pagecache.h"
#include "layer/layer.h"
#include "util.h"
#include "vdisk/vdisk.h"

static int
hash_staged (int fd, const char *spath, const struct repl_file *f,
             struct df_layer_hasher *hs, uint8_t hash[DF_HASH_LEN])
{
  struct df_layer *l;
  int r;

  if (f->kind != REPL_KIND_LAYER)
    return repl_hash_file (spath, f->kind, hash);
  (void) fd;
  l = df_layer_open (spath, false);
  if (l == NULL)
    return -1;
  if (!df_layer_info (l)->sealed) {
    df_layer_close (l);
    return df_error (EINVAL, "the layer is not sealed");
  }
  r = hs ? df_layer_hasher_final (hs, l, hash) : df_layer_hash (l, hash);
  df_layer_close (l);
  return r;
}

int
repl_verify_staged (int fd, const char *spath, const struct repl_file *f,
                    struct df_layer_hasher *hs)
{
  uint8_t hash[DF_HASH_LEN];
  char want[DF_HASH_TEXT_LEN + 1], got[DF_HASH_TEXT_LEN + 1];
  struct stat st;

  if (fstat (fd, &st) == -1)
    return df_error_errno ("%s", spath);
  if ((uint64_t) st.st_size != f->size)
    return df_error (EIO, "%s: %" PRIu64 " bytes arrived, the source's "
                     "manifest says %" PRIu64, f->path, (uint64_t) st.st_size,
                     f->size);
  if (hash_staged (fd, spath, f, hs, hash) == -1) {
    df_error_prefix ("%s: what arrived is not a valid %s", f->path,
                     repl_kind_name (f->kind));
    return -1;
  }
  if (memcmp (hash, f->hash, DF_HASH_LEN) != 0)
    return df_error (EIO, "%s: what arrived has content hash %s, the source's "
                     "manifest says %s", f->path, df_hash_format (hash, got),
                     df_hash_format (f->hash, want));
  return 0;
}

/* Sets the exact mtime and checks that the file system kept it. */
static int
set_mtime (int fd, const char *path, uint64_t mtime_ns)
{
  struct timespec ts[2] = {
    { .tv_nsec = UTIME_OMIT },
    { .tv_sec = mtime_ns / 1000000000ULL, .tv_nsec = mtime_ns % 1000000000ULL },
  };
  struct stat st;

  if (futimens (fd, ts) == -1 || fstat (fd, &st) == -1)
    return df_error_errno ("set the mtime of %s", path);
  if (repl_mtime_ns (&st) != mtime_ns)
    return df_error (EINVAL, "%s: the file system keeps mtime %" PRIu64
                     " ns for %" PRIu64 "; replicas need nanosecond "
                     "timestamps", path, repl_mtime_ns (&st), mtime_ns);
  return 0;
}

/* Creates the directories of ROOT/rel_dir that are missing, each made
 * durable in its parent.
 */
static int
ensure_dir (const char *root, const char *rel_dir)
{
  CLEANUP_FREE char *path = df_path_join (root, rel_dir);
  char *p;

  if (path == NULL)
    return df_error_errno ("%s", rel_dir);
  for (p = path + strlen (root) + 1; ; p++) {
    char c = *p;
    if (c != '/' && c != '\0')
      continue;
    *p = '\0';
    if (mkdir (path, 0755) == 0) {
      CLEANUP_FREE char *parent = strdup (path);
      if (parent == NULL || df_fsync_dir (dirname (parent)) == -1)
        return -1;
    }
    else if (errno != EEXIST)
      return df_error_errno ("mkdir %s", path);
    *p = c;
    if (c == '\0')
      return 0;
  }
}

/* New files belong to whoever owns their directory (the store's user),
 * not to the replicator's.
 */
static void
match_owner (int fd, const char *dir)
{
  struct stat d;

  if (geteuid () == 0 && stat (dir, &d) == 0)
    if (fchown (fd, d.st_uid, d.st_gid) == -1)
      df_error_clear ();
}

/* A vdisk.conf may go in only over layers that are here (commit.h). */
static int
check_manifest (struct repl_stage *st, const char *spath,
                const struct repl_file *f)
{
  CLEANUP_FREE char *text = NULL;
  size_t len;

  if (f->kind != REPL_KIND_MANIFEST)
    return 0;
  if (df_read_file (spath, 16 * 1024 * 1024, &text, &len) == -1)
    return -1;
  return repl_check_vdisk_conf (st, f->vdisk, text, len);
}

int
repl_commit (struct repl_stage *st, int fd, const char *spath,
             const struct repl_file *f, struct df_layer_hasher *hs)
{
  CLEANUP_FREE char *live = repl_stage_live_path (st, f->path);
  CLEANUP_FREE char *rel = strdup (f->path);
  CLEANUP_FREE char *dir = NULL;
  struct stat now;
  uint64_t t0, t1;

  if (live == NULL || rel == NULL)
    return df_error_errno ("%s", f->path);
  t0 = df_now_mono_ns ();
  if (repl_verify_staged (fd, spath, f, hs) == -1 ||
      check_manifest (st, spath, f) == -1)
    return -1;
  t1 = df_now_mono_ns ();
  if (ensure_dir (repl_stage_root (st), dirname (rel)) == -1)
    return -1;
  dir = strdup (live);
  if (dir == NULL)
    return df_error_errno ("%s", f->path);
  dirname (dir);
  match_owner (fd, dir);
  if (fchmod (fd, 0644) == -1)
    return df_error_errno ("chmod %s", spath);
  if (set_mtime (fd, f->path, f->mtime_ns) == -1)
    return -1;
  if (fsync (fd) == -1)
    return df_error_errno ("fsync %s", spath);
  df_debug ("delta", "%s: content hash checked in %.3f s, fsync %.3f s",
            f->path, (t1 - t0) / 1e9, (df_now_mono_ns () - t1) / 1e9);
  if (rename (spath, live) == -1)
    return df_error_errno ("rename %s to %s", spath, live);
  if (df_fsync_dir (dir) == -1)
    return -1;
  /* rename changes the ctime: remember the hash as the file is now. */
  if (fstat (fd, &now) == 0)
    repl_stage_remember (st, f->path, &now, f->hash);
  df_cache_drop (fd);
  return 0;
}

int
repl_live_hash (struct repl_stage *st, const char *path, enum repl_kind kind,
                uint8_t hash[DF_HASH_LEN], struct stat *st_out)
{
  CLEANUP_FREE char *live = repl_stage_live_path (st, path);
  struct stat after;

  if (live == NULL)
    return -1;
  if (lstat (live, st_out) == -1) {
    if (errno == ENOENT)
      return 0;
    return df_error_errno ("%s", live);
  }
  if (!S_ISREG (st_out->st_mode))
    return df_error (EINVAL, "%s: not a regular file", live);
  if (repl_stage_known_hash (st, path, st_out, hash))
    return 1;
  if (repl_hash_file (live, kind, hash) == -1)
    return -1;
  /* Remember it only if the file did not change while it was hashed. */
  if (lstat (live, &after) == 0 && after.st_ino == st_out->st_ino &&
      repl_ctime_ns (&after) == repl_ctime_ns (st_out) &&
      after.st_size == st_out->st_size)
    repl_stage_remember (st, path, st_out, hash);
  return 1;
}

int
repl_fix_mtime (struct repl_stage *st, const struct repl_file *f)
{
  CLEANUP_FREE char *live = repl_stage_live_path (st, f->path);
  CLEANUP_CLOSE int fd = -1;
  uint8_t hash[DF_HASH_LEN];
  struct stat before, now;
  int r;

  if (live == NULL)
    return -1;
  r = repl_live_hash (st, f->path, f->kind, hash, &before);
  if (r == -1)
    return -1;
  if (r == 0 || (uint64_t) before.st_size != f->size ||
      memcmp (hash, f->hash, DF_HASH_LEN) != 0)
    return df_error (ESTALE, "%s changed since the plan was made", f->path);
  fd = open (live, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
  if (fd == -1 || fstat (fd, &now) == -1)
    return df_error_errno ("%s", live);
  if (now.st_ino != before.st_ino)
    return df_error (ESTALE, "%s changed since the plan was made", f->path);
  if (set_mtime (fd, f->path, f->mtime_ns) == -1)
    return -1;
  if (fsync (fd) == -1 || fstat (fd, &now) == -1)
    return df_error_errno ("fsync %s", live);
  repl_stage_remember (st, f->path, &now, f->hash);
  return 0;
}

int
repl_remove (struct repl_stage *st, const char *path)
{
  CLEANUP_FREE char *live = repl_stage_live_path (st, path);
  CLEANUP_FREE char *dir = NULL;

  if (live == NULL || (dir = strdup (live)) == NULL)
    return df_error_errno ("%s", path);
  repl_stage_forget (st, path);
  if (unlink (live) == -1) {
    if (errno == ENOENT)
      return 0;
    return df_error_errno ("remove %s", live);
  }
  return df_fsync_dir (dirname (dir));
}
