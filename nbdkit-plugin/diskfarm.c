/* nbdkit-diskfarm-plugin — serves vDisks and device sessions over NBD.
 *
 *   nbdkit diskfarm farm=DIR [server=NAME] [cache-dir=DIR]
 *                  [cache-limit=SIZE] [device-limit=SIZE] [ram-limit=SIZE]
 *                  [session-linger=SECONDS] [stats=BOOL] [stats-dir=DIR]
 *
 * See nbdkit-diskfarm-plugin(1).  This file holds the nbdkit callbacks
 * and exports.c img/ and edit/; the device sessions (dev/), the farm and
 * the shared chains are libdiskfarm's (common/session).
 */
#include <config.h>

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#define NBDKIT_API_VERSION 2
#include <nbdkit-plugin.h>

#include "error.h"
#include "plugin.h"
#include "stats/stats.h"
#include "util.h"

struct plugin_config cfg = {
  .device_limit = UINT64_C (8) << 30,
  .ram_limit = UINT64_C (64) << 20,
  .linger = 60,
  .stats = true,
};
static struct df_cache_budget budget;
struct df_farmstate *farmstate;
struct df_sessions *sessions;
static struct df_stats_publisher *publisher;

struct handle {
  struct df_export_name en;
  struct df_bdev *bdev;
  bool readonly;
  struct df_session *session;
  struct df_chain_ref *image;
  struct editor *editor;
  char *description;
};

static int
parse_size (const char *key, const char *value, uint64_t *out)
{
  if (df_parse_size (value, out) == -1) {
    nbdkit_error ("%s: %s", key, df_error_get ());
    return -1;
  }
  return 0;
}

static int
diskfarm_config (const char *key, const char *value)
{
  uint64_t v;

  if (strcmp (key, "farm") == 0) {
    free (cfg.farm_dir);
    cfg.farm_dir = nbdkit_absolute_path (value);
    return cfg.farm_dir ? 0 : -1;
  }
  if (strcmp (key, "server") == 0) {
    if (df_name_check ("server", value) == -1) {
      nbdkit_error ("%s", df_error_get ());
      return -1;
    }
    free (cfg.server);
    cfg.server = strdup (value);
    return cfg.server ? 0 : -1;
  }
  if (strcmp (key, "cache-dir") == 0) {
    free (cfg.cache_dir);
    cfg.cache_dir = nbdkit_absolute_path (value);
    return cfg.cache_dir ? 0 : -1;
  }
  if (strcmp (key, "cache-limit") == 0)
    return parse_size (key, value, &budget.limit);
  if (strcmp (key, "device-limit") == 0)
    return parse_size (key, value, &cfg.device_limit);
  if (strcmp (key, "ram-limit") == 0)
    return parse_size (key, value, &cfg.ram_limit);
  if (strcmp (key, "session-linger") == 0) {
    if (df_parse_u64 (value, &v) == -1 || v > 86400) {
      nbdkit_error ("session-linger: \"%s\" is not 0 to 86400 seconds", value);
      return -1;
    }
    cfg.linger = v;
    return 0;
  }
  if (strcmp (key, "stats") == 0) {
    int b = nbdkit_parse_bool (value);
    if (b == -1)
      return -1;
    cfg.stats = b;
    return 0;
  }
  if (strcmp (key, "stats-dir") == 0) {
    free (cfg.stats_dir);
    cfg.stats_dir = nbdkit_absolute_path (value);
    return cfg.stats_dir ? 0 : -1;
  }
  nbdkit_error ("unknown parameter \"%s\" (see nbdkit diskfarm --help)", key);
  return -1;
}

/* The library's events, in nbdkit's log. */
static void
plugin_log (void *opaque, enum df_log_level level, const char *msg)
{
  (void) opaque;
  if (level <= DF_LOG_WARNING)
    nbdkit_error ("%s", msg);
  else
    nbdkit_debug ("%s", msg);
}

static int
diskfarm_config_complete (void)
{
  struct df_farmstate_params fp = {
    .server = cfg.server, .log = plugin_log,
  };
  struct df_sessions_params sp = {
    .cache_dir = cfg.cache_dir, .device_limit = cfg.device_limit,
    .ram_limit = cfg.ram_limit, .linger = cfg.linger, .budget = &budget,
    .log = plugin_log,
  };

  if (cfg.farm_dir == NULL) {
    cfg.farm_dir = nbdkit_absolute_path (DISKFARM_DEFAULT_FARM);
    if (cfg.farm_dir == NULL)
      return -1;
  }
  fp.dir = cfg.farm_dir;
  farmstate = df_farmstate_new (&fp);
  if (farmstate == NULL) {
    nbdkit_error ("%s", df_error_get ());
    return -1;
  }
  sp.farm = farmstate;
  publisher = df_stats_publisher_new (plugin_log, NULL);
  if (publisher == NULL) {
    nbdkit_error ("%s", df_error_get ());
    return -1;
  }
  df_stats_publisher_hooks (publisher, &sp);
  sessions = df_sessions_new (&sp);
  if (sessions == NULL) {
    nbdkit_error ("%s", df_error_get ());
    return -1;
  }
  return 0;
}

#define diskfarm_config_help \
  "farm=DIR              The farm directory (default " DISKFARM_DEFAULT_FARM ").\n" \
  "server=NAME           This server's name in the farm (default: host name).\n" \
  "cache-dir=DIR         Where device write caches live (default STORE/caches).\n" \
  "cache-limit=SIZE      Total write cache of all devices (default: none).\n" \
  "device-limit=SIZE     Per device when its cache names no size (default 8G).\n" \
  "ram-limit=SIZE        RAM per ram+disk session before spilling (default 64M).\n" \
  "session-linger=SECS   Keep a closed session this long to resume (default 60).\n" \
  "stats=BOOL            Publish the sessions' figures (default true).\n" \
  "stats-dir=DIR         Where they are published (default " DF_STATS_DIR ")."

/* Publishing starts once nbdkit has forked (the file carries its pid).
 * A stats-dir the operator named must work; the default may not (nbdkit
 * run by a user, without /run/diskfarm): then sessions go unpublished.
 */
static int
start_publishing (void)
{
  const char *dir = cfg.stats_dir ? cfg.stats_dir : DF_STATS_DIR;

  if (!cfg.stats)
    return 0;
  if (df_stats_publisher_start (publisher, sessions, dir,
                                STATS_INTERVAL_MS) == 0)
    return 0;
  nbdkit_error ("%s%s", df_error_get (), cfg.stats_dir ? "" :
                " (sessions are served, but not published)");
  return cfg.stats_dir ? -1 : 0;
}

static int
diskfarm_after_fork (void)
{
  if (df_sessions_start (sessions) == -1) {
    nbdkit_error ("%s", df_error_get ());
    return -1;
  }
  return start_publishing ();
}

static void
diskfarm_unload (void)
{
  /* The sessions give their slots back before the table goes. */
  df_stats_publisher_stop (publisher);
  df_sessions_free (sessions);
  df_stats_publisher_free (publisher);
  df_farmstate_free (farmstate);
  free (cfg.stats_dir);
  free (cfg.farm_dir);
  free (cfg.server);
  free (cfg.cache_dir);
}

static int
add_export (void *opaque, const char *name, const char *desc)
{
  return nbdkit_add_export (opaque, name, desc);
}

static int
diskfarm_list_exports (int readonly, int is_tls, struct nbdkit_exports *exports)
{
  (void) readonly;
  (void) is_tls;
  if (exports_list (add_export, exports) == -1) {
    nbdkit_error ("%s", df_error_get ());
    return -1;
  }
  return 0;
}

static void
fail_open (struct handle *h, const char *exportname)
{
  int err = errno ? errno : EIO;

  nbdkit_error ("export \"%s\": %s", exportname, df_error_get ());
  nbdkit_set_error (err);
  free (h);
}

/* The client's address, for the session's figures. */
static const char *
peer (char *buf, size_t len)
{
  struct sockaddr_storage ss;
  socklen_t sl = sizeof ss;
  const void *addr = NULL;

  buf[0] = '\0';
  if (nbdkit_peer_name ((struct sockaddr *) &ss, &sl) == -1)
    return buf;
  if (ss.ss_family == AF_INET)
    addr = &((struct sockaddr_in *) &ss)->sin_addr;
  else if (ss.ss_family == AF_INET6)
    addr = &((struct sockaddr_in6 *) &ss)->sin6_addr;
  else if (ss.ss_family == AF_UNIX)
    snprintf (buf, len, "unix");
  if (addr && inet_ntop (ss.ss_family, addr, buf, len) == NULL)
    buf[0] = '\0';
  return buf;
}

static void *
diskfarm_open (int readonly)
{
  const char *exportname = nbdkit_export_name ();
  struct handle *h = calloc (1, sizeof *h);
  char client[64];

  if (h == NULL) {
    nbdkit_error ("calloc: %m");
    return NULL;
  }
  df_error_clear ();
  errno = 0;
  if (df_export_parse (exportname, &h->en) == -1) {
    fail_open (h, exportname ? exportname : "");
    return NULL;
  }
  switch (h->en.kind) {
  case DF_EXPORT_IMG:
    h->image = image_open (&h->en, &h->description);
    if (h->image == NULL)
      goto fail;
    h->bdev = h->image->bdev;
    h->readonly = true;
    break;
  case DF_EXPORT_DEV:
    h->session = df_session_open (sessions, h->en.name, h->en.session,
                                  peer (client, sizeof client));
    if (h->session == NULL)
      goto fail;
    df_stats_publisher_session (publisher, h->session);
    h->description = df_session_describe (h->session);
    h->bdev = df_session_bdev (h->session);
    h->readonly = readonly || df_session_readonly (h->session);
    break;
  case DF_EXPORT_EDIT:
    h->editor = editor_open (h->en.name, &h->description);
    if (h->editor == NULL)
      goto fail;
    h->bdev = editor_bdev (h->editor);
    h->readonly = readonly;
    break;
  }
  return h;
 fail:
  fail_open (h, exportname);
  return NULL;
}

static void
diskfarm_close (void *handle)
{
  struct handle *h = handle;

  if (h->session) {
    df_session_close (h->session);
    df_stats_publisher_poke (publisher);
  }
  if (h->editor && editor_close (h->editor) == -1)
    nbdkit_error ("%s", df_error_get ());
  df_farmstate_chain_put (farmstate, h->image);
  free (h->description);
  free (h);
}

static const char *
diskfarm_export_description (void *handle)
{
  struct handle *h = handle;

  return h->description;
}

static int64_t
diskfarm_get_size (void *handle)
{
  struct handle *h = handle;

  return h->bdev->size;
}

static int
diskfarm_block_size (void *handle, uint32_t *minimum, uint32_t *preferred,
                     uint32_t *maximum)
{
  (void) handle;
  *minimum = 1;
  *preferred = 4096;
  *maximum = 0xffffffff;
  return 0;
}

static int
diskfarm_can_write (void *handle)
{
  struct handle *h = handle;

  return !h->readonly;
}

static int
diskfarm_can_multi_conn (void *handle)
{
  struct handle *h = handle;

  /* Sessions and images share one object across connections; an editor
   * is one connection.
   */
  return h->editor == NULL;
}

static int
diskfarm_can_fua (void *handle)
{
  (void) handle;
  return NBDKIT_FUA_NATIVE;
}

static int
diskfarm_can_cache (void *handle)
{
  (void) handle;
  return NBDKIT_CACHE_EMULATE;
}

static int
diskfarm_yes (void *handle)
{
  (void) handle;
  return 1;
}

/* Reports a failed request once, with its context (a full cache is
 * logged once per session, by the session).
 */
static int
io_error (struct handle *h, const char *op)
{
  int err = errno ? errno : EIO;

  (void) h;
  if (err != ENOSPC)
    nbdkit_error ("%s: %s", op, df_error_get ());
  nbdkit_set_error (err);
  return -1;
}

static uint32_t
df_flags (uint32_t flags)
{
  return ((flags & NBDKIT_FLAG_FUA) ? DF_FUA : 0) |
    ((flags & NBDKIT_FLAG_MAY_TRIM) ? DF_MAY_TRIM : 0) |
    ((flags & NBDKIT_FLAG_FAST_ZERO) ? DF_FAST_ZERO : 0);
}

static int
diskfarm_pread (void *handle, void *buf, uint32_t count, uint64_t offset,
                uint32_t flags)
{
  struct handle *h = handle;

  (void) flags;
  if (df_bdev_pread (h->bdev, buf, count, offset) == -1)
    return io_error (h, "read");
  return 0;
}

static int
diskfarm_pwrite (void *handle, const void *buf, uint32_t count,
                 uint64_t offset, uint32_t flags)
{
  struct handle *h = handle;

  if (df_bdev_pwrite (h->bdev, buf, count, offset, df_flags (flags)) == -1)
    return io_error (h, "write");
  return 0;
}

static int
diskfarm_flush (void *handle, uint32_t flags)
{
  struct handle *h = handle;

  (void) flags;
  if (df_bdev_flush (h->bdev) == -1)
    return io_error (h, "flush");
  return 0;
}

static int
diskfarm_zero (void *handle, uint32_t count, uint64_t offset, uint32_t flags)
{
  struct handle *h = handle;

  if (df_bdev_zero (h->bdev, count, offset, df_flags (flags)) == -1) {
    if (errno == ENOTSUP && (flags & NBDKIT_FLAG_FAST_ZERO)) {
      nbdkit_set_error (ENOTSUP);     /* declined, not failed: no log */
      return -1;
    }
    return io_error (h, "zero");
  }
  return 0;
}

static int
diskfarm_trim (void *handle, uint32_t count, uint64_t offset, uint32_t flags)
{
  struct handle *h = handle;

  if (df_bdev_trim (h->bdev, count, offset, df_flags (flags)) == -1)
    return io_error (h, "trim");
  return 0;
}

static int
add_extent (void *opaque, uint64_t offset, uint64_t length, uint32_t type)
{
  uint32_t t = ((type & DF_EXTENT_HOLE) ? NBDKIT_EXTENT_HOLE : 0) |
    ((type & DF_EXTENT_ZERO) ? NBDKIT_EXTENT_ZERO : 0);

  return nbdkit_add_extent (opaque, offset, length, t);
}

static int
diskfarm_extents (void *handle, uint32_t count, uint64_t offset,
                  uint32_t flags, struct nbdkit_extents *extents)
{
  struct handle *h = handle;

  (void) flags;
  if (df_bdev_extents (h->bdev, count, offset, add_extent, extents) == -1)
    return io_error (h, "extents");
  return 0;
}

static struct nbdkit_plugin plugin = {
  .name = "diskfarm",
  .longname = "diskfarm vDisk and device session server",
  .version = PACKAGE_VERSION,
  .description = "Serves diskfarm vDisks (img/), device sessions with "
                 "copy-on-write write caches (dev/) and maintenance "
                 "versions (edit/).",
  .magic_config_key = "farm",
  .config = diskfarm_config,
  .config_complete = diskfarm_config_complete,
  .config_help = diskfarm_config_help,
  .after_fork = diskfarm_after_fork,
  .unload = diskfarm_unload,
  .list_exports = diskfarm_list_exports,
  .open = diskfarm_open,
  .close = diskfarm_close,
  .export_description = diskfarm_export_description,
  .get_size = diskfarm_get_size,
  .block_size = diskfarm_block_size,
  .can_write = diskfarm_can_write,
  .can_flush = diskfarm_yes,
  .can_trim = diskfarm_yes,
  .can_zero = diskfarm_yes,
  .can_fast_zero = diskfarm_yes,
  .can_extents = diskfarm_yes,
  .can_fua = diskfarm_can_fua,
  .can_multi_conn = diskfarm_can_multi_conn,
  .can_cache = diskfarm_can_cache,
  .pread = diskfarm_pread,
  .pwrite = diskfarm_pwrite,
  .flush = diskfarm_flush,
  .trim = diskfarm_trim,
  .zero = diskfarm_zero,
  .extents = diskfarm_extents,
  .errno_is_preserved = 0,
};

#define THREAD_MODEL NBDKIT_THREAD_MODEL_PARALLEL
NBDKIT_REGISTER_PLUGIN (plugin)
