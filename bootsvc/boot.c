/* diskfarm-bootsvc — what devices boot: per-device iPXE scripts, vDisk
 * kernels and initrds, and the iPXE binaries of the TFTP root.
 */
#include <config.h>

#include <arpa/inet.h>
#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "bootsvc.h"
#include "cleanup.h"
#include "error.h"
#include "ipxe.h"
#include "log.h"
#include "util.h"
#include "vdisk/vdisk.h"

int
boot_parse_script_name (const char *name, uint8_t mac[6])
{
  size_t n = strlen (name);
  char m[32];
  char q[64];

  if (n < 6 || n - 5 >= sizeof m || strcmp (name + n - 5, ".ipxe") != 0)
    goto bad;
  memcpy (m, name, n - 5);
  m[n - 5] = '\0';
  if (n - 5 == 12 && df_unhex (m, mac, 6) == 0)
    return 0;
  if (df_parse_mac (m, mac) == 0)
    return 0;
 bad:
  return df_error (EINVAL, "\"%s\" is not MAC.ipxe", df_quote (name, q, sizeof q));
}

/* The write cache mode that applies: device, collection, vDisk, farm. */
static bool
client_caches (struct df_farm *farm, const struct df_device *dev,
               const struct df_vdisk *vd)
{
  const char *spec = dev->cache;
  struct df_cache_spec cs;

  if (spec == NULL && dev->collection)
    spec = df_farm_get (farm, DF_KIND_COLLECTION, dev->collection, "cache");
  if (spec == NULL)
    spec = vd->cache;
  if (spec == NULL)
    spec = df_farm_setting (farm, "vdisk-defaults", "cache");
  return spec && df_cache_parse (spec, &cs) == 0 && cs.mode == DF_CACHE_DEVICE;
}

/* A script that explains on the device's screen why it cannot boot. */
static char *
refuse (struct bootsvc *svc, const char *device, const char *fmt, ...)
{
  char msg[400];
  va_list ap;

  va_start (ap, fmt);
  vsnprintf (msg, sizeof msg, fmt, ap);
  va_end (ap);
  svc->stats.script_errors++;
  df_log_warning ("boot: device %s cannot boot: %s", device, msg);
  return ipxe_error_script (msg);
}

struct script_ctx {
  struct bootsvc *svc;
  struct df_farm *farm;
  struct df_device dev;
  uint32_t client;
  bool client_known, http;
};

/* This server's own replica of v: its layer file against vdisk.conf. */
static void
local_replica (const struct df_vdisk *vd, const struct df_version *v,
               struct replica_identity *have)
{
  char *path = df_vdisk_layer_path (vd, v);
  struct stat st;

  memset (have, 0, sizeof *have);
  have->state = REPLICA_MISSING;
  if (path && stat (path, &st) == 0) {
    uint64_t mtime = (uint64_t) st.st_mtim.tv_sec * 1000000000ULL +
      st.st_mtim.tv_nsec;
    have->sealed = v->sealed;
    have->size = st.st_size;
    have->mtime_ns = mtime;
    memcpy (have->hash, v->hash, DF_HASH_LEN);
    have->state = !v->sealed || ((uint64_t) st.st_size == v->size &&
                                 mtime == v->mtime_ns)
      ? REPLICA_PRESENT : REPLICA_INCOMPLETE;
  }
  df_error_clear ();
  free (path);
}

static const char *
replica_word (enum replica_state s)
{
  static const char *const words[] = {
    "not known (its gateway did not answer)", "another copy", "missing",
    "incomplete",
  };

  return words[s];
}

/* Leaves out the servers whose replica of the version is not identical
 * (a version is pending on a server until it is).  A shared store, or a
 * farm without gateways to ask, keeps every server.
 */
static size_t
only_identical (struct script_ctx *c, const struct df_vdisk *vd,
                const char *store, unsigned version, struct boot_server *s,
                size_t n)
{
  const struct df_version *v = df_vdisk_version (vd, version);
  const char *self = bootsvc_server_name (c->svc);
  struct replica_identity want, have;
  bool *keep;
  size_t i;

  if (v == NULL || n == 0 || df_farm_store_shared (c->farm, store) ||
      !peer_view_enabled (c->svc->peers))
    return n;
  keep = calloc (n, sizeof *keep);
  if (keep == NULL)
    return n;
  want = (struct replica_identity) { REPLICA_PRESENT, v->sealed, v->size,
                                     v->mtime_ns, { 0 } };
  memcpy (want.hash, v->hash, DF_HASH_LEN);
  for (i = 0; i < n; i++) {
    if (self && strcmp (s[i].name, self) == 0)
      local_replica (vd, v, &have);
    else
      peer_view_lookup (c->svc->peers, s[i].name, vd->name, version, &have);
    keep[i] = boot_replica_identical (&want, &have);
    if (!keep[i])
      df_debug ("boot", "%s: leaving out %s, its replica of %s@%u is %s",
                c->dev.name, s[i].name, vd->name, version,
                replica_word (have.state));
  }
  n = boot_servers_keep (s, n, keep);
  free (keep);
  return n;
}

static char *
script_with_servers (struct script_ctx *c, const struct df_vdisk *vd,
                     const char *store, unsigned version)
{
  struct bootsvc *svc = c->svc;
  struct boot_server *servers = NULL;
  size_t n = 0, use, held;
  char session[BOOT_SESSION_LEN + 1], peer[INET_ADDRSTRLEN] = "?";
  char *text;

  if (c->client_known)
    inet_ntop (AF_INET, &c->client, peer, sizeof peer);
  if (boot_servers_from_farm (c->farm, store, c->client, c->client_known,
                              &servers, &n) == -1 ||
      boot_session_new (session) == -1)
    return refuse (svc, c->dev.name, "%s", df_error_get ());
  held = n;
  n = only_identical (c, vd, store, version, servers, n);
  use = boot_servers_order (servers, n, c->dev.name, bootsvc_affinity (svc),
                            c->client_known, BOOT_SERVERS_MAX);
  if (use == 0) {
    free (servers);
    if (held > 0 && n == 0)
      return refuse (svc, c->dev.name, "no server holds version %u of vdisk "
                     "%s identical yet (replication pending)", version,
                     vd->name);
    return refuse (svc, c->dev.name, "no server holds store %s%s%s", store,
                   bootsvc_affinity (svc) == AFFINITY_FIXED ? " in the subnet of "
                   : "", bootsvc_affinity (svc) == AFFINITY_FIXED ? peer : "");
  }
  text = ipxe_script_build (&(struct ipxe_script) {
      .device = c->dev.name, .mac = c->dev.mac, .vdisk = vd->name,
      .version = version, .session = session, .servers = servers,
      .nservers = use, .http_port = svc->cfg.http_port, .http = c->http,
      .cmdline = vd->boot_cmdline, .timeout = svc->cfg.boot_timeout,
      .client_cache = client_caches (c->farm, &c->dev, vd) });
  if (text == NULL) {
    free (servers);
    return refuse (svc, c->dev.name, "%s", df_error_get ());
  }
  svc->stats.scripts++;
  df_log_info ("boot: script for %s from %s: vdisk %s version %u, first "
               "server %s of %zu, session %s", c->dev.name, peer, vd->name,
               version, servers[0].name, use, session);
  free (servers);
  return text;
}

static char *
script_for_device (struct script_ctx *c)
{
  const char *server = bootsvc_server_name (c->svc), *store_name = NULL;
  const struct df_version *v;
  struct df_vdisk *vd;
  char *text;

  if (server == NULL)
    return refuse (c->svc, c->dev.name, "%s", df_error_get ());
  vd = df_farm_load_vdisk (c->farm, server, c->dev.vdisk, &store_name, NULL);
  if (vd == NULL)
    return refuse (c->svc, c->dev.name, "%s", df_error_get ());
  v = df_vdisk_pick (vd, c->dev.type);
  if (v == NULL)
    text = refuse (c->svc, c->dev.name, "vdisk %s has no version a %s device "
                   "may boot", vd->name, df_type_name (c->dev.type));
  else if (vd->boot_kernel == NULL || vd->boot_initrd == NULL)
    text = refuse (c->svc, c->dev.name, "vdisk %s has no kernel and initrd "
                   "(diskfarm vdisk boot %s --kernel FILE --initrd FILE)",
                   vd->name, vd->name);
  else
    text = script_with_servers (c, vd, store_name, v->num);
  df_vdisk_free (vd);
  return text;
}

char *
boot_script (struct bootsvc *svc, const uint8_t mac[6], uint32_t client,
             bool client_known, bool http, unsigned *status)
{
  struct script_ctx c = {
    .svc = svc, .client = client, .client_known = client_known, .http = http,
  };
  char *text;

  /* Only PXE clients on a served segment add themselves (DHCP), never
   * whoever can reach the HTTP port.
   */
  if (bootsvc_device (svc, mac, false, &c.dev) == -1) {
    if (errno == ENOENT)
      bootsvc_log_unknown (svc, mac, "boot");
    *status = 404;
    if (asprintf (&text, "%s\n", df_error_get ()) == -1)
      return NULL;
    return text;
  }
  c.farm = bootsvc_farm_loaded (svc);   /* the one c.dev points into */
  *status = 200;
  return script_for_device (&c);
}

/* Opens path read-only; it must be a regular file. */
static int
open_regular (const char *path)
{
  struct stat st;
  int fd = open (path, O_RDONLY | O_CLOEXEC);

  if (fd == -1)
    return df_error_errno ("%s", path);
  if (fstat (fd, &st) == -1 || !S_ISREG (st.st_mode)) {
    close (fd);
    return df_error (EACCES, "%s is not a regular file", path);
  }
  return fd;
}

int
boot_file_open (struct bootsvc *svc, const char *vdisk, const char *which)
{
  struct df_farm *farm = bootsvc_farm (svc);
  const char *server = bootsvc_server_name (svc), *rel;
  CLEANUP_FREE char *path = NULL;
  struct df_vdisk *vd;
  int fd;

  if (server == NULL || df_name_check ("vdisk", vdisk) == -1)
    return -1;
  vd = df_farm_load_vdisk (farm, server, vdisk, NULL, NULL);
  if (vd == NULL)
    return -1;
  rel = strcmp (which, "kernel") == 0 ? vd->boot_kernel
    : strcmp (which, "initrd") == 0 ? vd->boot_initrd : NULL;
  if (rel == NULL) {
    df_error (ENOENT, "vdisk %s has no %s", vdisk, which);
    df_vdisk_free (vd);
    return -1;
  }
  /* The manifest parser allows only plain relative names here. */
  path = df_path_join (vd->dir, rel);
  df_vdisk_free (vd);
  if (path == NULL)
    return df_error_errno ("%s", vdisk);
  fd = open_regular (path);
  df_debug ("boot", "%s of vdisk %s: %s%s", which, vdisk, path,
            fd == -1 ? " (cannot open)" : "");
  return fd;
}

int
boot_root_open (struct bootsvc *svc, const char *path)
{
  CLEANUP_FREE char *copy = strdup (path), *full = NULL;
  char *save = NULL, *comp, q[80];

  if (copy == NULL)
    return df_error_errno ("%s", path);
  if (path[0] == '\0' || path[0] == '/' || strstr (path, "//"))
    return df_error (EACCES, "\"%s\" is not a relative path of plain names",
                     df_quote (path, q, sizeof q));
  for (comp = strtok_r (copy, "/", &save); comp;
       comp = strtok_r (NULL, "/", &save))
    if (!df_name_valid (comp))
      return df_error (EACCES, "\"%s\" is not a relative path of plain names",
                       df_quote (path, q, sizeof q));
  full = df_path_join (svc->cfg.tftp_root, path);
  if (full == NULL)
    return df_error_errno ("%s", path);
  df_debug ("boot", "TFTP root file %s", full);
  return open_regular (full);
}
