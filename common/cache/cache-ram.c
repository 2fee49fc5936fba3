/* diskfarm — write cache RAM: the block table, slots, arenas, LRU (see
 * cache-int.h).
 *
 * RAM comes in arenas of up to 512 slots (2 MiB, one huge page where the
 * kernel gives one), mapped and faulted in by the spiller ahead of need,
 * or by a ram-mode writer that ran out, always without the cache lock:
 * a writer's copy into a slot never takes a page fault under the lock.
 */
#include <config.h>

#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

#include "cache/cache-int.h"
#include "error.h"
#include "util.h"

#define HUGE_PAGE (2 * 1024 * 1024)

/* Full arenas of closed caches, kept for the next caches of the process:
 * fresh RAM costs a page fault and the zeroing of every page (in a
 * virtual machine also the host's backing of it: 1 to 16 us per 4 KiB,
 * about as much as a whole request), while recycled RAM costs nothing:
 * it is not even cleared.  No device can see another's data in it,
 * because a slot is only ever read after a write has filled all of its
 * BS bytes (copy_block, under the lock that publishes its table word);
 * clearing 2 MiB per arena cost as much as the kernel's fault of fresh
 * RAM, on every block a ram-mode writer stores.
 *
 * Every arena is kept: the pool never makes the process bigger than its
 * caches once were at the same time, since a cache takes from it before
 * mapping more (a new mapping happens only when the pool is empty).
 * MADV_FREE lets the kernel take the pages back whenever it needs them,
 * as it takes clean page cache; they then come back zeroed.  A fixed
 * cap (1 GiB before) sent every block above it through the fault again
 * on the next session.  pool_lock is taken alone.
 */
static pthread_mutex_t pool_lock = PTHREAD_MUTEX_INITIALIZER;
static uint8_t **pool;
static size_t pool_len, pool_cap;

static uint8_t *
pool_take (void)
{
  uint8_t *p = NULL;

  pthread_mutex_lock (&pool_lock);
  if (pool_len > 0)
    p = pool[--pool_len];
  pthread_mutex_unlock (&pool_lock);
  return p;
}

/* False if it cannot be kept (the caller unmaps it). */
static bool
pool_put (uint8_t *p)
{
  bool kept = false;

  if (madvise (p, HUGE_PAGE, MADV_FREE) == -1)
    return false;
  pthread_mutex_lock (&pool_lock);
  if (pool_len == pool_cap) {
    size_t cap = pool_cap ? pool_cap * 2 : 64;
    uint8_t **n = realloc (pool, cap * sizeof *n);
    if (n) {
      pool = n;
      pool_cap = cap;
    }
  }
  if (pool_len < pool_cap) {
    pool[pool_len++] = p;
    kept = true;
  }
  pthread_mutex_unlock (&pool_lock);
  return kept;
}

int
ram_setup (struct cache *c, uint64_t cap_blocks)
{
  uint64_t slots;

  c->free_head = c->lru_head = c->lru_tail = NIL;
  if (cap_blocks > E_RAM - 2)
    cap_blocks = E_RAM - 2;
  c->arena_shift = 0;
  while (c->arena_shift < ARENA_MAX_SHIFT &&
         (UINT64_C (1) << c->arena_shift) < cap_blocks)
    c->arena_shift++;
  slots = UINT64_C (1) << c->arena_shift;
  c->max_arenas = (cap_blocks + slots - 1) / slots;
  c->arenas = calloc (c->max_arenas ? c->max_arenas : 1, sizeof *c->arenas);
  if (c->arenas == NULL)
    return df_error_errno ("write cache");
  return 0;
}

static size_t
arena_bytes (const struct cache *c)
{
  return ((size_t) 1 << c->arena_shift) * BS;
}

void
ram_free (struct cache *c)
{
  uint32_t i;

  for (i = 0; c->arenas && i < c->max_arenas; i++)
    if (c->arenas[i]) {
      /* Our own mapping: munmap cannot fail. */
      if (arena_bytes (c) != HUGE_PAGE || !pool_put (c->arenas[i]->data))
        (void) munmap (c->arenas[i]->data, arena_bytes (c));
      free (c->arenas[i]);
    }
  free (c->arenas);
}

int
table_prepare (struct cache *c, uint64_t b, uint64_t n)
{
  uint64_t t;

  for (t = b / TABLE_SPAN; t <= (b + n - 1) / TABLE_SPAN; t++)
    if (c->table[t] == NULL) {
      uint32_t *s = calloc (TABLE_SPAN, sizeof *s);
      if (s == NULL)
        return df_error_errno ("write cache table");
      __atomic_store_n (&c->table[t], s, __ATOMIC_RELEASE);
    }
  return 0;
}

/* The LRU list orders the slots of ram+disk for eviction; ram mode has
 * no use for it.
 */
void
lru_unlink (struct cache *c, uint32_t s)
{
  struct slot *sl = slot_of (c, s);

  if (c->mode != DF_CACHE_RAM_DISK)
    return;
  if (sl->prev != NIL) slot_of (c, sl->prev)->next = sl->next;
  else c->lru_head = sl->next;
  if (sl->next != NIL) slot_of (c, sl->next)->prev = sl->prev;
  else c->lru_tail = sl->prev;
}

void
lru_push (struct cache *c, uint32_t s)
{
  struct slot *sl = slot_of (c, s);

  if (c->mode != DF_CACHE_RAM_DISK)
    return;
  sl->prev = NIL;
  sl->next = c->lru_head;
  if (c->lru_head != NIL)
    slot_of (c, c->lru_head)->prev = s;
  c->lru_head = s;
  if (c->lru_tail == NIL)
    c->lru_tail = s;
}

void
lru_touch (struct cache *c, uint32_t s)
{
  if (c->mode == DF_CACHE_RAM_DISK && !slot_of (c, s)->evicting &&
      c->lru_head != s) {
    lru_unlink (c, s);
    lru_push (c, s);
  }
}

/* A free slot for block, on the LRU; NIL if none is mapped. */
uint32_t
slot_take (struct cache *c, uint64_t block)
{
  uint32_t s = c->free_head;
  struct slot *sl;

  if (s == NIL)
    return NIL;
  sl = slot_of (c, s);
  c->free_head = sl->next;
  c->nfree--;
  c->ram_used++;
  sl->block = block;
  sl->evicting = false;
  lru_push (c, s);
  return s;
}

/* Back to the free list; the caller took it off the LRU. */
void
slot_put (struct cache *c, uint32_t s)
{
  slot_of (c, s)->next = c->free_head;
  c->free_head = s;
  c->nfree++;
  c->ram_used--;
}

bool
ram_can_grow (const struct cache *c)
{
  return c->arenas_reserved < c->max_arenas;
}

static int
unmap (void *p, size_t len)
{
  if (len && munmap (p, len) == -1)
    return df_error_errno ("write cache: unmap RAM");
  return 0;
}

/* len bytes of RAM, on huge pages where the kernel has them, faulted in
 * before anyone copies into it.
 */
static uint8_t *
map_ram (size_t len)
{
  size_t span = len >= HUGE_PAGE ? len + HUGE_PAGE : len;
  uint8_t *p = mmap (NULL, span, PROT_READ | PROT_WRITE,
                     MAP_PRIVATE | MAP_ANONYMOUS, -1, 0), *a;

  if (p == MAP_FAILED) {
    df_error_errno ("write cache: map %zu bytes of RAM", len);
    return NULL;
  }
  a = p;
  if (span > len) {
    a = (uint8_t *) df_round_up ((uintptr_t) p, HUGE_PAGE);
    if (unmap (p, a - p) == -1 || unmap (a + len, p + span - (a + len)) == -1)
      goto fail;
    /* Advice only: without huge pages it works the same, a bit slower. */
    (void) madvise (a, len, MADV_HUGEPAGE);
  }
  if (madvise (a, len, MADV_POPULATE_WRITE) == -1) {
    size_t i;
    if (errno != EINVAL) {      /* EINVAL: a kernel before 5.14 */
      df_error_errno ("write cache: fault in %zu bytes of RAM", len);
      goto fail;
    }
    for (i = 0; i < len; i += 4096)
      ((volatile uint8_t *) a)[i] = 0;
  }
  return a;

 fail:
  (void) munmap (a, len);
  return NULL;
}

int
ram_grow (struct cache *c)
{
  uint32_t idx, n = 1u << c->arena_shift, i;
  struct arena *a;

  pthread_mutex_lock (&c->lock);
  if (!ram_can_grow (c)) {
    /* The last ones are on their way: they may bring the room. */
    while (c->mapping > 0)
      pthread_cond_wait (&c->evict_cond, &c->lock);
    pthread_mutex_unlock (&c->lock);
    return 0;
  }
  idx = c->arenas_reserved++;
  c->mapping++;
  pthread_mutex_unlock (&c->lock);

  a = calloc (1, sizeof *a + n * sizeof a->slot[0]);
  if (a == NULL)
    df_error_errno ("write cache: RAM");
  else if (n * BS == HUGE_PAGE && (a->data = pool_take ()) != NULL)
    ;                           /* not cleared: see the pool above */
  else if ((a->data = map_ram ((size_t) n * BS)) == NULL) {
    free (a);
    a = NULL;
  }

  pthread_mutex_lock (&c->lock);
  c->mapping--;
  pthread_cond_broadcast (&c->evict_cond);
  if (a == NULL) {
    /* The index can be reused unless a later one was taken meanwhile. */
    if (idx + 1 == c->arenas_reserved)
      c->arenas_reserved--;
    pthread_mutex_unlock (&c->lock);
    return -1;
  }
  c->arenas[idx] = a;
  /* Lowest first: a request's blocks land side by side. */
  for (i = n; i-- > 0;) {
    a->slot[i].next = c->free_head;
    c->free_head = (idx << c->arena_shift) + i;
  }
  c->nfree += n;
  pthread_mutex_unlock (&c->lock);
  return 0;
}
