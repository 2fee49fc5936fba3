/* nbdkit-diskfarm-plugin — img/ and edit/ exports, and the export list.
 * No nbdkit calls here (test-exports.c drives it directly).
 *
 * Descriptions end with a machine-readable tail (nbdkit-diskfarm-
 * plugin(1)): "vdisk=NAME version=N hash=HEX", hash only for a sealed
 * version.
 */
#include <config.h>

#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cleanup.h"
#include "error.h"
#include "plugin.h"
#include "util.h"

struct editor {
  char vdisk[DF_NAME_MAX + 1];
  struct df_bdev *bdev;         /* the writable maintenance version */
  struct editor *next;
};

/* Covers the list only: an editor is listed (claiming its vDisk) before
 * its version is opened, and delisted after it is closed.
 */
static pthread_mutex_t editors_lock = PTHREAD_MUTEX_INITIALIZER;
static struct editor *editors;

/* " vdisk=NAME version=N[ hash=HEX]" into buf. */
static const char *
tail (const char *vdisk, const struct df_version *v, char *buf, size_t len)
{
  char hex[2 * DF_HASH_LEN + 1];

  if (v->sealed)
    snprintf (buf, len, " vdisk=%s version=%u hash=%s", vdisk, v->num,
              df_hex (v->hash, DF_HASH_LEN, hex));
  else
    snprintf (buf, len, " vdisk=%s version=%u", vdisk, v->num);
  return buf;
}

static struct df_vdisk *
load_vdisk (const char *name)
{
  struct df_farm_ref *ref = df_farmstate_get (farmstate);
  struct df_vdisk *vd;

  if (ref == NULL)
    return NULL;
  vd = df_farm_load_vdisk (ref->farm, ref->server, name, NULL, NULL);
  df_farm_ref_put (ref);
  return vd;
}

static void
delist (struct editor *e)
{
  struct editor **p;
  SCOPED_LOCK (&editors_lock);

  for (p = &editors; *p; p = &(*p)->next)
    if (*p == e) {
      *p = e->next;
      break;
    }
}

/* Opens the maintenance version of the claimed vDisk (file I/O). */
static int
open_maintenance (struct editor *e, char **desc)
{
  struct df_vdisk *vd = load_vdisk (e->vdisk);
  const struct df_version *v;
  char t[160];

  if (vd == NULL)
    return -1;
  v = df_vdisk_maintenance (vd);
  if (v == NULL) {
    df_error (ENOENT, "vdisk \"%s\" has no maintenance version (make one "
              "with \"diskfarm version new %s\")", e->vdisk, e->vdisk);
    df_vdisk_free (vd);
    return -1;
  }
  /* The layer's writer lock also keeps out other servers and promote. */
  e->bdev = df_vdisk_open (vd, v->num, true);
  if (e->bdev == NULL) {
    if (errno == EBUSY)
      df_error (EBUSY, "vdisk \"%s\" version %u is being edited elsewhere",
                e->vdisk, v->num);
    df_vdisk_free (vd);
    return -1;
  }
  if (asprintf (desc, "vdisk %s version %u (maintenance), writable%s",
                e->vdisk, v->num, tail (vd->name, v, t, sizeof t)) == -1)
    *desc = NULL;
  df_vdisk_free (vd);
  return 0;
}

struct editor *
editor_open (const char *vdisk, char **desc)
{
  struct editor *e = calloc (1, sizeof *e), *o;

  if (e == NULL) {
    df_error_errno ("editor");
    return NULL;
  }
  snprintf (e->vdisk, sizeof e->vdisk, "%s", vdisk);
  {
    SCOPED_LOCK (&editors_lock);
    for (o = editors; o; o = o->next)
      if (strcmp (o->vdisk, vdisk) == 0) {
        free (e);
        df_error (EBUSY, "vdisk \"%s\" is already being edited (one editor "
                  "at a time)", vdisk);
        return NULL;
      }
    e->next = editors;
    editors = e;
  }
  if (open_maintenance (e, desc) == -1) {
    int err = errno;
    delist (e);
    free (e);
    errno = err;
    return NULL;
  }
  return e;
}

int
editor_close (struct editor *e)
{
  int r = df_bdev_flush (e->bdev);

  if (r == -1)
    df_error_prefix ("edit/%s", e->vdisk);
  df_bdev_close (e->bdev);
  delist (e);
  free (e);
  return r;
}

struct df_bdev *
editor_bdev (struct editor *e)
{
  return e->bdev;
}

struct df_chain_ref *
image_open (const struct df_export_name *en, char **desc)
{
  struct df_vdisk *vd = load_vdisk (en->name);
  const struct df_version *v;
  struct df_chain_ref *c = NULL;
  char t[160];

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
  else if ((c = df_farmstate_chain (farmstate, vd, v->num)) != NULL &&
           asprintf (desc, "vdisk %s version %u (%s), read-only%s", en->name,
                     v->num, df_state_name (v->state),
                     tail (vd->name, v, t, sizeof t)) == -1)
    *desc = NULL;
  df_vdisk_free (vd);
  return c;
}

/* img/NAME and edit/NAME of one vDisk. */
static int
list_vdisk (const struct df_vdisk *vd,
            int (*add) (void *, const char *, const char *), void *opaque)
{
  const struct df_version *prod = df_vdisk_pick (vd, DF_TYPE_PRODUCTION);
  const struct df_version *maint = df_vdisk_maintenance (vd);
  char name[80], desc[320], t[160];

  if (prod) {
    snprintf (name, sizeof name, "img/%s", vd->name);
    snprintf (desc, sizeof desc, "vdisk %s, production version %u%s",
              vd->name, prod->num, tail (vd->name, prod, t, sizeof t));
    if (add (opaque, name, desc) == -1)
      return -1;
  }
  if (maint) {
    snprintf (name, sizeof name, "edit/%s", vd->name);
    snprintf (desc, sizeof desc, "vdisk %s, maintenance version %u%s",
              vd->name, maint->num, tail (vd->name, maint, t, sizeof t));
    if (add (opaque, name, desc) == -1)
      return -1;
  }
  return 0;
}

/* Each vDisk once, as an open of its name finds it (the first store
 * that holds it).
 */
static int
list_vdisks (const struct df_farm *farm, const char *server,
             int (*add) (void *, const char *, const char *), void *opaque)
{
  char **names = df_farm_vdisk_names (farm, server);
  size_t i;
  int r = 0;

  if (names == NULL)
    return -1;
  for (i = 0; r == 0 && names[i]; i++) {
    struct df_vdisk *vd = df_farm_load_vdisk (farm, server, names[i], NULL,
                                              NULL);
    if (vd)
      r = list_vdisk (vd, add, opaque);
    df_vdisk_free (vd);
  }
  df_strv_free (names);
  if (r == 0)
    df_error_clear ();          /* a vDisk that does not load is not listed */
  return r;
}

int
exports_list (int (*add) (void *, const char *, const char *), void *opaque)
{
  struct df_farm_ref *ref = df_farmstate_get (farmstate);
  CLEANUP_FREE const char **devs = NULL;
  size_t i;
  int r = -1;

  if (ref == NULL)
    return -1;
  if (list_vdisks (ref->farm, ref->server, add, opaque) == -1)
    goto out;
  devs = df_farm_names (ref->farm, DF_KIND_DEVICE);
  for (i = 0; devs && devs[i]; i++) {
    struct df_device dev;
    char name[80], desc[200];

    if (df_farm_device (ref->farm, devs[i], &dev) == -1)
      continue;
    snprintf (name, sizeof name, "dev/%s", dev.name);
    snprintf (desc, sizeof desc, "device %s (%s): vdisk %s", dev.name,
              df_type_name (dev.type), dev.vdisk);
    if (add (opaque, name, desc) == -1)
      goto out;
  }
  r = 0;
 out:
  df_farm_ref_put (ref);
  return r;
}
