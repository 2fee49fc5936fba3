/* diskfarm — device write caches (see cache.h). */
#include <config.h>

#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "cache/cache.h"
#include "cleanup.h"
#include "error.h"
#include "util.h"

#define BS DF_CACHE_BLOCK
#define TABLE_SPAN 512          /* blocks per second-level table */
#define ARENA_SLOTS 256         /* 1 MiB of RAM per arena */
#define NIL UINT32_MAX

/* RAM table entries: 0 not in RAM, 1 zero (ram mode only), n >= 2 slot n-2. */
#define E_NONE 0
#define E_ZERO 1

struct slot {
  uint64_t block;
  uint32_t prev, next;          /* LRU list, or free list (next) */
  uint32_t gen;                 /* bumped by every write of the block */
  bool dirty;                   /* not yet in the layer file */
  bool evicting;                /* off the LRU list, being written out */
};

#define EVICT_BATCH 32

struct cache {
  struct df_bdev bdev;
  struct df_bdev *lower;
  enum df_cache_mode mode;
  uint64_t nblocks;
  uint64_t limit_blocks;        /* 0: none */
  uint32_t ram_slots_max;       /* ram+disk: spill beyond this */
  struct df_cache_budget *budget;
  struct df_layer *layer;       /* disk modes */

  pthread_mutex_t lock;         /* everything below */
  pthread_mutex_t rmw_lock;     /* partial-block writes */
  uint32_t **table;
  uint64_t ntables;
  uint8_t **arenas;
  size_t narenas;
  struct slot *slots;
  uint32_t nslots;              /* slots ever allocated */
  uint32_t free_head;
  uint32_t lru_head, lru_tail;  /* most recently used at the head */
  uint32_t ram_used;
  uint64_t used_blocks;
  uint64_t enospc;
};

enum class { C_RAM, C_ZERO, C_DISK, C_LOWER };

/* The RAM table is read without the lock on the read path (a reader
 * racing a writer of the same block may see either, as NBD allows), so
 * its words and second-level pointers are atomic.  Second levels are
 * freed only with the cache.
 */
static uint32_t
table_get (const struct cache *c, uint64_t b)
{
  const uint32_t *t = __atomic_load_n (&c->table[b / TABLE_SPAN], __ATOMIC_ACQUIRE);

  return t ? __atomic_load_n (&t[b % TABLE_SPAN], __ATOMIC_RELAXED) : E_NONE;
}

static int
table_set (struct cache *c, uint64_t b, uint32_t v)
{
  uint32_t **tp = &c->table[b / TABLE_SPAN];
  uint32_t *t = *tp;

  if (t == NULL) {
    if (v == E_NONE)
      return 0;
    t = calloc (TABLE_SPAN, sizeof *t);
    if (t == NULL)
      return df_error_errno ("write cache table");
    __atomic_store_n (tp, t, __ATOMIC_RELEASE);
  }
  __atomic_store_n (&t[b % TABLE_SPAN], v, __ATOMIC_RELAXED);
  return 0;
}

static uint8_t *
slot_data (const struct cache *c, uint32_t s)
{
  return c->arenas[s / ARENA_SLOTS] + (size_t) (s % ARENA_SLOTS) * BS;
}

static void
lru_unlink (struct cache *c, uint32_t s)
{
  struct slot *sl = &c->slots[s];

  if (sl->prev != NIL) c->slots[sl->prev].next = sl->next;
  else c->lru_head = sl->next;
  if (sl->next != NIL) c->slots[sl->next].prev = sl->prev;
  else c->lru_tail = sl->prev;
}

static void
lru_push (struct cache *c, uint32_t s)
{
  struct slot *sl = &c->slots[s];

  sl->prev = NIL;
  sl->next = c->lru_head;
  if (c->lru_head != NIL)
    c->slots[c->lru_head].prev = s;
  c->lru_head = s;
  if (c->lru_tail == NIL)
    c->lru_tail = s;
}

static void
lru_touch (struct cache *c, uint32_t s)
{
  if (!c->slots[s].evicting && c->lru_head != s) {
    lru_unlink (c, s);
    lru_push (c, s);
  }
}

/* A free RAM slot, growing the arenas; NIL with a message on ENOMEM. */
static uint32_t
slot_alloc (struct cache *c)
{
  uint32_t s;

  if (c->free_head != NIL) {
    s = c->free_head;
    c->free_head = c->slots[s].next;
  }
  else {
    if (c->nslots % ARENA_SLOTS == 0) {
      size_t n = c->nslots / ARENA_SLOTS;
      uint8_t **a = realloc (c->arenas, (n + 1) * sizeof *a);
      struct slot *sl = realloc (c->slots, (c->nslots + ARENA_SLOTS) * sizeof *sl);
      if (a) c->arenas = a;
      if (sl) c->slots = sl;
      if (a == NULL || sl == NULL || (a[n] = malloc ((size_t) ARENA_SLOTS * BS)) == NULL) {
        df_error (ENOMEM, "write cache: out of memory");
        return NIL;
      }
      c->narenas = n + 1;
    }
    s = c->nslots++;
  }
  c->slots[s].dirty = false;
  c->slots[s].evicting = false;
  c->slots[s].gen = 0;
  c->ram_used++;
  return s;
}

static void
slot_free (struct cache *c, uint32_t s)
{
  lru_unlink (c, s);
  c->slots[s].next = c->free_head;
  c->free_head = s;
  c->ram_used--;
}

/* Is block b data (in RAM or in the layer file)?  Lock held. */
static bool
is_data (const struct cache *c, uint64_t b)
{
  uint32_t e = table_get (c, b);

  if (e >= 2)
    return true;
  if (e == E_ZERO || c->layer == NULL)
    return false;
  return df_layer_block (c->layer, b) == DF_BLOCK_PRESENT;
}

static enum class
classify (const struct cache *c, uint64_t b)
{
  uint32_t e = table_get (c, b);

  if (e >= 2)
    return C_RAM;
  if (e == E_ZERO)
    return C_ZERO;
  if (c->layer)
    switch (df_layer_block (c->layer, b)) {
    case DF_BLOCK_PRESENT: return C_DISK;
    case DF_BLOCK_ZERO: return C_ZERO;
    case DF_BLOCK_ABSENT: break;
    }
  return C_LOWER;
}

/* Accounts n more data blocks, or fails with ENOSPC.  Atomic, so the
 * disk modes need no lock to write.
 */
static int
reserve (struct cache *c, uint64_t n)
{
  uint64_t used = __atomic_load_n (&c->used_blocks, __ATOMIC_RELAXED);

  if (n == 0)
    return 0;
  do {
    if (c->limit_blocks && used + n > c->limit_blocks)
      goto full;
  } while (!__atomic_compare_exchange_n (&c->used_blocks, &used, used + n, false,
                                         __ATOMIC_RELAXED, __ATOMIC_RELAXED));
  if (c->budget) {
    uint64_t bytes = n * BS;
    uint64_t total = __atomic_add_fetch (&c->budget->used, bytes, __ATOMIC_RELAXED);
    if (c->budget->limit && total > c->budget->limit) {
      __atomic_sub_fetch (&c->budget->used, bytes, __ATOMIC_RELAXED);
      __atomic_sub_fetch (&c->used_blocks, n, __ATOMIC_RELAXED);
      goto full;
    }
  }
  return 0;
 full:
  __atomic_add_fetch (&c->enospc, 1, __ATOMIC_RELAXED);
  return df_error (ENOSPC, "write cache is full (%" PRIu64 " of %" PRIu64
                   " blocks used)", used, c->limit_blocks);
}

static void
release (struct cache *c, uint64_t n)
{
  if (n == 0)
    return;
  __atomic_sub_fetch (&c->used_blocks, n, __ATOMIC_RELAXED);
  if (c->budget)
    __atomic_sub_fetch (&c->budget->used, n * BS, __ATOMIC_RELAXED);
}

/* ram+disk: makes room for n more RAM blocks by writing the least
 * recently used ones to the layer file, EVICT_BATCH at a time, with the
 * lock dropped during the I/O.  A block written meanwhile stays in RAM.
 * The RAM limit is soft: when every slot is being evicted by other
 * threads, the caller goes over it a little rather than wait.
 */
static int
make_room (struct cache *c, uint64_t n)
{
  uint32_t batch[EVICT_BATCH], gens[EVICT_BATCH];
  uint64_t blocks[EVICT_BATCH];
  const uint8_t *data[EVICT_BATCH];
  bool dirty[EVICT_BATCH];
  size_t nb, i;
  int r = 0;

  pthread_mutex_lock (&c->lock);
  while (r == 0 && c->ram_used + n > c->ram_slots_max && c->lru_tail != NIL) {
    for (nb = 0; nb < EVICT_BATCH && c->lru_tail != NIL; nb++) {
      uint32_t s = c->lru_tail;
      lru_unlink (c, s);
      c->slots[s].evicting = true;
      batch[nb] = s;
      gens[nb] = c->slots[s].gen;
      /* Taken under the lock: another writer may grow (realloc) the
       * slot and arena arrays meanwhile; the arenas themselves stay.
       */
      blocks[nb] = c->slots[s].block;
      dirty[nb] = c->slots[s].dirty;
      data[nb] = slot_data (c, s);
    }
    pthread_mutex_unlock (&c->lock);
    for (i = 0; i < nb && r == 0; i++) {
      /* The block and the data only change under the lock by writers
       * of the same block, which bump gen: checked below.
       */
      if (dirty[i] &&
          df_layer_write_blocks (c->layer, data[i], blocks[i], 1) == -1)
        r = -1;
    }
    pthread_mutex_lock (&c->lock);
    for (i = 0; i < nb; i++) {
      uint32_t s = batch[i];
      struct slot *sl = &c->slots[s];
      sl->evicting = false;
      if (r == 0 && sl->gen == gens[i]) {
        table_set (c, sl->block, E_NONE);
        c->ram_used--;
        sl->next = c->free_head;
        c->free_head = s;
      }
      else {
        sl->dirty = sl->dirty || sl->gen != gens[i];
        lru_push (c, s);
      }
    }
  }
  pthread_mutex_unlock (&c->lock);
  return r;
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
        uint32_t s = table_get (c, b) - 2;
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

/* Whole blocks [b, b+n) from data into RAM (ram, ram+disk). */
static int
write_ram (struct cache *c, const char *data, uint64_t b, uint64_t n)
{
  uint64_t i, fresh = 0;

  if (c->mode == DF_CACHE_RAM_DISK && make_room (c, n) == -1)
    return -1;
  SCOPED_LOCK (&c->lock);
  for (i = b; i < b + n; i++)
    fresh += !is_data (c, i);
  if (reserve (c, fresh) == -1)
    return -1;
  for (i = b; i < b + n; i++, data += BS) {
    uint32_t e = table_get (c, i), s;
    size_t len = (i + 1) * BS > c->bdev.size ? c->bdev.size - i * BS : BS;

    if (e >= 2) {
      s = e - 2;
      lru_touch (c, s);
    }
    else {
      s = slot_alloc (c);
      if (s == NIL || table_set (c, i, s + 2) == -1)
        return -1;
      c->slots[s].block = i;
      c->slots[s].evicting = false;
      lru_push (c, s);
    }
    memcpy (slot_data (c, s), data, len);
    if (len < BS)
      memset (slot_data (c, s) + len, 0, BS - len);
    c->slots[s].dirty = true;
    c->slots[s].gen++;
  }
  return 0;
}

/* Whole blocks into the layer file (disk, persistent): no cache lock. */
static int
write_disk (struct cache *c, const char *data, uint64_t b, uint64_t n)
{
  uint64_t i, fresh = 0;

  for (i = b; i < b + n; i++)
    fresh += df_layer_block (c->layer, i) != DF_BLOCK_PRESENT;
  if (reserve (c, fresh) == -1)
    return -1;
  if (df_layer_write_blocks (c->layer, data, b, n) == -1) {
    release (c, fresh);
    return -1;
  }
  return 0;
}

static int
write_whole (void *opaque, const char *data, uint64_t b, uint64_t n)
{
  struct cache *c = opaque;

  if (c->mode == DF_CACHE_RAM || c->mode == DF_CACHE_RAM_DISK)
    return write_ram (c, data, b, n);
  return write_disk (c, data, b, n);
}

/* Zeroes whole blocks: they read as zeros and hold no space. */
static int
zero_whole (void *opaque, const char *unused, uint64_t b, uint64_t n)
{
  struct cache *c = opaque;
  uint64_t i, freed = 0, run = b;
  SCOPED_LOCK (&c->lock);

  (void) unused;
  for (i = b; i <= b + n; i++) {
    uint32_t e = i < b + n ? table_get (c, i) : E_NONE;
    bool evicting = i < b + n && e >= 2 && c->slots[e - 2].evicting;

    /* The layer part goes in runs, cut where a block is being evicted. */
    if (c->layer && run < i && (evicting || i == b + n) &&
        df_layer_set_blocks (c->layer, run, i - run, DF_BLOCK_ZERO) == -1)
      return -1;
    if (i == b + n)
      break;
    if (evicting) {
      /* Being written out: zero it in RAM, where it stays (make_room
       * sees the new generation).
       */
      memset (slot_data (c, e - 2), 0, BS);
      c->slots[e - 2].dirty = true;
      c->slots[e - 2].gen++;
      run = i + 1;
      continue;
    }
    freed += is_data (c, i);
    if (e >= 2)
      slot_free (c, e - 2);
    if (c->mode == DF_CACHE_RAM)
      table_set (c, i, E_ZERO);
    else if (e >= 2)
      table_set (c, i, E_NONE);
  }
  release (c, freed);
  return 0;
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

  return c->layer ? df_layer_flush (c->layer) : 0;
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

static int
cache_extents (struct df_bdev *bdev, uint32_t count, uint64_t offset,
               df_extent_fn fn, void *opaque)
{
  struct cache *c = (struct cache *) bdev;
  uint64_t end = offset + count;

  while (offset < end) {
    uint64_t b = offset / BS, e = b + 1, run_end;
    enum class cls;

    pthread_mutex_lock (&c->lock);
    cls = classify (c, b);
    if (cls == C_DISK)
      cls = C_RAM;              /* both are data */
    while (e * BS < end) {
      enum class n = classify (c, e);
      if ((n == C_DISK ? C_RAM : n) != cls)
        break;
      e++;
    }
    pthread_mutex_unlock (&c->lock);
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

  df_layer_close (c->layer);
  if (c->budget)
    __atomic_sub_fetch (&c->budget->used, c->used_blocks * BS, __ATOMIC_RELAXED);
  for (i = 0; i < c->ntables; i++)
    free (c->table[i]);
  free (c->table);
  for (i = 0; i < c->narenas; i++)
    free (c->arenas[i]);
  free (c->arenas);
  free (c->slots);
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
};

/* Opens or creates the layer file of a disk mode cache. */
static struct df_layer *
open_cache_layer (const struct cache *c, const struct df_cache_params *p)
{
  struct df_layer *l;
  const struct df_layer_info *li;
  char a[33];

  l = df_layer_open (p->path, true);
  if (l == NULL && errno == ENOENT) {
    l = df_layer_create (p->path, c->bdev.size, BS, p->parent_id,
                         p->parent_hash, 0);
    if (l && p->mode == DF_CACHE_PERSISTENT) {
      CLEANUP_FREE char *dir = strdup (p->path);
      char *slash = dir ? strrchr (dir, '/') : NULL;
      if (slash) {
        *slash = '\0';
        df_fsync_dir (dir);
      }
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

struct df_bdev *
df_cache_open (struct df_bdev *lower, const struct df_cache_params *p)
{
  struct cache *c = calloc (1, sizeof *c);

  if (c == NULL) {
    df_error_errno ("write cache");
    return NULL;
  }
  c->bdev.ops = &cache_ops;
  c->bdev.size = lower->size;
  c->bdev.flags = DF_BDEV_NATIVE_FUA;
  c->lower = lower;
  c->mode = p->mode;
  c->nblocks = (lower->size + BS - 1) / BS;
  c->limit_blocks = p->limit / BS;
  c->ram_slots_max = p->ram_limit / BS ? p->ram_limit / BS : 1;
  c->free_head = c->lru_head = c->lru_tail = NIL;
  pthread_mutex_init (&c->lock, NULL);
  pthread_mutex_init (&c->rmw_lock, NULL);
  c->ntables = (c->nblocks + TABLE_SPAN - 1) / TABLE_SPAN;
  c->table = calloc (c->ntables ? c->ntables : 1, sizeof *c->table);
  if (c->table == NULL) {
    df_error_errno ("write cache");
    goto fail;
  }
  switch (p->mode) {
  case DF_CACHE_RAM:
    break;
  case DF_CACHE_DISK:
  case DF_CACHE_RAM_DISK:
  case DF_CACHE_PERSISTENT:
    if (p->path == NULL || p->parent_id == NULL) {
      df_error (EINVAL, "a %s write cache needs a file and a parent",
                df_cache_mode_name (p->mode));
      goto fail;
    }
    c->layer = open_cache_layer (c, p);
    if (c->layer == NULL)
      goto fail;
    /* A resumed cache already holds data. */
    c->used_blocks = df_layer_count (c->layer, DF_BLOCK_PRESENT);
    break;
  default:
    df_error (EINVAL, "write cache mode %s is not a cache",
              df_cache_mode_name (p->mode));
    goto fail;
  }
  c->budget = p->budget;
  if (c->budget)
    __atomic_add_fetch (&c->budget->used, c->used_blocks * BS, __ATOMIC_RELAXED);
  return &c->bdev;

 fail:
  c->budget = NULL;
  c->used_blocks = 0;
  cache_close (&c->bdev);
  return NULL;
}

void
df_cache_stats (struct df_bdev *bdev, struct df_cache_stats *out)
{
  struct cache *c = (struct cache *) bdev;
  SCOPED_LOCK (&c->lock);

  out->ram_blocks = c->ram_used;
  out->disk_blocks = c->layer ? df_layer_count (c->layer, DF_BLOCK_PRESENT) : 0;
  /* Counted without the lock by the disk modes' writers (reserve). */
  out->used_bytes = __atomic_load_n (&c->used_blocks, __ATOMIC_RELAXED) * BS;
  out->enospc = __atomic_load_n (&c->enospc, __ATOMIC_RELAXED);
}

int
df_cache_spill (struct df_bdev *bdev)
{
  struct cache *c = (struct cache *) bdev;

  if (c->layer == NULL)
    return df_error (EINVAL, "a ram write cache has no file to spill to");
  {
    SCOPED_LOCK (&c->lock);
    uint32_t s;
    for (s = c->lru_head; s != NIL; s = c->slots[s].next)
      if (c->slots[s].dirty) {
        if (df_layer_write_blocks (c->layer, slot_data (c, s),
                                   c->slots[s].block, 1) == -1)
          return -1;
        c->slots[s].dirty = false;
      }
  }
  return df_layer_flush (c->layer);
}
