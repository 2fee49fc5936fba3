/* diskfarm — layer chains (see chain.h). */
#include <config.h>

#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "chain/chain.h"
#include "cleanup.h"
#include "error.h"
#include "util.h"

#define IDX_ZERO 0xff           /* no layer holds the block: zeros */

struct chain {
  struct df_bdev bdev;
  struct df_layer **layers;
  size_t n;
  uint32_t block_size;
  uint64_t nblocks;
  uint8_t *idx;                 /* per block: layer index or IDX_ZERO */
  pthread_mutex_t rmw_lock;     /* partial-block writes */
};

static inline uint8_t
idx_get (const struct chain *c, uint64_t b)
{
  return __atomic_load_n (&c->idx[b], __ATOMIC_RELAXED);
}

static inline void
idx_set (struct chain *c, uint64_t b, uint64_t count, uint8_t v)
{
  uint64_t i;

  for (i = b; i < b + count; i++)
    __atomic_store_n (&c->idx[i], v, __ATOMIC_RELAXED);
}

/* The run of [offset, offset+count) that starts at offset: how long it
 * is, and the layer holding it (*v, or IDX_ZERO), up to where another
 * layer takes over.
 */
static uint32_t
chain_run (const struct chain *c, uint32_t count, uint64_t offset,
           uint8_t *v)
{
  const uint32_t bs = c->block_size;
  uint64_t b = offset / bs, end_b = b + 1, run_end;

  *v = idx_get (c, b);
  while (end_b * bs < offset + count && idx_get (c, end_b) == *v)
    end_b++;
  run_end = end_b * bs;
  return run_end - offset < count ? run_end - offset : count;
}

static int
chain_pread (struct df_bdev *bdev, void *buf, uint32_t count, uint64_t offset)
{
  struct chain *c = (struct chain *) bdev;
  char *p = buf;

  while (count > 0) {
    uint8_t v;
    uint32_t len = chain_run (c, count, offset, &v);

    if (v == IDX_ZERO)
      memset (p, 0, len);
    else if (df_layer_pread (c->layers[v], p, len, offset) == -1)
      return -1;
    p += len;
    offset += len;
    count -= len;
  }
  return 0;
}

/* A sealed chain never changes, so its layers' cached data can be
 * handed out as memory (df_layer_peek).
 */
static int
chain_peek (struct df_bdev *bdev, uint32_t count, uint64_t offset,
            struct df_bdev_peek *out)
{
  struct chain *c = (struct chain *) bdev;
  uint8_t v;

  out->len = chain_run (c, count, offset, &v);
  out->zero = v == IDX_ZERO;
  out->data = NULL;
  if (out->zero || !(c->bdev.flags & DF_BDEV_RDONLY))
    return 0;
  return df_layer_peek (c->layers[v], offset, out->len, &out->data);
}

/* Writes part of one block: read it through the chain, patch, write it
 * whole into the top layer.  data == NULL writes zeros.
 */
static int
write_partial (void *opaque, uint64_t b, const char *data, uint32_t len,
               uint32_t within)
{
  struct chain *c = opaque;
  const uint32_t bs = c->block_size;
  uint64_t start = b * bs;
  uint32_t blen = start + bs > c->bdev.size ? c->bdev.size - start : bs;
  CLEANUP_FREE char *tmp = malloc (bs);
  SCOPED_LOCK (&c->rmw_lock);

  if (tmp == NULL)
    return df_error_errno ("chain write");
  if (chain_pread (&c->bdev, tmp, blen, start) == -1)
    return -1;
  if (data)
    memcpy (tmp + within, data, len);
  else
    memset (tmp + within, 0, len);
  if (df_layer_write_blocks (c->layers[c->n - 1], tmp, b, 1) == -1)
    return -1;
  idx_set (c, b, 1, c->n - 1);
  return 0;
}

static int
write_whole (void *opaque, const char *data, uint64_t b, uint64_t n)
{
  struct chain *c = opaque;

  if (df_layer_write_blocks (c->layers[c->n - 1], data, b, n) == -1)
    return -1;
  idx_set (c, b, n, c->n - 1);
  return 0;
}

static int
zero_whole (void *opaque, const char *data, uint64_t b, uint64_t n)
{
  struct chain *c = opaque;

  (void) data;
  if (df_layer_set_blocks (c->layers[c->n - 1], b, n, DF_BLOCK_ZERO) == -1)
    return -1;
  idx_set (c, b, n, IDX_ZERO);
  return 0;
}

static int
chain_flush (struct df_bdev *bdev)
{
  struct chain *c = (struct chain *) bdev;

  return df_layer_flush (c->layers[c->n - 1]);
}

static int
chain_pwrite (struct df_bdev *bdev, const void *buf, uint32_t count,
              uint64_t offset, uint32_t flags)
{
  struct chain *c = (struct chain *) bdev;

  if (df_bdev_for_blocks (c->bdev.size, c->block_size, buf, count, offset,
                          write_whole, write_partial, c) == -1)
    return -1;
  return (flags & DF_FUA) ? chain_flush (bdev) : 0;
}

static int
chain_zero (struct df_bdev *bdev, uint32_t count, uint64_t offset,
            uint32_t flags)
{
  struct chain *c = (struct chain *) bdev;

  /* Whole blocks are marked zero; a part of one is written as data. */
  if ((flags & DF_FAST_ZERO) &&
      (offset % c->block_size ||
       (count % c->block_size && offset + count != c->bdev.size)))
    return df_error (ENOTSUP, "zeroing part of a %" PRIu32 " byte block is "
                     "not fast", c->block_size);
  if (df_bdev_for_blocks (c->bdev.size, c->block_size, NULL, count, offset,
                          zero_whole, write_partial, c) == -1)
    return -1;
  return (flags & DF_FUA) ? chain_flush (bdev) : 0;
}

static int
chain_trim (struct df_bdev *bdev, uint32_t count, uint64_t offset,
            uint32_t flags)
{
  struct chain *c = (struct chain *) bdev;

  /* Only whole blocks are dropped; a trim is advice. */
  if (df_bdev_for_blocks (c->bdev.size, c->block_size, NULL, count, offset,
                          zero_whole, NULL, c) == -1)
    return -1;
  return (flags & DF_FUA) ? chain_flush (bdev) : 0;
}

static int
chain_extents (struct df_bdev *bdev, uint32_t count, uint64_t offset,
               df_extent_fn fn, void *opaque)
{
  struct chain *c = (struct chain *) bdev;
  const uint32_t bs = c->block_size;
  uint64_t end = offset + count;

  while (offset < end) {
    uint64_t b = offset / bs, e = b + 1, run_end;
    bool zero = idx_get (c, b) == IDX_ZERO;

    while (e * bs < end && (idx_get (c, e) == IDX_ZERO) == zero)
      e++;
    run_end = e * bs < end ? e * bs : end;
    if (fn (opaque, offset, run_end - offset,
            zero ? DF_EXTENT_HOLE | DF_EXTENT_ZERO : 0) == -1)
      return -1;
    offset = run_end;
  }
  return 0;
}

static void
chain_close (struct df_bdev *bdev)
{
  struct chain *c = (struct chain *) bdev;
  size_t i;

  for (i = 0; i < c->n; i++)
    df_layer_close (c->layers[i]);
  free (c->layers);
  free (c->idx);
  pthread_mutex_destroy (&c->rmw_lock);
  free (c);
}

static const struct df_bdev_ops chain_ops = {
  .name = "chain",
  .pread = chain_pread,
  .pwrite = chain_pwrite,
  .flush = chain_flush,
  .zero = chain_zero,
  .trim = chain_trim,
  .extents = chain_extents,
  .close = chain_close,
  .peek = chain_peek,
};

static int
check_links (struct df_layer **layers, size_t n)
{
  const struct df_layer_info *base = df_layer_info (layers[0]);
  char a[33], b[33];
  size_t k;

  if (!df_is_zero (base->parent_id, DF_LAYER_ID_LEN))
    return df_error (EINVAL, "%s: the base of a chain has a parent (%s)",
                     df_layer_path (layers[0]),
                     df_hex (base->parent_id, DF_LAYER_ID_LEN, a));
  for (k = 1; k < n; k++) {
    const struct df_layer_info *li = df_layer_info (layers[k]);
    const struct df_layer_info *below = df_layer_info (layers[k - 1]);

    if (li->size != base->size || li->block_size != base->block_size)
      return df_error (EINVAL, "%s: size or block size differs from %s",
                       df_layer_path (layers[k]), df_layer_path (layers[0]));
    if (memcmp (li->parent_id, below->id, DF_LAYER_ID_LEN) != 0)
      return df_error (EINVAL, "%s: parent id %s is not the id %s of %s",
                       df_layer_path (layers[k]),
                       df_hex (li->parent_id, DF_LAYER_ID_LEN, a),
                       df_hex (below->id, DF_LAYER_ID_LEN, b),
                       df_layer_path (layers[k - 1]));
    if (df_layer_writable (layers[k - 1]))
      return df_error (EINVAL, "%s: only the top of a chain may be writable",
                       df_layer_path (layers[k - 1]));
  }
  return 0;
}

struct df_bdev *
df_chain_open (struct df_layer **layers, size_t n)
{
  struct chain *c = NULL;
  const struct df_layer_info *base;
  uint64_t b;
  size_t k;

  if (n == 0 || n > DF_CHAIN_MAX) {
    df_error (EINVAL, "a chain has 1 to %d layers, not %zu", DF_CHAIN_MAX, n);
    goto fail;
  }
  if (check_links (layers, n) == -1)
    goto fail;
  base = df_layer_info (layers[0]);
  c = calloc (1, sizeof *c);
  if (c == NULL)
    goto fail_errno;
  c->layers = calloc (n, sizeof *c->layers);
  c->idx = malloc (base->nblocks);
  if (c->layers == NULL || c->idx == NULL)
    goto fail_errno;
  memcpy (c->layers, layers, n * sizeof *layers);
  c->n = n;
  c->block_size = base->block_size;
  c->nblocks = base->nblocks;
  pthread_mutex_init (&c->rmw_lock, NULL);

  memset (c->idx, IDX_ZERO, c->nblocks);
  for (k = 0; k < n; k++)
    for (b = 0; b < c->nblocks; b++)
      switch (df_layer_block (layers[k], b)) {
      case DF_BLOCK_PRESENT: c->idx[b] = k; break;
      case DF_BLOCK_ZERO: c->idx[b] = IDX_ZERO; break;
      case DF_BLOCK_ABSENT: break;
      }

  c->bdev.ops = &chain_ops;
  c->bdev.size = base->size;
  c->bdev.flags = df_layer_writable (layers[n - 1]) ? 0 : DF_BDEV_RDONLY;
  return &c->bdev;

 fail_errno:
  df_error_errno ("open chain");
 fail:
  for (k = 0; k < n; k++)
    df_layer_close (layers[k]);
  if (c) {
    free (c->layers);
    free (c->idx);
    free (c);
  }
  return NULL;
}

struct df_layer *
df_chain_top (struct df_bdev *bdev)
{
  struct chain *c = (struct chain *) bdev;

  return c->layers[c->n - 1];
}

size_t
df_chain_length (struct df_bdev *bdev)
{
  struct chain *c = (struct chain *) bdev;

  return c->n;
}
