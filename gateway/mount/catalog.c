/* diskfarm-gateway mount — the vDisks of this server's stores.
 *
 * The farm is followed by the shared farm state (common/session/
 * farmstate.c): the same snapshots, change detection and "keep the last
 * good farm" rule as the plugin, and the same lookup of the store that
 * holds a vDisk (df_farm_find_vdisk).  What is the mount's own is the
 * cache of manifests: lookups ask about one vDisk at a time, so a
 * manifest is parsed again only when its file stamp changed, a stat per
 * lookup and a parse per change.  Files are read with no lock held; the
 * lock only guards swapping in what was read.
 */
#include <config.h>

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cleanup.h"
#include "error.h"
#include "farm/farm.h"
#include "log.h"
#include "mount.h"
#include "session/farmstate.h"

struct cached {
  struct vd_info *info;
  struct cached *next;
};

struct catalog {
  struct df_farmstate *farm;
  char *server;                 /* this server's name at the start */
  pthread_mutex_t lock;         /* vdisks */
  struct cached *vdisks;
};

/* The farm state's events, in the gateway's log. */
static void
farm_log (void *opaque, enum df_log_level level, const char *msg)
{
  (void) opaque;
  if (level == DF_LOG_DEBUG)
    df_debug ("mount", "%s", msg);
  else
    df_log (level, "%s", msg);
}

struct catalog *
catalog_new (const char *farm_dir, const char *server)
{
  struct df_farmstate_params p = {
    .dir = farm_dir, .server = server, .log = farm_log,
  };
  struct catalog *c = calloc (1, sizeof *c);
  struct df_farm_ref *ref;

  if (c == NULL) {
    df_error_errno ("catalog");
    return NULL;
  }
  pthread_mutex_init (&c->lock, NULL);
  c->farm = df_farmstate_new (&p);
  ref = c->farm ? df_farmstate_get (c->farm) : NULL;
  if (ref == NULL || (c->server = strdup (ref->server)) == NULL) {
    if (ref)
      df_error_errno ("catalog");
    df_farm_ref_put (ref);
    catalog_free (c);
    return NULL;
  }
  df_farm_ref_put (ref);
  return c;
}

void
vd_info_put (struct vd_info *i)
{
  if (i && __atomic_sub_fetch (&i->refs, 1, __ATOMIC_ACQ_REL) == 0) {
    df_vdisk_free (i->vd);
    free (i);
  }
}

void
catalog_free (struct catalog *c)
{
  struct cached *v, *next;

  if (c == NULL)
    return;
  for (v = c->vdisks; v; v = next) {
    next = v->next;
    vd_info_put (v->info);
    free (v);
  }
  df_farmstate_free (c->farm);
  pthread_mutex_destroy (&c->lock);
  free (c->server);
  free (c);
}

const char *
catalog_server (const struct catalog *c)
{
  return c->server;
}

/* Replaces (info) or drops (NULL) the cached entry for name. */
static int
cache_set (struct catalog *c, const char *name, struct vd_info *info)
{
  struct cached **p, *v;
  struct vd_info *old = NULL;

  pthread_mutex_lock (&c->lock);
  for (p = &c->vdisks; *p; p = &(*p)->next)
    if (strcmp ((*p)->info->vd->name, name) == 0)
      break;
  if (*p && info) {
    old = (*p)->info;
    (*p)->info = info;
  }
  else if (*p) {
    v = *p;
    *p = v->next;
    old = v->info;
    free (v);
  }
  else if (info) {
    v = malloc (sizeof *v);
    if (v == NULL) {
      pthread_mutex_unlock (&c->lock);
      return -1;
    }
    v->info = info;
    v->next = c->vdisks;
    c->vdisks = v;
  }
  pthread_mutex_unlock (&c->lock);
  vd_info_put (old);
  return 0;
}

/* The cached entry if it is still what store/vdisks/name/vdisk.conf
 * holds (a reference), else NULL.
 */
static struct vd_info *
cache_get (struct catalog *c, const char *store, const char *name,
           const struct df_file_stamp *stamp)
{
  struct vd_info *info = NULL;
  struct cached *v;
  SCOPED_LOCK (&c->lock);

  for (v = c->vdisks; v; v = v->next)
    if (strcmp (v->info->vd->name, name) == 0) {
      if (strcmp (v->info->vd->store, store) == 0 &&
          df_file_stamp_equal (&v->info->stamp, stamp)) {
        info = v->info;
        __atomic_add_fetch (&info->refs, 1, __ATOMIC_RELAXED);
      }
      break;
    }
  return info;
}

/* The store that holds name on this server as the farm is now, and its
 * manifest's stamp; caller frees.  NULL with ENOENT if no store holds
 * it, or another errno (a store that cannot be looked in).
 */
static char *
find_store (struct catalog *c, const char *name, struct df_file_stamp *stamp)
{
  struct df_farm_ref *ref = df_farmstate_get (c->farm);
  CLEANUP_FREE char *conf = NULL;
  char *store;

  if (ref == NULL)
    return NULL;
  store = df_farm_find_vdisk (ref->farm, ref->server, name, NULL);
  df_farm_ref_put (ref);
  if (store == NULL)
    return NULL;
  if (asprintf (&conf, "%s/vdisks/%s/vdisk.conf", store, name) == -1) {
    conf = NULL;
    df_error_errno ("%s", name);
  }
  /* Gone since it was found: ENOENT, as if it had not been. */
  else if (df_file_stamp_get (conf, stamp) == 0)
    return store;
  free (store);
  return NULL;
}

struct vd_info *
catalog_vdisk (struct catalog *c, const char *name)
{
  struct df_file_stamp stamp;
  struct vd_info *info;
  CLEANUP_FREE char *store = NULL;

  if (!df_name_valid (name)) {
    df_error (ENOENT, "not a vdisk name");
    return NULL;
  }
  store = find_store (c, name, &stamp);
  if (store == NULL) {
    if (errno == ENOENT)
      cache_set (c, name, NULL);
    return NULL;
  }
  info = cache_get (c, store, name, &stamp);
  if (info)
    return info;
  /* The stamp is taken before reading: a change in between is read
   * again next time, never missed.
   */
  info = calloc (1, sizeof *info);
  if (info == NULL) {
    df_error_errno ("%s", name);
    return NULL;
  }
  info->vd = df_vdisk_load (store, name);
  if (info->vd == NULL) {
    free (info);
    return NULL;
  }
  info->stamp = stamp;
  info->refs = 2;               /* the cache's and the caller's */
  if (cache_set (c, name, info) == -1)
    info->refs = 1;
  return info;
}

char **
catalog_names (struct catalog *c)
{
  struct df_farm_ref *ref = df_farmstate_get (c->farm);
  char **names;

  if (ref == NULL)
    return NULL;
  names = df_farm_vdisk_names (ref->farm, ref->server);
  df_farm_ref_put (ref);
  return names;
}
