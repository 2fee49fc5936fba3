/* diskfarm-gateway serve — what this server is and holds:
 *
 *   GET /v1/status            server, load, sessions, stores' free space
 *   GET /v1/vdisks[/NAME]     versions and the replica of each here
 *   GET /v1/devices[/NAME]    configuration and the session here, if any
 *
 * The sessions come from nbdkit's published figures (sessions.c).
 */
#include <config.h>

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/statvfs.h>

#include "cleanup.h"
#include "error.h"
#include "gw.h"
#include "util.h"
#include "vdisk/vdisk.h"

static const char *const replica_names[] = {
  [GW_REPLICA_PRESENT] = "present",
  [GW_REPLICA_MISSING] = "missing",
  [GW_REPLICA_INCOMPLETE] = "incomplete",
};

static const char *const verify_names[] = {
  [GW_VERIFY_PENDING] = "pending",
  [GW_VERIFY_OK] = "ok",
  [GW_VERIFY_FAILED] = "failed",
};

static json_t *
stores_json (const struct gw_farm *f)
{
  json_t *a = json_array ();
  size_t i;

  for (i = 0; i < f->nstores; i++) {
    struct statvfs vfs;
    json_t *s = json_pack ("{s:s, s:s}", "name", f->stores[i].name, "path",
                           f->stores[i].path);
    if (statvfs (f->stores[i].path, &vfs) == 0) {
      json_object_set_new (s, "free_bytes",
                           json_integer ((json_int_t) vfs.f_bavail * vfs.f_frsize));
      json_object_set_new (s, "total_bytes",
                           json_integer ((json_int_t) vfs.f_blocks * vfs.f_frsize));
    }
    else
      json_object_set_new (s, "error", json_string (strerror (errno)));
    json_array_append_new (a, s);
  }
  return a;
}

int
gw_h_status (struct df_http_request *req, void *opaque)
{
  struct gw *gw = opaque;
  struct gw_farm *f = gw_farm_get (gw);
  struct gw_load load;
  struct df_server sv;
  json_t *o;

  gw_load (gw, f, &load);
  if (df_farm_server (f->farm, f->server, &sv) == -1)
    memset (&sv, 0, sizeof sv);
  o = json_pack ("{s:s, s:s?, s:s, s:s, s:I, s:i, s:i, s:i, s:i, s:f, s:o}",
                 "server", f->server, "site", sv.site,
                 "program", "diskfarm-gateway",
                 "version", PACKAGE_VERSION,
                 "uptime_s",
                 (json_int_t) ((df_now_mono_ns () - gw->start_mono_ns) /
                               1000000000),
                 "power", (int) (sv.power ? sv.power : 1),
                 "sessions", (int) load.sessions,
                 "booting", (int) load.booting,
                 "lingering", (int) load.lingering,
                 "load", load.load,
                 "stores", stores_json (f));
  gw_farm_put (gw, f);
  return df_http_respond_json (req, 200, o);
}

/* ---- vDisks ---- */

static json_t *
version_json (struct gw *gw, const char *store, const struct df_vdisk *vd,
              const struct df_version *v)
{
  char hex[DF_HASH_LEN * 2 + 1];
  uint8_t hash[DF_HASH_LEN];
  enum gw_verify verify;
  enum gw_replica rep;
  struct stat st;
  json_t *o;

  rep = gw_layer_replica (gw, store, vd, v, &st, hash, &verify);
  o = json_pack ("{s:i, s:s, s:i, s:s, s:s}", "num", (int) v->num,
                 "state", df_state_name (v->state), "parent", (int) v->parent,
                 "file", v->file, "replica", replica_names[rep]);
  if (rep == GW_REPLICA_PRESENT) {
    /* As held here: the file's size and mtime, the hash as checked. */
    json_object_set_new (o, "size", json_integer (st.st_size));
    json_object_set_new (o, "mtime_ns", json_integer (gw_mtime_ns (&st)));
    json_object_set_new (o, "hash", json_string (gw_hex_hash (hash, hex)));
    json_object_set_new (o, "verified", json_string (verify_names[verify]));
  }
  else if (v->sealed) {
    json_object_set_new (o, "size", json_integer (v->size));
    json_object_set_new (o, "mtime_ns", json_integer (v->mtime_ns));
    json_object_set_new (o, "hash", json_string (gw_hex_hash (v->hash, hex)));
  }
  return o;
}

static json_t *
vdisk_json (struct gw *gw, const char *store_name, const char *store,
            const struct df_vdisk *vd)
{
  json_t *versions = json_array ();
  size_t i;

  for (i = 0; i < vd->nversions; i++)
    json_array_append_new (versions,
                           version_json (gw, store, vd, &vd->versions[i]));
  return json_pack ("{s:s, s:s, s:I, s:i, s:s, s:s?, s:o}",
                    "name", vd->name, "store", store_name,
                    "size", (json_int_t) vd->size,
                    "block_size", (int) vd->block_size,
                    "access", df_access_name (vd->access), "cache", vd->cache,
                    "versions", versions);
}

/* Every vDisk of the stores here (name NULL), or the one named. */
static json_t *
vdisks_json (struct gw *gw, const struct gw_farm *f, const char *name)
{
  json_t *a = json_array ();
  size_t i, k;

  for (i = 0; i < f->nstores; i++) {
    const struct gw_store *s = &f->stores[i];
    char **names = df_store_vdisks (s->path);

    for (k = 0; names && names[k]; k++) {
      struct df_vdisk *vd;
      if (name && strcmp (names[k], name) != 0)
        continue;
      vd = df_vdisk_load (s->path, names[k]);
      if (vd)
        json_array_append_new (a, vdisk_json (gw, s->name, s->path, vd));
      else
        json_array_append_new (a, json_pack ("{s:s, s:s, s:s}", "name",
                                             names[k], "store", s->name,
                                             "error", df_error_get ()));
      df_vdisk_free (vd);
    }
    df_strv_free (names);
  }
  return a;
}

int
gw_h_vdisks (struct df_http_request *req, void *opaque)
{
  struct gw *gw = opaque;
  struct gw_farm *f = gw_farm_get (gw);
  json_t *o = json_pack ("{s:s, s:o}", "server", f->server,
                         "vdisks", vdisks_json (gw, f, NULL));

  gw_farm_put (gw, f);
  return df_http_respond_json (req, 200, o);
}

int
gw_h_vdisk (struct df_http_request *req, void *opaque)
{
  struct gw *gw = opaque;
  const char *name = df_http_subpath (req);
  struct gw_farm *f;
  json_t *a, *o;

  if (!df_name_valid (name))
    return df_http_respond_error (req, 404, "not-found", "no such vdisk");
  f = gw_farm_get (gw);
  a = vdisks_json (gw, f, name);
  if (json_array_size (a) == 0) {
    json_decref (a);
    gw_farm_put (gw, f);
    return df_http_respond_error (req, 404, "not-found", "no vdisk %s in the "
                                  "stores of this server", name);
  }
  o = json_incref (json_array_get (a, 0));
  json_decref (a);
  json_object_set_new (o, "server", json_string (f->server));
  gw_farm_put (gw, f);
  return df_http_respond_json (req, 200, o);
}

/* ---- devices ---- */

static int
add_key (const char *key, const char *value, void *opaque)
{
  return json_object_set_new (opaque, key, json_string (value));
}

static json_t *
device_json (struct gw *gw, const struct gw_farm *f, const char *name,
             bool details)
{
  json_t *o = json_pack ("{s:s}", "name", name), *p;

  df_farm_foreach (f->farm, DF_KIND_DEVICE, name, NULL, add_key, o);
  if (details) {
    p = json_object ();
    df_farm_foreach (f->farm, DF_KIND_DEVICE, name, "personality", add_key, p);
    json_object_set_new (o, "personality", p);
  }
  json_object_set_new (o, "sessions", gw_device_sessions (gw, name));
  return o;
}

int
gw_h_devices (struct df_http_request *req, void *opaque)
{
  struct gw *gw = opaque;
  struct gw_farm *f = gw_farm_get (gw);
  CLEANUP_FREE const char **names = df_farm_names (f->farm, DF_KIND_DEVICE);
  json_t *a = json_array ();
  size_t i;
  int r;

  for (i = 0; names && names[i]; i++)
    json_array_append_new (a, device_json (gw, f, names[i], false));
  r = df_http_respond_json (req, 200, json_pack ("{s:s, s:o}", "server",
                                                 f->server, "devices", a));
  gw_farm_put (gw, f);
  return r;
}

int
gw_h_device (struct df_http_request *req, void *opaque)
{
  struct gw *gw = opaque;
  const char *name = df_http_subpath (req);
  struct gw_farm *f = gw_farm_get (gw);
  int r;

  if (!df_farm_exists (f->farm, DF_KIND_DEVICE, name))
    r = df_http_respond_error (req, 404, "not-found", "no device %s in the "
                               "farm", df_name_valid (name) ? name : "so named");
  else {
    json_t *o = device_json (gw, f, name, true);
    json_object_set_new (o, "server", json_string (f->server));
    r = df_http_respond_json (req, 200, o);
  }
  gw_farm_put (gw, f);
  return r;
}
