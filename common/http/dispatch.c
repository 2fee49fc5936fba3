/* diskfarm — HTTP requests: routing, the guard, bodies, suspension and
 * the access log (see http.h).
 */
#include <config.h>

#include <ctype.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include "cleanup.h"
#include "error.h"
#include "http-internal.h"
#include "log.h"
#include "util.h"

int
http_queue (struct df_http_request *req, unsigned status,
            struct MHD_Response *resp, uint64_t size)
{
  struct df_http_stats *st = &req->srv->stats;
  enum MHD_Result r;
  size_t i;

  if (req->responded) {
    MHD_destroy_response (resp);
    return df_error (EALREADY, "%s %s: responded twice", req->method, req->path);
  }
  for (i = 0; i < req->nheaders; i++)
    MHD_add_response_header (resp, req->headers[i].name, req->headers[i].value);
  r = MHD_queue_response (req->conn, status, resp);
  MHD_destroy_response (resp);
  if (r != MHD_YES)
    return df_error (EIO, "%s %s: cannot queue the response", req->method,
                     req->path);
  req->responded = true;
  req->status = status;
  req->size = size;
  http_count (status < 300 ? &st->status_2xx : status < 400 ? &st->status_3xx :
              status < 500 ? &st->status_4xx : &st->status_5xx, 1);
  if (status < HTTP_MAX_CODE)
    http_count (&req->srv->codes[status], 1);
  http_count (&st->bytes, size);
  return 0;
}

/* The layer's own answers: JSON errors or text, as configured. */
static void __attribute__ ((format (printf, 4, 5)))
layer_error (struct df_http_request *req, unsigned status, const char *error,
             const char *fmt, ...)
{
  CLEANUP_FREE char *msg = NULL;
  va_list ap;
  int n;

  va_start (ap, fmt);
  n = vasprintf (&msg, fmt, ap);
  va_end (ap);
  if (n == -1) {
    msg = NULL;
    return;
  }
  if (req->srv->json_errors)
    df_http_respond_error (req, status, error, "%s", msg);
  else
    df_http_respond_text (req, status, "%s\n", msg);
}

static void
request_free (struct df_http_request *req)
{
  size_t i;

  for (i = 0; i < req->nheaders; i++) {
    free (req->headers[i].name);
    free (req->headers[i].value);
  }
  free (req->method);
  free (req->path);
  free (req->body);
  df_cache_release (req->cache_snap);
  free (req);
}

static struct df_http_request *
request_new (struct df_http_server *srv, struct MHD_Connection *conn,
             const char *url, const char *method)
{
  struct df_http_request *req = calloc (1, sizeof *req);
  const union MHD_ConnectionInfo *ci;

  if (req == NULL)
    return NULL;
  req->srv = srv;
  req->conn = conn;
  req->start_ns = df_now_mono_ns ();
  req->method = strdup (method);
  req->path = strdup (url);
  req->subpath = "";
  req->max_body = srv->max_body;
  if (req->method == NULL || req->path == NULL) {
    request_free (req);
    return NULL;
  }
  strcpy (req->peer, "?");
  ci = MHD_get_connection_info (conn, MHD_CONNECTION_INFO_CLIENT_ADDRESS);
  if (ci && ci->client_addr) {
    const struct sockaddr *sa = ci->client_addr;
    if (sa->sa_family == AF_INET)
      inet_ntop (AF_INET, &((const struct sockaddr_in *) sa)->sin_addr,
                 req->peer, sizeof req->peer);
    else if (sa->sa_family == AF_INET6)
      inet_ntop (AF_INET6, &((const struct sockaddr_in6 *) sa)->sin6_addr,
                 req->peer, sizeof req->peer);
  }
  http_count (&srv->stats.requests, 1);
  return req;
}

static bool
method_matches (const char *route, const char *method)
{
  return strcmp (route, method) == 0 ||
    (strcmp (route, "GET") == 0 && strcmp (method, "HEAD") == 0);
}

static bool
path_matches (const struct df_http_route *r, const char *path)
{
  size_t n = strlen (r->path);

  if (n > 0 && r->path[n - 1] == '/')
    return strncmp (path, r->path, n) == 0;
  return strcmp (path, r->path) == 0;
}

static void
find_route (struct df_http_server *srv, struct df_http_request *req)
{
  const struct df_http_route *r;

  for (r = srv->routes; r->path; r++) {
    if (!path_matches (r, req->path))
      continue;
    if (!method_matches (r->method, req->method)) {
      if (req->path_only == NULL)
        req->path_only = r;
      continue;
    }
    req->route = r;
    if (r->path[strlen (r->path) - 1] == '/')
      req->subpath = req->path + strlen (r->path);
    if (r->max_body)
      req->max_body = r->max_body;
    return;
  }
}

/* As soon as the headers are in: the guard, unknown paths and methods,
 * bodies announced too large.  They are answered before any body is
 * read.
 */
static void
answer_early (struct df_http_server *srv, struct df_http_request *req)
{
  const char *cl = df_http_header (req, MHD_HTTP_HEADER_CONTENT_LENGTH);
  uint64_t len;

  find_route (srv, req);
  df_error_clear ();
  if (srv->guard && srv->guard (req, req->route, srv->guard_opaque) != 0) {
    if (!req->responded)
      layer_error (req, 500, "internal", "internal error: %s", df_error_get ());
    return;
  }
  if (req->route == NULL && req->path_only) {
    df_http_add_header (req, "Allow", req->path_only->method);
    layer_error (req, 405, "method-not-allowed", "method %s not allowed here",
                 req->method);
  }
  else if (req->route == NULL)
    layer_error (req, 404, "not-found", "not found");
  else if (cl && df_parse_u64 (cl, &len) == 0 && len > req->max_body) {
    df_error_clear ();
    layer_error (req, 413, "too-large", "request body larger than %zu bytes",
                 req->max_body);
  }
}

/* Runs the handler (or the continuation of a suspended one). */
static void
dispatch (struct df_http_server *srv, struct df_http_request *req)
{
  df_http_handler fn = req->route->fn;
  void *opaque = req->route->opaque;
  char q[128];
  int r;

  if (req->body_too_large) {
    layer_error (req, 413, "too-large", "request body larger than %zu bytes",
                 req->max_body);
    return;
  }
  if (req->cont && srv->closing) {
    /* Resumed by df_http_server_free, not by its owner. */
    req->cont = NULL;
    layer_error (req, 503, "unavailable", "the server is stopping");
    return;
  }
  if (req->cont) {
    fn = req->cont;
    opaque = req->cont_opaque;
    req->cont = NULL;
  }
  df_error_clear ();
  r = fn (req, opaque);
  if (req->cont)
    return;                     /* suspended */
  if (r == -1 && !req->responded) {
    df_log_error ("http: %s %s: %s", req->method,
                  df_quote (req->path, q, sizeof q), df_error_get ());
    layer_error (req, 500, "internal", "internal error: %s", df_error_get ());
  }
  else if (!req->responded)
    layer_error (req, 500, "internal", "internal error: no response");
}

static enum MHD_Result
take_body (struct df_http_request *req, const char *upload, size_t n)
{
  char *nb;

  if (req->responded || req->body_too_large)
    return MHD_YES;             /* answered early: discarded */
  if (req->body_len + n > req->max_body) {
    req->body_too_large = true;
    return MHD_YES;
  }
  nb = realloc (req->body, req->body_len + n + 1);
  if (nb == NULL)
    return MHD_NO;
  memcpy (nb + req->body_len, upload, n);
  req->body = nb;
  req->body_len += n;
  req->body[req->body_len] = '\0';
  return MHD_YES;
}

enum MHD_Result
http_on_request (void *cls, struct MHD_Connection *conn, const char *url,
                 const char *method, const char *version, const char *upload,
                 size_t *upload_size, void **con_cls)
{
  struct df_http_server *srv = cls;
  struct df_http_request *req = *con_cls;

  (void) version;
  if (req == NULL) {
    req = request_new (srv, conn, url, method);
    if (req == NULL)
      return MHD_NO;            /* out of memory: drop the connection */
    *con_cls = req;
    answer_early (srv, req);
    return MHD_YES;
  }
  if (*upload_size > 0) {
    size_t n = *upload_size;
    *upload_size = 0;
    return take_body (req, upload, n);
  }
  if (!req->responded) {
    http_conn_deadline (srv, conn, false);
    dispatch (srv, req);
  }
  return MHD_YES;
}

void
http_on_completed (void *cls, struct MHD_Connection *conn, void **con_cls,
                   enum MHD_RequestTerminationCode toe)
{
  struct df_http_server *srv = cls;
  struct df_http_request *req = *con_cls;
  char q[256];
  uint64_t ms;

  http_conn_deadline (srv, conn, true);
  if (req == NULL)
    return;
  ms = (df_now_mono_ns () - req->start_ns) / 1000000;
  df_quote (req->path, q, sizeof q);
  if (srv->access_log)
    df_log_info ("http: %s \"%s %s\" %u %llu %llums%s", req->peer, req->method,
                 q, req->status, (unsigned long long) req->size,
                 (unsigned long long) ms,
                 toe == MHD_REQUEST_TERMINATED_COMPLETED_OK ? "" : " (aborted)");
  else
    df_debug ("http", "%s \"%s %s\" %u %llu %llums%s", req->peer, req->method,
              q, req->status, (unsigned long long) req->size,
              (unsigned long long) ms,
              toe == MHD_REQUEST_TERMINATED_COMPLETED_OK ? "" : " (aborted)");
  if (req->cache_snap) {
    http_conn_sent (conn, req->cache_snap);
    req->cache_snap = NULL;
  }
  request_free (req);
  *con_cls = NULL;
}

static int
hex_value (char c)
{
  return isdigit ((unsigned char) c) ? c - '0' : tolower ((unsigned char) c) - 'a' + 10;
}

/* The byte a "%XY" at s stands for, or -1 if s is no escape. */
static int
escaped (const char *s)
{
  if (s[0] != '%' || !isxdigit ((unsigned char) s[1]) ||
      !isxdigit ((unsigned char) s[2]))
    return -1;
  return hex_value (s[1]) * 16 + hex_value (s[2]);
}

/* Percent-decoding of paths and query arguments.  A string that would
 * decode to a NUL or another control byte is left encoded: no handler
 * ever sees one, and the '%' left in it fails every name check.
 */
size_t
http_unescape (void *cls, struct MHD_Connection *conn, char *s)
{
  char *in, *out;
  int c;

  (void) cls;
  (void) conn;
  for (in = s; *in; in++)
    if ((c = escaped (in)) != -1 && (c < 0x20 || c == 0x7f))
      return strlen (s);
  for (in = out = s; *in; out++) {
    if ((c = escaped (in)) != -1) {
      *out = (char) c;
      in += 3;
    }
    else
      *out = *in++;
  }
  *out = '\0';
  return out - s;
}

/* ---- suspension ---- */

int
df_http_suspend (struct df_http_request *req, df_http_handler cont,
                 void *opaque)
{
  req->cont = cont;
  req->cont_opaque = opaque;
  http_conn_suspend (req->srv, req->conn, true);
  return 0;
}

void
df_http_resume (struct df_http_request *req)
{
  http_conn_suspend (req->srv, req->conn, false);
}

/* ---- request accessors ---- */

const char *
df_http_method (const struct df_http_request *req)
{
  return req->method;
}

const char *
df_http_path (const struct df_http_request *req)
{
  return req->path;
}

const char *
df_http_subpath (const struct df_http_request *req)
{
  return req->subpath;
}

const char *
df_http_header (const struct df_http_request *req, const char *name)
{
  return MHD_lookup_connection_value (req->conn, MHD_HEADER_KIND, name);
}

const char *
df_http_query (const struct df_http_request *req, const char *name)
{
  return MHD_lookup_connection_value (req->conn, MHD_GET_ARGUMENT_KIND, name);
}

const char *
df_http_peer (const struct df_http_request *req)
{
  return req->peer;
}

bool
df_http_peer_ipv4 (const struct df_http_request *req, uint32_t *addr)
{
  struct in_addr a;

  if (inet_pton (AF_INET, req->peer, &a) != 1)
    return false;
  *addr = a.s_addr;
  return true;
}

const char *
df_http_body (const struct df_http_request *req, size_t *len)
{
  *len = req->body_len;
  return req->body ? req->body : "";
}
