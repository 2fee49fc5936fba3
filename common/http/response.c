/* diskfarm — HTTP responses: buffers, text, JSON, files with Range and
 * ETag (see http.h).
 */
#include <config.h>

#include <ctype.h>
#include <errno.h>
#include <inttypes.h>
#include <stdarg.h>
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

int
df_http_add_header (struct df_http_request *req, const char *name,
                    const char *value)
{
  size_t i = req->nheaders;

  if (i >= HTTP_MAX_HEADERS)
    return df_error (E2BIG, "too many response headers");
  req->headers[i].name = strdup (name);
  req->headers[i].value = strdup (value);
  if (req->headers[i].name == NULL || req->headers[i].value == NULL) {
    free (req->headers[i].name);
    free (req->headers[i].value);
    return df_error_errno ("response header");
  }
  req->nheaders++;
  return 0;
}

int
df_http_respond (struct df_http_request *req, unsigned status,
                 const char *content_type, const void *data, size_t len)
{
  struct MHD_Response *resp =
    MHD_create_response_from_buffer (len, (void *) data, MHD_RESPMEM_MUST_COPY);

  if (resp == NULL)
    return df_error (ENOMEM, "cannot create a response");
  if (content_type)
    MHD_add_response_header (resp, MHD_HTTP_HEADER_CONTENT_TYPE, content_type);
  return http_queue (req, status, resp, len);
}

int
df_http_respond_text (struct df_http_request *req, unsigned status,
                      const char *fmt, ...)
{
  CLEANUP_FREE char *text = NULL;
  va_list ap;
  int n;

  va_start (ap, fmt);
  n = vasprintf (&text, fmt, ap);
  va_end (ap);
  if (n == -1) {
    text = NULL;
    return df_error (ENOMEM, "cannot format a response");
  }
  return df_http_respond (req, status, "text/plain; charset=utf-8", text, n);
}

int
df_http_respond_json (struct df_http_request *req, unsigned status, json_t *v)
{
  CLEANUP_FREE char *text = NULL;
  size_t n;

  if (v == NULL)
    return df_error (ENOMEM, "no JSON value to send");
  text = json_dumps (v, JSON_INDENT (2) | JSON_PRESERVE_ORDER);
  json_decref (v);
  if (text == NULL)
    return df_error (ENOMEM, "cannot encode JSON");
  n = strlen (text);
  text[n] = '\n';               /* json_dumps leaves room: replace the NUL */
  return df_http_respond (req, status, "application/json", text, n + 1);
}

/* ---- Range and ETag ---- */

static const char *
skip_space (const char *s)
{
  while (*s == ' ' || *s == '\t')
    s++;
  return s;
}

/* Digits into *out; returns the end or NULL (none, or overflow). */
static const char *
parse_digits (const char *s, uint64_t *out)
{
  uint64_t v = 0;

  if (!isdigit ((unsigned char) *s))
    return NULL;
  for (; isdigit ((unsigned char) *s); s++) {
    if (v > (UINT64_MAX - 9) / 10)
      return NULL;
    v = v * 10 + (*s - '0');
  }
  *out = v;
  return s;
}

int
df_http_parse_range (const char *value, uint64_t size, uint64_t *start,
                     uint64_t *len)
{
  uint64_t a = 0, b = 0;
  bool have_a, have_b;
  const char *s;

  if (value == NULL)
    return 0;
  s = skip_space (value);
  if (strncasecmp (s, "bytes", 5) != 0)
    return 0;
  s = skip_space (s + 5);
  if (*s++ != '=')
    return 0;
  s = skip_space (s);
  have_a = isdigit ((unsigned char) *s);
  if (have_a && (s = parse_digits (s, &a)) == NULL)
    return 0;
  s = skip_space (s);
  if (*s++ != '-')
    return 0;
  s = skip_space (s);
  have_b = isdigit ((unsigned char) *s);
  if (have_b && (s = parse_digits (s, &b)) == NULL)
    return 0;
  s = skip_space (s);
  if (*s != '\0' || (!have_a && !have_b))
    return 0;                   /* several ranges or junk: send it all */
  if (!have_a) {                /* suffix: the last b bytes */
    if (b == 0 || size == 0)
      return -1;
    *len = b < size ? b : size;
    *start = size - *len;
    return 1;
  }
  if (have_b && b < a)
    return 0;                   /* invalid: ignore the header (RFC 7233) */
  if (a >= size)
    return -1;
  if (!have_b || b >= size)
    b = size - 1;
  *start = a;
  *len = b - a + 1;
  return 1;
}

bool
df_http_etag_match (const char *list, const char *etag)
{
  size_t n = strlen (etag);
  const char *s = list;

  if (list == NULL)
    return false;
  while (*s) {
    s = skip_space (s);
    if (*s == '*')
      return true;
    if (strncmp (s, "W/", 2) == 0)      /* weak comparison */
      s += 2;
    if (strncmp (s, etag, n) == 0 &&
        (s[n] == '\0' || s[n] == ',' || s[n] == ' ' || s[n] == '\t'))
      return true;
    s = strchr (s, ',');
    if (s == NULL)
      break;
    s++;
  }
  return false;
}

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

static int
respond_fd (struct df_http_request *req, unsigned status, int fd,
            const char *content_type, uint64_t start, uint64_t len)
{
  struct MHD_Response *resp;

  if (len == 0) {
    close (fd);
    return df_http_respond (req, status, content_type, "", 0);
  }
  resp = MHD_create_response_from_fd_at_offset64 (len, fd, start);
  if (resp == NULL) {
    close (fd);
    return df_error (ENOMEM, "cannot create a file response");
  }
  MHD_add_response_header (resp, MHD_HTTP_HEADER_CONTENT_TYPE, content_type);
  return http_queue (req, status, resp, len);
}

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

/* 1 with one range to send, 0 for the whole file, -1 unsatisfiable. */
static int
wanted_range (struct df_http_request *req, uint64_t size, const char *etag,
              const char *date, uint64_t *start, uint64_t *len)
{
  const char *if_range = df_http_header (req, "If-Range");
  int r = df_http_parse_range (df_http_header (req, "Range"), size, start, len);

  /* The client's partial copy is stale: it gets the whole file. */
  if (r != 0 && if_range && strcmp (if_range, etag) != 0 &&
      strcmp (if_range, date) != 0)
    return 0;
  return r;
}

int
df_http_respond_file (struct df_http_request *req, int fd,
                      const char *content_type, const char *etag)
{
  char tag[256], date[64], cr[96];
  uint64_t size, start = 0, len;
  struct stat st;
  int r;

  if (fstat (fd, &st) == -1)
    r = df_error_errno ("%s", req->path);
  else if (!S_ISREG (st.st_mode))
    r = df_error (EINVAL, "%s: not a regular file", req->path);
  else
    r = 0;
  if (r == -1) {
    close (fd);
    return -1;
  }
  size = st.st_size;
  if (content_type == NULL)
    content_type = "application/octet-stream";
  if (file_headers (req, &st, etag, tag, sizeof tag, date, sizeof date) == -1) {
    close (fd);
    return -1;
  }
  if (df_http_etag_match (df_http_header (req, "If-None-Match"), tag)) {
    close (fd);
    return respond_empty (req, 304);
  }
  r = wanted_range (req, size, tag, date, &start, &len);
  if (r == 0)
    return respond_fd (req, 200, fd, content_type, 0, size);
  if (r == -1) {
    close (fd);
    snprintf (cr, sizeof cr, "bytes */%" PRIu64, size);
    if (df_http_add_header (req, "Content-Range", cr) == -1)
      return -1;
    return respond_empty (req, 416);
  }
  snprintf (cr, sizeof cr, "bytes %" PRIu64 "-%" PRIu64 "/%" PRIu64, start,
            start + len - 1, size);
  if (df_http_add_header (req, "Content-Range", cr) == -1) {
    close (fd);
    return -1;
  }
  return respond_fd (req, 206, fd, content_type, start, len);
}
