/* diskfarm — the write cache's spiller (see cache-int.h and cache.h).
 *
 * One thread per cache, started the first time it is needed: it maps RAM
 * arenas ahead of the writers, and in ram+disk it writes the least
 * recently used blocks to the layer file whenever free RAM falls below
 * the low water mark, until it is back above the high one.  Writers
 * never wait for it: when RAM is full they write to the file themselves.
 * Blocks are chosen under the lock and written from their slots with
 * it dropped; a writer of one of them waits for that write.
 */
#include <config.h>

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "cache/cache-int.h"
#include "cleanup.h"
#include "error.h"

#define BACKOFF_NS 1000000000   /* after a failure in the background */

struct victim {
  uint64_t block;
  uint32_t slot, gen;
};

static bool
prefault_wanted (const struct cache *c)
{
  uint32_t per = 1u << c->arena_shift;

  return ram_can_grow (c) && c->nfree < (per + 1) / 2 &&
    (c->mode == DF_CACHE_RAM || c->ram_used + c->nfree < c->ram_max);
}

static bool
spill_wanted (struct cache *c)
{
  uint32_t avail;

  if (c->mode != DF_CACHE_RAM_DISK)
    return false;
  avail = c->ram_max > c->ram_used ? c->ram_max - c->ram_used : 0;
  if (avail < c->spill_low)
    c->spilling = true;
  else if (avail >= c->spill_high)
    c->spilling = false;
  return c->spilling && c->lru_tail != NIL;
}

/* Slots are written out from where they are, with the lock dropped:
 * the lock covers only the choice of victims (copying them out under it
 * held every writer for up to 1 MiB of memcpy).  Nobody changes, takes
 * or frees an evicting slot (writers and zeroing of its block wait for
 * the round: wait_eviction in cache.c), and the arenas never move.
 */
int
evict_round (struct cache *c, size_t max)
{
  struct victim v[SPILL_BATCH];
  const char *data[SPILL_BATCH];
  size_t n = 0, i, j, written = 0;
  int r = 0;

  while (n < max && n < SPILL_BATCH && c->lru_tail != NIL) {
    uint32_t s = c->lru_tail;
    struct slot *sl = slot_of (c, s);
    struct victim t = { sl->block, s, sl->gen };

    lru_unlink (c, s);
    sl->evicting = true;
    /* Sorted by block, so that neighbours go out in one write. */
    for (j = n++; j > 0 && v[j - 1].block > t.block; j--)
      v[j] = v[j - 1];
    v[j] = t;
  }
  if (n == 0)
    return 0;
  for (i = 0; i < n; i++)
    data[i] = (const char *) slot_data (c, v[i].slot);
  c->evicting += n;
  pthread_mutex_unlock (&c->lock);

  /* A run: neighbouring blocks whose slots are neighbours too. */
  for (i = 0; i < n && r == 0; i = j) {
    for (j = i + 1; j < n && v[j].block == v[j - 1].block + 1 &&
           data[j] == data[j - 1] + BS; j++)
      ;
    if (df_layer_write_blocks (c->layer, data[i], v[i].block, j - i) == -1)
      r = -1;
    else
      written = j;
  }

  pthread_mutex_lock (&c->lock);
  for (i = 0; i < n; i++) {
    struct slot *sl = slot_of (c, v[i].slot);
    sl->evicting = false;
    if (i < written && sl->gen == v[i].gen) {
      /* The file holds it now: the count moves from RAM to E_DISK. */
      table_put (c, v[i].block, E_DISK);
      slot_put (c, v[i].slot);
      c->spilled++;
    }
    else
      lru_push (c, v[i].slot);
  }
  c->evicting -= n;
  pthread_cond_broadcast (&c->evict_cond);
  return r;
}

/* Counts a background failure (lock held).  One that left a block
 * unwritten is kept for the next flush; one that only left RAM unmapped
 * is not the client's business: writers map RAM themselves, or go to
 * the file.
 */
static void
note_bg_error (struct cache *c, const char *what, bool data)
{
  c->spill_errors++;
  if (data) {
    c->bg_err = errno ? errno : EIO;
    snprintf (c->bg_msg, sizeof c->bg_msg, "write cache: %s in the "
              "background: %s", what, df_error_get ());
  }
  df_error_clear ();
}

int
take_bg_error (struct cache *c)
{
  int err = c->bg_err;

  if (err == 0)
    return 0;
  c->bg_err = 0;
  return df_error (err, "%s", c->bg_msg);
}

static void
backoff (struct cache *c)
{
  struct timespec ts;

  clock_gettime (CLOCK_MONOTONIC, &ts);
  ts.tv_nsec += BACKOFF_NS % 1000000000;
  ts.tv_sec += BACKOFF_NS / 1000000000 + ts.tv_nsec / 1000000000;
  ts.tv_nsec %= 1000000000;
  while (!c->stopping &&
         pthread_cond_timedwait (&c->spill_cond, &c->lock, &ts) == 0)
    ;
}

static void *
spiller_main (void *opaque)
{
  struct cache *c = opaque;

  pthread_mutex_lock (&c->lock);
  while (!c->stopping) {
    if (prefault_wanted (c)) {
      int r;
      pthread_mutex_unlock (&c->lock);
      r = ram_grow (c);
      pthread_mutex_lock (&c->lock);
      if (r == -1) {
        note_bg_error (c, "mapping RAM", false);
        backoff (c);
      }
    }
    else if (spill_wanted (c)) {
      if (evict_round (c, EVICT_BATCH) == -1) {
        note_bg_error (c, "writing RAM out", true);
        backoff (c);
      }
    }
    else {
      c->spiller_idle = true;
      pthread_cond_wait (&c->spill_cond, &c->lock);
      c->spiller_idle = false;
    }
  }
  pthread_mutex_unlock (&c->lock);
  return NULL;
}

void
spiller_kick (struct cache *c)
{
  int err;

  if (c->stopping || c->no_spiller || !(prefault_wanted (c) || spill_wanted (c)))
    return;
  if (c->spiller_started) {
    if (c->spiller_idle)
      pthread_cond_signal (&c->spill_cond);
    return;
  }
  /* Not fatal if it cannot start: writers then map RAM themselves
   * (ram) or write to the file when RAM is full (ram+disk).
   */
  err = pthread_create (&c->spiller, NULL, spiller_main, c);
  if (err == 0)
    c->spiller_started = true;
  else {
    c->no_spiller = true;       /* do not try on every write */
    c->spill_errors++;
  }
}

void
spiller_stop (struct cache *c)
{
  bool started;

  pthread_mutex_lock (&c->lock);
  c->stopping = true;
  started = c->spiller_started;
  pthread_cond_broadcast (&c->spill_cond);
  pthread_mutex_unlock (&c->lock);
  if (started)
    pthread_join (c->spiller, NULL);
}

/* Every RAM block to the file, in rounds of neighbours sorted by block. */
static int
spill_all (struct cache *c)
{
  int r = 0;

  if (c->layer == NULL)
    return df_error (EINVAL, "a ram write cache has no file to spill to");
  pthread_mutex_lock (&c->lock);
  while (r == 0 && (c->lru_tail != NIL || c->evicting > 0)) {
    if (c->lru_tail == NIL)     /* the spiller's round is still out */
      pthread_cond_wait (&c->evict_cond, &c->lock);
    else
      r = evict_round (c, SPILL_BATCH);
  }
  if (r == 0)
    c->bg_err = 0;              /* whatever failed before is written now */
  pthread_mutex_unlock (&c->lock);
  return r;
}

int
df_cache_spill (struct df_bdev *bdev)
{
  struct cache *c = (struct cache *) bdev;

  if (spill_all (c) == -1)
    return -1;
  return df_layer_flush (c->layer);
}

int
df_cache_save (struct df_bdev *bdev)
{
  struct cache *c = (struct cache *) bdev;

  if (spill_all (c) == -1)
    return -1;
  return df_layer_save (c->layer);
}
