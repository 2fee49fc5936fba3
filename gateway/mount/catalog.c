/* diskfarm-gateway mount — the vDisks of this server's stores.
 *
 * Lookups ask about one vDisk at a time, so the catalog rereads one
 * manifest at a time, and only when its file stamp changed: a stat per
 * lookup, a parse per change.  farm.conf is handled the same way for
 * the list of stores.  Files are read with no lock held; the lock only
 * guards swapping in what was read.
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

/* This server's store directories as of one reading of farm.conf. */
struct stores {
  unsigned refs;                /* under the catalog's lock */
  char **paths;                 /* NULL-terminated */
};

struct cached {
  struct vd_info *info;
  struct cached *next;
};

struct catalog {
  char *farm_dir;
  char *server;                 /* this server's name */
  char *server_opt;             /* --server, or NULL */
  pthread_mutex_t lock;         /* the fields below */
  struct stores *stores;
  struct df_farm_stamp farm_stamp;  /* taken before the stores were read */
  bool farm_bad;                /* the last reread failed (logged once) */
  struct cached *vdisks;
};

static void
stores_put (struct catalog *c, struct stores *s)
{
  bool last;

  if (s == NULL)
    return;
  pthread_mutex_lock (&c->lock);
  last = --s->refs == 0;
  pthread_mutex_unlock (&c->lock);
  if (last) {
    df_strv_free (s->paths);
    free (s);
  }
}

/* Reads farm.conf: this server's name and store paths. */
static struct stores *
stores_read (const char *farm_dir, const char *server_opt, char **server)
{
  struct df_farm *farm = df_farm_open (farm_dir);
  CLEANUP_FREE const char **names = NULL;
  struct stores *s = NULL;
  const char *me;
  size_t i, n = 0;

  if (farm == NULL)
    return NULL;
  me = df_farm_local_server (farm, server_opt);
  names = me ? df_farm_names (farm, DF_KIND_STORE) : NULL;
  if (names == NULL)
    goto out;
  while (names[n])
    n++;
  s = calloc (1, sizeof *s);
  if (s == NULL || (s->paths = calloc (n + 1, sizeof *s->paths)) == NULL ||
      (*server = strdup (me)) == NULL)
    goto nomem;
  for (i = 0; i < n; i++)
    if ((s->paths[i] = df_farm_store_path (farm, names[i], me)) == NULL)
      goto fail;
  s->refs = 1;
  goto out;

 nomem:
  df_error_errno ("%s", farm_dir);
 fail:
  if (s)
    df_strv_free (s->paths);
  free (s);
  s = NULL;
 out:
  df_farm_free (farm);
  return s;
}

/* The current stores (a reference), rereading farm.conf if it changed.
 * A farm.conf that cannot be read keeps the last good one.
 */
static struct stores *
stores_get (struct catalog *c)
{
  struct df_farm_stamp stamp;
  struct stores *s, *old;
  char *server = NULL;

  df_farm_stamp_take (c->farm_dir, &stamp);
  pthread_mutex_lock (&c->lock);
  if (c->stores && !df_farm_stamp_changed (&c->farm_stamp, &stamp)) {
    c->stores->refs++;
    pthread_mutex_unlock (&c->lock);
    return c->stores;
  }
  pthread_mutex_unlock (&c->lock);

  s = stores_read (c->farm_dir, c->server_opt, &server);
  pthread_mutex_lock (&c->lock);
  if (s == NULL) {
    if (!c->farm_bad && c->stores)
      df_log_warning ("%s changed but cannot be used, keeping the last good "
                      "one: %s", c->farm_dir, df_error_get ());
    c->farm_bad = true;
    /* Not again until the file changes. */
    c->farm_stamp = stamp;
    s = c->stores;
    if (s)
      s->refs++;
    pthread_mutex_unlock (&c->lock);
    return s;
  }
  old = c->stores;
  c->stores = s;
  c->farm_stamp = stamp;
  c->farm_bad = false;
  if (strcmp (server, c->server) != 0)
    df_log_warning ("%s: this server is now \"%s\" (was \"%s\")",
                    c->farm_dir, server, c->server);
  free (server);
  s->refs++;
  pthread_mutex_unlock (&c->lock);
  stores_put (c, old);
  return s;
}

struct catalog *
catalog_new (const char *farm_dir, const char *server)
{
  struct catalog *c = calloc (1, sizeof *c);
  struct stores *s;

  if (c == NULL) {
    df_error_errno ("catalog");
    return NULL;
  }
  pthread_mutex_init (&c->lock, NULL);
  c->farm_dir = strdup (farm_dir);
  c->server_opt = server ? strdup (server) : NULL;
  if (c->farm_dir == NULL || (server && c->server_opt == NULL)) {
    df_error_errno ("catalog");
    catalog_free (c);
    return NULL;
  }
  df_farm_stamp_take (farm_dir, &c->farm_stamp);
  s = stores_read (farm_dir, server, &c->server);
  if (s == NULL) {
    catalog_free (c);
    return NULL;
  }
  c->stores = s;
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
  if (c->stores) {
    df_strv_free (c->stores->paths);
    free (c->stores);
  }
  pthread_mutex_destroy (&c->lock);
  free (c->farm_dir);
  free (c->server);
  free (c->server_opt);
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

/* The first store that holds name, and its manifest's stamp. */
static const char *
find_store (struct stores *s, const char *name, struct df_file_stamp *stamp)
{
  size_t i;

  for (i = 0; s->paths[i]; i++) {
    CLEANUP_FREE char *conf = NULL;

    if (asprintf (&conf, "%s/vdisks/%s/vdisk.conf", s->paths[i], name) == -1) {
      df_error_errno ("%s", name);
      return NULL;
    }
    if (df_file_stamp_get (conf, stamp) == 0)
      return s->paths[i];
    if (errno != ENOENT)
      return NULL;
  }
  df_error (ENOENT, "vdisk \"%s\" is not in any store of this server", name);
  return NULL;
}

struct vd_info *
catalog_vdisk (struct catalog *c, const char *name)
{
  struct stores *s;
  struct df_file_stamp stamp;
  struct vd_info *info = NULL;
  const char *store;

  if (!df_name_valid (name)) {
    df_error (ENOENT, "not a vdisk name");
    return NULL;
  }
  s = stores_get (c);
  if (s == NULL)
    return NULL;
  store = find_store (s, name, &stamp);
  if (store == NULL) {
    if (errno == ENOENT)
      cache_set (c, name, NULL);
    goto out;
  }
  info = cache_get (c, store, name, &stamp);
  if (info)
    goto out;
  /* The stamp is taken before reading: a change in between is read
   * again next time, never missed.
   */
  info = calloc (1, sizeof *info);
  if (info == NULL) {
    df_error_errno ("%s", name);
    goto out;
  }
  info->vd = df_vdisk_load (store, name);
  if (info->vd == NULL) {
    free (info);
    info = NULL;
    goto out;
  }
  info->stamp = stamp;
  info->refs = 2;               /* the cache's and the caller's */
  if (cache_set (c, name, info) == -1)
    info->refs = 1;
 out:
  stores_put (c, s);
  return info;
}

static int
cmp_names (const void *a, const void *b)
{
  return strcmp (*(char *const *) a, *(char *const *) b);
}

char **
catalog_names (struct catalog *c)
{
  struct stores *s = stores_get (c);
  char **all = NULL;
  size_t n = 0, i, j, k;

  if (s == NULL)
    return NULL;
  for (i = 0; s->paths[i]; i++) {
    char **names = df_store_vdisks (s->paths[i]);
    char **nv;

    /* A store that cannot be listed (unmounted, gone) lists nothing. */
    for (j = 0; names && names[j]; j++) {
      for (k = 0; k < n && strcmp (all[k], names[j]) != 0; k++)
        ;
      if (k < n)
        continue;
      nv = realloc (all, (n + 2) * sizeof *all);
      if (nv == NULL)
        break;
      all = nv;
      all[n++] = TAKE_PTR (names[j]);
      all[n] = NULL;
    }
    df_strv_free (names);
  }
  stores_put (c, s);
  if (all == NULL)
    all = calloc (1, sizeof *all);
  else
    qsort (all, n, sizeof *all, cmp_names);
  if (all == NULL)
    df_error_errno ("vdisks");
  return all;
}

const struct df_version *
vd_maintenance (const struct df_vdisk *vd)
{
  return df_vdisk_maintenance (vd);
}
