/* diskfarm — device sessions: from DEVICE@SESSION to a vDisk version and
 * a write cache.  Everything here does file I/O and runs with no lock of
 * the set held; a session's fields are written only by the thread that
 * has it OPENING or PARKING.
 */
#include <config.h>

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include "cleanup.h"
#include "error.h"
#include "session/session-int.h"
#include "util.h"

/* The persistent cache: directly in the device's directory, while every
 * session's cache is in its sessions/ subdirectory, so no session name
 * reaches it.
 */
#define PERSISTENT_FILE "persistent.layer"
#define SESSIONS_DIR "sessions"

bool
session_disk_mode (enum df_cache_mode m)
{
  return m == DF_CACHE_DISK || m == DF_CACHE_RAM_DISK ||
    m == DF_CACHE_PERSISTENT;
}

/* The write cache of a device: its own, its collection's, its vDisk's,
 * the farm default, else ram+disk.  A private vDisk has none.
 */
static int
cache_spec (struct df_sessions *set, const struct df_farm *farm,
            const struct df_device *dev, const struct df_vdisk *vd,
            struct df_cache_spec *spec)
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
  if (df_cache_parse (s, spec) == -1) {
    df_error_prefix ("device \"%s\"", dev->name);
    return -1;
  }
  if (vd->access == DF_ACCESS_PRIVATE)
    spec->mode = DF_CACHE_NONE;
  if (spec->limit == 0)
    spec->limit = set->device_limit;
  return 0;
}

/* Removes a cache file nobody holds (no lock on it).  A session being
 * opened would find the file locked by the check and fail: callers make
 * sure no session of its name is opened meanwhile (the name is listed
 * as ending).
 */
static void
remove_unused (struct df_sessions *set, const char *path)
{
  int fd = open (path, O_RDONLY | O_CLOEXEC);

  if (fd == -1)
    return;
  if (flock (fd, LOCK_EX | LOCK_NB) == 0 && unlink (path) == 0)
    session_log (set, DF_LOG_DEBUG, "discarded cache %s", path);
  close (fd);
}

/* Removes the unused SESSION.layer files in dir. */
static void
sweep_dir (struct df_sessions *set, const char *dir, bool top,
           const char *device)
{
  DIR *d = opendir (dir);
  struct dirent *de;

  if (d == NULL)
    return;
  while ((de = readdir (d)) != NULL) {
    size_t n = strlen (de->d_name);
    CLEANUP_FREE char *p = NULL, *name = NULL;

    if (n < 7 || strcmp (de->d_name + n - 6, ".layer") != 0 ||
        (top && strcmp (de->d_name, PERSISTENT_FILE) == 0))
      continue;
    p = df_path_join (dir, de->d_name);
    name = strndup (de->d_name, n - 6);
    if (p == NULL || name == NULL)
      continue;
    /* A name no session can have: nobody opens it meanwhile. */
    if (df_name_valid (name))
      session_discard_file (set, device, name, p);
    else
      remove_unused (set, p);
  }
  closedir (d);
}

void
session_sweep (struct df_sessions *set, const char *dir, const char *device)
{
  CLEANUP_FREE char *sdir = NULL;

  if (dir == NULL)
    return;
  sdir = df_path_join (dir, SESSIONS_DIR);
  if (sdir)
    sweep_dir (set, sdir, false, device);
  /* Session caches of an older layout sat beside the persistent one. */
  sweep_dir (set, dir, true, device);
}

/* CACHEDIR/DEVICE (caller frees). */
static char *
device_dir (struct df_sessions *set, const struct df_vdisk *vd,
            const char *device)
{
  char *d;
  int r;

  if (set->cache_dir)
    r = asprintf (&d, "%s/%s", set->cache_dir, device);
  else
    r = asprintf (&d, "%s/caches/%s", vd->store, device);
  if (r == -1) {
    df_error_errno ("cache directory");
    return NULL;
  }
  return d;
}

/* The version a resumed disk cache was made on, from its header. */
static int
resumed_version (const struct df_vdisk *vd, const char *path, unsigned *num)
{
  struct df_layer *l = df_layer_open (path, false);
  size_t i;

  if (l == NULL) {
    if (errno != ENOENT)
      return -1;
    df_error_clear ();          /* no cache yet: nothing to resume */
    return 0;
  }
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

/* A session cache left where an older layout kept it (beside the
 * persistent cache) moves to its own place, so the session resumes.
 * "persistent" is not moved: in that layout the file of that name was
 * the device's persistent cache, and it stays one.
 */
static int
adopt_old_file (const struct df_session *s)
{
  CLEANUP_FREE char *old = NULL, *sdir = NULL;
  struct stat st;

  if (strcmp (s->name, "persistent") == 0 || stat (s->path, &st) == 0)
    return 0;
  if (asprintf (&old, "%s/%s.layer", s->dir, s->name) == -1) {
    old = NULL;
    return df_error_errno ("cache path");
  }
  sdir = df_path_join (s->dir, SESSIONS_DIR);
  if (sdir == NULL)
    return df_error_errno ("cache path");
  if (rename (old, s->path) == -1)
    return errno == ENOENT ? 0 : df_error_errno ("move %s to %s", old, s->path);
  /* The rename changed both directories: both are made durable. */
  if (df_fsync_dir (sdir) == -1)
    return -1;
  return df_fsync_dir (s->dir);
}

static void
set_device (struct df_session *s, struct df_bdev **slot, struct df_bdev *b)
{
  pthread_mutex_lock (&s->bdev_lock);
  *slot = b;
  pthread_mutex_unlock (&s->bdev_lock);
}

int
session_attach (struct df_session *s)
{
  struct df_sessions *set = s->set;
  struct df_cache_params p = {
    .mode = s->spec.mode, .limit = s->spec.limit, .ram_limit = set->ram_limit,
    .path = s->path, .budget = set->budget,
  };
  struct df_bdev *b;
  struct stat st;

  if (s->spec.mode == DF_CACHE_DEVICE)
    return 0;
  if (s->spec.mode == DF_CACHE_NONE) {
    struct df_vdisk *vd = df_vdisk_load (s->vdisk_store, s->vdisk);
    if (vd == NULL)
      return -1;
    b = df_vdisk_open (vd, s->version, true);
    df_vdisk_free (vd);
    if (b == NULL && errno == EBUSY)
      df_error (EBUSY, "vdisk \"%s\" is private and in use by another device",
                s->vdisk);
    if (b)
      set_device (s, &s->private, b);
    return b ? 0 : -1;
  }
  p.parent_id = s->chain->id;
  p.parent_hash = s->chain->hash;
  if (s->parked && stat (s->path, &st) == -1) {
    if (errno != ENOENT)
      return df_error_errno ("session %s@%s: its cache %s", s->device,
                             s->name, s->path);
    return df_error (ESTALE, "session %s@%s: its cache %s is gone (a newer "
                     "session of the device discarded it?)", s->device,
                     s->name, s->path);
  }
  b = df_cache_open (s->chain->bdev, &p);
  if (b == NULL && errno == EBUSY)
    df_error (EBUSY, "session %s@%s is in use on another server", s->device,
              s->name);
  if (b)
    set_device (s, &s->cache, b);
  return b ? 0 : -1;
}

/* A private vDisk's writable version: the maintenance one, made if
 * there is none.
 */
static int
private_version (struct df_vdisk *vd, unsigned *num)
{
  const struct df_version *v = df_vdisk_maintenance (vd);

  if (v) {
    *num = v->num;
    return 0;
  }
  return df_version_new (vd->store, vd->name, num);
}

/* The cache file of a disk mode session, its directory made. */
static int
cache_path (struct df_session *s)
{
  CLEANUP_FREE char *sdir = NULL;
  int r;

  if (s->spec.mode == DF_CACHE_PERSISTENT) {
    if (df_mkdir_p (s->dir, 0755) == -1)
      return -1;
    r = asprintf (&s->path, "%s/" PERSISTENT_FILE, s->dir);
  }
  else {
    sdir = df_path_join (s->dir, SESSIONS_DIR);
    if (sdir == NULL || df_mkdir_p (sdir, 0755) == -1)
      return sdir ? -1 : df_error_errno ("cache directory");
    r = asprintf (&s->path, "%s/%s.layer", sdir, s->name);
  }
  if (r == -1) {
    s->path = NULL;
    return df_error_errno ("cache path");
  }
  return 0;
}

/* The device's persistent cache was made on a version it no longer
 * boots: keep the file aside rather than lose it (never over an older
 * one kept before), and start a new one.
 */
static int
restart_persistent (struct df_session *s)
{
  CLEANUP_FREE char *old = NULL;
  unsigned n;

  for (n = 0;; n++) {
    free (old);
    if ((n == 0 ? asprintf (&old, "%s.old", s->path)
                : asprintf (&old, "%s.old.%u", s->path, n)) == -1) {
      old = NULL;
      return df_error_errno ("cache path");
    }
    if (renameat2 (AT_FDCWD, s->path, AT_FDCWD, old, RENAME_NOREPLACE) == 0)
      break;
    if (errno != EEXIST || n >= 1000)
      return df_error_errno ("move %s to %s", s->path, old);
  }
  if (df_fsync_dir (s->dir) == -1)
    return -1;
  session_log (s->set, DF_LOG_ERROR, "device %s: persistent cache was made "
               "on another version; kept as %s, starting a new one",
               s->device, old);
  df_error_clear ();            /* the ESTALE is handled */
  return session_attach (s);
}

/* The version and the names of the session, from the device's vDisk. */
static int
choose_version (struct df_session *s, const struct df_device *dev,
                struct df_vdisk *vd)
{
  const struct df_version *v = df_vdisk_pick (vd, dev->type);

  if (v == NULL)
    return df_error (ENOENT, "vdisk \"%s\" has no version a %s device may "
                     "boot", vd->name, df_type_name (dev->type));
  s->version = v->num;
  s->vdisk = strdup (vd->name);
  s->vdisk_store = strdup (vd->store);
  if (s->vdisk == NULL || s->vdisk_store == NULL)
    return df_error_errno ("session");
  /* A maintenance device edits the maintenance version itself. */
  if (v->state == DF_STATE_MAINTENANCE)
    s->spec.mode = DF_CACHE_NONE;
  if (s->spec.mode == DF_CACHE_NONE)
    return private_version (vd, &s->version);
  return 0;
}

/* Device, vDisk, version and cache mode from the farm as of now. */
static struct df_vdisk *
resolve (struct df_session *s)
{
  struct df_farm_ref *ref = df_farmstate_get (s->set->farm);
  struct df_device dev;
  struct df_vdisk *vd = NULL;

  if (ref == NULL)
    return NULL;
  if (df_farm_device (ref->farm, s->device, &dev) == -1 ||
      (vd = df_farm_load_vdisk (ref->farm, ref->server, dev.vdisk, NULL,
                                NULL)) == NULL ||
      cache_spec (s->set, ref->farm, &dev, vd, &s->spec) == -1 ||
      choose_version (s, &dev, vd) == -1 ||
      (s->dir = device_dir (s->set, vd, s->device)) == NULL) {
    df_vdisk_free (vd);
    vd = NULL;
  }
  df_farm_ref_put (ref);
  return vd;
}

int
session_setup (struct df_session *s)
{
  struct df_sessions *set = s->set;
  struct df_vdisk *vd;
  int r = -1;

  s->since_ns = df_now_real_ns ();
  s->counters = set->counters_alloc (set->counters_opaque, s->device,
                                     s->name);
  if (s->counters == NULL)
    return df_error (ENOMEM, "session %s@%s: no counters", s->device, s->name);
  vd = resolve (s);
  if (vd == NULL)
    return -1;
  /* A device's sessions share these: the one before may still be
   * letting go of it (a reboot, a reconnecting tool).
   */
  if (s->spec.mode == DF_CACHE_PERSISTENT || s->spec.mode == DF_CACHE_NONE)
    session_wait_device (s);
  if (s->spec.mode == DF_CACHE_NONE) {
    r = session_attach (s);
    goto out;
  }
  if (session_disk_mode (s->spec.mode)) {
    if (cache_path (s) == -1)
      goto out;
    if (s->spec.mode != DF_CACHE_PERSISTENT &&
        (adopt_old_file (s) == -1 ||
         resumed_version (vd, s->path, &s->version) == -1))
      goto out;
  }
  s->chain = df_farmstate_chain (set->farm, vd, s->version);
  if (s->chain == NULL)
    goto out;
  s->sealed = s->chain->sealed;
  memcpy (s->hash, s->chain->hash, DF_HASH_LEN);
  r = session_attach (s);
  if (r == -1 && errno == ESTALE && s->spec.mode == DF_CACHE_PERSISTENT)
    r = restart_persistent (s);
 out:
  df_vdisk_free (vd);
  if (r == 0)
    session_counting_init (s);
  return r;
}

/* A closed session, or every session at a server's stop.  Its disk
 * cache goes to its file without waiting for the disk (df_cache_save):
 * the client's FLUSH is what makes its writes durable, and a stop must
 * not wait for the writeback of all that the sessions wrote since (at
 * random places: minutes on a slow disk, while systemd waits to kill).
 * The map of the unflushed part is kept apart, trusted only in this
 * boot, so a crash of the host still finds each block of the cache as
 * of its last flush or newer (common/layer/layer-park.c).
 */
void
session_park (struct df_session *s)
{
  struct df_bdev *b;

  if (s->cache && session_disk_mode (s->spec.mode)) {
    if (df_cache_save (s->cache) == -1)
      session_log (s->set, DF_LOG_ERROR, "session %s@%s: %s; keeping it in "
                   "memory", s->device, s->name, df_error_get ());
    else {
      b = s->cache;
      set_device (s, &s->cache, NULL);
      df_bdev_close (b);
      s->parked = true;
    }
  }
  if (s->private) {
    if (df_bdev_flush (s->private) == -1)
      session_log (s->set, DF_LOG_ERROR, "session %s@%s: %s", s->device,
                   s->name, df_error_get ());
    b = s->private;
    set_device (s, &s->private, NULL);
    df_bdev_close (b);
  }
}

void
session_release (struct df_session *s, bool remove)
{
  struct df_bdev *cache = s->cache, *private = s->private;

  set_device (s, &s->cache, NULL);
  set_device (s, &s->private, NULL);
  df_bdev_close (cache);
  df_bdev_close (private);
  df_farmstate_chain_put (s->set->farm, s->chain);
  s->chain = NULL;
  if (remove && s->path && s->spec.mode != DF_CACHE_PERSISTENT)
    remove_unused (s->set, s->path);
}
