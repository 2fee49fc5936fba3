/* diskfarm-gateway serve — GET /metrics (Prometheus text format).
 *
 * Per device (summed over its sessions here): bytes and requests read
 * and written, errors, write cache bytes and limit, cache-full events,
 * connections; sessions by state; the load figure; the stores' space;
 * this gateway's HTTP answers by status code and its own counters.  The
 * boot service serves its DHCP, TFTP and HTTP counters on its own
 * /metrics (docs/api.md).
 */
#include <config.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/statvfs.h>

#include "error.h"
#include "gw.h"
#include "http/prom.h"
#include "stats/stats.h"
#include "util.h"

/* Per device: the counter words, then the identity's figures. */
enum { SUM_CONNECTIONS = DF_STATS_WORDS, SUM_CACHE_BYTES, SUM_CACHE_LIMIT,
       SUM_FIELDS };

struct device_sums {
  char device[65];
  uint64_t v[SUM_FIELDS];
};

struct sums {
  struct device_sums *d;
  size_t n, cap;
  uint64_t states[3];
};

static int
add_session (const struct df_stats_session *s, void *opaque)
{
  struct sums *m = opaque;
  struct device_sums *d = NULL;
  size_t i;

  if (s->id.state < 3)
    m->states[s->id.state]++;
  for (i = 0; i < m->n && d == NULL; i++)
    if (strcmp (m->d[i].device, s->id.device) == 0)
      d = &m->d[i];
  if (d == NULL) {
    if (m->n == m->cap) {
      struct device_sums *nd = realloc (m->d, (m->cap * 2 + 16) * sizeof *nd);
      if (nd == NULL)
        return 0;
      m->d = nd;
      m->cap = m->cap * 2 + 16;
    }
    d = &m->d[m->n++];
    memset (d, 0, sizeof *d);
    memcpy (d->device, s->id.device, sizeof d->device);
  }
  for (i = 0; i < DF_STATS_WORDS; i++)
    d->v[i] += s->words[i];
  d->v[SUM_CONNECTIONS] += s->id.connections;
  d->v[SUM_CACHE_BYTES] += s->id.cache_bytes;
  d->v[SUM_CACHE_LIMIT] += s->id.cache_limit;
  return 0;
}

static int
cmp_device (const void *a, const void *b)
{
  return strcmp (((const struct device_sums *) a)->device,
                 ((const struct device_sums *) b)->device);
}

/* One family of per-device figures. */
static void
device_family (struct df_prom *p, const struct sums *m, const char *name,
               const char *type, const char *help, size_t field)
{
  size_t i;

  df_prom_family (p, name, type, help);
  for (i = 0; i < m->n; i++)
    df_prom_u64 (p, name, m->d[i].v[field], "device", m->d[i].device, NULL);
}

static void
session_metrics (struct gw *gw, struct df_prom *p, struct gw_load *load)
{
  struct sums m = { 0 };
  static const char *const states[] = { "booting", "active", "lingering" };
  size_t i;

  gw_sessions_foreach (gw, add_session, &m);
  if (m.n)
    qsort (m.d, m.n, sizeof *m.d, cmp_device);
  df_prom_family (p, "diskfarm_sessions", "gauge",
                  "Device sessions on this server by state");
  for (i = 0; i < 3; i++)
    df_prom_u64 (p, "diskfarm_sessions", m.states[i], "state", states[i], NULL);
  df_prom_family (p, "diskfarm_load", "gauge", "The load figure placement "
                  "compares: (sessions + 2 x booting) / power");
  df_prom_double (p, "diskfarm_load", load->load, NULL);
  device_family (p, &m, "diskfarm_device_read_bytes_total", "counter",
                 "Bytes read by the device's sessions", DF_STATS_READ_BYTES);
  device_family (p, &m, "diskfarm_device_written_bytes_total", "counter",
                 "Bytes written by the device's sessions",
                 DF_STATS_WRITE_BYTES);
  device_family (p, &m, "diskfarm_device_read_requests_total", "counter",
                 "Read requests of the device's sessions", DF_STATS_READ_REQUESTS);
  device_family (p, &m, "diskfarm_device_write_requests_total", "counter",
                 "Write requests of the device's sessions", DF_STATS_WRITE_REQUESTS);
  device_family (p, &m, "diskfarm_device_errors_total", "counter",
                 "Requests of the device's sessions that failed",
                 DF_STATS_ERRORS);
  device_family (p, &m, "diskfarm_device_cache_bytes", "gauge",
                 "Write cache in use by the device's sessions",
                 SUM_CACHE_BYTES);
  device_family (p, &m, "diskfarm_device_cache_limit_bytes", "gauge",
                 "Write cache limit of the device's sessions (0: none)",
                 SUM_CACHE_LIMIT);
  device_family (p, &m, "diskfarm_device_cache_full_events_total", "counter",
                 "Writes refused because the device's write cache was full",
                 DF_STATS_CACHE_FULL);
  device_family (p, &m, "diskfarm_device_connections", "gauge",
                 "NBD connections of the device's sessions",
                 SUM_CONNECTIONS);
  free (m.d);
}

static void
store_metrics (const struct gw_farm *f, struct df_prom *p)
{
  size_t i;

  df_prom_family (p, "diskfarm_store_free_bytes", "gauge",
                  "Space left in the store's file system");
  for (i = 0; i < f->nstores; i++) {
    struct statvfs vfs;
    if (statvfs (f->stores[i].path, &vfs) == 0)
      df_prom_u64 (p, "diskfarm_store_free_bytes",
                   (uint64_t) vfs.f_bavail * vfs.f_frsize,
                   "store", f->stores[i].name, NULL);
  }
  df_prom_family (p, "diskfarm_store_size_bytes", "gauge",
                  "Size of the store's file system");
  for (i = 0; i < f->nstores; i++) {
    struct statvfs vfs;
    if (statvfs (f->stores[i].path, &vfs) == 0)
      df_prom_u64 (p, "diskfarm_store_size_bytes",
                   (uint64_t) vfs.f_blocks * vfs.f_frsize,
                   "store", f->stores[i].name, NULL);
  }
}

struct codes {
  uint64_t n[600];
};

static void
add_code (unsigned code, uint64_t n, void *opaque)
{
  ((struct codes *) opaque)->n[code] += n;
}

static void
http_metrics (struct gw *gw, struct df_prom *p)
{
  struct codes codes = { { 0 } };
  struct df_http_stats st, sum = { 0 };
  char code[8];
  size_t i;

  for (i = 0; i < gw->nhttp; i++) {
    df_http_server_codes (gw->http[i], add_code, &codes);
    df_http_server_stats (gw->http[i], &st);
    sum.bytes += st.bytes;
    sum.connections += st.connections;
    sum.cut_off += st.cut_off;
  }
  df_prom_family (p, "diskfarm_gateway_http_requests_total", "counter",
                  "HTTP requests answered by the gateway, by status code");
  for (i = 100; i < 600; i++)
    if (codes.n[i]) {
      snprintf (code, sizeof code, "%zu", i);
      df_prom_u64 (p, "diskfarm_gateway_http_requests_total", codes.n[i],
                   "code", code, NULL);
    }
  df_prom_family (p, "diskfarm_gateway_http_response_bytes_total", "counter",
                  "Bytes of HTTP answers queued");
  df_prom_u64 (p, "diskfarm_gateway_http_response_bytes_total", sum.bytes,
               NULL);
  df_prom_family (p, "diskfarm_gateway_http_connections", "gauge",
                  "HTTP connections open now");
  df_prom_u64 (p, "diskfarm_gateway_http_connections", sum.connections, NULL);
  df_prom_family (p, "diskfarm_gateway_http_cut_off_total", "counter",
                  "Connections closed for not sending a request in time");
  df_prom_u64 (p, "diskfarm_gateway_http_cut_off_total", sum.cut_off, NULL);
}

static void
counter (struct df_prom *p, const char *name, const char *help,
         const uint64_t *v)
{
  df_prom_family (p, name, "counter", help);
  df_prom_u64 (p, name, __atomic_load_n (v, __ATOMIC_RELAXED), NULL);
}

static void
gateway_metrics (struct gw *gw, const struct gw_farm *f, struct df_prom *p)
{
  const struct gw_counters *c = &gw->counters;

  df_prom_family (p, "diskfarm_gateway_info", "gauge",
                  "The gateway: its version and server name");
  df_prom_u64 (p, "diskfarm_gateway_info", 1, "version", PACKAGE_VERSION,
               "server", f->server, NULL);
  df_prom_family (p, "diskfarm_gateway_uptime_seconds", "gauge",
                  "Seconds since the gateway started");
  df_prom_double (p, "diskfarm_gateway_uptime_seconds",
                  (df_now_mono_ns () - gw->start_mono_ns) / 1e9, NULL);
  df_prom_family (p, "diskfarm_gateway_refused_total", "counter", "Requests "
                  "refused as hostile or not allowed (paths out of bounds, "
                  "unsealed layers, wrong tokens)");
  df_prom_u64 (p, "diskfarm_gateway_refused_total", gw_refused (), NULL);
  counter (p, "diskfarm_gateway_auth_failures_total", "Requests without the "
           "right token", &c->auth_failures);
  counter (p, "diskfarm_gateway_farm_reloads_total", "Farm reloads",
           &c->reloads);
  counter (p, "diskfarm_gateway_farm_reload_failures_total", "Farm changes "
           "that could not be loaded (the farm before was kept)",
           &c->reload_failures);
  counter (p, "diskfarm_gateway_deltas_computed_total", "librsync deltas "
           "computed", &c->deltas_computed);
  counter (p, "diskfarm_gateway_deltas_cached_total", "Delta requests "
           "answered from the cache", &c->deltas_cached);
  counter (p, "diskfarm_gateway_deltas_joined_total", "Delta requests that "
           "waited for the same delta being computed", &c->deltas_joined);
  counter (p, "diskfarm_gateway_deltas_refused_total", "Delta requests with "
           "an unusable signature", &c->deltas_refused);
}

int
gw_h_metrics (struct df_http_request *req, void *opaque)
{
  struct gw *gw = opaque;
  struct gw_farm *f = gw_farm_get (gw);
  struct df_prom *p = df_prom_new ();
  struct gw_load load;

  if (p == NULL) {
    gw_farm_put (gw, f);
    return df_error (ENOMEM, "metrics");
  }
  gw_load (gw, f, &load);
  session_metrics (gw, p, &load);
  store_metrics (f, p);
  http_metrics (gw, p);
  gateway_metrics (gw, f, p);
  gw_farm_put (gw, f);
  return df_http_respond_prom (req, p);
}
