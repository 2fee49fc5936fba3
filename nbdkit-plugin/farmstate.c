/* nbdkit-diskfarm-plugin — the farm as of its last change, and shared
 * read-only chains.
 */
#include <config.h>

#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include <nbdkit-plugin.h>

#include "cleanup.h"
#include "error.h"
#include "plugin.h"
#include "util.h"

static pthread_mutex_t farm_lock = PTHREAD_MUTEX_INITIALIZER;
static struct df_farm *farm;
static struct timespec conf_mtime, devices_mtime;

static pthread_mutex_t chains_lock = PTHREAD_MUTEX_INITIALIZER;
static struct chain_ref *chains;

static struct timespec
mtime_of (const char *dir, const char *name)
{
  CLEANUP_FREE char *p = df_path_join (dir, name);
  struct stat st;
  struct timespec zero = { 0, 0 };

  if (p == NULL || stat (p, &st) == -1)
    return zero;
  return st.st_mtim;
}

static bool
same_time (struct timespec a, struct timespec b)
{
  return a.tv_sec == b.tv_sec && a.tv_nsec == b.tv_nsec;
}

struct df_farm *
farm_acquire (void)
{
  struct timespec c, d;

  pthread_mutex_lock (&farm_lock);
  c = mtime_of (cfg.farm_dir, "farm.conf");
  d = mtime_of (cfg.farm_dir, "devices.d");
  if (farm == NULL || !same_time (c, conf_mtime) || !same_time (d, devices_mtime)) {
    /* Edits are atomic renames, so a changed directory or file mtime
     * means something new to read.
     */
    struct df_farm *f = df_farm_open (cfg.farm_dir);
    if (f == NULL) {
      if (farm == NULL) {
        pthread_mutex_unlock (&farm_lock);
        return NULL;
      }
      nbdkit_error ("farm changed but cannot be read, keeping the last good "
                    "one: %s", df_error_get ());
    }
    else {
      df_farm_free (farm);
      farm = f;
      conf_mtime = c;
      devices_mtime = d;
      nbdkit_debug ("farm %s loaded", cfg.farm_dir);
    }
  }
  return farm;
}

void
farm_release (void)
{
  pthread_mutex_unlock (&farm_lock);
}

void
farm_free_all (void)
{
  pthread_mutex_lock (&farm_lock);
  df_farm_free (farm);
  farm = NULL;
  pthread_mutex_unlock (&farm_lock);
}

const char *
farm_server (struct df_farm *f)
{
  return df_farm_local_server (f, cfg.server);
}

struct df_vdisk *
farm_load_vdisk (struct df_farm *f, const char *name)
{
  const char *server = farm_server (f);
  CLEANUP_FREE char *store = NULL;

  if (server == NULL)
    return NULL;
  store = df_farm_find_vdisk (f, server, name, NULL);
  if (store == NULL)
    return NULL;
  return df_vdisk_load (store, name);
}

struct chain_ref *
chain_get (const struct df_vdisk *vd, unsigned version)
{
  const struct df_version *v = df_vdisk_version (vd, version);
  CLEANUP_FREE char *key = NULL;
  struct chain_ref *c;
  SCOPED_LOCK (&chains_lock);

  if (v == NULL) {
    df_error (ENOENT, "vdisk \"%s\" has no version %u", vd->name, version);
    return NULL;
  }
  if (asprintf (&key, "%s@%u", vd->dir, version) == -1) {
    key = NULL;
    df_error_errno ("chain");
    return NULL;
  }
  for (c = chains; c; c = c->next)
    if (strcmp (c->key, key) == 0 &&
        memcmp (c->id, v->id, DF_LAYER_ID_LEN) == 0) {
      c->refs++;
      return c;
    }
  c = calloc (1, sizeof *c);
  if (c == NULL) {
    df_error_errno ("chain");
    return NULL;
  }
  c->bdev = df_vdisk_open (vd, version, false);
  if (c->bdev == NULL) {
    free (c);
    return NULL;
  }
  c->key = TAKE_PTR (key);
  c->version = version;
  memcpy (c->id, v->id, DF_LAYER_ID_LEN);
  memcpy (c->hash, v->hash, DF_HASH_LEN);
  c->refs = 1;
  c->next = chains;
  chains = c;
  nbdkit_debug ("opened %s", c->key);
  return c;
}

void
chain_put (struct chain_ref *c)
{
  struct chain_ref **p;
  SCOPED_LOCK (&chains_lock);

  if (c == NULL || --c->refs > 0)
    return;
  for (p = &chains; *p; p = &(*p)->next)
    if (*p == c) {
      *p = c->next;
      break;
    }
  nbdkit_debug ("closed %s", c->key);
  df_bdev_close (c->bdev);
  free (c->key);
  free (c);
}
