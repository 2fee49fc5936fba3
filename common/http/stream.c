/* diskfarm — streamed responses and the egress cap (see http.h). */
#include <config.h>

#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <time.h>
#include <unistd.h>

#include "error.h"
#include "http-internal.h"
#include "util.h"

/* libmicrohttpd asks a streamed body for at most this much at once. */
#define STREAM_BLOCK (256 * 1024)
/* The bucket holds at most this long of the rate: a burst. */
#define BURST_NS (100 * 1000000ULL)

struct df_http_rate {
  pthread_mutex_t lock;         /* a leaf lock, never held while sleeping */
  uint64_t bytes_per_s;
  double tokens;                /* may go negative: debt sleeps it off */
  uint64_t last_ns;
};

struct df_http_rate *
df_http_rate_new (uint64_t bytes_per_s)
{
  struct df_http_rate *r = calloc (1, sizeof *r);

  if (r == NULL) {
    df_error_errno ("rate");
    return NULL;
  }
  pthread_mutex_init (&r->lock, NULL);
  r->bytes_per_s = bytes_per_s ? bytes_per_s : 1;
  r->last_ns = df_now_mono_ns ();
  return r;
}

void
df_http_rate_free (struct df_http_rate *r)
{
  if (r == NULL)
    return;
  pthread_mutex_destroy (&r->lock);
  free (r);
}

uint64_t
df_http_rate_bytes_per_s (const struct df_http_rate *r)
{
  return r->bytes_per_s;
}

void
df_http_rate_take (struct df_http_rate *r, size_t n)
{
  double burst = (double) r->bytes_per_s * BURST_NS / 1e9;
  uint64_t now, wait_ns = 0;
  struct timespec ts;

  pthread_mutex_lock (&r->lock);
  now = df_now_mono_ns ();
  r->tokens += (double) (now - r->last_ns) * r->bytes_per_s / 1e9;
  if (r->tokens > burst)
    r->tokens = burst;
  r->last_ns = now;
  r->tokens -= n;
  if (r->tokens < 0)
    wait_ns = -r->tokens * 1e9 / r->bytes_per_s;
  pthread_mutex_unlock (&r->lock);
  if (wait_ns == 0)
    return;
  ts.tv_sec = wait_ns / 1000000000;
  ts.tv_nsec = wait_ns % 1000000000;
  while (nanosleep (&ts, &ts) == -1 && errno == EINTR)
    ;
}

void
df_http_request_throttle (struct df_http_request *req,
                          struct df_http_rate *rate)
{
  req->rate = rate;
}

struct df_http_stream {
  df_http_stream_read_fn read;
  df_http_stream_free_fn free_fn;
  void *opaque;
  struct df_http_rate *rate;
  struct df_http_server *srv;
  struct MHD_Connection *conn;
  bool caller_waits;         /* df_http_stream_wait in this read */
};

static ssize_t
stream_read (void *cls, uint64_t pos, char *buf, size_t max)
{
  struct df_http_stream *s = cls;
  ssize_t n;

  s->caller_waits = false;
  n = s->read (s->opaque, s, pos, buf, max);
  if (n == 0 && !s->caller_waits) {
    /* Nothing yet: the connection sleeps without holding its thread
     * (the others it serves go on), and read is asked again.
     */
    if (__atomic_load_n (&s->srv->closing, __ATOMIC_RELAXED))
      return MHD_CONTENT_READER_END_WITH_ERROR;
    if (!http_conn_wait (s->srv, s->conn)) {
      struct timespec ts = { 0, HTTP_WAKE_NS };
      nanosleep (&ts, NULL);
    }
    return 0;
  }
  if (n == 0)
    return 0;                   /* asleep until df_http_stream_wake */
  if (n == DF_HTTP_STREAM_END)
    return MHD_CONTENT_READER_END_OF_STREAM;
  if (n < 0)
    return MHD_CONTENT_READER_END_WITH_ERROR;   /* short, no last chunk */
  if (s->rate)
    df_http_rate_take (s->rate, n);
  return n;
}

static void
stream_free (void *cls)
{
  struct df_http_stream *s = cls;

  if (s->free_fn)
    s->free_fn (s->opaque);
  free (s);
}

int
df_http_respond_stream (struct df_http_request *req, unsigned status,
                        const char *content_type, uint64_t len,
                        df_http_stream_read_fn read,
                        df_http_stream_free_fn free_fn, void *opaque)
{
  struct df_http_stream *s = calloc (1, sizeof *s);
  struct MHD_Response *resp;

  if (s == NULL) {
    if (free_fn)
      free_fn (opaque);
    return df_error_errno ("stream response");
  }
  *s = (struct df_http_stream) { .read = read, .free_fn = free_fn,
                                 .opaque = opaque, .rate = req->rate,
                                 .srv = req->srv, .conn = req->conn };
  if (len == 0) {
    stream_free (s);
    return df_http_respond (req, status, content_type, "", 0);
  }
  resp = MHD_create_response_from_callback (len == DF_HTTP_LEN_UNKNOWN ?
                                            MHD_SIZE_UNKNOWN : len,
                                            STREAM_BLOCK, stream_read, s,
                                            stream_free);
  if (resp == NULL) {
    stream_free (s);
    return df_error (ENOMEM, "cannot create a streamed response");
  }
  MHD_add_response_header (resp, MHD_HTTP_HEADER_CONTENT_TYPE,
                           content_type ? content_type
                           : "application/octet-stream");
  return http_queue (req, status, resp,
                     len == DF_HTTP_LEN_UNKNOWN ? 0 : len);
}

void
df_http_stream_wait (struct df_http_stream *s)
{
  s->caller_waits = true;
  http_conn_suspend (s->srv, s->conn, true);
}

void
df_http_stream_wake (struct df_http_stream *s)
{
  http_conn_suspend (s->srv, s->conn, false);
}

/* ---- a file range, paced (file.c uses it for throttled requests) ---- */

struct fd_range {
  int fd;
  uint64_t start;
};

static ssize_t
fd_range_read (void *opaque, struct df_http_stream *s, uint64_t pos,
               char *buf, size_t max)
{
  struct fd_range *f = opaque;
  ssize_t n = pread (f->fd, buf, max, f->start + pos);

  (void) s;
  return n > 0 ? n : DF_HTTP_STREAM_ERROR;      /* the file shrank or failed */
}

static void
fd_range_free (void *opaque)
{
  struct fd_range *f = opaque;

  close (f->fd);
  free (f);
}

int
http_respond_fd_paced (struct df_http_request *req, unsigned status, int fd,
                       const char *content_type, uint64_t start, uint64_t len)
{
  struct fd_range *f = malloc (sizeof *f);

  if (f == NULL) {
    close (fd);
    return df_error_errno ("file response");
  }
  f->fd = fd;
  f->start = start;
  return df_http_respond_stream (req, status, content_type, len,
                                 fd_range_read, fd_range_free, f);
}
