/* diskfarm — device write caches (see cache.h; internals in cache-int.h). */
#include <config.h>

#ifdef __SSE2__
#include <emmintrin.h>
#endif
#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "cache/cache-int.h"
#include "cleanup.h"
#include "error.h"
#include "util.h"

enum class { C_RAM, C_ZERO, C_DISK, C_LOWER };

static enum class
classify (const struct cache *c, uint64_t b)
{
  uint32_t e = table_get (c, b);

  if (entry_in_ram (e))
    return C_RAM;
  if ((e & E_RAM) == E_ZERO)
    return C_ZERO;
  if (c->layer)
    switch (df_layer_block (c->layer, b)) {
    case DF_BLOCK_PRESENT: return C_DISK;
    case DF_BLOCK_ZERO: return C_ZERO;
    case DF_BLOCK_ABSENT: break;
    }
  return C_LOWER;
}

/* Counts n more data blocks, or fails with ENOSPC (lock held). */
static int
reserve (struct cache *c, uint64_t n)
{
  if (n == 0)
    return 0;
  if (c->limit_blocks && c->used_blocks + n > c->limit_blocks) {
    c->enospc++;
    return df_error (ENOSPC, "write cache is full (%" PRIu64 " of %" PRIu64
                     " blocks used, %" PRIu64 " more wanted)", c->used_blocks,
                     c->limit_blocks, n);
  }
  if (c->budget) {
    uint64_t bytes = n * BS;
    uint64_t total = __atomic_add_fetch (&c->budget->used, bytes, __ATOMIC_RELAXED);
    if (c->budget->limit && total > c->budget->limit) {
      __atomic_sub_fetch (&c->budget->used, bytes, __ATOMIC_RELAXED);
      c->enospc++;
      return df_error (ENOSPC, "the server's write caches are full (%" PRIu64
                       " bytes)", c->budget->limit);
    }
  }
  c->used_blocks += n;
  return 0;
}

/* Counts blocks that hold data whatever the limits (lock held). */
static void
charge (struct cache *c, uint64_t n)
{
  c->used_blocks += n;
  if (c->budget)
    __atomic_add_fetch (&c->budget->used, n * BS, __ATOMIC_RELAXED);
}

static void
release (struct cache *c, uint64_t n)
{
  if (n == 0)
    return;
  c->used_blocks -= n;
  if (c->budget)
    __atomic_sub_fetch (&c->budget->used, n * BS, __ATOMIC_RELAXED);
}

/* After a layer change raced with another (a zero and a write of the
 * same block, or a write that failed while another succeeded): E_DISK
 * follows what the file holds now, for blocks without a RAM copy.  The
 * last change to land also reconciles last, so the count ends exact.
 */
static void
reconcile (struct cache *c, uint64_t b, uint64_t n)
{
  uint64_t i;

  for (i = b; i < b + n; i++) {
    uint32_t e = table_get (c, i);
    bool present = df_layer_block (c->layer, i) == DF_BLOCK_PRESENT;

    /* Every block ever written has its table (writers prepare it). */
    if (c->table[i / TABLE_SPAN] == NULL || entry_in_ram (e) ||
        present == !!(e & E_DISK))
      continue;
    table_put (c, i, e ^ E_DISK);
    if (present)
      charge (c, 1);
    else
      release (c, 1);
  }
}

static void
bump_undo (struct cache *c)
{
  __atomic_add_fetch (&c->undo_gen, 1, __ATOMIC_RELAXED);
}

static int
cache_pread (struct df_bdev *bdev, void *buf, uint32_t count, uint64_t offset)
{
  struct cache *c = (struct cache *) bdev;
  char *p = buf;

  while (count > 0) {
    uint64_t b = offset / BS, e = b + 1;
    uint32_t within = offset % BS, len;
    enum class cls = classify (c, b);

    if (cls == C_RAM) {
      /* RAM slots can be reused: copy under the lock, and look again. */
      pthread_mutex_lock (&c->lock);
      cls = classify (c, b);
      if (cls == C_RAM) {
        uint32_t s = entry_slot (table_get (c, b));
        len = BS - within < count ? BS - within : count;
        memcpy (p, slot_data (c, s) + within, len);
        lru_touch (c, s);
        pthread_mutex_unlock (&c->lock);
        goto next;
      }
      pthread_mutex_unlock (&c->lock);
    }
    /* Without the lock: a block written meanwhile may read old or new. */
    while (e * BS < offset + count && classify (c, e) == cls)
      e++;
    len = e * BS - offset < count ? e * BS - offset : count;
    if (cls == C_ZERO)
      memset (p, 0, len);
    else if (cls == C_DISK) {
      if (df_layer_pread (c->layer, p, len, offset) == -1)
        return -1;
    }
    else if (df_bdev_pread (c->lower, p, len, offset) == -1)
      return -1;
  next:
    p += len;
    offset += len;
    count -= len;
  }
  return 0;
}

/* Is all of [offset, offset+count) below the cache?  Without the lock,
 * as cache_pread looks: a block written meanwhile may read old or new.
 */
static bool
all_lower (const struct cache *c, uint64_t offset, uint32_t count)
{
  uint64_t b;

  for (b = offset / BS; b * BS < offset + count; b++)
    if (classify (c, b) != C_LOWER)
      return false;
  return true;
}

#define MANY 64

/* Reads wholly below the cache go down together (an NBD upstream sends
 * them at once); the others are read one by one.
 */
static int
cache_pread_many (struct df_bdev *bdev, struct df_bdev_read *r, size_t n)
{
  struct cache *c = (struct cache *) bdev;
  struct df_bdev_read low[MANY];
  size_t map[MANY], nl = 0, i;
  int rv = 0;

  for (i = 0; i < n; i++) {
    if (nl < MANY && all_lower (c, r[i].offset, r[i].count)) {
      low[nl] = r[i];
      map[nl++] = i;
      continue;
    }
    r[i].error = cache_pread (bdev, r[i].buf, r[i].count, r[i].offset) == -1
      ? errno : 0;
    if (r[i].error)
      rv = -1;
  }
  if (nl && df_bdev_pread_many (c->lower, low, nl) == -1)
    rv = -1;
  for (i = 0; i < nl; i++)
    r[map[i]].error = low[i].error;
  return rv;
}

/* Reads wholly below the cache go down to run there (an NBD upstream
 * streams them); the others run here, now.
 */
static void
cache_pread_async (struct df_bdev *bdev, struct df_bdev_aread **a, size_t n)
{
  struct cache *c = (struct cache *) bdev;
  struct df_bdev_aread *low[MANY], *here[MANY];
  size_t nl = 0, nh = 0, i;

  for (i = 0; i < n; i++) {
    if (all_lower (c, a[i]->offset, a[i]->count)) {
      low[nl++] = a[i];
      if (nl == MANY) {
        df_bdev_pread_async (c->lower, low, nl);
        nl = 0;
      }
      continue;
    }
    a[i]->error = cache_pread (bdev, a[i]->buf, a[i]->count, a[i]->offset)
      == -1 ? errno : 0;
    df_error_clear ();
    here[nh++] = a[i];
    if (nh == MANY) {
      df_bdev_aio_complete (here, nh);
      nh = 0;
    }
  }
  if (nl)
    df_bdev_pread_async (c->lower, low, nl);
  if (nh)
    df_bdev_aio_complete (here, nh);
}

/* A slot's memory is rarely in the CPU cache when a write lands in it
 * (RAM is recycled and faulted in ahead): streaming stores skip reading
 * each line before overwriting it, which takes the copy, done under the
 * lock, from about 0.7 to 0.4 us.
 */
static void
copy_to_slot (uint8_t *dst, const char *src)
{
#ifdef __SSE2__
  __m128i *d = (__m128i *) dst;
  const __m128i *s = (const __m128i *) src;
  size_t i;

  for (i = 0; i < BS / sizeof *d; i++)
    _mm_stream_si128 (d + i, _mm_loadu_si128 (s + i));
  _mm_sfence ();
#else
  memcpy (dst, src, BS);
#endif
}

/* Fills all BS bytes of the slot: recycled RAM is not cleared before
 * use (cache-ram.c), so nothing of a slot's past may survive a write.
 */
static void
copy_block (struct cache *c, uint32_t s, uint64_t b, const char *data)
{
  size_t len = (b + 1) * BS > c->bdev.size ? c->bdev.size - b * BS : BS;

  if (len == BS)
    copy_to_slot (slot_data (c, s), data);
  else {
    memcpy (slot_data (c, s), data, len);
    memset (slot_data (c, s) + len, 0, BS - len);
  }
  slot_of (c, s)->gen++;
}

/* Waits while a block of [b, b+n) is being written out from its slot
 * (lock held): the spiller reads the slot without the lock, so nobody
 * changes it meanwhile.  One round is one write of at most a few
 * hundred blocks, and it holds only the least recently used ones.
 */
static void
wait_eviction (struct cache *c, uint64_t b, uint64_t n)
{
  uint64_t i;

  if (c->evicting == 0)
    return;
  for (i = b; i < b + n; i++) {
    uint32_t e = table_get (c, i);

    if (entry_in_ram (e) && slot_of (c, entry_slot (e))->evicting) {
      pthread_cond_wait (&c->evict_cond, &c->lock);
      i = b - 1;                /* look again from the start */
    }
  }
}

/* Whole blocks into the layer file: the disk modes, and ram+disk when
 * its RAM is full.  A block that has a RAM copy gets the data there too,
 * or the copy would hide it.
 */
static int
write_file (struct cache *c, const char *data, uint64_t b, uint64_t n)
{
  uint64_t i, fresh = 0, gen;
  int r;

  pthread_mutex_lock (&c->lock);
  if (table_prepare (c, b, n) == -1)
    goto fail;
  wait_eviction (c, b, n);
  for (i = b; i < b + n; i++)
    fresh += !entry_counted (table_get (c, i));
  if (reserve (c, fresh) == -1)
    goto fail;
  for (i = b; i < b + n; i++) {
    uint32_t e = table_get (c, i);
    if (entry_in_ram (e)) {
      copy_block (c, entry_slot (e), i, data + (i - b) * BS);
      lru_touch (c, entry_slot (e));
    }
    else
      table_put (c, i, e | E_DISK);
  }
  if (c->mode == DF_CACHE_RAM_DISK)
    c->bypassed += n;
  gen = __atomic_load_n (&c->undo_gen, __ATOMIC_RELAXED);
  pthread_mutex_unlock (&c->lock);

  r = df_layer_write_blocks (c->layer, data, b, n);
  if (r == -1 || __atomic_load_n (&c->undo_gen, __ATOMIC_RELAXED) != gen) {
    pthread_mutex_lock (&c->lock);
    if (r == -1)
      bump_undo (c);
    reconcile (c, b, n);
    pthread_mutex_unlock (&c->lock);
  }
  return r;

 fail:
  pthread_mutex_unlock (&c->lock);
  return -1;
}

/* Whole blocks into RAM (lock held): 0 done, 1 to the file instead
 * (ram+disk without room), 2 more RAM needed first (ram), -1 error.
 */
static int
ram_try (struct cache *c, const char *data, uint64_t b, uint64_t n)
{
  uint64_t i, need = 0, fresh = 0;

  if (table_prepare (c, b, n) == -1)
    return -1;
  wait_eviction (c, b, n);
  for (i = b; i < b + n; i++) {
    uint32_t e = table_get (c, i);
    need += !entry_in_ram (e);
    fresh += !entry_counted (e);
  }
  if (c->nfree < need || c->ram_used + need > c->ram_max) {
    spiller_kick (c);
    if (c->mode == DF_CACHE_RAM_DISK)
      return 1;
    if (ram_can_grow (c) || c->mapping > 0)
      return 2;
    /* Every slot is in use: the limits say why, or RAM is short. */
    if (reserve (c, fresh) == -1)
      return -1;
    release (c, fresh);
    return df_error (ENOMEM, "write cache: no RAM left (%" PRIu32 " blocks)",
                     c->ram_used);
  }
  if (reserve (c, fresh) == -1)
    return -1;
  for (i = b; i < b + n; i++, data += BS) {
    uint32_t e = table_get (c, i), s;

    if (entry_in_ram (e)) {
      s = entry_slot (e);
      lru_touch (c, s);
    }
    else {
      s = slot_take (c, i);
      table_put (c, i, (e & E_DISK) | (s + 2));
    }
    copy_block (c, s, i, data);
  }
  spiller_kick (c);
  return 0;
}

static int
write_ram (struct cache *c, const char *data, uint64_t b, uint64_t n)
{
  for (;;) {
    int r;

    pthread_mutex_lock (&c->lock);
    r = ram_try (c, data, b, n);
    pthread_mutex_unlock (&c->lock);
    if (r == 1)
      return write_file (c, data, b, n);
    if (r != 2)
      return r;
    if (ram_grow (c) == -1)
      return -1;
  }
}

static int
write_whole (void *opaque, const char *data, uint64_t b, uint64_t n)
{
  struct cache *c = opaque;

  if (c->mode == DF_CACHE_RAM || c->mode == DF_CACHE_RAM_DISK)
    return write_ram (c, data, b, n);
  return write_file (c, data, b, n);
}

/* Zeroes whole blocks: they read as zeros and hold no space. */
static int
zero_whole (void *opaque, const char *unused, uint64_t b, uint64_t n)
{
  struct cache *c = opaque;
  uint64_t i, freed = 0;
  int r;

  (void) unused;
  pthread_mutex_lock (&c->lock);
  /* ram mode marks zeros in the table: room for the marks first, so
   * that a failure changes nothing.
   */
  if (c->mode == DF_CACHE_RAM && table_prepare (c, b, n) == -1) {
    pthread_mutex_unlock (&c->lock);
    return -1;
  }
  for (i = b; i < b + n; i++) {
    uint32_t e = table_get (c, i);

    if (entry_in_ram (e) && slot_of (c, entry_slot (e))->evicting) {
      /* Being written out: wait for that round (one write) to end, then
       * look again.  Zeroing the slot instead would keep a block of
       * zeros in RAM, counted as data, until it is zeroed again.
       */
      pthread_cond_wait (&c->evict_cond, &c->lock);
      i--;
      continue;
    }
    freed += entry_counted (e);
    if (entry_in_ram (e)) {
      lru_unlink (c, entry_slot (e));
      slot_put (c, entry_slot (e));
    }
    table_put (c, i, c->mode == DF_CACHE_RAM ? E_ZERO : E_NONE);
  }
  release (c, freed);
  if (c->layer)
    bump_undo (c);
  pthread_mutex_unlock (&c->lock);
  if (c->layer == NULL)
    return 0;

  r = df_layer_set_blocks (c->layer, b, n, DF_BLOCK_ZERO);
  pthread_mutex_lock (&c->lock);
  bump_undo (c);
  reconcile (c, b, n);
  pthread_mutex_unlock (&c->lock);
  return r;
}

/* Part of one block: read it, patch, write it whole (data NULL: zeros). */
static int
write_partial (void *opaque, uint64_t b, const char *data, uint32_t len,
               uint32_t within)
{
  struct cache *c = opaque;
  char tmp[BS];
  uint32_t blen = (b + 1) * BS > c->bdev.size ? c->bdev.size - b * BS : BS;
  SCOPED_LOCK (&c->rmw_lock);

  if (cache_pread (&c->bdev, tmp, blen, b * BS) == -1)
    return -1;
  if (data)
    memcpy (tmp + within, data, len);
  else
    memset (tmp + within, 0, len);
  return write_whole (c, tmp, b, 1);
}

static int
cache_flush (struct df_bdev *bdev)
{
  struct cache *c = (struct cache *) bdev;
  int r;

  if (c->layer && df_layer_flush (c->layer) == -1)
    return -1;
  /* A block the spiller failed to write is still in RAM; say so. */
  pthread_mutex_lock (&c->lock);
  r = take_bg_error (c);
  pthread_mutex_unlock (&c->lock);
  return r;
}

static int
cache_pwrite (struct df_bdev *bdev, const void *buf, uint32_t count,
              uint64_t offset, uint32_t flags)
{
  struct cache *c = (struct cache *) bdev;

  if (df_bdev_for_blocks (c->bdev.size, BS, buf, count, offset, write_whole,
                          write_partial, c) == -1)
    return -1;
  return (flags & DF_FUA) ? cache_flush (bdev) : 0;
}

static int
cache_zero (struct df_bdev *bdev, uint32_t count, uint64_t offset,
            uint32_t flags)
{
  struct cache *c = (struct cache *) bdev;

  /* Whole blocks are marked; a part of one would be written as data. */
  if ((flags & DF_FAST_ZERO) &&
      (offset % BS || (count % BS && offset + count != c->bdev.size)))
    return df_error (ENOTSUP, "zeroing part of a %d byte block is not fast",
                     BS);
  if (df_bdev_for_blocks (c->bdev.size, BS, NULL, count, offset, zero_whole,
                          write_partial, c) == -1)
    return -1;
  return (flags & DF_FUA) ? cache_flush (bdev) : 0;
}

static int
cache_trim (struct df_bdev *bdev, uint32_t count, uint64_t offset,
            uint32_t flags)
{
  struct cache *c = (struct cache *) bdev;

  /* Only whole blocks are dropped; a trim is advice. */
  if (df_bdev_for_blocks (c->bdev.size, BS, NULL, count, offset, zero_whole,
                          NULL, c) == -1)
    return -1;
  return (flags & DF_FUA) ? cache_flush (bdev) : 0;
}

struct lower_extents {
  df_extent_fn fn;
  void *opaque;
  uint64_t end;
};

static int
forward_extent (void *opaque, uint64_t offset, uint64_t length, uint32_t type)
{
  struct lower_extents *le = opaque;

  if (offset >= le->end)
    return 0;
  if (offset + length > le->end)
    length = le->end - offset;
  return le->fn (le->opaque, offset, length, type);
}

/* Without the lock, like reads: a block written meanwhile may show
 * either way.
 */
static int
cache_extents (struct df_bdev *bdev, uint32_t count, uint64_t offset,
               df_extent_fn fn, void *opaque)
{
  struct cache *c = (struct cache *) bdev;
  uint64_t end = offset + count;

  while (offset < end) {
    uint64_t b = offset / BS, e = b + 1, run_end;
    enum class cls = classify (c, b);

    if (cls == C_DISK)
      cls = C_RAM;              /* both are data */
    while (e * BS < end) {
      enum class n = classify (c, e);
      if ((n == C_DISK ? C_RAM : n) != cls)
        break;
      e++;
    }
    run_end = e * BS < end ? e * BS : end;
    if (cls == C_LOWER) {
      struct lower_extents le = { fn, opaque, run_end };
      /* The lower device describes its part; ask until it is covered. */
      if (df_bdev_extents (c->lower, run_end - offset, offset, forward_extent,
                           &le) == -1)
        return -1;
      return 0;                 /* partial answers are allowed */
    }
    if (fn (opaque, offset, run_end - offset,
            cls == C_ZERO ? DF_EXTENT_HOLE | DF_EXTENT_ZERO : 0) == -1)
      return -1;
    offset = run_end;
  }
  return 0;
}

static void
cache_close (struct df_bdev *bdev)
{
  struct cache *c = (struct cache *) bdev;
  size_t i;

  spiller_stop (c);
  df_layer_close (c->layer);
  if (c->budget)
    __atomic_sub_fetch (&c->budget->used, c->used_blocks * BS, __ATOMIC_RELAXED);
  for (i = 0; c->table && i < c->ntables; i++)
    free (c->table[i]);
  free (c->table);
  ram_free (c);
  pthread_cond_destroy (&c->spill_cond);
  pthread_cond_destroy (&c->evict_cond);
  pthread_mutex_destroy (&c->lock);
  pthread_mutex_destroy (&c->rmw_lock);
  free (c);
}

static const struct df_bdev_ops cache_ops = {
  .name = "cache",
  .pread = cache_pread,
  .pwrite = cache_pwrite,
  .flush = cache_flush,
  .zero = cache_zero,
  .trim = cache_trim,
  .extents = cache_extents,
  .close = cache_close,
  .pread_many = cache_pread_many,
  .pread_async = cache_pread_async,
};

/* A new persistent cache survives a crash only once its directory entry
 * is durable; a new cache that cannot be made so is not left behind.
 */
static int
sync_new_file (const char *path)
{
  CLEANUP_FREE char *dir = strdup (path);
  char *slash = dir ? strrchr (dir, '/') : NULL;

  if (dir == NULL)
    return df_error_errno ("%s", path);
  if (slash == NULL)
    return df_fsync_dir (".");
  *slash = '\0';
  return df_fsync_dir (slash == dir ? "/" : dir);
}

/* Opens or creates the layer file of a disk mode cache. */
static struct df_layer *
open_cache_layer (const struct cache *c, const struct df_cache_params *p)
{
  struct df_layer *l;
  const struct df_layer_info *li;
  char a[33];

  l = df_layer_open (p->path, true);
  if (l == NULL && errno == ENOENT) {
    df_error_clear ();          /* a new cache: create it */
    l = df_layer_create (p->path, c->bdev.size, BS, p->parent_id,
                         p->parent_hash, 0);
    if (l && p->mode == DF_CACHE_PERSISTENT && sync_new_file (p->path) == -1) {
      struct df_error_saved saved;
      df_error_save (&saved);
      df_layer_close (l);
      unlink (p->path);
      df_error_restore (&saved);
      df_error_prefix ("new persistent write cache");
      return NULL;
    }
    return l;
  }
  if (l == NULL)
    return NULL;
  li = df_layer_info (l);
  if (li->block_size != BS || li->size != c->bdev.size ||
      memcmp (li->parent_id, p->parent_id, DF_LAYER_ID_LEN) != 0 ||
      memcmp (li->parent_hash, p->parent_hash, DF_HASH_LEN) != 0) {
    df_error (ESTALE, "%s: this cache was made on another version (parent "
              "%s)", p->path, df_hex (li->parent_id, DF_LAYER_ID_LEN, a));
    df_layer_close (l);
    return NULL;
  }
  return l;
}

/* A resumed cache already holds data: count it. */
static int
count_resumed (struct cache *c)
{
  uint64_t b;

  for (b = 0; b < c->nblocks; b++)
    if (df_layer_block (c->layer, b) == DF_BLOCK_PRESENT) {
      if (table_prepare (c, b, 1) == -1)
        return -1;
      table_put (c, b, E_DISK);
      c->used_blocks++;
    }
  return 0;
}

static int
setup_mode (struct cache *c, const struct df_cache_params *p)
{
  uint64_t cap;

  switch (p->mode) {
  case DF_CACHE_RAM:
    c->ram_max = UINT32_MAX;
    cap = c->limit_blocks && c->limit_blocks < c->nblocks ? c->limit_blocks
      : c->nblocks;
    return ram_setup (c, cap);
  case DF_CACHE_DISK:
  case DF_CACHE_RAM_DISK:
  case DF_CACHE_PERSISTENT:
    if (p->path == NULL || p->parent_id == NULL)
      return df_error (EINVAL, "a %s write cache needs a file and a parent",
                       df_cache_mode_name (p->mode));
    if (p->mode == DF_CACHE_RAM_DISK) {
      cap = p->ram_limit / BS ? p->ram_limit / BS : 1;
      if (cap > c->nblocks)
        cap = c->nblocks;
      if (ram_setup (c, cap) == -1)
        return -1;
      c->ram_max = cap;
      c->spill_low = cap / 8 ? cap / 8 : 1;
      c->spill_high = cap / 4 > c->spill_low ? cap / 4 : c->spill_low;
    }
    c->layer = open_cache_layer (c, p);
    if (c->layer == NULL)
      return -1;
    return count_resumed (c);
  default:
    return df_error (EINVAL, "write cache mode %s is not a cache",
                     df_cache_mode_name (p->mode));
  }
}

struct df_bdev *
df_cache_open (struct df_bdev *lower, const struct df_cache_params *p)
{
  struct cache *c = calloc (1, sizeof *c);
  pthread_condattr_t ca;

  if (c == NULL) {
    df_error_errno ("write cache");
    return NULL;
  }
  c->bdev.ops = &cache_ops;
  c->bdev.size = lower->size;
  c->bdev.flags = DF_BDEV_NATIVE_FUA | (lower->flags & DF_BDEV_ASYNC);
  c->lower = lower;
  c->mode = p->mode;
  c->nblocks = (lower->size + BS - 1) / BS;
  c->limit_blocks = p->limit / BS;
  c->free_head = c->lru_head = c->lru_tail = NIL;
  pthread_mutex_init (&c->lock, NULL);
  pthread_mutex_init (&c->rmw_lock, NULL);
  pthread_condattr_init (&ca);
  pthread_condattr_setclock (&ca, CLOCK_MONOTONIC);
  pthread_cond_init (&c->spill_cond, &ca);
  pthread_condattr_destroy (&ca);
  pthread_cond_init (&c->evict_cond, NULL);
  c->ntables = (c->nblocks + TABLE_SPAN - 1) / TABLE_SPAN;
  c->table = calloc (c->ntables ? c->ntables : 1, sizeof *c->table);
  if (c->table == NULL) {
    df_error_errno ("write cache");
    goto fail;
  }
  if (setup_mode (c, p) == -1)
    goto fail;
  c->budget = p->budget;
  if (c->budget)
    __atomic_add_fetch (&c->budget->used, c->used_blocks * BS, __ATOMIC_RELAXED);
  return &c->bdev;

 fail:
  {
    struct df_error_saved saved;
    df_error_save (&saved);
    c->budget = NULL;
    c->used_blocks = 0;
    cache_close (&c->bdev);
    df_error_restore (&saved);
  }
  return NULL;
}

void
df_cache_stats (struct df_bdev *bdev, struct df_cache_stats *out)
{
  struct cache *c = (struct cache *) bdev;
  SCOPED_LOCK (&c->lock);

  out->ram_blocks = c->ram_used;
  out->disk_blocks = c->used_blocks - c->ram_used;
  out->used_bytes = c->used_blocks * BS;
  out->enospc = c->enospc;
  out->spilled = c->spilled;
  out->bypassed = c->bypassed;
  out->spill_errors = c->spill_errors;
}
