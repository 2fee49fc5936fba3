/* diskfarm-gateway serve — the routes, the bearer token, refusals.
 *
 * Every route but /metrics and /v1/status (while [gateway] public =
 * status) needs "Authorization: Bearer TOKEN" with the token of the
 * farm's token-file; without a token-file nothing else answers at all.
 * Unknown paths are checked too: without the token they are 401, not
 * 404.
 */
#include <config.h>

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "cleanup.h"
#include "error.h"
#include "gw.h"
#include "log.h"
#include "util.h"

#define LOG_WINDOW_NS (10 * 1000000000ULL)
#define LOG_PER_WINDOW 20
/* A librsync signature of a 1 TiB basis with recommended blocks is
 * about 36 MiB.
 */
#define SIGNATURE_MAX (64 * 1024 * 1024)

/* Refusals are logged, but a flood of them only LOG_PER_WINDOW lines
 * each LOG_WINDOW_NS, then a count of those left out.
 */
static pthread_mutex_t log_lock = PTHREAD_MUTEX_INITIALIZER;
static uint64_t refused;        /* atomic */
static uint64_t log_window;
static unsigned log_lines, log_dropped;

static void __attribute__ ((format (printf, 1, 2)))
log_refusal (const char *fmt, ...)
{
  uint64_t now = df_now_mono_ns ();
  unsigned dropped = 0;
  bool print;
  char msg[512];
  va_list ap;

  pthread_mutex_lock (&log_lock);
  if (now - log_window > LOG_WINDOW_NS) {
    dropped = log_dropped;
    log_window = now;
    log_lines = log_dropped = 0;
  }
  print = log_lines < LOG_PER_WINDOW;
  if (print)
    log_lines++;
  else
    log_dropped++;
  pthread_mutex_unlock (&log_lock);
  if (dropped)
    df_log_warning ("%u more refusals were not logged", dropped);
  if (!print)
    return;
  va_start (ap, fmt);
  vsnprintf (msg, sizeof msg, fmt, ap);
  va_end (ap);
  df_log_warning ("%s", msg);
}

int
gw_refuse (struct df_http_request *req, unsigned status, const char *error,
           const char *fmt, ...)
{
  CLEANUP_FREE char *msg = NULL;
  char q[256];
  va_list ap;

  va_start (ap, fmt);
  if (vasprintf (&msg, fmt, ap) == -1)
    msg = NULL;
  va_end (ap);
  __atomic_fetch_add (&refused, 1, __ATOMIC_RELAXED);
  log_refusal ("refused %s %s from %s: %s", df_http_method (req),
               df_quote (df_http_path (req), q, sizeof q), df_http_peer (req),
               msg ? msg : error);
  return df_http_respond_error (req, status, error, "%s", msg ? msg : error);
}

uint64_t
gw_refused (void)
{
  return __atomic_load_n (&refused, __ATOMIC_RELAXED);
}

const char *
gw_hex_hash (const uint8_t hash[DF_HASH_LEN], char *buf)
{
  return df_hex (hash, DF_HASH_LEN, buf);
}

/* The token, or an answer. */
static int
check_token (struct gw *gw, struct gw_farm *f, struct df_http_request *req)
{
  const char *auth = df_http_header (req, "Authorization");

  if (f->token == NULL) {
    gw_count (&gw->counters.auth_failures);
    df_http_respond_error (req, 403, "no-token", "this gateway has no token "
                           "([gateway] token-file of farm.conf): only "
                           "/metrics and /v1/status answer");
    return 1;
  }
  if (auth && strncasecmp (auth, "Bearer ", 7) == 0 &&
      df_gw_token_equal (auth + 7 + strspn (auth + 7, " "), f->token))
    return 0;
  gw_count (&gw->counters.auth_failures);
  if (df_http_add_header (req, "WWW-Authenticate", "Bearer realm=\"diskfarm\"")
      == -1)
    return 1;
  gw_refuse (req, 401, "unauthorized", auth ? "wrong token" :
             "an Authorization: Bearer token is needed");
  return 1;
}

static int
guard (struct df_http_request *req, const struct df_http_route *route,
       void *opaque)
{
  struct gw *gw = opaque;
  struct gw_farm *f = gw_farm_get (gw);
  int r = 0;

  if (!route || !(route->flags & GW_PUBLIC) || !f->settings.public_status)
    r = check_token (gw, f, req);
  gw_farm_put (gw, f);
  return r;
}

static const struct df_http_route route_table[] = {
  { .method = "GET", .path = "/metrics", .fn = gw_h_metrics, .flags = GW_PUBLIC },
  { .method = "GET", .path = "/v1/status", .fn = gw_h_status, .flags = GW_PUBLIC },
  { .method = "GET", .path = "/v1/sessions", .fn = gw_h_sessions },
  { .method = "GET", .path = "/v1/vdisks", .fn = gw_h_vdisks },
  { .method = "GET", .path = "/v1/vdisks/", .fn = gw_h_vdisk },
  { .method = "GET", .path = "/v1/devices", .fn = gw_h_devices },
  { .method = "GET", .path = "/v1/devices/", .fn = gw_h_device },
  { .method = "GET", .path = "/v1/farm/manifest", .fn = gw_h_farm_manifest },
  { .method = "GET", .path = "/v1/farm/files/", .fn = gw_h_farm_file },
  { .method = "GET", .path = "/v1/stores/", .fn = gw_h_store_file },
  { .method = "POST", .path = "/v1/stores/", .fn = gw_h_delta,
    .max_body = SIGNATURE_MAX },
  { NULL },
};

/* One listening server for "ADDR[:PORT]" (NULL: every address). */
static int
listen_on (struct gw *gw, const char *spec, unsigned port)
{
  struct df_http_config c = {
    .port = port, .threads = gw->cfg.threads, .routes = gw->routes,
    .max_body = 64 * 1024, .max_connections = gw->cfg.max_connections,
    .max_per_ip = gw->cfg.max_per_ip, .request_timeout_s = gw->cfg.timeout_s,
    .json_errors = true, .tls_cert = gw->cfg.tls_cert,
    .tls_key = gw->cfg.tls_key, .guard = guard, .guard_opaque = gw,
  };
  char host[256], copy[256];
  bool any_port = false;
  size_t n;

  if (spec) {
    /* ADDR:0 listens on a free port (the log says which). */
    n = strlen (spec);
    if (n > 2 && n < sizeof copy && strcmp (spec + n - 2, ":0") == 0) {
      memcpy (copy, spec, n - 2);
      copy[n - 2] = '\0';
      spec = copy;
      any_port = true;
    }
    if (df_address_split (spec, port, host, sizeof host, &port) == -1) {
      df_error_prefix ("--listen");
      return -1;
    }
    if (any_port)
      port = 0;
    n = strlen (host);
    if (host[0] == '[') {       /* the brackets are for URLs */
      memmove (host, host + 1, n - 2);
      host[n - 2] = '\0';
    }
    c.listen = host;
    c.port = port;
  }
  gw->http[gw->nhttp] = df_http_server_new (&c);
  if (gw->http[gw->nhttp] == NULL)
    return -1;
  snprintf (gw->where[gw->nhttp], sizeof gw->where[0],
            strchr (c.listen ? c.listen : "", ':') ? "[%s]:%u" : "%s:%u",
            c.listen ? c.listen : "*",
            df_http_server_port (gw->http[gw->nhttp]));
  gw->nhttp++;
  return 0;
}

int
gw_http_start (struct gw *gw)
{
  struct gw_farm *f = gw_farm_get (gw);
  unsigned port = f->settings.port;
  size_t i;

  gw_farm_put (gw, f);
  for (i = 0; i < GW_MAX_ROUTES && route_table[i].path; i++) {
    gw->routes[i] = route_table[i];
    gw->routes[i].opaque = gw;
  }
  if (gw->cfg.nlisten == 0)
    return listen_on (gw, NULL, port);
  for (i = 0; i < gw->cfg.nlisten; i++)
    if (listen_on (gw, gw->cfg.listen[i], port) == -1)
      return -1;
  return 0;
}

void
gw_http_stop (struct gw *gw)
{
  size_t i;

  for (i = 0; i < gw->nhttp; i++)
    df_http_server_free (gw->http[i]);
  gw->nhttp = 0;
}
