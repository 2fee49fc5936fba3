/* diskfarm — HTTP server: the libmicrohttpd daemon, its options and TLS,
 * running inside a df_loop, statistics (see http.h).
 */
#include <config.h>

#include <errno.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include "error.h"
#include "evloop/evloop.h"
#include "http-internal.h"
#include "log.h"
#include "util.h"

#define PEM_MAX (1024 * 1024)

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

/* Reads the certificate and key for HTTPS. */
static int
load_tls (struct df_http_server *srv, const struct df_http_config *cfg)
{
  size_t len;

  if (cfg->tls_cert == NULL && cfg->tls_key == NULL)
    return 0;
  if (cfg->tls_cert == NULL || cfg->tls_key == NULL)
    return df_error (EINVAL, "HTTPS needs both a certificate and its key");
  if (MHD_is_feature_supported (MHD_FEATURE_TLS) != MHD_YES)
    return df_error (ENOTSUP, "this libmicrohttpd was built without TLS");
  if (df_read_file (cfg->tls_cert, PEM_MAX, &srv->tls_cert, &len) == -1 ||
      df_read_file (cfg->tls_key, PEM_MAX, &srv->tls_key, &len) == -1)
    return -1;
  srv->tls = true;
  return 0;
}

#define OPT(o, v, p) \
  (opts[n++] = (struct MHD_OptionItem) { (o), (intptr_t) (v), (void *) (p) })

static struct MHD_Daemon *
start_daemon (struct df_http_server *srv, const struct df_http_config *cfg)
{
  unsigned flags = MHD_USE_EPOLL | MHD_USE_ERROR_LOG | MHD_ALLOW_SUSPEND_RESUME;
  struct MHD_OptionItem opts[24];
  union listen_addr addr;
  bool ipv6 = false;
  size_t n = 0;

  if (cfg->listen && parse_listen (cfg->listen, cfg->port, &addr, &ipv6) == -1)
    return NULL;
  if (ipv6)
    flags |= MHD_USE_IPv6;
  if (cfg->loop == NULL)
    flags |= MHD_USE_INTERNAL_POLLING_THREAD;
  if (srv->tls)
    flags |= MHD_USE_TLS;
  OPT (MHD_OPTION_EXTERNAL_LOGGER, on_mhd_log, srv);    /* first */
  OPT (MHD_OPTION_NOTIFY_COMPLETED, http_on_completed, srv);
  OPT (MHD_OPTION_NOTIFY_CONNECTION, http_on_connection, srv);
  OPT (MHD_OPTION_UNESCAPE_CALLBACK, http_unescape, srv);
  OPT (MHD_OPTION_CONNECTION_LIMIT,
       cfg->max_connections ? cfg->max_connections : 256, NULL);
  OPT (MHD_OPTION_CONNECTION_TIMEOUT, cfg->timeout_s ? cfg->timeout_s : 60,
       NULL);
  /* SIGPIPE is ignored (df_http_server_new): sendfile may be used. */
  OPT (MHD_OPTION_SIGPIPE_HANDLED_BY_APP, 1, NULL);
  /* Over 32 KiB, libmicrohttpd maps each connection's memory pool on its
   * own (mmap) instead of taking it from the heap: a burst of a few
   * hundred connections then leaves no holes behind in the heap, which
   * otherwise lifted the daemon's resident memory step by step, at each
   * new peak of concurrent connections.
   */
  OPT (MHD_OPTION_CONNECTION_MEMORY_LIMIT, (size_t) 64 * 1024, NULL);
  if (cfg->max_per_ip)
    OPT (MHD_OPTION_PER_IP_CONNECTION_LIMIT, cfg->max_per_ip, NULL);
  if (cfg->loop == NULL)
    OPT (MHD_OPTION_THREAD_POOL_SIZE, cfg->threads ? cfg->threads : 2, NULL);
  if (cfg->listen)
    OPT (MHD_OPTION_SOCK_ADDR, 0, &addr.sa);
  if (srv->tls) {
    OPT (MHD_OPTION_HTTPS_MEM_CERT, 0, srv->tls_cert);
    OPT (MHD_OPTION_HTTPS_MEM_KEY, 0, srv->tls_key);
  }
  OPT (MHD_OPTION_END, 0, NULL);
  return MHD_start_daemon (flags, cfg->port, NULL, NULL, http_on_request, srv,
                           MHD_OPTION_ARRAY, opts, MHD_OPTION_END);
}

static void
free_pem (struct df_http_server *srv)
{
  if (srv->tls_key)
    explicit_bzero (srv->tls_key, strlen (srv->tls_key));
  free (srv->tls_key);
  free (srv->tls_cert);
  srv->tls_key = srv->tls_cert = NULL;
}

/* The background threads' (conn.c) condition: timed on the monotonic
 * clock.
 */
static void
init_stop_cond (struct df_http_server *srv)
{
  pthread_condattr_t ca;

  pthread_condattr_init (&ca);
  pthread_condattr_setclock (&ca, CLOCK_MONOTONIC);
  pthread_cond_init (&srv->stop_cond, &ca);
  pthread_condattr_destroy (&ca);
}

struct df_http_server *
df_http_server_new (const struct df_http_config *cfg)
{
  struct df_http_server *srv = calloc (1, sizeof *srv);
  const union MHD_DaemonInfo *info;
  const char *where = cfg->listen ? cfg->listen : "every address";

  if (srv == NULL) {
    df_error_errno ("http server");
    return NULL;
  }
  signal (SIGPIPE, SIG_IGN);
  pthread_mutex_init (&srv->conns_lock, NULL);
  init_stop_cond (srv);
  srv->routes = cfg->routes;
  srv->max_body = cfg->max_body ? cfg->max_body : 1024 * 1024;
  srv->access_log = cfg->access_log;
  srv->json_errors = cfg->json_errors;
  srv->guard = cfg->guard;
  srv->guard_opaque = cfg->guard_opaque;
  srv->request_timeout_ns =
    (uint64_t) (cfg->request_timeout_s ? cfg->request_timeout_s : 30) *
    1000000000;
  df_error_clear ();
  if (load_tls (srv, cfg) == -1) {
    df_error_prefix ("cannot serve HTTPS on %s port %u", where, cfg->port);
    df_http_server_free (srv);
    return NULL;
  }
  srv->mhd = start_daemon (srv, cfg);
  free_pem (srv);
  if (srv->mhd == NULL) {
    if (srv->last_log[0])
      df_error (EADDRINUSE, "cannot serve HTTP%s on %s port %u: %s",
                srv->tls ? "S" : "", where, cfg->port, srv->last_log);
    else if (!strstr (df_error_get (), "listen on"))
      df_error (EADDRINUSE, "cannot serve HTTP%s on %s port %u",
                srv->tls ? "S" : "", where, cfg->port);
    df_http_server_free (srv);
    return NULL;
  }
  info = MHD_get_daemon_info (srv->mhd, MHD_DAEMON_INFO_BIND_PORT);
  srv->port = info ? info->port : cfg->port;
  if (http_sweeper_start (srv, cfg->loop) == -1 ||
      (cfg->loop && attach_loop (srv, cfg->loop) == -1)) {
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
  http_sweeper_stop (srv);
  if (srv->mhd) {
    srv->closing = true;
    http_conns_resume_all (srv);
    MHD_stop_daemon (srv->mhd);
  }
  free_pem (srv);
  pthread_cond_destroy (&srv->stop_cond);
  pthread_mutex_destroy (&srv->conns_lock);
  free (srv);
}

uint16_t
df_http_server_port (const struct df_http_server *srv)
{
  return srv->port;
}

bool
df_http_server_tls (const struct df_http_server *srv)
{
  return srv->tls;
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

void
df_http_server_codes (const struct df_http_server *srv,
                      void (*fn) (unsigned, uint64_t, void *), void *opaque)
{
  unsigned code;

  for (code = 100; code < HTTP_MAX_CODE; code++) {
    uint64_t n = __atomic_load_n (&srv->codes[code], __ATOMIC_RELAXED);
    if (n)
      fn (code, n, opaque);
  }
}
