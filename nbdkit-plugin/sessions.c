/* nbdkit-diskfarm-plugin — device sessions: dev/DEVICE@SESSION.
 *
 * All connections of one DEVICE@SESSION share one session, so writes on
 * one are seen by reads on the others (multi-conn).  When the last
 * connection closes, the session lingers for cfg.linger seconds: a RAM
 * cache stays in memory; a disk cache is spilled, flushed and closed so
 * that this server or another one with the same cache directory can
 * resume it.  A new session of the same device discards the older ones'
 * non-persistent caches as soon as nothing uses them.
 */
#include <config.h>

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <unistd.h>

#include <nbdkit-plugin.h>

#include "cleanup.h"
#include "error.h"
#include "plugin.h"
#include "util.h"

struct session {
  char device[DF_NAME_MAX + 1];
  char name[DF_NAME_MAX + 1];
  unsigned refs;
  uint64_t idle_since;          /* monotonic ns, when refs dropped to 0 */
  bool discard;                 /* superseded by a newer session */
  bool enospc_logged;
  struct df_cache_spec spec;
  char *path;                   /* cache file (disk modes) */
  struct chain_ref *chain;      /* the version below the cache */
  struct df_bdev *cache;        /* NULL while parked */
  struct df_bdev *private;      /* mode none: the writable version */
  char *vdisk;
  char *vdisk_store;            /* mode none: the version is reopened */
  unsigned version;
  struct session *next;
};

static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t stop_cond = PTHREAD_COND_INITIALIZER;
static struct session *sessions;
static pthread_t reaper;
static bool reaper_running, stopping;

static bool
disk_mode (enum df_cache_mode m)
{
  return m == DF_CACHE_DISK || m == DF_CACHE_RAM_DISK || m == DF_CACHE_PERSISTENT;
}

/* The write cache of a device: its own, its collection's, its vDisk's,
 * the farm default, else ram+disk.  A private vDisk has none.
 */
static int
cache_spec (struct df_farm *farm, const struct df_device *dev,
            const struct df_vdisk *vd, struct df_cache_spec *spec)
{
  const char *s = dev->cache;

  if (s == NULL && dev->collection)
    s = df_farm_get (farm, DF_KIND_COLLECTION, dev->collection, "cache");
  if (s == NULL)
    s = vd->cache;
  if (s == NULL)
    s = df_farm_setting (farm, "vdisk-defaults", "cache");
  if (s == NULL)
    s = "ram+disk";
  if (df_cache_parse (s, spec) == -1)
    return -1;
  if (vd->access == DF_ACCESS_PRIVATE)
    spec->mode = DF_CACHE_NONE;
  if (spec->limit == 0)
    spec->limit = cfg.device_limit;
  return 0;
}

/* DIR/DEVICE, the device's cache directory (caller frees). */
static char *
device_dir (const struct df_vdisk *vd, const char *device)
{
  char *d;
  int r;

  if (cfg.cache_dir)
    r = asprintf (&d, "%s/%s", cfg.cache_dir, device);
  else
    r = asprintf (&d, "%s/caches/%s", vd->store, device);
  if (r == -1) {
    df_error_errno ("cache directory");
    return NULL;
  }
  return d;
}

/* Removes a cache file nobody holds (no writer lock). */
static void
remove_unused (const char *path)
{
  int fd = open (path, O_RDONLY | O_CLOEXEC);

  if (fd == -1)
    return;
  if (flock (fd, LOCK_EX | LOCK_NB) == 0) {
    unlink (path);
    nbdkit_debug ("discarded cache %s", path);
  }
  close (fd);
}

/* Other sessions' caches of this device, left by any server, go. */
static void
discard_other_files (const char *dir, const char *keep)
{
  DIR *d = opendir (dir);
  struct dirent *de;

  if (d == NULL)
    return;
  while ((de = readdir (d)) != NULL) {
    size_t n = strlen (de->d_name);
    CLEANUP_FREE char *p = NULL;
    if (n < 7 || strcmp (de->d_name + n - 6, ".layer") != 0 ||
        strncmp (de->d_name, "persistent", 10) == 0)
      continue;
    p = df_path_join (dir, de->d_name);
    if (p && strcmp (p, keep) != 0)
      remove_unused (p);
  }
  closedir (d);
}

static void
session_free (struct session *s, bool delete_file)
{
  df_bdev_close (s->cache);
  df_bdev_close (s->private);
  chain_put (s->chain);
  if (delete_file && s->path && s->spec.mode != DF_CACHE_PERSISTENT)
    remove_unused (s->path);
  free (s->path);
  free (s->vdisk_store);
  free (s->vdisk);
  free (s);
}

static void
unlink_session (struct session *s)
{
  struct session **p;

  for (p = &sessions; *p; p = &(*p)->next)
    if (*p == s) {
      *p = s->next;
      return;
    }
}

/* The version a resumed disk cache was made on, from its header. */
static int
resumed_version (const struct df_vdisk *vd, const char *path, unsigned *num)
{
  struct df_layer *l = df_layer_open (path, false);
  size_t i;

  if (l == NULL)
    return errno == ENOENT ? 0 : -1;
  for (i = 0; i < vd->nversions; i++)
    if (memcmp (vd->versions[i].id, df_layer_info (l)->parent_id,
                DF_LAYER_ID_LEN) == 0) {
      *num = vd->versions[i].num;
      df_layer_close (l);
      return 0;
    }
  df_layer_close (l);
  return df_error (ESTALE, "%s: the version this cache was made on is gone",
                   path);
}

/* Opens the cache (or the writable version) of a session whose fields
 * are set.  Used for new sessions and to resume parked ones.
 */
static int
attach_cache (struct session *s)
{
  struct df_cache_params p = {
    .mode = s->spec.mode, .limit = s->spec.limit, .ram_limit = cfg.ram_limit,
    .path = s->path, .budget = &budget,
  };

  if (s->spec.mode == DF_CACHE_DEVICE)
    return 0;
  if (s->spec.mode == DF_CACHE_NONE) {
    struct df_vdisk *vd = df_vdisk_load (s->vdisk_store, s->vdisk);
    if (vd == NULL)
      return -1;
    s->private = df_vdisk_open (vd, s->version, true);
    df_vdisk_free (vd);
    if (s->private == NULL && errno == EBUSY)
      df_error (EBUSY, "vdisk \"%s\" is private and in use by another device",
                s->vdisk);
    return s->private ? 0 : -1;
  }
  p.parent_id = s->chain->id;
  p.parent_hash = s->chain->hash;
  s->cache = df_cache_open (s->chain->bdev, &p);
  if (s->cache == NULL && errno == EBUSY)
    df_error (EBUSY, "session %s@%s is in use on another server", s->device,
              s->name);
  return s->cache ? 0 : -1;
}

/* A private vDisk's writable version: the maintenance one, made if
 * there is none.
 */
static int
private_version (struct df_vdisk *vd, unsigned *num)
{
  size_t i;

  for (i = vd->nversions; i > 0; i--)
    if (vd->versions[i - 1].state == DF_STATE_MAINTENANCE) {
      *num = vd->versions[i - 1].num;
      return 0;
    }
  return df_version_new (vd->store, vd->name, num);
}

/* Fills a new session from the farm: vDisk, version, cache. */
static int
setup_session (struct session *s, struct df_farm *farm)
{
  struct df_device dev;
  struct df_vdisk *vd = NULL;
  const struct df_version *v;
  CLEANUP_FREE char *dir = NULL;
  int r = -1;

  if (df_farm_device (farm, s->device, &dev) == -1 ||
      (vd = farm_load_vdisk (farm, dev.vdisk)) == NULL ||
      cache_spec (farm, &dev, vd, &s->spec) == -1)
    goto out;
  v = df_vdisk_pick (vd, dev.type);
  if (v == NULL) {
    df_error (ENOENT, "vdisk \"%s\" has no version a %s device may boot",
              vd->name, df_type_name (dev.type));
    goto out;
  }
  s->version = v->num;
  s->vdisk = strdup (vd->name);
  if (s->vdisk == NULL) {
    df_error_errno ("session");
    goto out;
  }
  /* A maintenance device edits the maintenance version itself. */
  if (v->state == DF_STATE_MAINTENANCE)
    s->spec.mode = DF_CACHE_NONE;
  if (s->spec.mode == DF_CACHE_NONE) {
    s->vdisk_store = strdup (vd->store);
    if (!s->vdisk_store || private_version (vd, &s->version) == -1)
      goto out;
    r = attach_cache (s);
    goto out;
  }
  if (disk_mode (s->spec.mode)) {
    dir = device_dir (vd, s->device);
    if (dir == NULL || df_mkdir_p (dir, 0755) == -1)
      goto out;
    if (s->spec.mode == DF_CACHE_PERSISTENT)
      r = asprintf (&s->path, "%s/persistent.layer", dir);
    else
      r = asprintf (&s->path, "%s/%s.layer", dir, s->name);
    if (r == -1) {
      s->path = NULL;
      df_error_errno ("cache path");
      goto out;
    }
    r = -1;
    if (s->spec.mode != DF_CACHE_PERSISTENT) {
      discard_other_files (dir, s->path);
      if (resumed_version (vd, s->path, &s->version) == -1)
        goto out;
    }
  }
  s->chain = chain_get (vd, s->version);
  if (s->chain == NULL)
    goto out;
  r = attach_cache (s);
  if (r == -1 && errno == ESTALE && s->spec.mode == DF_CACHE_PERSISTENT) {
    /* The device boots a newer version: its old persistent cache cannot
     * apply to it.  Keep the file aside rather than lose it.
     */
    CLEANUP_FREE char *old = NULL;
    if (asprintf (&old, "%s.old", s->path) != -1 && rename (s->path, old) == 0) {
      nbdkit_error ("device %s: persistent cache was made on another "
                    "version; kept as %s, starting a new one", s->device, old);
      r = attach_cache (s);
    }
  }
 out:
  df_vdisk_free (vd);
  return r;
}

/* Marks older sessions of the device for discarding; drops idle ones. */
static void
supersede (const char *device, const char *name)
{
  struct session *s = sessions, *next;

  for (; s; s = next) {
    next = s->next;
    if (strcmp (s->device, device) != 0 || strcmp (s->name, name) == 0)
      continue;
    s->discard = true;
    if (s->refs == 0) {
      nbdkit_debug ("session %s@%s superseded by %s", s->device, s->name, name);
      unlink_session (s);
      session_free (s, true);
    }
  }
}

static struct session *
find_session (const char *device, const char *name)
{
  struct session *s;

  for (s = sessions; s; s = s->next)
    if (strcmp (s->device, device) == 0 && strcmp (s->name, name) == 0)
      return s;
  return NULL;
}

/* Ends with the machine-readable tail of sealed versions (see
 * nbdkit-diskfarm-plugin(1) "EXPORT DESCRIPTIONS"): a client checks
 * with it that another server serves an identical replica.
 */
static char *
describe (const struct session *s)
{
  char *d, hex[2 * DF_HASH_LEN + 1];
  int r;

  if (s->chain)
    r = asprintf (&d, "device %s session %s: vdisk %s version %u, write "
                  "cache %s vdisk=%s version=%u hash=%s", s->device, s->name,
                  s->vdisk, s->version, df_cache_mode_name (s->spec.mode),
                  s->vdisk, s->version, df_hex (s->chain->hash, DF_HASH_LEN,
                                                hex));
  else
    r = asprintf (&d, "device %s session %s: vdisk %s version %u, write "
                  "cache %s", s->device, s->name, s->vdisk, s->version,
                  df_cache_mode_name (s->spec.mode));
  return r == -1 ? NULL : d;
}

struct session *
session_open (const struct df_export_name *en, char **desc)
{
  struct session *s;
  struct df_farm *farm;
  SCOPED_LOCK (&lock);

  s = find_session (en->name, en->session);
  if (s) {
    if (s->refs == 0 && s->cache == NULL && s->private == NULL &&
        s->spec.mode != DF_CACHE_DEVICE && attach_cache (s) == -1)
      return NULL;
    s->refs++;
    *desc = describe (s);
    return s;
  }
  s = calloc (1, sizeof *s);
  if (s == NULL) {
    df_error_errno ("session");
    return NULL;
  }
  strcpy (s->device, en->name);
  strcpy (s->name, en->session);
  farm = farm_acquire ();
  if (farm == NULL || setup_session (s, farm) == -1) {
    if (farm)
      farm_release ();
    session_free (s, false);
    return NULL;
  }
  farm_release ();
  /* Session "0" (no session named: a tool, not a boot) leaves the
   * device's boot sessions alone.
   */
  if (strcmp (s->name, "0") != 0)
    supersede (s->device, s->name);
  s->refs = 1;
  s->next = sessions;
  sessions = s;
  nbdkit_debug ("session %s@%s: version %u, cache %s", s->device, s->name,
                s->version, df_cache_mode_name (s->spec.mode));
  *desc = describe (s);
  return s;
}

/* The last connection went: make the session resumable elsewhere. */
static void
park (struct session *s)
{
  if (s->cache && disk_mode (s->spec.mode)) {
    if (df_cache_spill (s->cache) == -1)
      nbdkit_error ("session %s@%s: %s; keeping it in memory", s->device,
                    s->name, df_error_get ());
    else {
      df_bdev_close (s->cache);
      s->cache = NULL;
    }
  }
  if (s->private) {
    if (df_bdev_flush (s->private) == -1)
      nbdkit_error ("session %s@%s: %s", s->device, s->name, df_error_get ());
    df_bdev_close (s->private);
    s->private = NULL;
  }
}

void
session_close (struct session *s)
{
  SCOPED_LOCK (&lock);

  if (--s->refs > 0)
    return;
  s->idle_since = df_now_mono_ns ();
  if (s->discard) {
    unlink_session (s);
    session_free (s, true);
    return;
  }
  park (s);
}

struct df_bdev *
session_bdev (struct session *s)
{
  if (s->private)
    return s->private;
  if (s->cache)
    return s->cache;
  return s->chain->bdev;
}

bool
session_readonly (struct session *s)
{
  return s->spec.mode == DF_CACHE_DEVICE;
}

void
session_note_error (struct session *s, int err)
{
  SCOPED_LOCK (&lock);

  if (err == ENOSPC && !s->enospc_logged) {
    s->enospc_logged = true;
    nbdkit_error ("device %s session %s: write cache full (limit %" PRIu64
                  " bytes); writes fail with ENOSPC, reads go on", s->device,
                  s->name, s->spec.limit);
  }
}

static void
expire (void)
{
  uint64_t now = df_now_mono_ns ();
  struct session *s = sessions, *next;

  for (; s; s = next) {
    next = s->next;
    if (s->refs == 0 && now - s->idle_since >= (uint64_t) cfg.linger * 1000000000) {
      nbdkit_debug ("session %s@%s expired", s->device, s->name);
      unlink_session (s);
      session_free (s, true);
    }
  }
}

static void *
reaper_main (void *unused)
{
  (void) unused;
  pthread_mutex_lock (&lock);
  while (!stopping) {
    struct timespec ts;
    clock_gettime (CLOCK_REALTIME, &ts);
    ts.tv_sec += 1;
    pthread_cond_timedwait (&stop_cond, &lock, &ts);
    expire ();
  }
  pthread_mutex_unlock (&lock);
  return NULL;
}

int
sessions_start (void)
{
  int err = pthread_create (&reaper, NULL, reaper_main, NULL);

  if (err) {
    nbdkit_error ("cannot start the session reaper: %s", strerror (err));
    return -1;
  }
  reaper_running = true;
  return 0;
}

void
sessions_stop (void)
{
  struct session *s;

  pthread_mutex_lock (&lock);
  stopping = true;
  pthread_cond_broadcast (&stop_cond);
  pthread_mutex_unlock (&lock);
  if (reaper_running)
    pthread_join (reaper, NULL);
  /* Disk caches stay on disk for a restarted or another server. */
  while ((s = sessions) != NULL) {
    sessions = s->next;
    park (s);
    session_free (s, false);
  }
}
