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
#define IO_BUF (1024 * 1024)

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

/* Feeds an rs job and drains what it makes.  The input comes from in
 * (or the memory data when in < 0), read IO_BUF at a time but handed to
 * librsync feed bytes per call: given megabytes at once, its delta scan
 * runs a third slower than given a block or so (rdiff feeds it one
 * signature block at a time).
 */
struct feeder {
  int in;
  const char *data;
  size_t len;
  size_t feed;
  char *ibuf, *obuf;            /* IO_BUF each */
  size_t obuf_len;
  int out;                      /* -1: nothing comes out */
};

static int
drain (struct feeder *f, const char *p, size_t n, uint64_t *written)
{
  size_t done = 0;

  while (done < n) {
    ssize_t w = write (f->out, p + done, n - done);
    if (w == -1 && errno == EINTR)
      continue;
    if (w == -1)
      return df_error_errno ("write the delta");
    done += w;
  }
  *written += n;
  return 0;
}

/* Refills f->ibuf after the n bytes still unread at *p (moved to its
 * start); -1 on a read error.
 */
static int
refill (struct feeder *f, const char **p, size_t n, uint64_t *off,
        size_t *len, bool *eof)
{
  ssize_t r;

  if (n > 0)
    memmove (f->ibuf, *p, n);
  do
    r = pread (f->in, f->ibuf + n, IO_BUF - n, *off);
  while (r == -1 && errno == EINTR);
  if (r == -1)
    return df_error_errno ("read");
  *p = f->ibuf;
  *len = n + r;
  *eof = r == 0;
  *off += r;
  return 0;
}

static int
run_job (struct gw_delta *d, rs_job_t *job, struct feeder *f,
         uint64_t *written)
{
  rs_buffers_t b = { .next_in = (char *) f->data };
  const char *end = f->data + f->len;   /* of what is in memory */
  uint64_t off = 0;
  bool eof = f->in < 0;
  size_t len = 0;
  rs_result r;

  do {
    const char *in = b.next_in;
    if (__atomic_load_n (&d->stop, __ATOMIC_RELAXED))
      return df_error (ECANCELED, "the gateway is stopping");
    /* Unread input stays where it is; a slice more when it is short. */
    if (b.avail_in < f->feed && in + b.avail_in == end && !eof) {
      if (refill (f, &in, b.avail_in, &off, &len, &eof) == -1)
        return -1;
      end = in + len;
    }
    b.next_in = (char *) in;
    b.avail_in = (size_t) (end - in) < f->feed ? (size_t) (end - in) : f->feed;
    b.eof_in = eof && in + b.avail_in == end;
    b.next_out = f->obuf;
    b.avail_out = f->obuf_len;
    r = rs_job_iter (job, &b);
    if (r != RS_DONE && r != RS_BLOCKED)
      return df_error (EINVAL, "librsync: %s", rs_strerror (r));
    if (f->out >= 0 && b.next_out > f->obuf &&
        drain (f, f->obuf, b.next_out - f->obuf, written) == -1)
      return -1;
  } while (r != RS_DONE);
  return 0;
}

/* A file to write a delta into: unlinked from the start. */
static int
delta_file (const char *dir)
{
  CLEANUP_FREE char *tmpl = NULL;
  int fd = open (dir, O_TMPFILE | O_RDWR | O_CLOEXEC, 0600);

  if (fd >= 0 || (errno != EOPNOTSUPP && errno != EISDIR))
    return fd >= 0 ? fd : df_error_errno ("delta file in %s", dir);
  if (asprintf (&tmpl, "%s/.diskfarm-delta.XXXXXX", dir) == -1)
    return df_error_errno ("%s", dir);
  fd = mkostemp (tmpl, O_CLOEXEC);
  if (fd == -1)
    return df_error_errno ("delta file in %s", dir);
  unlink (tmpl);
  return fd;
}

static int
compute (struct gw_delta *d, struct job *j, uint64_t *size)
{
  CLEANUP_FREE char *ibuf = malloc (IO_BUF), *obuf = malloc (IO_BUF);
  struct feeder f = { .in = -1, .data = j->sig, .len = j->sig_len,
                      .feed = IO_BUF, .ibuf = ibuf, .obuf = obuf,
                      .obuf_len = IO_BUF, .out = -1 };
  rs_signature_t *sig = NULL;
  struct gw_rsig info;
  rs_job_t *job;
  struct stat st;
  int r;

  *size = 0;
  if (ibuf == NULL || obuf == NULL)
    return df_error (ENOMEM, "delta buffers");
  if (gw_rsig_check (j->sig, j->sig_len, &info) == -1)
    return -1;
  job = rs_loadsig_begin (&sig);
  r = run_job (d, job, &f, size);
  rs_job_free (job);
  if (r == 0 && rs_build_hash_table (sig) != RS_DONE)
    r = df_error (ENOMEM, "librsync: cannot index the signature");
  if (r == 0 && (f.out = delta_file (d->gw->cfg.cache_dir)) == -1)
    r = -1;
  if (r == 0) {
    /* As rdiff does: a block in, four blocks of room out. */
    f = (struct feeder) { .in = j->in, .feed = info.block_len, .ibuf = ibuf,
                          .obuf = obuf, .out = f.out,
                          .obuf_len = 10 + 4 * (size_t) info.block_len };
    if (f.obuf_len > IO_BUF)
      f.obuf_len = IO_BUF;
    job = rs_delta_begin (sig);
    r = run_job (d, job, &f, size);
    rs_job_free (job);
  }
  rs_free_sumset (sig);
  /* A sealed file never changes; one that did gives no delta. */
  if (r == 0 && (fstat (j->in, &st) == -1 || st.st_size != j->in_st.st_size ||
                 gw_mtime_ns (&st) != gw_mtime_ns (&j->in_st) ||
                 st.st_ctim.tv_sec != j->in_st.st_ctim.tv_sec ||
                 st.st_ctim.tv_nsec != j->in_st.st_ctim.tv_nsec))
    r = df_error (ESTALE, "the file changed while its delta was computed");
  if (r == -1) {
    if (f.out >= 0)
      close (f.out);
    return -1;
  }
  return f.out;
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
    out = compute (d, j, &size);
    err = errno;
    if (out == -1)
      df_log_warning ("delta: %s", df_error_get ());
    else
      df_debug ("delta", "%" PRIu64 " bytes in %" PRIu64 " ms", size,
                (df_now_mono_ns () - t0) / 1000000);
    pthread_mutex_lock (&d->lock);
    gw_count (&d->gw->counters.deltas_computed);
    free (j->sig);
    j->sig = NULL;
    close (j->in);
    j->in = -1;
    j->used = ++d->clock;
    if (out == -1 && err == ECANCELED) {
      j->state = JOB_STOPPED;
      if (j->listed)
        unlist (d, j);
    }
    else if (out == -1) {
      j->state = JOB_FAILED;
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
    job_unref (j);
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
