/* diskfarm-replicator — cache-friendly file I/O and hashes (see io.h). */
#include <config.h>

#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cleanup.h"
#include "error.h"
#include "io.h"
#include "layer/layer.h"
#include "pagecache.h"

#define HASH_CHUNK (4 * 1024 * 1024)

uint64_t
repl_mtime_ns (const struct stat *st)
{
  return (uint64_t) st->st_mtim.tv_sec * 1000000000ULL + st->st_mtim.tv_nsec;
}

uint64_t
repl_ctime_ns (const struct stat *st)
{
  return (uint64_t) st->st_ctim.tv_sec * 1000000000ULL + st->st_ctim.tv_nsec;
}

static int
sha256_fd (int fd, uint64_t size, uint8_t hash[DF_HASH_LEN])
{
  CLEANUP_FREE char *buf = malloc (HASH_CHUNK);
  struct df_hash *h = df_hash_new ();
  uint64_t off = 0;

  if (buf == NULL || h == NULL) {
    df_hash_free (h);
    return df_error (ENOMEM, "hash buffer");
  }
  while (off < size) {
    ssize_t r = df_pread_full (fd, buf, HASH_CHUNK, off);
    if (r <= 0) {
      df_hash_free (h);
      return r == 0 ? df_error (EIO, "file shrank while hashed")
        : df_error_errno ("read");
    }
    if (df_hash_update (h, buf, r) == -1) {
      df_hash_free (h);
      return -1;
    }
    off += r;
  }
  return df_hash_final (h, hash);
}

static int
layer_hash (const char *path, uint8_t hash[DF_HASH_LEN])
{
  struct df_layer *l = df_layer_open (path, false);
  int r;

  if (l == NULL)
    return -1;
  r = df_layer_hash (l, hash);
  df_layer_close (l);
  return r;
}

int
repl_hash_file (const char *path, enum repl_kind kind,
                uint8_t hash[DF_HASH_LEN])
{
  CLEANUP_CLOSE int fd = open (path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
  struct df_cache_snap *snap;
  struct stat st;
  int r;

  if (fd == -1 || fstat (fd, &st) == -1)
    return df_error_errno ("%s", path);
  if (!S_ISREG (st.st_mode))
    return df_error (EINVAL, "%s: not a regular file", path);
  snap = df_cache_snapshot (fd, 0, st.st_size);
  if (kind == REPL_KIND_LAYER)
    r = layer_hash (path, hash);
  else
    r = sha256_fd (fd, st.st_size, hash);
  df_cache_release (snap);
  if (r == -1)
    df_error_prefix ("hash %s", path);
  return r;
}
