/* diskfarm — HTTP server: libmicrohttpd daemon, routing, access log,
 * and running inside a df_loop (see http.h).
 */
#include <config.h>

#include <errno.h>
#include <netinet/in.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>

#include "error.h"
#include "evloop/evloop.h"
#include "http-internal.h"
#include "log.h"
#include "util.h"

struct df_http_server {
  struct MHD_Daemon *mhd;
  const struct df_http_route *routes;
  size_t max_body;
  bool access_log;
  uint16_t port;
  struct df_watch *watch;       /* loop mode: the MHD epoll fd */
  struct df_timer *timer;       /* loop mode: MHD's next timeout */
  struct df_http_stats stats;   /* updated atomically */
  char last_log[256];           /* libmicrohttpd's last complaint */
};

static void
count (uint64_t *field, uint64_t n)
{
  __atomic_fetch_add (field, n, __ATOMIC_RELAXED);
}

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
  count (status < 300 ? &st->status_2xx : status < 400 ? &st->status_3xx :
         status < 500 ? &st->status_4xx : &st->status_5xx, 1);
  count (&st->bytes, size);
  return 0;
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
  count (&srv->stats.requests, 1);
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

/* Finds the handler; answers 404/405/413 itself. */
static void
dispatch (struct df_http_server *srv, struct df_http_request *req)
{
  const struct df_http_route *r, *path_only = NULL;
  char q[128];

  if (req->body_too_large) {
    df_http_respond_text (req, 413, "request body larger than %zu bytes\n",
                          srv->max_body);
    return;
  }
  for (r = srv->routes; r->path; r++) {
    if (!path_matches (r, req->path))
      continue;
    if (!method_matches (r->method, req->method)) {
      path_only = r;
      continue;
    }
    if (r->path[strlen (r->path) - 1] == '/')
      req->subpath = req->path + strlen (r->path);
    df_error_clear ();
    if (r->fn (req, r->opaque) == -1 && !req->responded) {
      df_log_error ("http: %s %s: %s", req->method,
                    df_quote (req->path, q, sizeof q), df_error_get ());
      df_http_respond_text (req, 500, "internal error: %s\n", df_error_get ());
    }
    else if (!req->responded)
      df_http_respond_text (req, 500, "internal error: no response\n");
    return;
  }
  if (path_only) {
    df_http_add_header (req, "Allow", path_only->method);
    df_http_respond_text (req, 405, "method %s not allowed here\n", req->method);
    return;
  }
  df_http_respond_text (req, 404, "not found\n");
}

static enum MHD_Result
on_request (void *cls, struct MHD_Connection *conn, const char *url,
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
    return MHD_YES;
  }
  if (*upload_size > 0) {
    size_t n = *upload_size;
    char *nb;

    *upload_size = 0;
    if (req->body_too_large || req->body_len + n > srv->max_body) {
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
  if (!req->responded)
    dispatch (srv, req);
  return MHD_YES;
}

static void
on_completed (void *cls, struct MHD_Connection *conn, void **con_cls,
              enum MHD_RequestTerminationCode toe)
{
  struct df_http_server *srv = cls;
  struct df_http_request *req = *con_cls;
  char q[256];
  uint64_t ms;

  (void) conn;
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
  request_free (req);
  *con_cls = NULL;
}

static void
on_mhd_log (void *cls, const char *fmt, va_list ap)
{
  struct df_http_server *srv = cls;
  char msg[256];
  size_t n;

  vsnprintf (msg, sizeof msg, fmt, ap);
  n = strlen (msg);
  while (n > 0 && (msg[n - 1] == '\n' || msg[n - 1] == '\r'))
    msg[--n] = '\0';
  /* Kept for the error message only while the daemon starts (one thread). */
  if (srv->mhd == NULL)
    memcpy (srv->last_log, msg, n + 1);
  df_debug ("http", "libmicrohttpd: %s", msg);
}

/* ---- running inside a df_loop ---- */

static void
loop_schedule (struct df_http_server *srv)
{
  MHD_UNSIGNED_LONG_LONG ms;

  if (MHD_get_timeout (srv->mhd, &ms) == MHD_YES)
    df_timer_arm (srv->timer, (uint64_t) ms * 1000000);
  else
    df_timer_disarm (srv->timer);
}

static void
loop_run (struct df_http_server *srv)
{
  MHD_run (srv->mhd);
  loop_schedule (srv);
}

static void
on_epoll_ready (void *opaque, int fd, unsigned events)
{
  (void) fd;
  (void) events;
  loop_run (opaque);
}

static void
on_timer (void *opaque)
{
  loop_run (opaque);
}

static int
attach_loop (struct df_http_server *srv, struct df_loop *loop)
{
  const union MHD_DaemonInfo *info =
    MHD_get_daemon_info (srv->mhd, MHD_DAEMON_INFO_EPOLL_FD);

  if (info == NULL)
    return df_error (ENOTSUP, "libmicrohttpd has no epoll support");
  srv->timer = df_loop_timer (loop, on_timer, srv);
  if (srv->timer == NULL)
    return -1;
  srv->watch = df_loop_watch (loop, info->epoll_fd, DF_LOOP_READ,
                              on_epoll_ready, srv);
  if (srv->watch == NULL)
    return -1;
  loop_schedule (srv);
  return 0;
}

/* ---- start and stop ---- */

union listen_addr {
  struct sockaddr sa;
  struct sockaddr_in in;
  struct sockaddr_in6 in6;
};

static int
parse_listen (const char *listen, uint16_t port, union listen_addr *a,
              bool *ipv6)
{
  memset (a, 0, sizeof *a);
  *ipv6 = false;
  if (inet_pton (AF_INET, listen, &a->in.sin_addr) == 1) {
    a->in.sin_family = AF_INET;
    a->in.sin_port = htons (port);
    return 0;
  }
  if (inet_pton (AF_INET6, listen, &a->in6.sin6_addr) == 1) {
    a->in6.sin6_family = AF_INET6;
    a->in6.sin6_port = htons (port);
    *ipv6 = true;
    return 0;
  }
  return df_error (EINVAL, "\"%s\" is not an IP address to listen on", listen);
}

static struct MHD_Daemon *
start_daemon (struct df_http_server *srv, const struct df_http_config *cfg)
{
  unsigned flags = MHD_USE_EPOLL | MHD_USE_ERROR_LOG;
  union listen_addr addr;
  bool ipv6 = false;
  unsigned threads = cfg->threads ? cfg->threads : 2;

  if (cfg->listen && parse_listen (cfg->listen, cfg->port, &addr, &ipv6) == -1)
    return NULL;
  if (ipv6)
    flags |= MHD_USE_IPv6;
  if (cfg->loop == NULL)
    flags |= MHD_USE_INTERNAL_POLLING_THREAD;
  /* Without a listen address the option list ends before SOCK_ADDR. */
  return MHD_start_daemon (flags, cfg->port, NULL, NULL, on_request, srv,
    MHD_OPTION_NOTIFY_COMPLETED, on_completed, srv,
    MHD_OPTION_EXTERNAL_LOGGER, on_mhd_log, srv,
    MHD_OPTION_CONNECTION_LIMIT, cfg->max_connections ? cfg->max_connections : 256,
    MHD_OPTION_CONNECTION_TIMEOUT, cfg->timeout_s ? cfg->timeout_s : 60,
    MHD_OPTION_THREAD_POOL_SIZE, cfg->loop ? 0 : threads,
    cfg->listen ? MHD_OPTION_SOCK_ADDR : MHD_OPTION_END, &addr.sa,
    MHD_OPTION_END);
}

struct df_http_server *
df_http_server_new (const struct df_http_config *cfg)
{
  struct df_http_server *srv = calloc (1, sizeof *srv);
  const union MHD_DaemonInfo *info;

  if (srv == NULL) {
    df_error_errno ("http server");
    return NULL;
  }
  srv->routes = cfg->routes;
  srv->max_body = cfg->max_body ? cfg->max_body : 1024 * 1024;
  srv->access_log = cfg->access_log;
  df_error_clear ();
  srv->mhd = start_daemon (srv, cfg);
  if (srv->mhd == NULL) {
    if (srv->last_log[0])
      df_error (EADDRINUSE, "cannot serve HTTP on %s port %u: %s",
                cfg->listen ? cfg->listen : "every address", cfg->port,
                srv->last_log);
    else if (!strstr (df_error_get (), "listen on"))
      df_error (EADDRINUSE, "cannot serve HTTP on %s port %u",
                cfg->listen ? cfg->listen : "every address", cfg->port);
    free (srv);
    return NULL;
  }
  info = MHD_get_daemon_info (srv->mhd, MHD_DAEMON_INFO_BIND_PORT);
  srv->port = info ? info->port : cfg->port;
  if (cfg->loop && attach_loop (srv, cfg->loop) == -1) {
    df_http_server_free (srv);
    return NULL;
  }
  return srv;
}

void
df_http_server_free (struct df_http_server *srv)
{
  if (srv == NULL)
    return;
  df_watch_free (srv->watch);
  df_timer_free (srv->timer);
  if (srv->mhd)
    MHD_stop_daemon (srv->mhd);
  free (srv);
}

uint16_t
df_http_server_port (const struct df_http_server *srv)
{
  return srv->port;
}

void
df_http_server_stats (const struct df_http_server *srv,
                      struct df_http_stats *out)
{
  const uint64_t *in = (const uint64_t *) &srv->stats;
  uint64_t *o = (uint64_t *) out;
  size_t i;

  for (i = 0; i < sizeof *out / sizeof (uint64_t); i++)
    o[i] = __atomic_load_n (&in[i], __ATOMIC_RELAXED);
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
