/* diskfarm — read cache: the device (see rcache.h). */
#include <config.h>

#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cleanup.h"
#include "error.h"
#include "rcache/rcache-int.h"
#include "util.h"

#define CH DF_RCACHE_CHUNK

struct rcache {
  struct df_bdev bdev;
  struct df_bdev *lower;
  uint8_t vhash[DF_HASH_LEN];
  int data_fd;
  struct rc_index ix;
  uint64_t hits, misses;        /* atomic */
};

/* The valid bits of blocks [first, last] of a chunk. */
static uint16_t
block_mask (uint32_t first, uint32_t last)
{
  return (uint16_t) (((1u << (last + 1)) - 1) & ~((1u << first) - 1));
}

/* A hit: len bytes at within of the chunk, from the data file.  0 if
 * read and still valid, 1 if not there (or reused meanwhile), -1 on an
 * I/O error.
 */
static int
read_hit (struct rcache *c, char *buf, uint64_t chunk, uint32_t within,
          uint32_t len, uint16_t mask)
{
  uint32_t s, gen;
  ssize_t n;
  bool same;

  rc_lock (&c->ix);
  s = rc_find (&c->ix, c->vhash, chunk);
  if (s == RC_NIL || (c->ix.e[s].valid & mask) != mask) {
    rc_unlock (&c->ix);
    return 1;
  }
  gen = c->ix.e[s].gen;
  rc_touch (&c->ix, s);
  rc_unlock (&c->ix);
  n = pread (c->data_fd, buf, len, (uint64_t) s * CH + within);
  if (n == -1)
    return df_error_errno ("reading the read cache");
  rc_lock (&c->ix);
  same = c->ix.e[s].gen == gen;
  rc_unlock (&c->ix);
  return same && n == (ssize_t) len ? 0 : 1;
}

/* Keeps blocks [first, last] of a chunk, whose data is at data. */
static void
fill (struct rcache *c, uint64_t chunk, uint32_t first, uint32_t last,
      const char *data, uint32_t len)
{
  uint16_t mask = block_mask (first, last);
  uint32_t s, gen;
  bool ok;

  rc_lock (&c->ix);
  s = rc_find (&c->ix, c->vhash, chunk);
  if (s == RC_NIL)
    s = rc_claim (&c->ix, c->vhash, chunk);
  if (s == RC_NIL || (c->ix.e[s].valid & mask) == mask) {
    rc_unlock (&c->ix);
    return;
  }
  c->ix.e[s].pins++;
  gen = c->ix.e[s].gen;
  rc_unlock (&c->ix);
  /* The same blocks of a version are the same bytes: a block written
   * twice by two fillers, or read while rewritten, is never torn.
   */
  ok = pwrite (c->data_fd, data, len, (uint64_t) s * CH + first * RC_BLOCK)
    == (ssize_t) len;
  rc_lock (&c->ix);
  if (ok && c->ix.e[s].gen == gen)
    c->ix.e[s].valid |= mask;
  c->ix.e[s].pins--;
  rc_unlock (&c->ix);
}

/* A miss: the whole blocks around the request from below, kept. */
static int
read_miss (struct rcache *c, char *buf, uint64_t chunk, uint32_t within,
           uint32_t len)
{
  uint32_t first = within / RC_BLOCK, last = (within + len - 1) / RC_BLOCK;
  uint64_t start = chunk * CH + (uint64_t) first * RC_BLOCK;
  uint64_t end = chunk * CH + (uint64_t) (last + 1) * RC_BLOCK;
  CLEANUP_FREE char *tmp = NULL;
  char *p = buf;

  if (end > c->bdev.size)
    end = c->bdev.size;
  if (start != chunk * CH + within || end - start != len) {
    tmp = malloc (end - start);
    if (tmp == NULL)
      return df_error_errno ("read cache");
    p = tmp;
  }
  if (df_bdev_pread (c->lower, p, end - start, start) == -1)
    return -1;
  if (tmp)
    memcpy (buf, tmp + (chunk * CH + within - start), len);
  fill (c, chunk, first, last, p, end - start);
  return 0;
}

static int
rc_pread (struct df_bdev *b, void *buf, uint32_t count, uint64_t offset)
{
  struct rcache *c = (struct rcache *) b;
  char *p = buf;

  while (count > 0) {
    uint64_t chunk = offset / CH;
    uint32_t within = offset % CH;
    uint32_t len = CH - within < count ? CH - within : count;
    uint16_t mask = block_mask (within / RC_BLOCK,
                                (within + len - 1) / RC_BLOCK);
    int r = read_hit (c, p, chunk, within, len, mask);

    if (r == -1)
      return -1;
    if (r == 0)
      __atomic_add_fetch (&c->hits, 1, __ATOMIC_RELAXED);
    else {
      __atomic_add_fetch (&c->misses, 1, __ATOMIC_RELAXED);
      if (read_miss (c, p, chunk, within, len) == -1)
        return -1;
    }
    p += len;
    offset += len;
    count -= len;
  }
  return 0;
}

#define MANY 64

/* Misses, each within one chunk: the whole blocks around them from
 * below, together, then kept.
 */
static void
read_misses (struct rcache *c, struct df_bdev_read *m, size_t n)
{
  struct df_bdev_read low[MANY];
  char *tmp[MANY];
  size_t i;

  for (i = 0; i < n; i++) {
    uint64_t chunk = m[i].offset / CH;
    uint32_t within = m[i].offset % CH;
    uint64_t start = chunk * CH + within / RC_BLOCK * RC_BLOCK;
    uint64_t end = chunk * CH
      + (uint64_t) ((within + m[i].count - 1) / RC_BLOCK + 1) * RC_BLOCK;

    if (end > c->bdev.size)
      end = c->bdev.size;
    tmp[i] = NULL;
    low[i] = (struct df_bdev_read) {
      .buf = m[i].buf, .count = end - start, .offset = start,
    };
    if (start != m[i].offset || end - start != m[i].count) {
      tmp[i] = low[i].buf = malloc (end - start);
      if (tmp[i] == NULL)       /* just what was asked, then */
        low[i] = m[i];
    }
  }
  df_bdev_pread_many (c->lower, low, n);
  for (i = 0; i < n; i++) {
    uint64_t chunk = m[i].offset / CH;
    uint32_t first = (low[i].offset - chunk * CH) / RC_BLOCK;
    bool whole = low[i].offset % RC_BLOCK == 0 &&
      (low[i].count % RC_BLOCK == 0 || low[i].offset + low[i].count == c->bdev.size);

    m[i].error = low[i].error;
    if (m[i].error == 0) {
      if (tmp[i])
        memcpy (m[i].buf, tmp[i] + (m[i].offset - low[i].offset), m[i].count);
      if (whole)
        fill (c, chunk, first, first + (low[i].count - 1) / RC_BLOCK,
              low[i].buf, low[i].count);
    }
    free (tmp[i]);
  }
}

/* Hits are read here; the misses go down together, then are kept. */
static int
rc_pread_many (struct df_bdev *b, struct df_bdev_read *r, size_t n)
{
  struct rcache *c = (struct rcache *) b;
  size_t i;
  int rv = 0;

  for (i = 0; i < n; i += MANY) {
    size_t k = n - i < MANY ? n - i : MANY, j, nm = 0;
    struct df_bdev_read miss[MANY];
    size_t map[MANY];

    for (j = 0; j < k; j++) {
      struct df_bdev_read *x = &r[i + j];
      uint64_t chunk = x->offset / CH;
      uint32_t within = x->offset % CH;
      int h = 1;

      x->error = 0;
      /* One chunk each, as fills go; a read across chunks goes alone
       * (rc_pread counts its hits and misses).
       */
      if (within + x->count > CH) {
        x->error = rc_pread (b, x->buf, x->count, x->offset) == -1 ? errno : 0;
        continue;
      }
      h = read_hit (c, x->buf, chunk, within, x->count,
                    block_mask (within / RC_BLOCK,
                                (within + x->count - 1) / RC_BLOCK));
      if (h == 0)
        __atomic_add_fetch (&c->hits, 1, __ATOMIC_RELAXED);
      if (h == -1)
        x->error = errno;
      if (h != 1)
        continue;
      map[nm] = i + j;
      miss[nm++] = *x;
    }
    __atomic_add_fetch (&c->misses, nm, __ATOMIC_RELAXED);
    if (nm)
      read_misses (c, miss, nm);
    for (j = 0; j < nm; j++)
      r[map[j]].error = miss[j].error;
  }
  for (i = 0; i < n; i++)
    if (r[i].error)
      rv = -1;
  return rv;
}

static int
rc_refuse (void)
{
  return df_error (EROFS, "the read cache is read-only");
}

static int
rc_pwrite (struct df_bdev *b, const void *buf, uint32_t count,
           uint64_t offset, uint32_t flags)
{
  (void) b; (void) buf; (void) count; (void) offset; (void) flags;
  return rc_refuse ();
}

static int
rc_flush (struct df_bdev *b)
{
  (void) b;
  return 0;
}

static int
rc_zero (struct df_bdev *b, uint32_t count, uint64_t offset, uint32_t flags)
{
  (void) b; (void) count; (void) offset; (void) flags;
  return rc_refuse ();
}

static int
rc_extents (struct df_bdev *b, uint32_t count, uint64_t offset,
            df_extent_fn fn, void *opaque)
{
  struct rcache *c = (struct rcache *) b;

  return df_bdev_extents (c->lower, count, offset, fn, opaque);
}

static void
rc_close (struct df_bdev *b)
{
  struct rcache *c = (struct rcache *) b;

  rc_index_close (&c->ix, c->data_fd);
  if (c->data_fd >= 0)
    close (c->data_fd);
  free (c);
}

static const struct df_bdev_ops rcache_ops = {
  .name = "rcache",
  .pread = rc_pread,
  .pwrite = rc_pwrite,
  .flush = rc_flush,
  .zero = rc_zero,
  .trim = rc_zero,
  .extents = rc_extents,
  .close = rc_close,
  .pread_many = rc_pread_many,
};

struct df_bdev *
df_rcache_open (struct df_bdev *lower, const struct df_rcache_params *p)
{
  struct rcache *c = calloc (1, sizeof *c);
  CLEANUP_FREE char *data = NULL;
  uint64_t nslots = p->size / CH;

  if (c == NULL) {
    df_error_errno ("read cache");
    return NULL;
  }
  c->bdev.ops = &rcache_ops;
  c->bdev.size = lower->size;
  c->bdev.flags = DF_BDEV_RDONLY;
  c->lower = lower;
  c->data_fd = -1;
  c->ix.lock_fd = c->ix.index_fd = -1;
  memcpy (c->vhash, p->version_hash, DF_HASH_LEN);
  if (nslots == 0 || nslots >= RC_NIL) {
    df_error (EINVAL, "read cache size %ju is out of range",
              (uintmax_t) p->size);
    goto err;
  }
  if (df_mkdir_p (p->dir, 0700) == -1 ||
      (data = df_path_join (p->dir, "data")) == NULL)
    goto err;
  c->data_fd = open (data, O_RDWR | O_CREAT | O_CLOEXEC, 0600);
  if (c->data_fd == -1) {
    df_error_errno ("%s", data);
    goto err;
  }
  if (rc_index_open (&c->ix, p->dir, nslots, c->data_fd) == -1)
    goto err;
  return &c->bdev;
 err:
  df_error_prefix ("read cache %s", p->dir);
  rc_close (&c->bdev);
  return NULL;
}

void
df_rcache_stats (struct df_bdev *b, struct df_rcache_stats *out)
{
  struct rcache *c = (struct rcache *) b;

  rc_lock (&c->ix);
  out->size = c->ix.h->nslots * CH;
  out->used = c->ix.h->used * CH;
  out->evictions = c->ix.h->evictions;
  rc_unlock (&c->ix);
  out->hits = __atomic_load_n (&c->hits, __ATOMIC_RELAXED);
  out->misses = __atomic_load_n (&c->misses, __ATOMIC_RELAXED);
}
