/* diskfarm — write cache internals shared by cache.c (the block device),
 * cache-ram.c (RAM slots) and cache-spill.c (the spiller).
 *
 * Every block of the device has a table word:
 *   bits 0-30  where its RAM copy is: E_NONE, E_ZERO (ram mode: reads as
 *              zeros) or slot + 2
 *   bit 31     E_DISK: the block's data is in the layer file (or a write
 *              of it is on its way there)
 * A block holds data, and is counted in used_blocks and the budget, when
 * it has a RAM slot or E_DISK.  Table words change under the lock only,
 * so the count is exact; the read path reads them without it.
 *
 * Locks, in this order: rmw_lock (partial-block writes), lock (the table,
 * slots, lists and counters below it), then the layer's own.  No file
 * I/O and no page faults of fresh RAM happen under lock: layer writes,
 * hole punching and the mapping of RAM arenas are done with it dropped.
 */
#ifndef DISKFARM_CACHE_INT_H
#define DISKFARM_CACHE_INT_H

#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>

#include "cache/cache.h"

#define BS DF_CACHE_BLOCK
#define TABLE_SPAN 512          /* blocks per second-level table */
#define ARENA_MAX_SHIFT 9       /* 512 slots: 2 MiB arenas (a huge page) */
#define NIL UINT32_MAX
#define EVICT_BATCH 32          /* blocks per round of the spiller */
#define SPILL_BATCH 256         /* per round of df_cache_spill, which
                                   nobody else waits for at close */

#define E_NONE 0u
#define E_ZERO 1u
#define E_RAM 0x7fffffffu
#define E_DISK 0x80000000u

struct slot {
  uint64_t block;
  uint32_t prev, next;          /* LRU list (ram+disk), or the free list */
  uint32_t gen;                 /* bumped by every change of its data */
  bool evicting;                /* off the LRU, being written out */
};

/* A run of RAM slots, mapped and faulted in before any writer uses it. */
struct arena {
  uint8_t *data;
  struct slot slot[];
};

struct cache {
  struct df_bdev bdev;
  struct df_bdev *lower;
  enum df_cache_mode mode;
  uint64_t nblocks;
  uint64_t limit_blocks;        /* 0: none */
  struct df_cache_budget *budget;
  struct df_layer *layer;       /* disk modes */

  pthread_mutex_t rmw_lock;     /* partial-block writes; before lock */
  pthread_mutex_t lock;         /* everything below */
  uint32_t **table;             /* second levels allocated on demand */
  uint64_t ntables;
  uint64_t used_blocks;
  uint64_t enospc;
  /* Bumped by everything that may take E_DISK away (zero, trim, a failed
   * write): a layer write that saw it move re-checks its blocks.
   */
  uint64_t undo_gen;

  /* RAM slots (ram, ram+disk). */
  struct arena **arenas;        /* max_arenas entries */
  uint32_t max_arenas, arenas_reserved;
  uint32_t mapping;             /* arenas being mapped right now */
  unsigned arena_shift;         /* slots per arena = 1 << arena_shift */
  uint32_t free_head, nfree;    /* mapped slots nobody uses */
  uint32_t lru_head, lru_tail;  /* most recently used at the head */
  uint32_t ram_used;
  uint32_t ram_max;             /* ram+disk: spill beyond; ram: no limit */
  uint32_t evicting;            /* slots being written out */

  /* The spiller: keeps slots mapped ahead and, in ram+disk, RAM below
   * its high water mark.  Started on first need.
   */
  uint32_t spill_low, spill_high;       /* free RAM, in slots */
  pthread_t spiller;
  pthread_cond_t spill_cond;    /* wakes the spiller */
  pthread_cond_t evict_cond;    /* an eviction round or a mapping ended */
  bool spiller_started, spiller_idle, spilling, stopping, no_spiller;
  uint64_t spilled, bypassed, spill_errors;
  int bg_err;                   /* a background write failed: for flush */
  char bg_msg[256];
};

/* Table words: read without the lock on the read path, so its words and
 * second-level pointers are atomic.  Second levels live as long as the
 * cache.
 */
static inline uint32_t
table_get (const struct cache *c, uint64_t b)
{
  const uint32_t *t = __atomic_load_n (&c->table[b / TABLE_SPAN], __ATOMIC_ACQUIRE);

  return t ? __atomic_load_n (&t[b % TABLE_SPAN], __ATOMIC_RELAXED) : E_NONE;
}

/* Lock held; the second level exists (table_prepare) unless v is 0. */
static inline void
table_put (struct cache *c, uint64_t b, uint32_t v)
{
  uint32_t *t = c->table[b / TABLE_SPAN];

  if (t)
    __atomic_store_n (&t[b % TABLE_SPAN], v, __ATOMIC_RELAXED);
}

static inline bool
entry_in_ram (uint32_t e)
{
  return (e & E_RAM) >= 2;
}

static inline uint32_t
entry_slot (uint32_t e)
{
  return (e & E_RAM) - 2;
}

static inline bool
entry_counted (uint32_t e)
{
  return entry_in_ram (e) || (e & E_DISK);
}

static inline struct slot *
slot_of (const struct cache *c, uint32_t s)
{
  return &c->arenas[s >> c->arena_shift]->slot[s & ((1u << c->arena_shift) - 1)];
}

static inline uint8_t *
slot_data (const struct cache *c, uint32_t s)
{
  return c->arenas[s >> c->arena_shift]->data +
    (size_t) (s & ((1u << c->arena_shift) - 1)) * BS;
}

/* cache-ram.c (lock held unless said otherwise) */
int ram_setup (struct cache *c, uint64_t cap_blocks);
void ram_free (struct cache *c);
int table_prepare (struct cache *c, uint64_t b, uint64_t n);
void lru_unlink (struct cache *c, uint32_t s);
void lru_push (struct cache *c, uint32_t s);
void lru_touch (struct cache *c, uint32_t s);
uint32_t slot_take (struct cache *c, uint64_t block);
void slot_put (struct cache *c, uint32_t s);
bool ram_can_grow (const struct cache *c);
/* Without the lock: maps one more arena, or waits for one being mapped
 * when no more may be.  0, or -1 with a message.
 */
int ram_grow (struct cache *c);

/* cache-spill.c (lock held) */
void spiller_kick (struct cache *c);
void spiller_stop (struct cache *c);       /* without the lock */
int evict_round (struct cache *c, size_t max);
int take_bg_error (struct cache *c);

#endif
