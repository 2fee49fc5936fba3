/* diskfarm — HTTP file responses: the whole file or one range from the
 * file descriptor (libmicrohttpd sends it with sendfile on plain HTTP),
 * several ranges as multipart/byteranges, and the conditional requests
 * (If-None-Match, If-Range).  See http.h.
 */
#include <config.h>

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "cleanup.h"
#include "error.h"
#include "http-internal.h"
#include "util.h"

/* libmicrohttpd asks the multipart reader for at most this much at once. */
#define MULTIPART_BLOCK (64 * 1024)
/* More than any read_ahead_kb a server's disk is likely to have. */
#define READAHEAD_MARGIN (32 * 1024 * 1024)

static void
format_http_date (time_t t, char *buf, size_t len)
{
  struct tm tm;

  gmtime_r (&t, &tm);
  strftime (buf, len, "%a, %d %b %Y %H:%M:%S GMT", &tm);
}

/* 304, 416 and other bodiless answers to a file request. */
static int
respond_empty (struct df_http_request *req, unsigned status)
{
  struct MHD_Response *resp =
    MHD_create_response_from_buffer (0, (void *) "", MHD_RESPMEM_PERSISTENT);

  if (resp == NULL)
    return df_error (ENOMEM, "cannot create a response");
  return http_queue (req, status, resp, 0);
}


/* What of [start, end) and the kernel's readahead beyond it is cached
 * before the response reads it; released when the request ends
 * (dispatch.c).  Not to the end of the file: the responses for the next
 * ranges, sent at the same time, keep their readahead.
 */
static void
snapshot (struct df_http_request *req, int fd, uint64_t start, uint64_t end,
          uint64_t size)
{
  end = size - end > READAHEAD_MARGIN ? end + READAHEAD_MARGIN : size;
  df_cache_release (req->cache_snap);
  req->cache_snap = df_cache_snapshot (fd, start, end - start);
}

void
df_http_request_leave_cache (struct df_http_request *req)
{
  req->leave_cache = true;
}

void
df_http_request_leave_cache_of (struct df_http_request *req, int fd,
                                uint64_t start, uint64_t len)
{
  struct stat st;

  req->leave_cache = true;
  if (len && fstat (fd, &st) == 0 && (uint64_t) st.st_size >= start + len)
    snapshot (req, fd, start, start + len, st.st_size);
}

/* Takes fd: it is closed when the response is gone. */
static int
respond_fd (struct df_http_request *req, unsigned status, int fd,
            const char *content_type, uint64_t start, uint64_t len,
            uint64_t size)
{
  struct MHD_Response *resp;

  if (len == 0) {
    close (fd);
    return df_http_respond (req, status, content_type, "", 0);
  }
  /* A response that leaves the page cache is copied, not sent with
   * sendfile: pages sendfile hands to the socket stay referenced by its
   * buffers until the kernel frees them, which on loopback can be
   * seconds after the client read them (the last few MiB sent), and
   * then neither the drop at the request's end nor the one at the
   * connection's end can evict them.  pread leaves no reference behind.
   */
  if (req->leave_cache)
    snapshot (req, fd, start, start + len, size);
  if (req->rate || req->leave_cache)
    return http_respond_fd_paced (req, status, fd, content_type, start, len);
  resp = MHD_create_response_from_fd_at_offset64 (len, fd, start);
  if (resp == NULL) {
    close (fd);
    return df_error (ENOMEM, "cannot create a file response");
  }
  MHD_add_response_header (resp, MHD_HTTP_HEADER_CONTENT_TYPE, content_type);
  return http_queue (req, status, resp, len);
}

/* ---- multipart/byteranges ---- */

/* The body is a sequence of segments: each part's header text, then its
 * bytes of the file, and a closing boundary.
 */
struct segment {
  uint64_t offset;              /* in the body */
  uint64_t len;
  char *text;                   /* NULL: file bytes from file_offset */
  uint64_t file_offset;
};

struct multipart {
  int fd;
  struct df_http_rate *rate;
  size_t nsegs;
  struct segment segs[2 * DF_HTTP_MAX_RANGES + 1];
};

static void
multipart_free (void *opaque)
{
  struct multipart *m = opaque;
  size_t i;

  for (i = 0; i < m->nsegs; i++)
    free (m->segs[i].text);
  close (m->fd);
  free (m);
}

static ssize_t
multipart_read (void *opaque, uint64_t pos, char *buf, size_t max)
{
  struct multipart *m = opaque;
  size_t done = 0, i = 0;

  while (i < m->nsegs && m->segs[i].offset + m->segs[i].len <= pos)
    i++;
  for (; i < m->nsegs && done < max; i++) {
    const struct segment *s = &m->segs[i];
    uint64_t skip = pos + done - s->offset;
    size_t n = s->len - skip < max - done ? s->len - skip : max - done;

    if (s->text)
      memcpy (buf + done, s->text + skip, n);
    else {
      if (m->rate)
        df_http_rate_take (m->rate, n);
      if (df_pread_full (m->fd, buf + done, n, s->file_offset + skip) !=
          (ssize_t) n)
        return MHD_CONTENT_READER_END_WITH_ERROR;   /* the file shrank */
    }
    done += n;
  }
  return done ? (ssize_t) done : MHD_CONTENT_READER_END_OF_STREAM;
}

static int
add_text_segment (struct multipart *m, uint64_t *body, char *text)
{
  struct segment *s = &m->segs[m->nsegs];

  if (text == NULL)
    return df_error (ENOMEM, "multipart response");
  s->offset = *body;
  s->len = strlen (text);
  s->text = text;
  m->nsegs++;
  *body += s->len;
  return 0;
}

/* Takes fd. */
static int
respond_multipart (struct df_http_request *req, int fd, const char *ctype,
                   uint64_t size, const struct df_http_range *r, size_t n)
{
  struct multipart *m = calloc (1, sizeof *m);
  struct MHD_Response *resp;
  uint8_t rnd[12];
  char boundary[32], header[96];
  uint64_t body = 0;
  size_t i;

  if (m == NULL) {
    close (fd);
    return df_error (ENOMEM, "multipart response");
  }
  m->fd = fd;
  m->rate = req->rate;
  df_random_bytes (rnd, sizeof rnd);
  df_hex (rnd, sizeof rnd, boundary);
  for (i = 0; i < n; i++) {
    char *head;
    if (asprintf (&head, "%s--%s\r\nContent-Type: %s\r\nContent-Range: bytes "
                  "%" PRIu64 "-%" PRIu64 "/%" PRIu64 "\r\n\r\n",
                  i ? "\r\n" : "", boundary, ctype, r[i].start,
                  r[i].start + r[i].len - 1, size) == -1)
      head = NULL;
    if (add_text_segment (m, &body, head) == -1)
      goto fail;
    m->segs[m->nsegs++] = (struct segment) {
      .offset = body, .len = r[i].len, .file_offset = r[i].start,
    };
    body += r[i].len;
  }
  {
    char *tail;
    if (asprintf (&tail, "\r\n--%s--\r\n", boundary) == -1)
      tail = NULL;
    if (add_text_segment (m, &body, tail) == -1)
      goto fail;
  }
  if (req->leave_cache) {
    uint64_t lo = r[0].start, hi = r[0].start + r[0].len;
    for (i = 1; i < n; i++) {
      lo = r[i].start < lo ? r[i].start : lo;
      hi = r[i].start + r[i].len > hi ? r[i].start + r[i].len : hi;
    }
    snapshot (req, fd, lo, hi, size);
  }
  resp = MHD_create_response_from_callback (body, MULTIPART_BLOCK,
                                            multipart_read, m, multipart_free);
  if (resp == NULL) {
    df_error (ENOMEM, "cannot create a multipart response");
    goto fail;
  }
  snprintf (header, sizeof header, "multipart/byteranges; boundary=%s",
            boundary);
  MHD_add_response_header (resp, MHD_HTTP_HEADER_CONTENT_TYPE, header);
  return http_queue (req, 206, resp, body);

 fail:
  multipart_free (m);
  return -1;
}

/* ---- the conditional and ranged file response ---- */

/* ETag, Last-Modified and Accept-Ranges of a file response; etag and
 * date receive the values (the caller's etag, or one derived from the
 * file's inode, size and modification time).
 */
static int
file_headers (struct df_http_request *req, const struct stat *st,
              const char *given, char *etag, size_t etag_len, char *date,
              size_t date_len)
{
  if (given)
    snprintf (etag, etag_len, "%s", given);
  else
    snprintf (etag, etag_len, "\"%" PRIx64 "-%" PRIx64 "-%" PRIx64 "\"",
              (uint64_t) st->st_ino, (uint64_t) st->st_size,
              (uint64_t) st->st_mtim.tv_sec * 1000000000 + st->st_mtim.tv_nsec);
  format_http_date (st->st_mtime, date, date_len);
  if (df_http_add_header (req, "ETag", etag) == -1 ||
      df_http_add_header (req, "Last-Modified", date) == -1 ||
      df_http_add_header (req, "Accept-Ranges", "bytes") == -1)
    return -1;
  return 0;
}

/* The ranges to send (n > 0), 0 for the whole file, -1 unsatisfiable. */
static int
wanted_ranges (struct df_http_request *req, uint64_t size, const char *etag,
               const char *date, struct df_http_range *r)
{
  const char *if_range = df_http_header (req, "If-Range");
  int n = df_http_parse_ranges (df_http_header (req, "Range"), size, r,
                                DF_HTTP_MAX_RANGES);

  /* The client's partial copy is stale: it gets the whole file. */
  if (n != 0 && if_range && strcmp (if_range, etag) != 0 &&
      strcmp (if_range, date) != 0)
    return 0;
  return n;
}

int
df_http_respond_file (struct df_http_request *req, int fd,
                      const char *content_type, const char *etag)
{
  struct df_http_range r[DF_HTTP_MAX_RANGES];
  char tag[256], date[64], cr[96];
  uint64_t size;
  struct stat st;
  int n;

  if (fstat (fd, &st) == -1)
    n = df_error_errno ("%s", req->path);
  else if (!S_ISREG (st.st_mode))
    n = df_error (EINVAL, "%s: not a regular file", req->path);
  else
    n = file_headers (req, &st, etag, tag, sizeof tag, date, sizeof date);
  if (n == -1) {
    close (fd);
    return -1;
  }
  size = st.st_size;
  if (content_type == NULL)
    content_type = "application/octet-stream";
  if (df_http_etag_match (df_http_header (req, "If-None-Match"), tag)) {
    close (fd);
    return respond_empty (req, 304);
  }
  n = wanted_ranges (req, size, tag, date, r);
  if (n == 0)
    return respond_fd (req, 200, fd, content_type, 0, size, size);
  if (n > 1)
    return respond_multipart (req, fd, content_type, size, r, n);
  if (n == -1) {
    close (fd);
    snprintf (cr, sizeof cr, "bytes */%" PRIu64, size);
    if (df_http_add_header (req, "Content-Range", cr) == -1)
      return -1;
    return respond_empty (req, 416);
  }
  snprintf (cr, sizeof cr, "bytes %" PRIu64 "-%" PRIu64 "/%" PRIu64,
            r[0].start, r[0].start + r[0].len - 1, size);
  if (df_http_add_header (req, "Content-Range", cr) == -1) {
    close (fd);
    return -1;
  }
  return respond_fd (req, 206, fd, content_type, r[0].start, r[0].len,
                     size);
}
