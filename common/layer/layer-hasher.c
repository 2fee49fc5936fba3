/* diskfarm — the content hash of a layer file as its bytes arrive (see
 * layer.h and docs/layer-format.md).
 *
 * The hash covers the header, the map, and per 4 MiB region of the
 * virtual disk the SHA-256 (the leaf) of the region's present data.  A
 * region's leaf can be computed from memory if its present bytes are
 * seen in order, each exactly once; the regions are independent, so
 * pieces of a file that arrive concurrently disturb only the regions
 * they share.  Whatever could not be hashed on the way is read back
 * from the file at the end, so the result never depends on the order.
 */
#include <config.h>

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "cleanup.h"
#include "error.h"
#include "util.h"
#include "layer/layer.h"
#include "layer/layer-int.h"

enum region_state {
  R_EMPTY,                      /* no present block: not in the hash */
  R_OPEN,                       /* what arrived so far came in order */
  R_DONE,                       /* leaf computed from what arrived */
  R_BROKEN,                     /* read back from the file at the end */
};

struct region {
  uint64_t want;                /* bytes of present data in the region */
  uint64_t done;                /* of them hashed, in order */
  uint64_t next;                /* virtual offset after the last byte hashed */
  struct df_hash *h;            /* while 0 < done < want */
  uint8_t state;
  uint8_t leaf[DF_HASH_LEN];
};

struct df_layer_hasher {
  uint8_t head[DF_LAYER_HEADER_SIZE];
  struct df_layer_info info;
  uint8_t *map;                 /* map_length bytes, once the header is known */
  uint64_t learnt;              /* bytes of header and map arrived in order */
  bool have_info, have_map;
  bool lost;                    /* layout unknown: hash the whole file */
  uint64_t per;                 /* blocks per region */
  uint64_t nregions;
  struct region *regions;
};

struct df_layer_hasher *
df_layer_hasher_new (void)
{
  struct df_layer_hasher *hs = calloc (1, sizeof *hs);

  if (hs == NULL)
    df_error_errno ("layer hash");
  return hs;
}

void
df_layer_hasher_free (struct df_layer_hasher *hs)
{
  uint64_t r;

  if (hs == NULL)
    return;
  for (r = 0; hs->regions && r < hs->nregions; r++)
    df_hash_free (hs->regions[r].h);
  free (hs->regions);
  free (hs->map);
  free (hs);
}

static bool
block_present (const struct df_layer_hasher *hs, uint64_t b)
{
  return map_get (hs->map, b) == DF_BLOCK_PRESENT;
}

/* The map is known: what each region holds. */
static int
setup_regions (struct df_layer_hasher *hs)
{
  const uint64_t bs = hs->info.block_size;
  uint64_t b;

  hs->per = DF_HASH_REGION / bs;
  hs->nregions = (hs->info.nblocks + hs->per - 1) / hs->per;
  hs->regions = calloc (hs->nregions, sizeof *hs->regions);
  if (hs->regions == NULL)
    return -1;
  for (b = 0; b < hs->info.nblocks; b++) {
    struct region *R = &hs->regions[b / hs->per];
    if (b % hs->per == 0)
      R->next = b * bs;
    if (block_present (hs, b)) {
      uint64_t end = (b + 1) * bs;
      R->want += (end < hs->info.size ? end : hs->info.size) - b * bs;
      R->state = R_OPEN;
    }
  }
  return 0;
}

/* Header and map bytes, taken in order from offset 0; anything else
 * before the map is complete leaves the layout unknown.  Returns the
 * bytes of [off, off+len) it consumed.
 */
static size_t
learn (struct df_layer_hasher *hs, uint64_t off, const uint8_t *p, size_t len)
{
  uint64_t need = hs->have_info
    ? hs->info.map_offset + hs->info.map_length : DF_LAYER_HEADER_SIZE;
  uint64_t skip, n;

  if (off > hs->learnt) {
    hs->lost = true;
    return len;
  }
  skip = hs->learnt - off;
  if (skip >= len)
    return len;                 /* again: the end compares the file */
  n = len - skip < need - hs->learnt ? len - skip : need - hs->learnt;
  if (hs->have_info)
    memcpy (hs->map + (hs->learnt - hs->info.map_offset), p + skip, n);
  else
    memcpy (hs->head + hs->learnt, p + skip, n);
  hs->learnt += n;
  if (hs->learnt < need)
    return skip + n;
  if (!hs->have_info) {
    if (layer_decode_header (hs->head, &hs->info) == -1 ||
        (hs->map = malloc (hs->info.map_length)) == NULL)
      hs->lost = true;
    hs->have_info = true;
  }
  else if (layer_check_map (&hs->info, hs->map) == -1 ||
           setup_regions (hs) == -1)
    hs->lost = true;
  else
    hs->have_map = true;
  df_error_clear ();            /* handled: the end hashes the file */
  return skip + n;
}

static void
break_region (struct region *R)
{
  df_hash_free (R->h);
  R->h = NULL;
  R->state = R_BROKEN;
}

/* Is nothing present in virtual bytes [a, b)? */
static bool
only_absent (const struct df_layer_hasher *hs, uint64_t a, uint64_t b)
{
  uint64_t blk;

  for (blk = a / hs->info.block_size; blk * hs->info.block_size < b; blk++)
    if (block_present (hs, blk))
      return false;
  return true;
}

/* Present bytes [v, v+n) of region r. */
static void
feed_run (struct df_layer_hasher *hs, uint64_t r, uint64_t v, const uint8_t *p,
          uint64_t n)
{
  struct region *R = &hs->regions[r];

  if (R->state == R_BROKEN)
    return;
  /* Hashed already (and arriving again), out of order, or more than
   * the region holds: the file decides at the end.
   */
  if (R->state != R_OPEN || v < R->next ||
      (v > R->next && !only_absent (hs, R->next, v)) ||
      R->done + n > R->want) {
    break_region (R);
    return;
  }
  if ((R->h == NULL && (R->h = df_hash_new ()) == NULL) ||
      df_hash_update (R->h, p, n) == -1) {
    df_error_clear ();
    break_region (R);
    return;
  }
  R->done += n;
  R->next = v + n;
  if (R->done < R->want)
    return;
  R->state = df_hash_final (R->h, R->leaf) == 0 ? R_DONE : R_BROKEN;
  R->h = NULL;
  df_error_clear ();
}

/* Bytes at file offset off, once the map is known. */
static void
feed_data (struct df_layer_hasher *hs, uint64_t off, const uint8_t *p,
           uint64_t len)
{
  const uint64_t bs = hs->info.block_size;
  uint64_t v;

  if (off + len <= hs->info.data_offset)
    return;
  if (off < hs->info.data_offset) {
    p += hs->info.data_offset - off;
    len -= hs->info.data_offset - off;
    off = hs->info.data_offset;
  }
  v = off - hs->info.data_offset;
  if (v >= hs->info.size)
    return;
  if (len > hs->info.size - v)
    len = hs->info.size - v;
  while (len > 0) {
    uint64_t b = v / bs, e = b + 1, n;
    bool present = block_present (hs, b);

    /* A run of blocks alike, inside one region. */
    while (e * bs < v + len && e % hs->per != 0 &&
           block_present (hs, e) == present)
      e++;
    n = (e * bs < v + len ? e * bs : v + len) - v;
    if (present)
      feed_run (hs, b / hs->per, v, p, n);
    v += n;
    p += n;
    len -= n;
  }
}

void
df_layer_hasher_data (struct df_layer_hasher *hs, uint64_t off,
                      const void *buf, size_t len)
{
  const uint8_t *p = buf;

  if (hs->lost || len == 0)
    return;
  while (!hs->have_map && len > 0) {
    size_t used = learn (hs, off, p, len);
    if (hs->lost)
      return;
    off += used;
    p += used;
    len -= used;
  }
  if (hs->have_map)
    feed_data (hs, off, p, len);
}

uint64_t
df_layer_hasher_pending (const struct df_layer_hasher *hs)
{
  uint64_t r, n = 0;

  if (hs->lost || !hs->have_map)
    return UINT64_MAX;
  for (r = 0; r < hs->nregions; r++)
    if (hs->regions[r].state == R_OPEN || hs->regions[r].state == R_BROKEN)
      n += hs->regions[r].want;
  return n;
}

/* Does l have the header and map the leaves were computed for? */
static bool
same_layout (const struct df_layer_hasher *hs, const struct df_layer *l)
{
  uint8_t head[DF_LAYER_HEADER_SIZE];

  if (l->info.map_length != hs->info.map_length ||
      memcmp (l->map, hs->map, hs->info.map_length) != 0 ||
      layer_pread_all (l->fd, head, sizeof head, 0) == -1)
    return false;
  return memcmp (head, hs->head, sizeof head) == 0;
}

int
df_layer_hasher_final (struct df_layer_hasher *hs, const struct df_layer *l,
                       uint8_t hash[DF_HASH_LEN])
{
  CLEANUP_FREE uint64_t *present = NULL, *todo = NULL;
  CLEANUP_FREE uint8_t (*leaves)[DF_HASH_LEN] = NULL;
  CLEANUP_FREE uint8_t (*todo_leaves)[DF_HASH_LEN] = NULL;
  CLEANUP_FREE size_t *todo_at = NULL;
  size_t n = 0, ntodo = 0, i;
  uint64_t r;

  if (hs->lost || !hs->have_map || !same_layout (hs, l))
    return df_layer_hash (l, hash);
  /* nregions >= 1: a layer has at least one block. */
  present = malloc (hs->nregions * sizeof *present);
  todo = malloc (hs->nregions * sizeof *todo);
  todo_at = malloc (hs->nregions * sizeof *todo_at);
  leaves = malloc (hs->nregions * sizeof *leaves);
  todo_leaves = malloc (hs->nregions * sizeof *todo_leaves);
  if (!present || !todo || !todo_at || !leaves || !todo_leaves)
    return df_error_errno ("hash %s", l->path);
  for (r = 0; r < hs->nregions; r++) {
    const struct region *R = &hs->regions[r];
    if (R->state == R_EMPTY)
      continue;
    if (R->state == R_DONE)
      memcpy (leaves[n], R->leaf, DF_HASH_LEN);
    else {
      todo[ntodo] = r;
      todo_at[ntodo++] = n;
    }
    present[n++] = r;
  }
  if (ntodo && layer_hash_leaves (l, todo, ntodo, todo_leaves, 0) == -1)
    return df_error_errno ("hash %s", l->path);
  for (i = 0; i < ntodo; i++)
    memcpy (leaves[todo_at[i]], todo_leaves[i], DF_HASH_LEN);
  return layer_combine_leaves (l, n, present,
                               (const uint8_t (*)[DF_HASH_LEN]) leaves, false,
                               hash);
}
