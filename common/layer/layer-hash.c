/* diskfarm — layer content hashes (see layer.h and docs/layer-format.md). */
#include <config.h>

#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cleanup.h"
#include "error.h"
#include "util.h"
#include "layer/layer.h"
#include "layer/layer-int.h"

/* ---- content hash ----
 *
 * SHA-256 over the header as stored, the map, and for each 4 MiB region of
 * the virtual disk that has present blocks: the region's index (u64 LE)
 * and the SHA-256 of those blocks' data in order.  Regions hash in
 * parallel, so sealing and verifying use every core.
 */

struct hash_job {
  const struct df_layer *l;
  const uint64_t *regions;      /* indexes of regions with present blocks */
  uint8_t (*leaves)[DF_HASH_LEN];
  size_t nregions;
  size_t next;                  /* next region to take (atomic) */
  int err;                      /* first errno seen (atomic) */
  const bool *cancel;           /* may be NULL */
};

int
layer_hash_region (const struct df_layer *l, uint64_t region, uint8_t *buf,
                   uint8_t leaf[DF_HASH_LEN])
{
  const uint32_t bs = l->info.block_size;
  const uint64_t per = DF_HASH_REGION / bs;
  uint64_t b = region * per, end = b + per;
  struct df_hash *h = df_hash_new ();

  if (h == NULL)
    return -1;
  if (end > l->info.nblocks)
    end = l->info.nblocks;
  while (b < end) {
    uint64_t n = 0;
    size_t len;

    if (map_get (l->map, b) != DF_BLOCK_PRESENT) {
      b++;
      continue;
    }
    while (b + n < end && map_get (l->map, b + n) == DF_BLOCK_PRESENT)
      n++;
    len = layer_blocks_bytes (l, b, n);
    if (layer_pread_all (l->fd, buf, len, l->info.data_offset + b * bs) == -1 ||
        df_hash_update (h, buf, len) == -1) {
      df_hash_free (h);
      return -1;
    }
    b += n;
  }
  return df_hash_final (h, leaf);
}

static void *
hash_worker (void *opaque)
{
  struct hash_job *job = opaque;
  uint8_t *buf = malloc (DF_HASH_REGION);
  size_t i;

  if (buf == NULL) {
    __atomic_store_n (&job->err, ENOMEM, __ATOMIC_RELAXED);
    return NULL;
  }
  while ((i = __atomic_fetch_add (&job->next, 1, __ATOMIC_RELAXED)) < job->nregions &&
         __atomic_load_n (&job->err, __ATOMIC_RELAXED) == 0) {
    if (job->cancel && __atomic_load_n (job->cancel, __ATOMIC_RELAXED))
      __atomic_store_n (&job->err, ECANCELED, __ATOMIC_RELAXED);
    else if (layer_hash_region (job->l, job->regions[i], buf, job->leaves[i]) == -1)
      __atomic_store_n (&job->err, errno ? errno : EIO, __ATOMIC_RELAXED);
  }
  free (buf);
  return NULL;
}

/* Regions that hold present blocks (caller frees). */
static uint64_t *
present_regions (const struct df_layer *l, size_t *n)
{
  const uint64_t per = DF_HASH_REGION / l->info.block_size;
  uint64_t nregions = (l->info.nblocks + per - 1) / per, r, b;
  uint64_t *v = NULL;
  size_t count = 0, cap = 0;

  for (r = 0; r < nregions; r++) {
    uint64_t end = (r + 1) * per < l->info.nblocks ? (r + 1) * per : l->info.nblocks;
    for (b = r * per; b < end; b++)
      if (map_get (l->map, b) == DF_BLOCK_PRESENT)
        break;
    if (b == end)
      continue;
    if (count == cap) {
      uint64_t *nv = realloc (v, (cap = cap ? cap * 2 : 256) * sizeof *v);
      if (nv == NULL) {
        free (v);
        return NULL;
      }
      v = nv;
    }
    v[count++] = r;
  }
  *n = count;
  return v ? v : calloc (1, sizeof *v);
}

static int
hash_leaves (struct hash_job *job, unsigned threads)
{
  size_t max = threads ? threads : 8;

  df_parallel (job->nregions ? (job->nregions < max ? job->nregions : max) : 1,
               hash_worker, job);
  if (job->err) {
    errno = job->err;
    return -1;
  }
  return 0;
}

int
layer_hash_leaves (const struct df_layer *l, const uint64_t *regions, size_t n,
                   uint8_t (*leaves)[DF_HASH_LEN], unsigned threads)
{
  struct hash_job job = { .l = l, .regions = regions, .leaves = leaves,
                          .nregions = n };

  return hash_leaves (&job, threads);
}

/* The content hash from the leaves (docs/layer-format.md): SHA-256 of
 * header, map, then each present region's index and leaf in ascending
 * order.  regions[0..n) are those indexes; the leaf of regions[i] is
 * leaves[regions[i]] when by_region, else leaves[i].
 */
int
layer_combine_leaves (const struct df_layer *l, size_t n, const uint64_t *regions,
                      const uint8_t (*leaves)[DF_HASH_LEN], bool by_region,
                      uint8_t hash[DF_HASH_LEN])
{
  uint8_t header[DF_LAYER_HEADER_SIZE], idx[8];
  struct df_hash *h = df_hash_new ();
  size_t i;

  if (h == NULL ||
      layer_pread_all (l->fd, header, sizeof header, 0) == -1 ||
      df_hash_update (h, header, sizeof header) == -1 ||
      df_hash_update (h, l->map, l->info.map_length) == -1)
    goto fail;
  for (i = 0; i < n; i++) {
    put64 (idx, regions[i]);
    if (df_hash_update (h, idx, sizeof idx) == -1 ||
        df_hash_update (h, leaves[by_region ? regions[i] : i], DF_HASH_LEN) == -1)
      goto fail;
  }
  return df_hash_final (h, hash);

 fail:
  df_error_errno ("hash %s", l->path);
  df_hash_free (h);
  return -1;
}

int
df_layer_hash (const struct df_layer *l, uint8_t hash[DF_HASH_LEN])
{
  return df_layer_hash_bg (l, hash, 0, NULL);
}

int
df_layer_hash_bg (const struct df_layer *l, uint8_t hash[DF_HASH_LEN],
                  unsigned threads, const bool *cancel)
{
  struct hash_job job = { .l = l, .cancel = cancel };
  CLEANUP_FREE uint64_t *regions = present_regions (l, &job.nregions);
  CLEANUP_FREE uint8_t (*leaves)[DF_HASH_LEN] = NULL;

  if (regions == NULL ||
      (leaves = calloc (job.nregions ? job.nregions : 1, sizeof *leaves)) == NULL)
    return df_error_errno ("hash %s", l->path);
  job.regions = regions;
  job.leaves = leaves;
  if (hash_leaves (&job, threads) == -1)
    return df_error_errno ("hash %s", l->path);
  return layer_combine_leaves (l, job.nregions, regions,
                         (const uint8_t (*)[DF_HASH_LEN]) leaves, false, hash);
}


/* ---- hashing while a bulk writer writes ----
 *
 * Importers and merges write a layer from the first block to the last.
 * Once the writer is past a region, the region is final: a thread hashes
 * it (from the page cache) while the writer goes on, so the two cores
 * share the work and sealing only waits for the last regions.  A writer
 * that goes back invalidates the leaves; sealing then hashes the file.
 */

struct bulk_hasher {
  struct df_layer *l;
  pthread_t thread;
  pthread_mutex_t lock;
  pthread_cond_t cond;
  uint64_t nregions;
  uint64_t complete;            /* regions [0, complete) are final */
  uint64_t hashed;              /* regions [0, hashed) are done */
  uint64_t next_block;          /* the writer's position */
  bool in_order, stop, failed, joined;
  int err;
  uint8_t (*leaves)[DF_HASH_LEN];
  bool *present;                /* region has present blocks */
};

static uint64_t
blocks_per_region (const struct df_layer *l)
{
  return DF_HASH_REGION / l->info.block_size;
}

static bool
region_present (const struct df_layer *l, uint64_t r)
{
  uint64_t per = blocks_per_region (l), b;
  uint64_t end = (r + 1) * per < l->info.nblocks ? (r + 1) * per : l->info.nblocks;

  for (b = r * per; b < end; b++)
    if (map_get (l->map, b) == DF_BLOCK_PRESENT)
      return true;
  return false;
}

static void *
bulk_hasher_main (void *opaque)
{
  struct bulk_hasher *bh = opaque;
  uint8_t *buf = malloc (DF_HASH_REGION);

  pthread_mutex_lock (&bh->lock);
  if (buf == NULL) {
    bh->failed = true;
    bh->err = ENOMEM;
  }
  while (!bh->failed) {
    uint64_t r = bh->hashed;
    bool present;
    int rc;

    if (r >= bh->complete) {
      if (bh->stop)
        break;
      pthread_cond_wait (&bh->cond, &bh->lock);
      continue;
    }
    pthread_mutex_unlock (&bh->lock);
    present = region_present (bh->l, r);
    rc = present ? layer_hash_region (bh->l, r, buf, bh->leaves[r]) : 0;
    pthread_mutex_lock (&bh->lock);
    bh->present[r] = present;
    if (rc == -1) {
      bh->failed = true;
      bh->err = errno ? errno : EIO;
    }
    bh->hashed = r + 1;
    pthread_cond_broadcast (&bh->cond);
  }
  pthread_mutex_unlock (&bh->lock);
  free (buf);
  return NULL;
}

int
layer_bulk_hasher_start (struct df_layer *l)
{
  struct bulk_hasher *bh = calloc (1, sizeof *bh);
  uint64_t per = blocks_per_region (l);

  if (bh == NULL)
    return df_error_errno ("%s", l->path);
  bh->l = l;
  bh->nregions = (l->info.nblocks + per - 1) / per;
  bh->in_order = true;
  bh->leaves = calloc (bh->nregions, sizeof *bh->leaves);
  bh->present = calloc (bh->nregions, sizeof *bh->present);
  pthread_mutex_init (&bh->lock, NULL);
  pthread_cond_init (&bh->cond, NULL);
  if (bh->leaves == NULL || bh->present == NULL ||
      pthread_create (&bh->thread, NULL, bulk_hasher_main, bh) != 0) {
    free (bh->leaves);
    free (bh->present);
    free (bh);
    /* Not fatal: sealing hashes the file instead. */
    return 0;
  }
  l->hasher = bh;
  return 0;
}

void
layer_bulk_hasher_note (struct df_layer *l, uint64_t first, uint64_t count)
{
  struct bulk_hasher *bh = l->hasher;

  if (bh == NULL)
    return;
  pthread_mutex_lock (&bh->lock);
  if (first < bh->next_block)
    bh->in_order = false;
  else {
    uint64_t done = first / blocks_per_region (l);
    bh->next_block = first + count;
    if (done > bh->complete) {
      bh->complete = done;
      pthread_cond_broadcast (&bh->cond);
    }
  }
  pthread_mutex_unlock (&bh->lock);
}

/* Finishes (all regions final) and joins the thread. */
static void
bulk_hasher_finish (struct bulk_hasher *bh)
{
  if (bh->joined)
    return;
  pthread_mutex_lock (&bh->lock);
  bh->complete = bh->nregions;
  bh->stop = true;
  pthread_cond_broadcast (&bh->cond);
  pthread_mutex_unlock (&bh->lock);
  pthread_join (bh->thread, NULL);
  bh->joined = true;
}

void
layer_bulk_hasher_stop (struct df_layer *l)
{
  struct bulk_hasher *bh = l->hasher;

  if (bh == NULL)
    return;
  /* Stop early: regions not hashed yet are not wanted any more. */
  pthread_mutex_lock (&bh->lock);
  bh->failed = true;
  pthread_cond_broadcast (&bh->cond);
  pthread_mutex_unlock (&bh->lock);
  bulk_hasher_finish (bh);
  pthread_mutex_destroy (&bh->lock);
  pthread_cond_destroy (&bh->cond);
  free (bh->leaves);
  free (bh->present);
  free (bh);
  l->hasher = NULL;
}

int
layer_seal_hash (struct df_layer *l, uint8_t hash[DF_HASH_LEN])
{
  struct bulk_hasher *bh = l->hasher;
  CLEANUP_FREE uint64_t *regions = NULL;
  size_t n = 0;
  uint64_t r;
  int rc;

  if (bh == NULL)
    return df_layer_hash (l, hash);
  bulk_hasher_finish (bh);
  if (bh->failed || !bh->in_order) {
    layer_bulk_hasher_stop (l);
    return df_layer_hash (l, hash);
  }
  regions = malloc ((bh->nregions ? bh->nregions : 1) * sizeof *regions);
  if (regions == NULL) {
    layer_bulk_hasher_stop (l);
    return df_error_errno ("hash %s", l->path);
  }
  for (r = 0; r < bh->nregions; r++)
    if (bh->present[r])
      regions[n++] = r;
  rc = layer_combine_leaves (l, n, regions, (const uint8_t (*)[DF_HASH_LEN]) bh->leaves,
                       true, hash);
  layer_bulk_hasher_stop (l);
  return rc;
}
