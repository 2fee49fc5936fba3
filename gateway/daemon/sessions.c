/* diskfarm-gateway serve — the live device sessions of this server, as
 * the nbdkit processes publish them (common/stats), and the load figure.
 *
 *   GET /v1/sessions
 *
 * The load figure (docs/api.md) is what placement compares across
 * servers: (connected sessions + GW_BOOT_EXTRA x booting sessions) /
 * power.  A booting session counts 1 + GW_BOOT_EXTRA: a boot reads far
 * more per second than a running desktop.  Lingering sessions (no
 * connection) do not count.
 */
#include <config.h>

#include <stdlib.h>
#include <string.h>

#include "error.h"
#include "gw.h"
#include "log.h"
#include "stats/stats.h"
#include "util.h"

#define GW_BOOT_EXTRA 2

json_t *
gw_session_json (const struct df_stats_session *s)
{
  const uint64_t *w = s->words;

  return json_pack ("{s:s, s:s, s:s, s:s?, s:s, s:i, s:s, s:s, s:i, s:I, "
                    "s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:i}",
    "device", s->id.device, "export", s->id.export_name,
    "session", s->id.session, "client", s->id.client[0] ? s->id.client : NULL,
    "vdisk", s->id.vdisk, "version", (int) s->id.version,
    "cache_mode", s->id.cache_mode,
    "state", df_stats_state_name (s->id.state),
    "connections", (int) s->id.connections,
    "connected_since_ns", (json_int_t) s->id.since_ns,
    "bytes_read", (json_int_t) w[DF_STATS_READ_BYTES],
    "bytes_written", (json_int_t) w[DF_STATS_WRITE_BYTES],
    "reads", (json_int_t) w[DF_STATS_READ_REQUESTS],
    "writes", (json_int_t) w[DF_STATS_WRITE_REQUESTS],
    "errors", (json_int_t) w[DF_STATS_ERRORS],
    "cache_bytes", (json_int_t) s->id.cache_bytes,
    "cache_limit", (json_int_t) s->id.cache_limit,
    "cache_full_events", (json_int_t) w[DF_STATS_CACHE_FULL],
    "pid", (int) s->pid);
}

int
gw_sessions_foreach (struct gw *gw,
                     int (*fn) (const struct df_stats_session *, void *),
                     void *opaque)
{
  static bool warned;

  if (df_stats_read (gw->cfg.stats_dir, fn, opaque) == -1) {
    if (!__atomic_exchange_n (&warned, true, __ATOMIC_RELAXED))
      df_log_warning ("sessions: %s", df_error_get ());
    return -1;
  }
  return 0;
}

static int
count_one (const struct df_stats_session *s, void *opaque)
{
  struct gw_load *l = opaque;

  switch (s->id.state) {
  case DF_STATS_BOOTING: l->booting++; l->sessions++; break;
  case DF_STATS_ACTIVE: l->sessions++; break;
  case DF_STATS_LINGERING: l->lingering++; break;
  }
  return 0;
}

void
gw_load (struct gw *gw, const struct gw_farm *f, struct gw_load *out)
{
  struct df_server sv;
  unsigned power = 1;

  memset (out, 0, sizeof *out);
  gw_sessions_foreach (gw, count_one, out);
  if (df_farm_server (f->farm, f->server, &sv) == 0 && sv.power)
    power = sv.power;
  out->load = (out->sessions + GW_BOOT_EXTRA * out->booting) / (double) power;
}

struct collect {
  const char *device;           /* NULL: all */
  json_t *a;
};

static int
collect_one (const struct df_stats_session *s, void *opaque)
{
  struct collect *c = opaque;

  if (c->device == NULL || strcmp (c->device, s->id.device) == 0)
    json_array_append_new (c->a, gw_session_json (s));
  return 0;
}

json_t *
gw_device_sessions (struct gw *gw, const char *device)
{
  struct collect c = { device, json_array () };

  gw_sessions_foreach (gw, collect_one, &c);
  return c.a;
}

int
gw_h_sessions (struct df_http_request *req, void *opaque)
{
  struct gw *gw = opaque;
  struct gw_farm *f = gw_farm_get (gw);
  json_t *o = json_pack ("{s:s, s:o}", "server", f->server, "sessions",
                         gw_device_sessions (gw, NULL));

  gw_farm_put (gw, f);
  return df_http_respond_json (req, 200, o);
}
