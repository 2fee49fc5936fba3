/* diskfarm-replicator — staging area, lock and remembered hashes (see
 * stage.h).
 */
#include <config.h>

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <unistd.h>

#include <jansson.h>

#include "cleanup.h"
#include "error.h"
#include "io.h"
#include "stage.h"
#include "util.h"

#define HASHES_MAX (64 * 1024 * 1024)

struct repl_stage {
  char *root;
  char *dir;                    /* ROOT/.replicator */
  char *staging;                /* ROOT/.replicator/staging */
  char *hashes_path;
  int lock_fd;
  json_t *hashes;               /* {"PATH": {ino, size, mtime_ns, ...}} */
  bool dirty;
};

static json_t *
load_hashes (const char *path)
{
  CLEANUP_FREE char *text = NULL;
  json_t *root = NULL, *files;
  size_t len;

  if (df_read_file (path, HASHES_MAX, &text, &len) == 0)
    root = json_loadb (text, len, 0, NULL);
  df_error_clear ();
  files = json_object_get (root, "files");
  if (!json_is_object (files))
    files = json_object ();
  else
    json_incref (files);
  json_decref (root);
  return files;
}

static int
take_lock (struct repl_stage *st, bool wait)
{
  CLEANUP_FREE char *lock = df_path_join (st->dir, "lock");

  if (lock == NULL)
    return df_error_errno ("%s", st->dir);
  st->lock_fd = open (lock, O_RDWR | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0600);
  if (st->lock_fd == -1)
    return df_error_errno ("%s", lock);
  while (flock (st->lock_fd, LOCK_EX | (wait ? 0 : LOCK_NB)) == -1) {
    if (errno == EINTR)
      continue;
    if (errno == EWOULDBLOCK)
      return df_error (EWOULDBLOCK, "another diskfarm-replicator is "
                       "syncing %s", st->root);
    return df_error_errno ("lock %s", lock);
  }
  return 0;
}

struct repl_stage *
repl_stage_open (const char *root, bool wait)
{
  struct repl_stage *st = calloc (1, sizeof *st);

  if (st == NULL) {
    df_error_errno ("%s", root);
    return NULL;
  }
  st->lock_fd = -1;
  st->root = strdup (root);
  st->dir = df_path_join (root, ".replicator");
  st->staging = st->dir ? df_path_join (st->dir, "staging") : NULL;
  st->hashes_path = st->dir ? df_path_join (st->dir, "hashes.json") : NULL;
  if (st->root == NULL || st->staging == NULL || st->hashes_path == NULL) {
    df_error_errno ("%s", root);
    goto fail;
  }
  if (df_mkdir_p (st->staging, 0700) == -1 || take_lock (st, wait) == -1)
    goto fail;
  st->hashes = load_hashes (st->hashes_path);
  if (st->hashes == NULL) {
    df_error (ENOMEM, "%s", st->hashes_path);
    goto fail;
  }
  return st;
 fail:
  repl_stage_close (st);
  return NULL;
}

int
repl_stage_save (struct repl_stage *st)
{
  CLEANUP_FREE char *text = NULL;
  json_t *root;

  if (!st->dirty)
    return 0;
  root = json_pack ("{s:O}", "files", st->hashes);
  text = root ? json_dumps (root, JSON_SORT_KEYS | JSON_COMPACT) : NULL;
  json_decref (root);
  if (text == NULL)
    return df_error (ENOMEM, "%s", st->hashes_path);
  if (df_write_file_atomic (st->hashes_path, text, strlen (text), 0600) == -1)
    return -1;
  st->dirty = false;
  return 0;
}

void
repl_stage_close (struct repl_stage *st)
{
  if (st == NULL)
    return;
  if (st->hashes && repl_stage_save (st) == -1)
    df_error_clear ();          /* a lost cache costs a rehash, no more */
  json_decref (st->hashes);
  if (st->lock_fd >= 0)
    close (st->lock_fd);
  free (st->root);
  free (st->dir);
  free (st->staging);
  free (st->hashes_path);
  free (st);
}

const char *
repl_stage_root (const struct repl_stage *st)
{
  return st->root;
}

char *
repl_stage_live_path (const struct repl_stage *st, const char *path)
{
  char *p = df_path_join (st->root, path);

  if (p == NULL)
    df_error_errno ("%s", path);
  return p;
}

char *
repl_stage_file_path (const struct repl_stage *st, const struct repl_file *f,
                      const char *suffix)
{
  char hex[2 * DF_HASH_LEN + 1];
  char *p;

  df_hex (f->hash, DF_HASH_LEN, hex);
  if (asprintf (&p, "%s/%s.%s", st->staging, hex, suffix) == -1) {
    df_error_errno ("%s", f->path);
    return NULL;
  }
  return p;
}

static bool
member_is (json_t *o, const char *key, uint64_t v)
{
  json_t *m = json_object_get (o, key);

  return json_is_integer (m) && (uint64_t) json_integer_value (m) == v;
}

bool
repl_stage_known_hash (struct repl_stage *st, const char *path,
                       const struct stat *now, uint8_t hash[DF_HASH_LEN])
{
  json_t *o = json_object_get (st->hashes, path);
  const char *h = json_string_value (json_object_get (o, "hash"));

  if (o == NULL || h == NULL || !member_is (o, "ino", now->st_ino) ||
      !member_is (o, "size", now->st_size) ||
      !member_is (o, "mtime_ns", repl_mtime_ns (now)) ||
      !member_is (o, "ctime_ns", repl_ctime_ns (now)))
    return false;
  if (repl_hash_parse (h, hash) == -1) {
    df_error_clear ();
    return false;
  }
  return true;
}

void
repl_stage_remember (struct repl_stage *st, const char *path,
                     const struct stat *now, const uint8_t hash[DF_HASH_LEN])
{
  char hex[2 * DF_HASH_LEN + 1];
  json_t *o;

  df_hex (hash, DF_HASH_LEN, hex);
  o = json_pack ("{s:I, s:I, s:I, s:I, s:s}", "ino", (json_int_t) now->st_ino,
                 "size", (json_int_t) now->st_size,
                 "mtime_ns", (json_int_t) repl_mtime_ns (now),
                 "ctime_ns", (json_int_t) repl_ctime_ns (now), "hash", hex);
  if (o && json_object_set_new (st->hashes, path, o) == 0)
    st->dirty = true;
}

void
repl_stage_forget (struct repl_stage *st, const char *path)
{
  if (json_object_del (st->hashes, path) == 0)
    st->dirty = true;
}

void
repl_stage_forget_all (struct repl_stage *st)
{
  if (json_object_size (st->hashes) > 0) {
    json_object_clear (st->hashes);
    st->dirty = true;
  }
}

static bool
wanted (const char *name, const uint8_t (*keep)[DF_HASH_LEN], size_t n)
{
  uint8_t h[DF_HASH_LEN];
  char hex[2 * DF_HASH_LEN + 1];
  size_t i;

  if (strlen (name) <= 2 * DF_HASH_LEN || name[2 * DF_HASH_LEN] != '.')
    return false;
  memcpy (hex, name, 2 * DF_HASH_LEN);
  hex[2 * DF_HASH_LEN] = '\0';
  if (df_unhex (hex, h, DF_HASH_LEN) == -1) {
    df_error_clear ();
    return false;
  }
  for (i = 0; i < n; i++)
    if (memcmp (keep[i], h, DF_HASH_LEN) == 0)
      return true;
  return false;
}

void
repl_stage_tidy (struct repl_stage *st, const uint8_t (*keep)[DF_HASH_LEN],
                 size_t n)
{
  DIR *d = opendir (st->staging);
  struct dirent *e;

  if (d == NULL)
    return;
  while ((e = readdir (d)) != NULL)
    if (e->d_name[0] != '.' && !wanted (e->d_name, keep, n))
      unlinkat (dirfd (d), e->d_name, 0);
  closedir (d);
}
