/* diskfarm-gateway serve — POST /v1/stores/STORE/delta/PATH: the
 * librsync delta from the caller's basis (its signature is the body) to
 * PATH.
 *
 * A delta of a big layer takes seconds, so it is computed by worker
 * threads (--delta-jobs) into an unlinked file in the cache directory.
 * The request waits suspended until the delta's first bytes are there,
 * then the answer streams (chunked) what the job has written so far and
 * sleeps until it writes more, so that the caller patches while the
 * delta is computed.  A job that fails after that ends the answer
 * without its last chunk: the caller sees a failed transfer.  A job
 * that fails before any byte of delta (a signature librsync refuses)
 * answers 500 with its message.  Deltas are jobs keyed by the
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
#include <time.h>
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

struct job;

/* An answer streaming a job's delta (holds a reference to the job). */
struct streamer {
  struct job *j;
  struct df_http_stream *s;     /* while in j->streams: asleep */
  struct streamer *next;
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
  int out;                      /* from JOB_RUNNING: the delta (unlinked) */
  uint64_t produced;            /* bytes of out written so far */
  uint64_t size;
  char *error;                  /* JOB_FAILED */
  uint64_t used;
  struct waiter *waiters;       /* until the first bytes of delta */
  struct streamer *streams;     /* asleep until more is written */
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

/* Wakes the answers that sleep for more delta: outside the lock.  Each
 * is asleep until woken, so it cannot go away before.
 */
static void
wake_all (struct streamer *st)
{
  while (st) {
    struct streamer *next = st->next;
    df_http_stream_wake (st->s);
    st = next;
  }
}

/* The job wrote more delta (written bytes in all): what waits for it is
 * woken.
 */
static void
progress (void *opaque, uint64_t written)
{
  struct job *j = opaque;
  struct gw_delta *d = j->d;
  struct waiter *w;
  struct streamer *st;

  pthread_mutex_lock (&d->lock);
  j->produced = written;
  w = TAKE_PTR (j->waiters);
  st = TAKE_PTR (j->streams);
  pthread_mutex_unlock (&d->lock);
  resume_all (w);
  wake_all (st);
}

/* Records the outcome of j (r: 0, or -1 with err) and hands back what
 * waits for it; under d->lock.
 */
static struct waiter *
finish (struct gw_delta *d, struct job *j, int r, int err, uint64_t size,
        struct streamer **st)
{
  struct waiter *w;

  gw_count (&d->gw->counters.deltas_computed);
  free (j->sig);
  j->sig = NULL;
  close (j->in);
  j->in = -1;
  j->used = ++d->clock;
  if (r == -1) {
    j->state = err == ECANCELED ? JOB_STOPPED : JOB_FAILED;
    if (err != ECANCELED)
      j->error = strdup (df_error_get ());
    if (j->listed)
      unlist (d, j);
  }
  else {
    j->state = JOB_DONE;
    j->size = size;
    if (j->listed) {
      d->cached_bytes += size;
      d->cached++;
      evict (d);
    }
  }
  w = TAKE_PTR (j->waiters);
  *st = TAKE_PTR (j->streams);
  job_unref (j);                /* the worker's reference */
  return w;
}

static uint64_t
thread_cpu_ns (void)
{
  struct timespec ts;

  if (clock_gettime (CLOCK_THREAD_CPUTIME_ID, &ts) == -1)
    return 0;
  return (uint64_t) ts.tv_sec * 1000000000 + ts.tv_nsec;
}

/* Runs job j (a reference taken for it); outside d->lock. */
static int
run (struct gw_delta *d, struct job *j, uint64_t *size)
{
  uint64_t t0 = df_now_mono_ns (), c0 = thread_cpu_ns ();
  int out = gw_delta_file (d->gw->cfg.cache_dir), r;

  *size = 0;
  if (out == -1)
    return -1;
  pthread_mutex_lock (&d->lock);
  j->out = out;                 /* closed with the job */
  pthread_mutex_unlock (&d->lock);
  r = gw_delta_compute (&d->stop, j->sig, j->sig_len, j->in, &j->in_st, out,
                        progress, j, size);
  if (r == -1 && errno != ECANCELED)
    df_log_warning ("delta: %s", df_error_get ());
  else if (r == 0)
    df_debug ("delta", "%" PRIu64 " bytes in %" PRIu64 " ms (CPU %" PRIu64
              " ms)", *size, (df_now_mono_ns () - t0) / 1000000,
              (thread_cpu_ns () - c0) / 1000000);
  return r;
}

static void *
worker (void *opaque)
{
  struct gw_delta *d = opaque;

  pthread_mutex_lock (&d->lock);
  while (!d->stop) {
    struct job *j;
    struct waiter *w;
    struct streamer *st;
    uint64_t size;
    int r, err;

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
    r = run (d, j, &size);
    err = errno;
    pthread_mutex_lock (&d->lock);
    w = finish (d, j, r, err, size, &st);
    pthread_mutex_unlock (&d->lock);
    resume_all (w);
    wake_all (st);
    pthread_mutex_lock (&d->lock);
  }
  pthread_mutex_unlock (&d->lock);
  return NULL;
}

/* ---- streaming a delta as it is computed ---- */

static ssize_t
stream_read (void *opaque, struct df_http_stream *s, uint64_t pos, char *buf,
             size_t max)
{
  struct streamer *st = opaque;
  struct job *j = st->j;
  struct gw_delta *d = j->d;
  enum job_state state;
  uint64_t avail;
  ssize_t r;

  pthread_mutex_lock (&d->lock);
  state = j->state;
  avail = state == JOB_DONE ? j->size : j->produced;
  if (state != JOB_DONE && state != JOB_RUNNING) {
    pthread_mutex_unlock (&d->lock);
    return DF_HTTP_STREAM_ERROR;        /* the worker said why */
  }
  if (pos >= avail) {
    if (state == JOB_DONE) {
      pthread_mutex_unlock (&d->lock);
      return DF_HTTP_STREAM_END;
    }
    /* Asleep before the lock goes: no wake can come before. */
    st->s = s;
    st->next = j->streams;
    j->streams = st;
    df_http_stream_wait (s);
    pthread_mutex_unlock (&d->lock);
    return 0;
  }
  pthread_mutex_unlock (&d->lock);
  if (max > avail - pos)
    max = avail - pos;
  r = pread (j->out, buf, max, pos);    /* j->out lives as long as j */
  if (r <= 0) {
    df_log_warning ("delta: cannot read what was computed: %s",
                    r == 0 ? "end of file" : strerror (errno));
    return DF_HTTP_STREAM_ERROR;
  }
  return r;
}

static void
stream_free (void *opaque)
{
  struct streamer *st = opaque, **p;
  struct gw_delta *d = st->j->d;

  pthread_mutex_lock (&d->lock);
  for (p = &st->j->streams; *p; p = &(*p)->next)
    if (*p == st) {
      *p = st->next;
      break;
    }
  job_unref (st->j);
  pthread_mutex_unlock (&d->lock);
  free (st);
}

/* Answers with the delta of a running job (takes the reference). */
static int
answer_stream (struct df_http_request *req, struct job *j, const char *etag)
{
  struct streamer *st = calloc (1, sizeof *st);

  if (st == NULL) {
    pthread_mutex_lock (&j->d->lock);
    job_unref (j);
    pthread_mutex_unlock (&j->d->lock);
    return df_error_errno ("delta");
  }
  st->j = j;
  if (df_http_add_header (req, "ETag", etag) == -1) {
    stream_free (st);
    return -1;
  }
  return df_http_respond_stream (req, 200, "application/octet-stream",
                                 DF_HTTP_LEN_UNKNOWN, stream_read,
                                 stream_free, st);
}

/* ---- requests ---- */

/* The answer once the job has run or begun to write its delta (the
 * continuation of a waiter).
 */
static int
answer (struct df_http_request *req, void *opaque)
{
  struct job *j = opaque;
  struct gw_delta *d = j->d;
  char etag[DF_HASH_LEN * 2 + 3], hex[DF_HASH_LEN * 2 + 1], mt[32];
  CLEANUP_FREE char *error = NULL;
  enum job_state state;
  bool stream;
  int fd = -1;

  pthread_mutex_lock (&d->lock);
  state = j->state;
  stream = state == JOB_RUNNING && j->produced > 0 && !d->stop;
  if (state == JOB_DONE)
    fd = dup (j->out);
  else if (state == JOB_FAILED)
    error = strdup (j->error ? j->error : "failed");
  snprintf (etag, sizeof etag, "\"%s\"", gw_hex_hash (j->file_hash, hex));
  snprintf (mt, sizeof mt, "%" PRIu64, gw_mtime_ns (&j->in_st));
  if (!stream)
    job_unref (j);
  pthread_mutex_unlock (&d->lock);
  if (stream) {
    if (df_http_add_header (req, "X-Diskfarm-Mtime-Ns", mt) == -1) {
      pthread_mutex_lock (&d->lock);
      job_unref (j);
      pthread_mutex_unlock (&d->lock);
      return -1;
    }
    gw_throttle (d->gw, req);
    return answer_stream (req, j, etag);
  }
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
  if (j->state == JOB_DONE || (j->state == JOB_RUNNING && j->produced > 0)) {
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
  struct streamer *st = NULL;
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
  /* Jobs that never ran: their requests hear 503; streams that sleep
   * end (a job stopped: without their last chunk).
   */
  pthread_mutex_lock (&d->lock);
  for (j = d->jobs; j; j = j->next) {
    while (j->streams) {
      struct streamer *x = j->streams;
      j->streams = x->next;
      x->next = st;
      st = x;
    }
    while (j->waiters) {
      struct waiter *x = j->waiters;
      j->waiters = x->next;
      x->next = w;
      w = x;
    }
  }
  pthread_mutex_unlock (&d->lock);
  resume_all (w);
  wake_all (st);
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
