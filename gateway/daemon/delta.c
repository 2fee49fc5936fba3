/* diskfarm-gateway serve — POST /v1/stores/STORE/delta/PATH: the
 * librsync delta from the caller's basis (its signature is the body) to
 * PATH.
 *
 * A delta of a big layer takes seconds, so it is computed by worker
 * threads (--delta-jobs) into an unlinked file in the cache directory,
 * while the request waits suspended.  Deltas are jobs keyed by the
 * SHA-256 of the signature and the file's content hash: a request for a
 * job already queued or running joins it (fifty servers with the same
 * basis cost one computation), and finished deltas stay cached, least
 * recently used first out, within --delta-cache bytes.
 *
 * d->lock covers the job list, every job's fields and the workers'
 * queue.  It is never held across file I/O or a delta computation, nor
 * while a request is resumed (libmicrohttpd takes its own locks); it is
 * held while a request suspends, so that no resume comes before it.
 */
#include <config.h>

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <librsync.h>

#include "cleanup.h"
#include "error.h"
#include "gw.h"
#include "log.h"
#include "rsig.h"
#include "storepath.h"
#include "util.h"
#include "vdisk/vdisk.h"

#define MAX_QUEUED 16
#define MAX_CACHED 256

enum job_state { JOB_QUEUED, JOB_RUNNING, JOB_DONE, JOB_FAILED, JOB_STOPPED };

struct waiter {
  struct df_http_request *req;
  struct waiter *next;
};

struct job {
  struct gw_delta *d;
  struct job *next;             /* in d->jobs while listed */
  bool listed;
  unsigned refs;                /* the list, each waiter */
  uint8_t key[DF_HASH_LEN];
  enum job_state state;
  char *sig;                    /* until computed */
  size_t sig_len;
  int in;                       /* the file, until computed */
  struct stat in_st;
  uint8_t file_hash[DF_HASH_LEN];
  int out;                      /* JOB_DONE: the delta (unlinked) */
  uint64_t size;
  char *error;                  /* JOB_FAILED */
  uint64_t used;
  struct waiter *waiters;
};

struct gw_delta {
  struct gw *gw;
  pthread_mutex_t lock;
  pthread_cond_t work;
  struct job *jobs;
  uint64_t cached_bytes, clock;
  size_t queued, cached;
  bool stop;
  pthread_t threads[64];
  size_t nthreads;
};

static void
job_unref (struct job *j)
{
  if (--j->refs > 0)
    return;
  free (j->sig);
  free (j->error);
  if (j->in >= 0)
    close (j->in);
  if (j->out >= 0)
    close (j->out);
  free (j);
}

static void
unlist (struct gw_delta *d, struct job *j)
{
  struct job **p;

  for (p = &d->jobs; *p; p = &(*p)->next)
    if (*p == j) {
      *p = j->next;
      j->listed = false;
      if (j->state == JOB_DONE) {
        d->cached_bytes -= j->size;
        d->cached--;
      }
      job_unref (j);
      return;
    }
}

/* Drops least recently used deltas beyond the cache's bounds. */
static void
evict (struct gw_delta *d)
{
  while (d->cached_bytes > d->gw->cfg.delta_cache || d->cached > MAX_CACHED) {
    struct job *j, *lru = NULL;
    for (j = d->jobs; j; j = j->next)
      if (j->state == JOB_DONE && (lru == NULL || j->used < lru->used))
        lru = j;
    if (lru == NULL)
      return;
    unlist (d, lru);
  }
}

/* ---- computing ---- */

static void
trace (rs_loglevel level, const char *msg)
{
  (void) level;
  df_debug ("delta", "librsync: %s", msg);
}

/* Answers the waiters: resumed outside the lock. */
static void
resume_all (struct waiter *w)
{
  while (w) {
    struct waiter *next = w->next;
    df_http_resume (w->req);
    free (w);
    w = next;
  }
}

/* Records the outcome of j (out: the delta's fd, or -1 with err) and
 * hands back its waiters; under d->lock.
 */
static struct waiter *
finish (struct gw_delta *d, struct job *j, int out, int err, uint64_t size)
{
  struct waiter *w;

  gw_count (&d->gw->counters.deltas_computed);
  free (j->sig);
  j->sig = NULL;
  close (j->in);
  j->in = -1;
  j->used = ++d->clock;
  if (out == -1) {
    j->state = err == ECANCELED ? JOB_STOPPED : JOB_FAILED;
    if (err != ECANCELED)
      j->error = strdup (df_error_get ());
    if (j->listed)
      unlist (d, j);
  }
  else {
    j->state = JOB_DONE;
    j->out = out;
    j->size = size;
    if (j->listed) {
      d->cached_bytes += size;
      d->cached++;
      evict (d);
    }
  }
  w = TAKE_PTR (j->waiters);
  job_unref (j);                /* the worker's reference */
  return w;
}

static void *
worker (void *opaque)
{
  struct gw_delta *d = opaque;

  pthread_mutex_lock (&d->lock);
  while (!d->stop) {
    struct job *j;
    struct waiter *w;
    uint64_t size, t0;
    int out, err;

    for (j = d->jobs; j && j->state != JOB_QUEUED; j = j->next)
      ;
    if (j == NULL) {
      pthread_cond_wait (&d->work, &d->lock);
      continue;
    }
    j->state = JOB_RUNNING;
    d->queued--;
    j->refs++;
    pthread_mutex_unlock (&d->lock);
    t0 = df_now_mono_ns ();
    out = gw_delta_compute (d->gw->cfg.cache_dir, &d->stop, j->sig, j->sig_len,
                            j->in, &j->in_st, &size);
    err = errno;
    if (out == -1 && err != ECANCELED)
      df_log_warning ("delta: %s", df_error_get ());
    else if (out >= 0)
      df_debug ("delta", "%" PRIu64 " bytes in %" PRIu64 " ms", size,
                (df_now_mono_ns () - t0) / 1000000);
    pthread_mutex_lock (&d->lock);
    w = finish (d, j, out, err, size);
    pthread_mutex_unlock (&d->lock);
    resume_all (w);
    pthread_mutex_lock (&d->lock);
  }
  pthread_mutex_unlock (&d->lock);
  return NULL;
}

/* ---- requests ---- */

/* The answer once the job has run (the continuation of a waiter). */
static int
answer (struct df_http_request *req, void *opaque)
{
  struct job *j = opaque;
  struct gw_delta *d = j->d;
  char etag[DF_HASH_LEN * 2 + 3], hex[DF_HASH_LEN * 2 + 1], mt[32];
  CLEANUP_FREE char *error = NULL;
  enum job_state state;
  int fd = -1;

  pthread_mutex_lock (&d->lock);
  state = j->state;
  if (state == JOB_DONE)
    fd = dup (j->out);
  else if (state == JOB_FAILED)
    error = strdup (j->error ? j->error : "failed");
  snprintf (etag, sizeof etag, "\"%s\"", gw_hex_hash (j->file_hash, hex));
  snprintf (mt, sizeof mt, "%" PRIu64, gw_mtime_ns (&j->in_st));
  job_unref (j);
  pthread_mutex_unlock (&d->lock);
  if (state == JOB_FAILED)
    return df_http_respond_error (req, 500, "delta-failed", "%s",
                                  error ? error : "failed");
  if (state != JOB_DONE)
    return df_http_respond_error (req, 503, "unavailable", "the gateway is "
                                  "stopping");
  if (fd == -1)
    return df_error_errno ("dup");
  if (df_http_add_header (req, "X-Diskfarm-Mtime-Ns", mt) == -1) {
    close (fd);
    return -1;
  }
  gw_throttle (d->gw, req);
  return df_http_respond_file (req, fd, "application/octet-stream", etag);
}

/* The file to diff against, opened and checked like the files endpoint
 * does, with its content hash; -1 once answered (or with a message).
 */
static int
open_target (struct gw *gw, struct df_http_request *req, const char *store,
             const char *rel, struct stat *st, uint8_t hash[DF_HASH_LEN])
{
  struct gw_file_ref ref;
  int fd;

  if (gw_store_path_parse (rel, &ref) == -1) {
    gw_refuse (req, 403, "forbidden", "%s", df_error_get ());
    return -1;
  }
  if (ref.kind == GW_FILE_MANIFEST) {
    df_http_respond_error (req, 404, "not-found", "manifests are small: GET "
                           "them");
    return -1;
  }
  if (ref.kind == GW_FILE_LAYER)
    return gw_open_layer (gw, req, store, &ref, rel, st, hash);
  fd = gw_open_beneath (store, rel);
  if (fd == -1) {
    gw_respond_open_error (req);
    return -1;
  }
  if (fstat (fd, st) == -1 || !S_ISREG (st->st_mode) ||
      gw_hash_file (gw->hashes, fd, st, hash) == -1) {
    close (fd);
    df_http_respond_error (req, 404, "not-found", "%s is not a file", rel);
    return -1;
  }
  return fd;
}

static void
job_key (const char *sig, size_t len, const uint8_t file_hash[DF_HASH_LEN],
         uint8_t key[DF_HASH_LEN])
{
  struct df_hash *h = df_hash_new ();

  memset (key, 0, DF_HASH_LEN);
  if (h == NULL || df_hash_update (h, sig, len) == -1 ||
      df_hash_update (h, file_hash, DF_HASH_LEN) == -1)
    df_hash_free (h);
  else
    df_hash_final (h, key);
}

/* Finds or queues the job of the request (its fd taken); under lock.
 * NULL with *busy when too many are queued.
 */
static struct job *
find_or_queue (struct gw_delta *d, const uint8_t key[DF_HASH_LEN],
               const char *sig, size_t len, int fd, const struct stat *st,
               const uint8_t file_hash[DF_HASH_LEN], bool *busy)
{
  struct job *j;

  *busy = false;
  for (j = d->jobs; j; j = j->next)
    if (memcmp (j->key, key, DF_HASH_LEN) == 0) {
      j->used = ++d->clock;
      close (fd);
      gw_count (j->state == JOB_DONE ? &d->gw->counters.deltas_cached :
                &d->gw->counters.deltas_joined);
      return j;
    }
  if (d->queued >= MAX_QUEUED || d->stop) {
    *busy = true;
    close (fd);
    return NULL;
  }
  j = calloc (1, sizeof *j);
  if (j == NULL || (j->sig = malloc (len ? len : 1)) == NULL) {
    free (j);
    close (fd);
    df_error_errno ("delta job");
    return NULL;
  }
  memcpy (j->sig, sig, len);
  j->sig_len = len;
  j->d = d;
  j->refs = 1;
  j->listed = true;
  j->in = fd;
  j->out = -1;
  j->in_st = *st;
  memcpy (j->key, key, DF_HASH_LEN);
  memcpy (j->file_hash, file_hash, DF_HASH_LEN);
  j->state = JOB_QUEUED;
  j->used = ++d->clock;
  j->next = d->jobs;
  d->jobs = j;
  d->queued++;
  pthread_cond_signal (&d->work);
  return j;
}

/* Waits for the job (or answers at once if it is done). */
static int
wait_for (struct gw_delta *d, struct df_http_request *req, struct job *j)
{
  struct waiter *w;

  j->refs++;
  if (j->state == JOB_DONE) {
    pthread_mutex_unlock (&d->lock);
    return answer (req, j);
  }
  w = malloc (sizeof *w);
  if (w == NULL) {
    job_unref (j);
    pthread_mutex_unlock (&d->lock);
    return df_error_errno ("delta");
  }
  w->req = req;
  w->next = j->waiters;
  j->waiters = w;
  df_http_suspend (req, answer, j);
  pthread_mutex_unlock (&d->lock);
  return 0;
}

static int
delta_for (struct gw *gw, struct df_http_request *req, const char *store,
           const char *rel)
{
  struct gw_delta *d = gw->delta;
  uint8_t file_hash[DF_HASH_LEN], key[DF_HASH_LEN];
  struct gw_rsig info;
  struct stat st;
  struct job *j;
  size_t len;
  const char *sig = df_http_body (req, &len);
  bool busy;
  int fd;

  if (gw_rsig_check (sig, len, &info) == -1) {
    gw_count (&gw->counters.deltas_refused);
    return df_http_respond_error (req, 422, "bad-signature", "%s",
                                  df_error_get ());
  }
  fd = open_target (gw, req, store, rel, &st, file_hash);
  if (fd == -1)
    return -1;
  job_key (sig, len, file_hash, key);
  pthread_mutex_lock (&d->lock);
  j = find_or_queue (d, key, sig, len, fd, &st, file_hash, &busy);
  if (j == NULL) {
    pthread_mutex_unlock (&d->lock);
    if (!busy)
      return -1;
    df_http_add_header (req, "Retry-After", "5");
    return df_http_respond_error (req, 503, "busy", "%d deltas are waiting "
                                  "to be computed: try again later",
                                  MAX_QUEUED);
  }
  return wait_for (d, req, j);
}

int
gw_h_delta (struct df_http_request *req, void *opaque)
{
  struct gw *gw = opaque;
  char store[DF_NAME_MAX + 1];
  enum gw_store_op op;
  const char *path, *dir;
  struct gw_farm *f;
  int r;

  if (gw_store_route_parse (df_http_subpath (req), store, &op, &path) == -1)
    return errno == ENOENT
      ? df_http_respond_error (req, 404, "not-found", "%s", df_error_get ())
      : gw_refuse (req, 403, "forbidden", "%s", df_error_get ());
  if (op != GW_OP_DELTA) {
    df_http_add_header (req, "Allow", "GET");
    return df_http_respond_error (req, 405, "method-not-allowed", "GET the "
                                  "manifest and files");
  }
  f = gw_farm_get (gw);
  dir = gw_farm_store (f, store);
  if (dir == NULL)
    r = df_http_respond_error (req, 404, "not-found", "server %s carries no "
                               "store %s", f->server, store);
  else
    r = delta_for (gw, req, dir, path);
  gw_farm_put (gw, f);
  return r;
}

/* ---- start and stop ---- */

struct gw_delta *
gw_delta_new (struct gw *gw)
{
  struct gw_delta *d = calloc (1, sizeof *d);
  size_t i;
  int e;

  if (d == NULL) {
    df_error_errno ("delta");
    return NULL;
  }
  d->gw = gw;
  pthread_mutex_init (&d->lock, NULL);
  pthread_cond_init (&d->work, NULL);
  rs_trace_to (trace);
  rs_trace_set_level (df_log_debug_enabled ("delta") ? RS_LOG_INFO :
                      RS_LOG_ERR);
  for (i = 0; i < gw->cfg.delta_jobs && i < 64; i++) {
    e = pthread_create (&d->threads[i], NULL, worker, d);
    if (e) {
      df_error (e, "cannot start a delta thread: %m");
      gw_delta_shutdown (d);
      gw_delta_free (d);
      return NULL;
    }
    d->nthreads++;
  }
  return d;
}

void
gw_delta_shutdown (struct gw_delta *d)
{
  struct waiter *w = NULL;
  struct job *j;
  size_t i;

  if (d == NULL)
    return;
  pthread_mutex_lock (&d->lock);
  __atomic_store_n (&d->stop, true, __ATOMIC_RELAXED);
  pthread_cond_broadcast (&d->work);
  pthread_mutex_unlock (&d->lock);
  for (i = 0; i < d->nthreads; i++)
    pthread_join (d->threads[i], NULL);
  d->nthreads = 0;
  /* Jobs that never ran: their requests hear 503. */
  pthread_mutex_lock (&d->lock);
  for (j = d->jobs; j; j = j->next)
    while (j->waiters) {
      struct waiter *x = j->waiters;
      j->waiters = x->next;
      x->next = w;
      w = x;
    }
  pthread_mutex_unlock (&d->lock);
  resume_all (w);
}

/* After the HTTP servers: no request can hold a job any more. */
void
gw_delta_free (struct gw_delta *d)
{
  if (d == NULL)
    return;
  pthread_mutex_lock (&d->lock);
  while (d->jobs)
    unlist (d, d->jobs);
  pthread_mutex_unlock (&d->lock);
  pthread_cond_destroy (&d->work);
  pthread_mutex_destroy (&d->lock);
  free (d);
}
