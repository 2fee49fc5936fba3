/* diskfarm-gateway serve — GET /v1/stores/STORE/staged/PATH?hash=H: a
 * copy of a file that the replicator here is still fetching, served to
 * peers while it arrives (relays, see docs/replication.md and the
 * staging files in gwapi.h).
 *
 * A range is sent as its bytes arrive: the reader follows H.got, and
 * waits (at most --relay-wait without news) for bytes not there yet.
 * The copy abandoned (H.got unlinked with the range incomplete) or
 * stalled: the connection is cut off, the client takes the rest
 * elsewhere.  Nothing here vouches for the bytes: the client checks
 * the content hash before it commits.
 */
#include <config.h>

#include <endian.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "cleanup.h"
#include "error.h"
#include "gw.h"
#include "log.h"
#include "storepath.h"

#define POLL_NS (20 * 1000000L)
#define MAX_SPANS 4096

struct span {
  uint64_t start, end;
};

/* One response: the copy, its log and what the log has said so far. */
struct staged {
  int part, got;                /* got == -1: complete (H.done) */
  uint64_t start;               /* of the range sent */
  uint64_t got_off;             /* log bytes read */
  struct span spans[MAX_SPANS]; /* arrived, sorted, merged */
  size_t nspans;
  uint64_t wait_ns;             /* --relay-wait */
  uint64_t news_ns;             /* when the log last said something */
};

static void
staged_free (void *opaque)
{
  struct staged *s = opaque;

  if (s->part >= 0)
    close (s->part);
  if (s->got >= 0)
    close (s->got);
  free (s);
}

/* Adds [a, b) to the arrived spans, merging neighbours. */
static void
add_span (struct staged *s, uint64_t a, uint64_t b)
{
  size_t i = 0, j;

  if (a >= b)
    return;
  while (i < s->nspans && s->spans[i].end < a)
    i++;
  j = i;
  while (j < s->nspans && s->spans[j].start <= b) {
    a = s->spans[j].start < a ? s->spans[j].start : a;
    b = s->spans[j].end > b ? s->spans[j].end : b;
    j++;
  }
  if (j == i) {                 /* no overlap: insert at i */
    if (s->nspans == MAX_SPANS)
      return;                   /* too scattered: that part waits */
    memmove (&s->spans[i + 1], &s->spans[i],
             (s->nspans - i) * sizeof s->spans[0]);
    s->nspans++;
  }
  else if (j > i + 1) {
    memmove (&s->spans[i + 1], &s->spans[j],
             (s->nspans - j) * sizeof s->spans[0]);
    s->nspans -= j - i - 1;
  }
  s->spans[i] = (struct span) { a, b };
}

/* Reads the records appended since last time; 1 if there were any. */
static int
read_log (struct staged *s)
{
  unsigned char buf[DF_STAGED_RECORD * 256];
  bool news = false;
  ssize_t n;
  size_t i;

  while ((n = pread (s->got, buf, sizeof buf, s->got_off)) >=
         DF_STAGED_RECORD) {
    n -= n % DF_STAGED_RECORD;
    for (i = 0; i < (size_t) n; i += DF_STAGED_RECORD) {
      uint64_t a, b;
      memcpy (&a, buf + i, 8);
      memcpy (&b, buf + i + 8, 8);
      add_span (s, le64toh (a), le64toh (b));
    }
    s->got_off += n;
    news = true;
  }
  return news;
}

/* The arrived bytes from off on (0: none yet). */
static uint64_t
arrived_from (const struct staged *s, uint64_t off)
{
  size_t i;

  for (i = 0; i < s->nspans; i++)
    if (s->spans[i].start <= off && off < s->spans[i].end)
      return s->spans[i].end - off;
  return 0;
}

static bool
abandoned (int fd)
{
  struct stat st;

  return fstat (fd, &st) == -1 || st.st_nlink == 0;
}

/* Bytes from s->start + pos as they arrive: 0 while there are none
 * yet (the HTTP layer asks again soon), an error once none will come.
 */
static ssize_t
staged_read (void *opaque, struct df_http_stream *hs, uint64_t pos,
             char *buf, size_t max)
{
  struct staged *s = opaque;
  uint64_t off = s->start + pos, have = 0, now;
  ssize_t n;

  if (s->got >= 0 && (have = arrived_from (s, off)) == 0) {
    now = df_now_mono_ns ();
    if (read_log (s))
      s->news_ns = now;
    else if (abandoned (s->got))
      read_log (s);             /* the last records came with the unlink */
    have = arrived_from (s, off);
    if (have == 0 && (abandoned (s->got) || now - s->news_ns >= s->wait_ns))
      return DF_HTTP_STREAM_ERROR;      /* stopped or stalled: go elsewhere */
    if (have == 0)
      return 0;
  }
  if (s->got >= 0 && have < max)
    max = have;
  (void) hs;
  n = pread (s->part, buf, max, off);
  return n > 0 ? n : DF_HTTP_STREAM_ERROR;
}

/* Answers with s (taken). */
static int respond (struct gw *gw, struct df_http_request *req,
                    struct staged *s, const char *hex);

/* Opens STAGING/HEX.SUFFIX beneath the store, or -1 (errno ENOENT). */
static int
open_staging (const char *dir, const char *hex, const char *suffix)
{
  CLEANUP_FREE char *rel = NULL;

  if (asprintf (&rel, "%s/%s.%s", DF_STAGING_DIR, hex, suffix) == -1)
    return df_error_errno ("staged");
  return gw_open_beneath (dir, rel);
}

/* The copy and its log, waiting up to --relay-wait for them to appear
 * (a peer may ask as soon as its sync starts, like this server's).
 */
static int
open_copy (struct gw *gw, const char *dir, const char *hex, struct staged *s)
{
  uint64_t waited = 0;
  struct timespec ts = { 0, POLL_NS };

  for (;;) {
    s->part = open_staging (dir, hex, "done");
    if (s->part >= 0)
      return 0;                 /* committed: all of it is there */
    s->got = open_staging (dir, hex, "got");
    if (s->got >= 0) {
      s->part = open_staging (dir, hex, "part");
      if (s->part >= 0)
        return 0;
      close (s->got);
      s->got = -1;
    }
    df_error_clear ();
    if ((waited += POLL_NS) >= gw->cfg.relay_wait_s * 1000000000ULL)
      return -1;
    nanosleep (&ts, NULL);
  }
}

static int
respond (struct gw *gw, struct df_http_request *req, struct staged *s,
         const char *hex)
{
  struct df_http_range r;
  char etag[DF_HASH_LEN * 2 + 3], cr[96];
  struct stat st;
  int n;

  if (fstat (s->part, &st) == -1) {
    staged_free (s);
    return df_error_errno ("staged copy");
  }
  n = df_http_parse_ranges (df_http_header (req, "Range"), st.st_size, &r, 1);
  if (n == -1) {
    staged_free (s);
    snprintf (cr, sizeof cr, "bytes */%" PRIu64, (uint64_t) st.st_size);
    df_http_add_header (req, "Content-Range", cr);
    return df_http_respond_error (req, 416, "range", "no such range");
  }
  if (n == 0)
    r = (struct df_http_range) { 0, st.st_size };
  s->start = r.start;
  s->wait_ns = gw->cfg.relay_wait_s * 1000000000ULL;
  s->news_ns = df_now_mono_ns ();
  snprintf (etag, sizeof etag, "\"%s\"", hex);
  snprintf (cr, sizeof cr, "bytes %" PRIu64 "-%" PRIu64 "/%" PRIu64,
            r.start, r.start + r.len - 1, (uint64_t) st.st_size);
  if (df_http_add_header (req, "ETag", etag) == -1 ||
      (n == 1 && df_http_add_header (req, "Content-Range", cr) == -1)) {
    staged_free (s);
    return -1;
  }
  /* Relayed bytes: the page cache here stays as the copy left it. */
  df_http_request_leave_cache_of (req, s->part, r.start, r.len);
  gw_throttle (gw, req);
  return df_http_respond_stream (req, n == 1 ? 206 : 200,
                                 "application/octet-stream", r.len,
                                 staged_read, staged_free, s);
}

int
gw_serve_staged (struct gw *gw, struct df_http_request *req, const char *dir,
                 const char *path)
{
  const char *hex = df_http_query (req, "hash");
  uint8_t hash[DF_HASH_LEN];
  struct staged *s;

  if (hex == NULL || strlen (hex) != 2 * DF_HASH_LEN ||
      df_unhex (hex, hash, DF_HASH_LEN) == -1) {
    df_error_clear ();
    return gw_refuse (req, 400, "bad-hash", "staged/%s: give the file's "
                      "content hash as ?hash=(64 hex digits)", path);
  }
  s = calloc (1, sizeof *s);
  if (s == NULL)
    return df_error_errno ("staged");
  s->part = s->got = -1;
  if (open_copy (gw, dir, hex, s) == -1) {
    staged_free (s);
    return df_http_respond_error (req, 404, "not-staged", "no copy of %s "
                                  "with hash %s is on its way here", path,
                                  hex);
  }
  df_debug ("http", "staged %s: %s copy", path,
                s->got >= 0 ? "arriving" : "committed");
  return respond (gw, req, s, hex);
}

void
gw_throttle (struct gw *gw, struct df_http_request *req)
{
  if (gw->upload)
    df_http_request_throttle (req, gw->upload);
}
