/* diskfarm-gateway serve — content hashes of store and farm files.
 *
 * The SHA-256 of a file's bytes (manifests, boot files, farm files) is
 * computed when first asked for and cached.  A sealed layer's content
 * hash is checked against its manifest in the background, one layer at
 * a time at idle I/O priority, so that a replica whose bytes changed
 * behind its size and mtime (bit rot, a bad copy) shows up as differing
 * instead of being served.  Both caches are keyed by the file's
 * identity: device, inode, size, mtime and ctime (any write changes the
 * ctime, which nobody can set back).
 */
#include <config.h>

#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "cleanup.h"
#include "error.h"
#include "gw.h"
#include "layer/layer.h"
#include "log.h"
#include "pagecache.h"
#include "util.h"

#define MAX_ENTRIES 4096
#define READ_CHUNK (1024 * 1024)

/* linux/ioprio.h */
#define IOPRIO_CLASS_IDLE 3
#define IOPRIO_CLASS_SHIFT 13
#define IOPRIO_WHO_PROCESS 1

struct file_id {
  uint64_t dev, ino, size, mtime_ns, ctime_ns;
};

enum kind { KIND_BYTES, KIND_LAYER };

struct entry {
  struct file_id id;
  enum kind kind;
  enum gw_verify state;         /* KIND_LAYER */
  uint8_t hash[DF_HASH_LEN];    /* bytes: SHA-256; layer: as computed */
  uint64_t used;                /* for eviction */
  char *path;                   /* KIND_LAYER while pending */
};

/* lock covers everything below; a leaf lock, never held across I/O. */
struct gw_hashes {
  pthread_mutex_t lock;
  pthread_cond_t wake;
  struct entry *entries;
  size_t n;
  uint64_t clock;
  bool stop;                    /* also read atomically by the hashing */
  pthread_t thread;
  bool running;
};

static void
file_id (const struct stat *st, struct file_id *id)
{
  id->dev = st->st_dev;
  id->ino = st->st_ino;
  id->size = st->st_size;
  id->mtime_ns = st->st_mtim.tv_sec * 1000000000ULL + st->st_mtim.tv_nsec;
  id->ctime_ns = st->st_ctim.tv_sec * 1000000000ULL + st->st_ctim.tv_nsec;
}

static struct entry *
find (struct gw_hashes *h, const struct file_id *id, enum kind kind)
{
  size_t i;

  for (i = 0; i < h->n; i++)
    if (h->entries[i].kind == kind &&
        memcmp (&h->entries[i].id, id, sizeof *id) == 0) {
      h->entries[i].used = ++h->clock;
      return &h->entries[i];
    }
  return NULL;
}

/* A new entry (the least recently used one when full); under lock. */
static struct entry *
add (struct gw_hashes *h, const struct file_id *id, enum kind kind)
{
  struct entry *e;
  size_t i, lru = 0;

  if (h->n < MAX_ENTRIES)
    e = &h->entries[h->n++];
  else {
    for (i = 1; i < h->n; i++)
      if (h->entries[i].used < h->entries[lru].used &&
          h->entries[i].state != GW_VERIFY_PENDING)
        lru = i;
    e = &h->entries[lru];
    free (e->path);
  }
  memset (e, 0, sizeof *e);
  e->id = *id;
  e->kind = kind;
  e->used = ++h->clock;
  return e;
}

int
gw_hash_file (struct gw_hashes *h, int fd, const struct stat *st,
              uint8_t out[DF_HASH_LEN])
{
  CLEANUP_FREE char *buf = NULL;
  struct df_cache_snap *snap;
  struct df_hash *sha;
  struct file_id id;
  struct entry *e;
  uint64_t off = 0;

  file_id (st, &id);
  pthread_mutex_lock (&h->lock);
  e = find (h, &id, KIND_BYTES);
  if (e)
    memcpy (out, e->hash, DF_HASH_LEN);
  pthread_mutex_unlock (&h->lock);
  if (e)
    return 0;
  buf = malloc (READ_CHUNK);
  sha = df_hash_new ();
  if (buf == NULL || sha == NULL) {
    df_hash_free (sha);
    return df_error (ENOMEM, "hash");
  }
  snap = df_cache_snapshot (fd, 0, st->st_size);
  for (;;) {
    ssize_t r = df_pread_full (fd, buf, READ_CHUNK, off);
    if (r == -1) {
      df_cache_release (snap);
      df_hash_free (sha);
      return df_error_errno ("read");
    }
    if (r == 0)
      break;
    df_hash_update (sha, buf, r);
    off += r;
  }
  df_cache_release (snap);
  if (df_hash_final (sha, out) == -1)
    return -1;
  if (off != id.size)
    return 0;                   /* it changed while read: not cached */
  pthread_mutex_lock (&h->lock);
  if (find (h, &id, KIND_BYTES) == NULL)
    memcpy (add (h, &id, KIND_BYTES)->hash, out, DF_HASH_LEN);
  pthread_mutex_unlock (&h->lock);
  return 0;
}

enum gw_verify
gw_hash_layer (struct gw_hashes *h, const char *path, const struct stat *st,
               uint8_t actual[DF_HASH_LEN])
{
  struct file_id id;
  struct entry *e;
  enum gw_verify r;

  file_id (st, &id);
  pthread_mutex_lock (&h->lock);
  e = find (h, &id, KIND_LAYER);
  if (e == NULL) {
    e = add (h, &id, KIND_LAYER);
    e->state = GW_VERIFY_PENDING;
    e->path = strdup (path);
    if (e->path == NULL)
      e->state = GW_VERIFY_FAILED;
    pthread_cond_signal (&h->wake);
  }
  r = e->state;
  memcpy (actual, e->hash, DF_HASH_LEN);
  pthread_mutex_unlock (&h->lock);
  return r;
}

/* What of path is cached now (before its header and map are read): a
 * background check leaves the server's devices their page cache.
 */
static struct df_cache_snap *
snapshot_path (const char *path)
{
  int fd = open (path, O_RDONLY | O_CLOEXEC);
  struct df_cache_snap *snap = NULL;
  struct stat st;

  if (fd >= 0 && fstat (fd, &st) == 0)
    snap = df_cache_snapshot (fd, 0, st.st_size);
  if (fd >= 0)
    close (fd);
  return snap;
}

/* Hashes one layer: GW_VERIFY_OK with its hash, or GW_VERIFY_FAILED. */
static enum gw_verify
hash_layer (struct gw_hashes *h, const char *path, const struct file_id *want,
            uint8_t hash[DF_HASH_LEN])
{
  struct df_cache_snap *snap = snapshot_path (path);
  struct df_layer *l = df_layer_open (path, false);
  enum gw_verify r = GW_VERIFY_FAILED;
  struct file_id id;
  struct stat st;
  char q[256];

  if (l == NULL) {
    df_log_warning ("replica check: %s", df_error_get ());
    df_cache_release (snap);
    return r;
  }
  /* The file was replaced since it was queued: its identity decides. */
  if (stat (path, &st) == 0 && (file_id (&st, &id), memcmp (&id, want,
                                                           sizeof id) == 0)) {
    if (df_layer_hash_bg (l, hash, 1, &h->stop) == 0)
      r = GW_VERIFY_OK;
    else if (errno == ECANCELED)
      r = GW_VERIFY_PENDING;
    else
      df_log_warning ("replica check: %s", df_error_get ());
  }
  else
    df_debug ("hash", "%s changed before it was checked",
              df_quote (path, q, sizeof q));
  df_layer_close (l);
  df_cache_release (snap);
  return r;
}

static void *
verifier (void *opaque)
{
  struct gw_hashes *h = opaque;

  /* Serving comes first: this thread's reads wait for an idle disk and
   * its hashing for an idle CPU.
   */
  syscall (SYS_ioprio_set, IOPRIO_WHO_PROCESS, 0,
           IOPRIO_CLASS_IDLE << IOPRIO_CLASS_SHIFT);
  setpriority (PRIO_PROCESS, (id_t) syscall (SYS_gettid), 19);
  pthread_mutex_lock (&h->lock);
  while (!h->stop) {
    struct entry *e = NULL;
    struct file_id id;
    uint8_t hash[DF_HASH_LEN];
    char *path;
    enum gw_verify r;
    size_t i;

    for (i = 0; i < h->n && e == NULL; i++)
      if (h->entries[i].kind == KIND_LAYER && h->entries[i].path &&
          h->entries[i].state == GW_VERIFY_PENDING)
        e = &h->entries[i];
    if (e == NULL) {
      pthread_cond_wait (&h->wake, &h->lock);
      continue;
    }
    id = e->id;
    path = TAKE_PTR (e->path);
    pthread_mutex_unlock (&h->lock);
    df_debug ("hash", "checking %s", path);
    r = hash_layer (h, path, &id, hash);
    free (path);
    pthread_mutex_lock (&h->lock);
    e = find (h, &id, KIND_LAYER);      /* may have been evicted */
    if (e && e->state == GW_VERIFY_PENDING) {
      e->state = r;
      memcpy (e->hash, hash, DF_HASH_LEN);
    }
  }
  pthread_mutex_unlock (&h->lock);
  return NULL;
}

struct gw_hashes *
gw_hashes_new (void)
{
  struct gw_hashes *h = calloc (1, sizeof *h);
  int e;

  if (h == NULL || (h->entries = calloc (MAX_ENTRIES, sizeof *h->entries))
      == NULL) {
    free (h);
    df_error_errno ("hashes");
    return NULL;
  }
  pthread_mutex_init (&h->lock, NULL);
  pthread_cond_init (&h->wake, NULL);
  e = pthread_create (&h->thread, NULL, verifier, h);
  if (e) {
    df_error (e, "cannot start the replica check thread: %m");
    gw_hashes_free (h);
    return NULL;
  }
  h->running = true;
  return h;
}

void
gw_hashes_free (struct gw_hashes *h)
{
  size_t i;

  if (h == NULL)
    return;
  if (h->running) {
    pthread_mutex_lock (&h->lock);
    __atomic_store_n (&h->stop, true, __ATOMIC_RELAXED);
    pthread_cond_signal (&h->wake);
    pthread_mutex_unlock (&h->lock);
    pthread_join (h->thread, NULL);
  }
  for (i = 0; i < h->n; i++)
    free (h->entries[i].path);
  free (h->entries);
  pthread_cond_destroy (&h->wake);
  pthread_mutex_destroy (&h->lock);
  free (h);
}
