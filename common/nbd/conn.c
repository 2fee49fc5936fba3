/* diskfarm — NBD server: the transmission phase of a connection. */
#include <config.h>

#include <errno.h>
#include <inttypes.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>

#include "error.h"
#include "nbd/server-int.h"

#define CACHE_CHUNK (1024 * 1024)   /* NBD_CMD_CACHE reads this at a time */
#define BATCH_BYTES (8 * 1024 * 1024)   /* a batch's bytes at most */

void
nbd_conn_init (struct conn *c, const struct df_nbd_export *e, int in, int out)
{
  memset (c, 0, sizeof *c);
  c->e = e;
  c->in = in;
  c->out = out;
  pthread_mutex_init (&c->send_lock, NULL);
  pthread_mutex_init (&c->read_lock, NULL);
  pthread_cond_init (&c->async_cond, NULL);
  pthread_cond_init (&c->out_cond, NULL);
  c->aio.done = nbd_reads_done;
}

static void
free_jobs (struct job *j)
{
  while (j) {
    struct job *next = j->spare_next;
    free (j);
    j = next;
  }
}

void
nbd_conn_destroy (struct conn *c)
{
  pthread_mutex_destroy (&c->send_lock);
  pthread_mutex_destroy (&c->read_lock);
  pthread_cond_destroy (&c->async_cond);
  pthread_cond_destroy (&c->out_cond);
  free (c->rbuf);
  free_jobs (c->spare);
  free_jobs (c->returned);
}

/* A job for a request of type with room for a payload of room bytes
 * (read_lock held): a small read's from those to reuse.
 */
static struct job *
new_job (struct conn *c, uint16_t type, size_t room)
{
  struct job *j;

  if (type != NBD_CMD_READ || room > JOB_SMALL) {
    j = malloc (sizeof *j + room);
    if (j)
      j->small = false;
    return j;
  }
  if (c->spare == NULL)
    c->spare = __atomic_exchange_n (&c->returned, NULL, __ATOMIC_ACQUIRE);
  if ((j = c->spare) != NULL) {
    c->spare = j->spare_next;
    return j;
  }
  j = malloc (sizeof *j + JOB_SMALL);
  if (j)
    j->small = true;
  return j;
}

static const char *
command_name (uint16_t type)
{
  switch (type) {
  case NBD_CMD_READ: return "read";
  case NBD_CMD_WRITE: return "write";
  case NBD_CMD_FLUSH: return "flush";
  case NBD_CMD_TRIM: return "trim";
  case NBD_CMD_CACHE: return "cache";
  case NBD_CMD_WRITE_ZEROES: return "write zeroes";
  default: return "unknown command";
  }
}

/* NBD_CMD_CACHE: reads the range through the stack (a read cache keeps
 * it) and drops the data.
 */
static int
cache_range (struct df_bdev *b, uint64_t offset, uint32_t count)
{
  char *buf = malloc (count < CACHE_CHUNK ? count : CACHE_CHUNK);
  int r = 0;

  if (buf == NULL)
    return -1;
  while (r == 0 && count > 0) {
    uint32_t n = count < CACHE_CHUNK ? count : CACHE_CHUNK;
    r = df_bdev_pread (b, buf, n, offset);
    offset += n;
    count -= n;
  }
  free (buf);
  return r;
}

static int
run (struct conn *c, struct job *j)
{
  struct df_bdev *b = c->e->bdev;
  const struct nbd_request *r = &j->req;
  uint32_t fua = (r->flags & NBD_CMD_FLAG_FUA) ? DF_FUA : 0;
  uint32_t zf = fua;

  switch (r->type) {
  case NBD_CMD_READ:
    return df_bdev_pread (b, j->data, r->count, r->offset);
  case NBD_CMD_WRITE:
    return df_bdev_pwrite (b, j->data, r->count, r->offset, fua);
  case NBD_CMD_FLUSH:
    return df_bdev_flush (b);
  case NBD_CMD_TRIM:
    return df_bdev_trim (b, r->count, r->offset, fua);
  case NBD_CMD_WRITE_ZEROES:
    if (!(r->flags & NBD_CMD_FLAG_NO_HOLE))
      zf |= DF_MAY_TRIM;
    if (r->flags & NBD_CMD_FLAG_FAST_ZERO)
      zf |= DF_FAST_ZERO;
    return df_bdev_zero (b, r->count, r->offset, zf);
  case NBD_CMD_CACHE:
    return cache_range (b, r->offset, r->count);
  }
  return df_error (EINVAL, "unknown command %u", r->type);
}

static void
job_run (struct job *j)
{
  struct conn *c = j->conn;
  const struct nbd_request *r = &j->req;
  uint32_t error = j->error;

  if (error == 0 && run (c, j) == -1) {
    int err = errno;
    error = nbd_errno_to_wire (err);
    if (err != ENOSPC && err != ESHUTDOWN)
      nbd_conn_log (c, "%s of %" PRIu32 " bytes at %" PRIu64 ": %s",
                    command_name (r->type), r->count, r->offset,
                    df_error_get ());
    df_error_clear ();
  }
  nbd_send_reply (c, r, error,
                  r->type == NBD_CMD_READ ? j->data : NULL,
                  r->type == NBD_CMD_READ ? r->count : 0);
  free (j);
}

/* Reads and discards len bytes of a refused write's payload. */
static int
skip_payload (struct conn *c, uint32_t len)
{
  char buf[65536];

  while (len > 0) {
    uint32_t n = len < sizeof buf ? len : sizeof buf;
    if (nbd_conn_read (c, buf, n) == -1)
      return -1;
    len -= n;
  }
  return 0;
}

/* Reads one request and its payload into a new job.  NULL when the
 * connection ends (EOF, NBD_CMD_DISC, a protocol error: logged).
 */
static struct job *
read_job (struct conn *c)
{
  uint8_t h[NBD_REQUEST_SIZE];
  struct nbd_request r;
  struct job *j;
  int check;
  size_t room;

  if (nbd_conn_read (c, h, sizeof h) == -1) {
    if (errno != 0 && errno != ECONNRESET)
      nbd_conn_log (c, "reading a request: %s", strerror (errno));
    return NULL;
  }
  if (nbd_request_decode (h, &r) == -1) {
    nbd_conn_log (c, "bad request magic: dropping the connection");
    return NULL;
  }
  check = nbd_request_check (&r, &c->limits);
  if (check == -1) {
    nbd_conn_log (c, "write of %" PRIu32 " bytes is over the limit: "
                  "dropping the connection", r.count);
    return NULL;
  }
  if (r.type == NBD_CMD_DISC)
    return NULL;
  room = check == 0 && (r.type == NBD_CMD_READ || r.type == NBD_CMD_WRITE)
    ? r.count : 0;
  j = new_job (c, r.type, room);
  if (j == NULL) {
    nbd_conn_log (c, "out of memory for a request of %" PRIu32 " bytes",
                  r.count);
    return NULL;
  }
  j->conn = c;
  j->req = r;
  j->error = check;
  if (nbd_request_has_payload (&r) &&
      (check ? skip_payload (c, r.count)
             : nbd_conn_read (c, j->data, r.count)) == -1) {
    nbd_conn_log (c, "reading a write's payload: %s",
                  errno ? strerror (errno) : "end of file");
    free (j);
    return NULL;
  }
  return j;
}

/* Is a READ next in what was read ahead, that keeps the batch within
 * BATCH_BYTES (bytes so far)?
 */
static bool
read_next (const struct conn *c, uint64_t bytes)
{
  const uint8_t *p;
  size_t n = nbd_conn_buffered (c, &p);

  return n >= NBD_REQUEST_SIZE && nbd_get32 (p) == NBD_REQUEST_MAGIC &&
    nbd_get16 (p + 6) == NBD_CMD_READ &&
    bytes + nbd_get32 (p + 24) <= BATCH_BYTES;
}

/* Reads that arrived together: the device gets them at once (an NBD
 * upstream sends them together), the replies go out in one write.
 */
static void
run_reads (struct conn *c, struct job **jobs, size_t n)
{
  struct df_bdev_read rd[BATCH];
  uint8_t h[BATCH][NBD_SIMPLE_REPLY_SIZE];
  struct iovec iov[2 * BATCH];
  size_t map[BATCH], k = 0, i;
  int niov = 0;

  for (i = 0; i < n; i++)
    if (jobs[i]->error == 0) {
      rd[k] = (struct df_bdev_read) {
        .buf = jobs[i]->data, .count = jobs[i]->req.count,
        .offset = jobs[i]->req.offset,
      };
      map[k++] = i;
    }
  if (k && df_bdev_pread_many (c->e->bdev, rd, k) == -1)
    for (i = 0; i < k; i++)
      if (rd[i].error) {
        jobs[map[i]]->error = nbd_errno_to_wire (rd[i].error);
        nbd_conn_log (c, "read of %" PRIu32 " bytes at %" PRIu64 ": %s",
                      rd[i].count, rd[i].offset, strerror (rd[i].error));
      }
  df_error_clear ();
  for (i = 0; i < n; i++) {
    nbd_simple_reply_encode (h[i], jobs[i]->error, jobs[i]->req.cookie);
    iov[niov++] = (struct iovec) { h[i], sizeof h[i] };
    if (jobs[i]->error == 0)
      iov[niov++] = (struct iovec) { jobs[i]->data, jobs[i]->req.count };
  }
  pthread_mutex_lock (&c->send_lock);
  if (!c->send_failed && nbd_send_iov (c, iov, niov) == -1)
    c->send_failed = true;
  pthread_mutex_unlock (&c->send_lock);
  for (i = 0; i < n; i++)
    free (jobs[i]);
}

/* Would k more reads of bytes in all pass the bounds? */
static bool
over_bounds (struct conn *c, size_t k, uint64_t bytes)
{
  unsigned jobs = __atomic_load_n (&c->async_jobs, __ATOMIC_RELAXED);

  return jobs > 0 &&
    (jobs + k > ASYNC_JOBS ||
     __atomic_load_n (&c->async_bytes, __ATOMIC_RELAXED) + bytes > ASYNC_BYTES);
}

/* Hands reads to a device that runs them asynchronously (read_lock
 * held): the reader goes on reading while they run.  Within
 * ASYNC_JOBS / ASYNC_BYTES: past them it waits for replies first.
 */
static void
submit_reads (struct conn *c, struct job **jobs, size_t n)
{
  struct df_bdev_aread *a[BATCH];
  uint64_t bytes = 0;
  size_t k = 0, i;

  for (i = 0; i < n; i++)
    if (jobs[i]->error) {       /* refused before running */
      nbd_send_reply (c, &jobs[i]->req, jobs[i]->error, NULL, 0);
      free (jobs[i]);
    }
    else {
      struct job *j = jobs[i];
      j->aread = (struct df_bdev_aread) {
        .buf = j->data, .count = j->req.count, .offset = j->req.offset,
        .aio = &c->aio,
      };
      a[k++] = &j->aread;
      bytes += j->req.count;
    }
  if (k == 0)
    return;
  /* Only the reader role adds: the counts it sees can only go down
   * before it adds.  Within the bounds (the usual case) it takes no
   * lock; past them it waits under send_lock, where they go down.
   */
  if (over_bounds (c, k, bytes)) {
    pthread_mutex_lock (&c->send_lock);
    while (over_bounds (c, k, bytes))
      pthread_cond_wait (&c->async_cond, &c->send_lock);
    pthread_mutex_unlock (&c->send_lock);
  }
  __atomic_add_fetch (&c->async_jobs, k, __ATOMIC_RELAXED);
  __atomic_add_fetch (&c->async_bytes, bytes, __ATOMIC_RELAXED);
  df_bdev_pread_async (c->e->bdev, a, k);
}

/* The reader role is read_lock: its holder reads the requests that
 * came, all the reads among them at once.  Reads it runs itself and
 * keeps the role: the next batch is then all that came meanwhile, read
 * by the same thread, and no other thread wakes for it.  Any other
 * request (a write, a flush: it may wait on the disk) it hands the role
 * on for, so that they run side by side.
 */
void
nbd_transmission (struct conn *c)
{
  struct job *jobs[BATCH];

  pthread_mutex_lock (&c->read_lock);
  for (;;) {
    uint64_t bytes = 0;
    size_t n = 0;

    /* A READ takes the READs read ahead behind it along. */
    while (!c->eof && n < BATCH &&
           (n == 0 || (jobs[0]->req.type == NBD_CMD_READ &&
                       read_next (c, bytes)))) {
      struct job *j = read_job (c);
      if (j == NULL)
        c->eof = true;
      else {
        jobs[n++] = j;
        bytes += j->req.count;
      }
    }
    if (n == 0)
      break;
    if (jobs[0]->req.type == NBD_CMD_READ && c->queued_replies)
      submit_reads (c, jobs, n);
    else if (jobs[0]->req.type == NBD_CMD_READ)
      run_reads (c, jobs, n);
    else {
      pthread_mutex_unlock (&c->read_lock);
      job_run (jobs[0]);
      pthread_mutex_lock (&c->read_lock);
    }
  }
  pthread_mutex_unlock (&c->read_lock);
}
