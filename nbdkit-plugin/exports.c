/* nbdkit-diskfarm-plugin — img/ and edit/ exports, and the export list. */
#include <config.h>

#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <nbdkit-plugin.h>

#include "cleanup.h"
#include "error.h"
#include "plugin.h"
#include "util.h"

struct editor {
  char vdisk[DF_NAME_MAX + 1];
  struct df_bdev *bdev;         /* the writable maintenance version */
  struct editor *next;
};

static pthread_mutex_t editors_lock = PTHREAD_MUTEX_INITIALIZER;
static struct editor *editors;

static const struct df_version *
maintenance_version (const struct df_vdisk *vd)
{
  size_t i;

  for (i = vd->nversions; i > 0; i--)
    if (vd->versions[i - 1].state == DF_STATE_MAINTENANCE)
      return &vd->versions[i - 1];
  return NULL;
}

struct editor *
editor_open (const char *vdisk, char **desc)
{
  struct editor *e;
  struct df_farm *farm;
  struct df_vdisk *vd;
  const struct df_version *v;
  SCOPED_LOCK (&editors_lock);

  for (e = editors; e; e = e->next)
    if (strcmp (e->vdisk, vdisk) == 0) {
      df_error (EBUSY, "vdisk \"%s\" is already being edited (one editor at "
                "a time)", vdisk);
      return NULL;
    }
  farm = farm_acquire ();
  if (farm == NULL)
    return NULL;
  vd = farm_load_vdisk (farm, vdisk);
  farm_release ();
  if (vd == NULL)
    return NULL;
  v = maintenance_version (vd);
  if (v == NULL) {
    df_error (ENOENT, "vdisk \"%s\" has no maintenance version (make one "
              "with \"diskfarm version new %s\")", vdisk, vdisk);
    df_vdisk_free (vd);
    return NULL;
  }
  e = calloc (1, sizeof *e);
  if (e == NULL) {
    df_error_errno ("editor");
    df_vdisk_free (vd);
    return NULL;
  }
  strcpy (e->vdisk, vdisk);
  /* The layer's writer lock also keeps out other servers and promote. */
  e->bdev = df_vdisk_open (vd, v->num, true);
  if (e->bdev == NULL) {
    if (errno == EBUSY)
      df_error (EBUSY, "vdisk \"%s\" version %u is being edited elsewhere",
                vdisk, v->num);
    free (e);
    df_vdisk_free (vd);
    return NULL;
  }
  if (asprintf (desc, "vdisk %s version %u (maintenance), writable", vdisk,
                v->num) == -1)
    *desc = NULL;
  df_vdisk_free (vd);
  e->next = editors;
  editors = e;
  return e;
}

void
editor_close (struct editor *e)
{
  struct editor **p;
  SCOPED_LOCK (&editors_lock);

  for (p = &editors; *p; p = &(*p)->next)
    if (*p == e) {
      *p = e->next;
      break;
    }
  if (df_bdev_flush (e->bdev) == -1)
    nbdkit_error ("edit/%s: %s", e->vdisk, df_error_get ());
  df_bdev_close (e->bdev);
  free (e);
}

struct df_bdev *
editor_bdev (struct editor *e)
{
  return e->bdev;
}

struct chain_ref *
image_open (const struct df_export_name *en, char **desc)
{
  struct df_farm *farm = farm_acquire ();
  struct df_vdisk *vd;
  const struct df_version *v;
  struct chain_ref *c = NULL;
  char hex[2 * DF_HASH_LEN + 1];

  if (farm == NULL)
    return NULL;
  vd = farm_load_vdisk (farm, en->name);
  farm_release ();
  if (vd == NULL)
    return NULL;
  v = en->version ? df_vdisk_version (vd, en->version)
                  : df_vdisk_pick (vd, DF_TYPE_PRODUCTION);
  if (v == NULL)
    df_error (ENOENT, en->version ? "vdisk \"%s\" has no version %u"
              : "vdisk \"%s\" has no production version", en->name,
              en->version);
  else if (v->state == DF_STATE_MAINTENANCE)
    df_error (EACCES, "vdisk \"%s\" version %u is in maintenance: only its "
              "editor sees it (edit/%s)", en->name, v->num, en->name);
  else if ((c = chain_get (vd, v->num)) != NULL &&
           asprintf (desc, "vdisk %s version %u (%s), read-only vdisk=%s "
                     "version=%u hash=%s", en->name, v->num,
                     df_state_name (v->state), en->name, v->num,
                     df_hex (c->hash, DF_HASH_LEN, hex)) == -1)
    *desc = NULL;
  df_vdisk_free (vd);
  return c;
}

static int
list_vdisks (struct df_farm *farm, const char *server,
             int (*add) (void *, const char *, const char *), void *opaque)
{
  CLEANUP_FREE const char **stores = df_farm_names (farm, DF_KIND_STORE);
  size_t i, j;

  for (i = 0; stores && stores[i]; i++) {
    CLEANUP_FREE char *path = df_farm_store_path (farm, stores[i], server);
    char **names = path ? df_store_vdisks (path) : NULL;

    for (j = 0; names && names[j]; j++) {
      struct df_vdisk *vd = df_vdisk_load (path, names[j]);
      const struct df_version *prod, *maint;
      char name[80], desc[200];

      if (vd == NULL)
        continue;
      prod = df_vdisk_pick (vd, DF_TYPE_PRODUCTION);
      maint = maintenance_version (vd);
      snprintf (name, sizeof name, "img/%s", vd->name);
      snprintf (desc, sizeof desc, "vdisk %s, production version %u", vd->name,
                prod ? prod->num : 0);
      if (prod && add (opaque, name, desc) == -1)
        goto fail;
      snprintf (name, sizeof name, "edit/%s", vd->name);
      snprintf (desc, sizeof desc, "vdisk %s, maintenance version %u",
                vd->name, maint ? maint->num : 0);
      if (maint && add (opaque, name, desc) == -1)
        goto fail;
      df_vdisk_free (vd);
      continue;
    fail:
      df_vdisk_free (vd);
      df_strv_free (names);
      return -1;
    }
    df_strv_free (names);
  }
  return 0;
}

int
exports_list (int (*add) (void *, const char *, const char *), void *opaque)
{
  struct df_farm *farm = farm_acquire ();
  CLEANUP_FREE const char **devs = NULL;
  const char *server;
  size_t i;
  int r = -1;

  if (farm == NULL)
    return -1;
  server = farm_server (farm);
  if (server == NULL || list_vdisks (farm, server, add, opaque) == -1)
    goto out;
  devs = df_farm_names (farm, DF_KIND_DEVICE);
  for (i = 0; devs && devs[i]; i++) {
    struct df_device dev;
    char name[80], desc[200];

    if (df_farm_device (farm, devs[i], &dev) == -1)
      continue;
    snprintf (name, sizeof name, "dev/%s", dev.name);
    snprintf (desc, sizeof desc, "device %s (%s): vdisk %s", dev.name,
              df_type_name (dev.type), dev.vdisk);
    if (add (opaque, name, desc) == -1)
      goto out;
  }
  r = 0;
 out:
  farm_release ();
  return r;
}
