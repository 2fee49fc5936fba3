/* diskfarm-replicator — cache-friendly file I/O and hashes (see io.h). */
#include <config.h>

#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "cleanup.h"
#include "error.h"
#include "io.h"
#include "layer/layer.h"

#define HASH_CHUNK (4 * 1024 * 1024)

struct repl_cache_snap {
  int fd;
  uint64_t size;
  size_t npages;
  unsigned char *resident;      /* mincore's vector: bit 0 per page */
};

struct repl_cache_snap *
repl_cache_snapshot (int fd, uint64_t size)
{
  struct repl_cache_snap *s = calloc (1, sizeof *s);
  long page = sysconf (_SC_PAGESIZE);
  void *map;

  if (s == NULL)
    return NULL;
  s->fd = fd;
  s->size = size;
  s->npages = (size + page - 1) / page;
  if (size == 0 || size > SIZE_MAX / 2)
    return s;
  s->resident = calloc (s->npages, 1);
  map = s->resident ? mmap (NULL, size, PROT_READ, MAP_SHARED, fd, 0) : MAP_FAILED;
  if (map == MAP_FAILED || mincore (map, size, s->resident) == -1) {
    /* Unknown: keep everything rather than drop a device's pages. */
    memset (s->resident, 1, s->resident ? s->npages : 0);
  }
  if (map != MAP_FAILED)
    munmap (map, size);
  return s;
}

void
repl_cache_release (struct repl_cache_snap *s)
{
  long page = sysconf (_SC_PAGESIZE);
  size_t i = 0;

  if (s == NULL)
    return;
  while (s->resident && i < s->npages) {
    size_t j = i;
    if (s->resident[i] & 1) {
      i++;
      continue;
    }
    while (j < s->npages && !(s->resident[j] & 1))
      j++;
    posix_fadvise (s->fd, (off_t) i * page, (off_t) (j - i) * page,
                   POSIX_FADV_DONTNEED);
    i = j;
  }
  free (s->resident);
  free (s);
}

void
repl_cache_drop (int fd)
{
  posix_fadvise (fd, 0, 0, POSIX_FADV_DONTNEED);
}

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
  struct repl_cache_snap *snap;
  struct stat st;
  int r;

  if (fd == -1 || fstat (fd, &st) == -1)
    return df_error_errno ("%s", path);
  if (!S_ISREG (st.st_mode))
    return df_error (EINVAL, "%s: not a regular file", path);
  snap = repl_cache_snapshot (fd, st.st_size);
  if (kind == REPL_KIND_LAYER)
    r = layer_hash (path, hash);
  else
    r = sha256_fd (fd, st.st_size, hash);
  repl_cache_release (snap);
  if (r == -1)
    df_error_prefix ("hash %s", path);
  return r;
}
