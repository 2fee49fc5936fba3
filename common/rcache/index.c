/* diskfarm — read cache: the index shared by the processes of a host
 * (see rcache.h for the rules).
 */
#include <config.h>

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "cleanup.h"
#include "error.h"
#include "rcache/rcache-int.h"
#include "util.h"

static size_t
header_size (void)
{
  return df_round_up (sizeof (struct rc_header), 64);
}

static uint64_t
buckets_for (uint64_t nslots)
{
  uint64_t n = 64;

  while (n < nslots)
    n *= 2;
  return n;
}

static size_t
map_length (uint64_t nslots)
{
  return header_size () + nslots * sizeof (struct rc_entry)
    + buckets_for (nslots) * sizeof (uint32_t);
}

static void
boot_id (char *buf, size_t len)
{
  FILE *fp = fopen ("/proc/sys/kernel/random/boot_id", "re");

  buf[0] = '\0';
  if (fp) {
    if (fgets (buf, len, fp) == NULL)
      buf[0] = '\0';
    fclose (fp);
  }
  buf[strcspn (buf, "\n")] = '\0';
}

static int
map_index (struct rc_index *ix, uint64_t nslots)
{
  void *p;

  ix->map_len = map_length (nslots);
  p = mmap (NULL, ix->map_len, PROT_READ | PROT_WRITE, MAP_SHARED,
            ix->index_fd, 0);
  if (p == MAP_FAILED)
    return df_error_errno ("mapping the read cache index");
  ix->h = p;
  ix->e = (struct rc_entry *) ((char *) p + header_size ());
  ix->buckets = (uint32_t *) (ix->e + nslots);
  return 0;
}

/* Every slot free, nothing keyed.  Generations go on rising, so that a
 * reader that looked before cannot mistake a slot for its old self.
 */
static void
empty_index (struct rc_index *ix)
{
  struct rc_header *h = ix->h;
  uint64_t i;

  for (i = 0; i < h->nbuckets; i++)
    ix->buckets[i] = RC_NIL;
  for (i = 0; i < h->nslots; i++) {
    struct rc_entry *e = &ix->e[i];
    e->keyed = 0;
    e->valid = 0;
    e->pins = 0;
    e->gen++;
    e->hnext = e->prev = RC_NIL;
    e->next = i + 1 < h->nslots ? i + 1 : RC_NIL;
  }
  h->free_head = h->nslots ? 0 : RC_NIL;
  h->lru_head = h->lru_tail = RC_NIL;
  h->used = 0;
}

static int
init_mutex (pthread_mutex_t *m)
{
  pthread_mutexattr_t a;
  int err;

  pthread_mutexattr_init (&a);
  pthread_mutexattr_setpshared (&a, PTHREAD_PROCESS_SHARED);
  pthread_mutexattr_setrobust (&a, PTHREAD_MUTEX_ROBUST);
  err = pthread_mutex_init (m, &a);
  pthread_mutexattr_destroy (&a);
  return err ? df_error (err, "read cache lock: %m") : 0;
}

/* Nobody else uses the directory: keep its index if it can be trusted,
 * else start afresh.  Stale pins and the lock of the last boot go.
 */
static int
first_user (struct rc_index *ix, uint64_t nslots, int data_fd)
{
  struct rc_header hd;
  char boot[sizeof hd.boot_id];
  ssize_t n = pread (ix->index_fd, &hd, sizeof hd, 0);
  struct stat st;
  bool keep;
  uint64_t i;

  boot_id (boot, sizeof boot);
  keep = n == (ssize_t) sizeof hd && memcmp (hd.magic, RC_MAGIC, 8) == 0 &&
    hd.chunk_size == DF_RCACHE_CHUNK && hd.nslots == nslots &&
    (hd.clean || strcmp (hd.boot_id, boot) == 0) &&
    fstat (ix->index_fd, &st) == 0 && (size_t) st.st_size >= map_length (nslots);
  if (!keep) {
    if (ftruncate (ix->index_fd, 0) == -1 ||
        ftruncate (ix->index_fd, map_length (nslots)) == -1 ||
        ftruncate (data_fd, 0) == -1 ||
        ftruncate (data_fd, nslots * DF_RCACHE_CHUNK) == -1)
      return df_error_errno ("sizing the read cache");
  }
  if (map_index (ix, nslots) == -1)
    return -1;
  if (!keep) {
    memset (ix->h, 0, sizeof *ix->h);
    memcpy (ix->h->magic, RC_MAGIC, 8);
    ix->h->chunk_size = DF_RCACHE_CHUNK;
    ix->h->nslots = nslots;
    ix->h->nbuckets = buckets_for (nslots);
    empty_index (ix);
  }
  for (i = 0; i < nslots; i++)
    ix->e[i].pins = 0;
  snprintf (ix->h->boot_id, sizeof ix->h->boot_id, "%s", boot);
  ix->h->clean = 0;
  return init_mutex (&ix->h->mutex);
}

/* Someone uses it: take its size as it is. */
static int
join_user (struct rc_index *ix)
{
  struct rc_header hd;

  if (pread (ix->index_fd, &hd, sizeof hd, 0) != (ssize_t) sizeof hd ||
      memcmp (hd.magic, RC_MAGIC, 8) != 0)
    return df_error (EIO, "the read cache index is damaged");
  return map_index (ix, hd.nslots);
}

int
rc_index_open (struct rc_index *ix, const char *dir, uint64_t nslots,
               int data_fd)
{
  CLEANUP_FREE char *lock = df_path_join (dir, "lock");
  CLEANUP_FREE char *index = df_path_join (dir, "index");
  int r;

  memset (ix, 0, sizeof *ix);
  ix->lock_fd = ix->index_fd = -1;
  if (lock == NULL || index == NULL)
    return df_error_errno ("read cache");
  ix->lock_fd = open (lock, O_RDWR | O_CREAT | O_CLOEXEC, 0600);
  if (ix->lock_fd == -1 || flock (ix->lock_fd, LOCK_EX) == -1)
    return df_error_errno ("%s", lock);
  ix->index_fd = open (index, O_RDWR | O_CREAT | O_CLOEXEC, 0600);
  if (ix->index_fd == -1) {
    r = df_error_errno ("%s", index);
    goto out;
  }
  if (flock (ix->index_fd, LOCK_EX | LOCK_NB) == 0)
    r = first_user (ix, nslots, data_fd);
  else
    r = join_user (ix);
  if (r == 0 && flock (ix->index_fd, LOCK_SH) == -1)
    r = df_error_errno ("%s", index);
 out:
  flock (ix->lock_fd, LOCK_UN);
  return r;
}

void
rc_index_close (struct rc_index *ix, int data_fd)
{
  if (ix->lock_fd >= 0)
    flock (ix->lock_fd, LOCK_EX);
  /* The last user makes data and index durable, then says so. */
  if (ix->h && flock (ix->index_fd, LOCK_EX | LOCK_NB) == 0 &&
      fdatasync (data_fd) == 0 && msync (ix->h, ix->map_len, MS_SYNC) == 0) {
    ix->h->clean = 1;
    msync (ix->h, ix->map_len, MS_SYNC);
  }
  if (ix->h)
    munmap (ix->h, ix->map_len);
  if (ix->index_fd >= 0)
    close (ix->index_fd);
  if (ix->lock_fd >= 0)
    close (ix->lock_fd);      /* drops the flock */
  memset (ix, 0, sizeof *ix);
}

void
rc_lock (struct rc_index *ix)
{
  if (pthread_mutex_lock (&ix->h->mutex) == EOWNERDEAD) {
    /* A process died in the middle of an update. */
    empty_index (ix);
    pthread_mutex_consistent (&ix->h->mutex);
  }
}

void
rc_unlock (struct rc_index *ix)
{
  pthread_mutex_unlock (&ix->h->mutex);
}

static uint32_t
bucket (const struct rc_index *ix, const uint8_t *vhash, uint64_t chunk)
{
  uint64_t v;

  memcpy (&v, vhash, sizeof v);
  v = (v ^ (chunk * UINT64_C (0x9E3779B97F4A7C15))) * UINT64_C (0xff51afd7ed558ccd);
  return (v >> 32) & (ix->h->nbuckets - 1);
}

uint32_t
rc_find (struct rc_index *ix, const uint8_t *vhash, uint64_t chunk)
{
  uint32_t s = ix->buckets[bucket (ix, vhash, chunk)];

  while (s != RC_NIL &&
         (ix->e[s].chunk != chunk || memcmp (ix->e[s].vhash, vhash, DF_HASH_LEN)))
    s = ix->e[s].hnext;
  return s;
}

static void
lru_unlink (struct rc_index *ix, uint32_t s)
{
  struct rc_entry *e = &ix->e[s];

  if (e->prev != RC_NIL) ix->e[e->prev].next = e->next;
  else ix->h->lru_head = e->next;
  if (e->next != RC_NIL) ix->e[e->next].prev = e->prev;
  else ix->h->lru_tail = e->prev;
}

static void
lru_push (struct rc_index *ix, uint32_t s)
{
  struct rc_entry *e = &ix->e[s];

  e->prev = RC_NIL;
  e->next = ix->h->lru_head;
  if (e->next != RC_NIL)
    ix->e[e->next].prev = s;
  ix->h->lru_head = s;
  if (ix->h->lru_tail == RC_NIL)
    ix->h->lru_tail = s;
}

void
rc_touch (struct rc_index *ix, uint32_t s)
{
  if (ix->h->lru_head != s) {
    lru_unlink (ix, s);
    lru_push (ix, s);
  }
}

static void
unhash (struct rc_index *ix, uint32_t s)
{
  uint32_t *p = &ix->buckets[bucket (ix, ix->e[s].vhash, ix->e[s].chunk)];

  while (*p != RC_NIL && *p != s)
    p = &ix->e[*p].hnext;
  if (*p == s)
    *p = ix->e[s].hnext;
}

/* The least recently used slot nobody fills; RC_NIL if none near the
 * tail.
 */
static uint32_t
victim (struct rc_index *ix)
{
  uint32_t s = ix->h->lru_tail;
  int tries = 64;

  while (s != RC_NIL && ix->e[s].pins && tries-- > 0)
    s = ix->e[s].prev;
  return s != RC_NIL && ix->e[s].pins == 0 ? s : RC_NIL;
}

uint32_t
rc_claim (struct rc_index *ix, const uint8_t *vhash, uint64_t chunk)
{
  struct rc_header *h = ix->h;
  uint32_t s = h->free_head;
  struct rc_entry *e;

  if (s != RC_NIL)
    h->free_head = ix->e[s].next;
  else {
    s = victim (ix);
    if (s == RC_NIL)
      return RC_NIL;
    unhash (ix, s);
    lru_unlink (ix, s);
    h->evictions++;
    h->used--;
  }
  e = &ix->e[s];
  memcpy (e->vhash, vhash, DF_HASH_LEN);
  e->chunk = chunk;
  e->gen++;
  e->valid = 0;
  e->keyed = 1;
  e->hnext = ix->buckets[bucket (ix, vhash, chunk)];
  ix->buckets[bucket (ix, vhash, chunk)] = s;
  lru_push (ix, s);
  h->used++;
  return s;
}
