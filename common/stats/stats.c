/* diskfarm — session figures in shared memory (see stats.h).
 *
 * File layout (native byte order: writer and readers share a host):
 *   header (4096 bytes): magic "DFSTATS1", format, slot size, slot
 *                        count, header size, pid, creation time
 *   slots[nslots]: seq (odd while in_use or the identity change),
 *                  in_use (free, claimed, published), the publisher's
 *                  key, the identity, then the counter words on their
 *                  own cache line
 *
 * Identities are copied word by word with relaxed atomics on both sides
 * under the slot's sequence counter (a seqlock); counters are atomics.
 */
#include <config.h>

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "cleanup.h"
#include "error.h"
#include "stats/stats-int.h"
#include "util.h"

struct df_stats_pub {
  char *path;
  int fd;                       /* holds the flock */
  struct stats_file *file;
  size_t map_len;
  pthread_mutex_t lock;         /* slot states and identities; a leaf lock */
  size_t next;                  /* where the free search starts */
};

void
stats_copy_words (void *dst, const void *src, size_t len)
{
  uint64_t *d = dst;
  const uint64_t *s = src;
  size_t i;

  for (i = 0; i < len / 8; i++)
    __atomic_store_n (&d[i], __atomic_load_n (&s[i], __ATOMIC_RELAXED),
                      __ATOMIC_RELAXED);
}

size_t
stats_file_size (void)
{
  return sizeof (struct stats_header) +
    DF_STATS_SLOTS * sizeof (struct stats_slot);
}

/* Creates, locks and fills DIR/.nbdkit-PID.tmp, then renames it. */
static int
create_file (struct df_stats_pub *pub, const char *dir)
{
  CLEANUP_FREE char *tmp = NULL;
  struct stats_header *h;

  if (df_mkdir_p (dir, 0755) == -1)
    return -1;
  if (asprintf (&tmp, "%s/.nbdkit-%ld.tmp", dir, (long) getpid ()) == -1 ||
      asprintf (&pub->path, "%s/nbdkit-%ld.stats", dir, (long) getpid ()) == -1)
    return df_error_errno ("%s", dir);
  unlink (tmp);
  pub->fd = open (tmp, O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC, 0644);
  if (pub->fd == -1)
    return df_error_errno ("%s", tmp);
  /* Readable by a gateway running as another user, whatever the umask. */
  if (fchmod (pub->fd, 0644) == -1)
    goto fail;
  pub->map_len = stats_file_size ();
  if (flock (pub->fd, LOCK_EX | LOCK_NB) == -1 ||
      ftruncate (pub->fd, pub->map_len) == -1)
    goto fail;
  pub->file = mmap (NULL, pub->map_len, PROT_READ | PROT_WRITE, MAP_SHARED,
                    pub->fd, 0);
  if (pub->file == MAP_FAILED) {
    pub->file = NULL;
    goto fail;
  }
  h = &pub->file->header;
  h->format = STATS_FORMAT;
  h->slot_size = sizeof (struct stats_slot);
  h->nslots = DF_STATS_SLOTS;
  h->header_size = sizeof (struct stats_header);
  h->pid = getpid ();
  h->created_ns = df_now_real_ns ();
  memcpy (h->magic, STATS_MAGIC, sizeof h->magic);
  if (rename (tmp, pub->path) == -1)
    goto fail;
  return 0;

 fail:
  df_error_errno ("%s", tmp);
  unlink (tmp);
  return -1;
}

struct df_stats_pub *
df_stats_pub_open (const char *dir)
{
  struct df_stats_pub *pub = calloc (1, sizeof *pub);

  if (pub == NULL) {
    df_error_errno ("stats");
    return NULL;
  }
  pub->fd = -1;
  pthread_mutex_init (&pub->lock, NULL);
  if (create_file (pub, dir) == -1) {
    df_error_prefix ("publishing session figures");
    df_stats_pub_close (pub);
    return NULL;
  }
  return pub;
}

void
df_stats_pub_close (struct df_stats_pub *pub)
{
  if (pub == NULL)
    return;
  if (pub->file) {
    unlink (pub->path);
    munmap (pub->file, pub->map_len);
  }
  if (pub->fd >= 0)
    close (pub->fd);
  pthread_mutex_destroy (&pub->lock);
  free (pub->path);
  free (pub);
}

static struct stats_slot *
slot_of (uint64_t *words)
{
  return (struct stats_slot *) ((char *) words -
                                offsetof (struct stats_slot, words));
}

/* Changes a slot's state (and identity) under its sequence counter;
 * under pub->lock.
 */
static void
slot_write (struct stats_slot *slot, uint64_t in_use,
            const struct df_stats_identity *id)
{
  __atomic_fetch_add (&slot->seq, 1, __ATOMIC_RELAXED);     /* odd */
  __atomic_thread_fence (__ATOMIC_RELEASE);
  if (id)
    stats_copy_words (&slot->id, id, sizeof slot->id);
  __atomic_store_n (&slot->in_use, in_use, __ATOMIC_RELAXED);
  __atomic_fetch_add (&slot->seq, 1, __ATOMIC_RELEASE);     /* even */
}

uint64_t *
df_stats_claim (struct df_stats_pub *pub, uint64_t key)
{
  static const uint64_t zero[DF_STATS_WORDS];
  struct stats_slot *slot = NULL;
  size_t i;

  pthread_mutex_lock (&pub->lock);
  for (i = 0; i < DF_STATS_SLOTS && slot == NULL; i++) {
    struct stats_slot *s = &pub->file->slots[(pub->next + i) % DF_STATS_SLOTS];
    if (__atomic_load_n (&s->in_use, __ATOMIC_RELAXED) == SLOT_FREE) {
      slot = s;
      pub->next = (pub->next + i + 1) % DF_STATS_SLOTS;
    }
  }
  if (slot) {
    stats_copy_words (slot->words, zero, sizeof slot->words);
    __atomic_store_n (&slot->key, key, __ATOMIC_RELAXED);
    slot_write (slot, SLOT_CLAIMED, NULL);
  }
  pthread_mutex_unlock (&pub->lock);
  if (slot == NULL) {
    errno = ENOSPC;
    return NULL;
  }
  return slot->words;
}

uint64_t *
df_stats_find (struct df_stats_pub *pub, uint64_t key)
{
  uint64_t *words = NULL;
  size_t i;

  pthread_mutex_lock (&pub->lock);
  for (i = 0; i < DF_STATS_SLOTS && words == NULL; i++) {
    struct stats_slot *s = &pub->file->slots[i];
    if (s->in_use != SLOT_FREE && s->key == key)
      words = s->words;
  }
  pthread_mutex_unlock (&pub->lock);
  return words;
}

bool
df_stats_holds (const struct df_stats_pub *pub, const uint64_t *words)
{
  const char *p = (const char *) words, *slots;
  size_t off;

  if (pub == NULL || pub->file == NULL || words == NULL)
    return false;
  slots = (const char *) pub->file->slots;
  if (p < slots || p >= slots + DF_STATS_SLOTS * sizeof (struct stats_slot))
    return false;
  off = (size_t) (p - slots);
  return off % sizeof (struct stats_slot) ==
    offsetof (struct stats_slot, words);
}

void
df_stats_update (struct df_stats_pub *pub, uint64_t *words,
                 const struct df_stats_identity *id)
{
  pthread_mutex_lock (&pub->lock);
  slot_write (slot_of (words), SLOT_PUBLISHED, id);
  pthread_mutex_unlock (&pub->lock);
}

void
df_stats_release (struct df_stats_pub *pub, uint64_t *words)
{
  if (pub == NULL || words == NULL)
    return;
  pthread_mutex_lock (&pub->lock);
  slot_write (slot_of (words), SLOT_FREE, NULL);
  pthread_mutex_unlock (&pub->lock);
}
