/* diskfarm — opening versions, and the version life cycle (see vdisk.h). */
#include <config.h>

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "chain/chain.h"
#include "cleanup.h"
#include "error.h"
#include "util.h"
#include "vdisk/vdisk.h"

static uint64_t
stat_mtime_ns (const struct stat *st)
{
  return (uint64_t) st->st_mtim.tv_sec * 1000000000 + st->st_mtim.tv_nsec;
}

/* Checks a layer against its manifest entry and its parent's. */
static int
check_layer (const struct df_vdisk *vd, const struct df_version *v,
             struct df_layer *l)
{
  const struct df_layer_info *li = df_layer_info (l);
  const struct df_version *p = v->parent ? df_vdisk_version (vd, v->parent) : NULL;
  const char *path = df_layer_path (l);
  char a[65], b[65];

  if (memcmp (li->id, v->id, DF_LAYER_ID_LEN) != 0)
    return df_error (EINVAL, "%s: layer id %s is not the id %s in the manifest",
                     path, df_hex (li->id, DF_LAYER_ID_LEN, a),
                     df_hex (v->id, DF_LAYER_ID_LEN, b));
  if (li->size != vd->size || li->block_size != vd->block_size)
    return df_error (EINVAL, "%s: size %" PRIu64 "/block size %" PRIu32
                     " differ from the manifest's %" PRIu64 "/%" PRIu32,
                     path, li->size, li->block_size, vd->size, vd->block_size);
  if (p == NULL && !df_is_zero (li->parent_id, DF_LAYER_ID_LEN))
    return df_error (EINVAL, "%s: layer has a parent but version %u is a base",
                     path, v->num);
  if (p && memcmp (li->parent_id, p->id, DF_LAYER_ID_LEN) != 0)
    return df_error (EINVAL, "%s: parent id does not match version %u",
                     path, p->num);
  if (p && memcmp (li->parent_hash, p->hash, DF_HASH_LEN) != 0)
    return df_error (EINVAL, "%s: bound to parent content %s, but version %u "
                     "has %s", path, df_hex (li->parent_hash, 8, a), p->num,
                     df_hex (p->hash, 8, b));
  if (v->sealed != li->sealed)
    return df_error (EINVAL, "%s: layer is %s but the manifest says %s", path,
                     li->sealed ? "sealed" : "not sealed",
                     v->sealed ? "sealed" : "not sealed");
  return 0;
}

/* Size and mtime of a sealed layer must be what sealing recorded. */
static int
check_sealed_stat (const struct df_version *v, const char *path)
{
  struct stat st;

  if (stat (path, &st) == -1)
    return df_error_errno ("%s", path);
  if ((uint64_t) st.st_size != v->size)
    return df_error (EINVAL, "%s: size %jd is not the sealed size %" PRIu64,
                     path, (intmax_t) st.st_size, v->size);
  if (stat_mtime_ns (&st) != v->mtime_ns)
    return df_error (EINVAL, "%s: modified after sealing (mtime %" PRIu64
                     " ns, sealed at %" PRIu64 " ns)", path,
                     stat_mtime_ns (&st), v->mtime_ns);
  return 0;
}

struct df_bdev *
df_vdisk_open (const struct df_vdisk *vd, unsigned num, bool writable)
{
  struct df_layer *layers[DF_CHAIN_MAX];
  const struct df_version *chain[DF_CHAIN_MAX];
  const struct df_version *v = df_vdisk_version (vd, num);
  size_t n = 0, i;

  if (v == NULL) {
    df_error (ENOENT, "vdisk \"%s\" has no version %u", vd->name, num);
    return NULL;
  }
  if (writable && v->state != DF_STATE_MAINTENANCE) {
    df_error (EROFS, "vdisk \"%s\" version %u is %s; only a maintenance "
              "version can be written", vd->name, num, df_state_name (v->state));
    return NULL;
  }
  for (; v; v = v->parent ? df_vdisk_version (vd, v->parent) : NULL) {
    if (n == DF_CHAIN_MAX) {
      df_error (EINVAL, "vdisk \"%s\" version %u: chain longer than %d "
                "(merge it)", vd->name, num, DF_CHAIN_MAX);
      return NULL;
    }
    chain[n++] = v;
  }
  /* chain[] runs top to base; layers[] base to top. */
  for (i = 0; i < n; i++) {
    const struct df_version *cv = chain[n - 1 - i];
    CLEANUP_FREE char *path = df_vdisk_layer_path (vd, cv);
    bool w = writable && i == n - 1;

    layers[i] = NULL;
    if (path == NULL ||
        (cv->sealed && check_sealed_stat (cv, path) == -1) ||
        (layers[i] = df_layer_open (path, w)) == NULL ||
        check_layer (vd, cv, layers[i]) == -1) {
      if (layers[i])
        i++;
      while (i > 0)
        df_layer_close (layers[--i]);
      return NULL;
    }
  }
  return df_chain_open (layers, n);
}

/* Loads the manifest under the vDisk's lock; *fd receives the lock. */
static struct df_vdisk *
load_locked (const char *store, const char *name, int *fd)
{
  struct df_vdisk *vd;

  *fd = df_vdisk_lock (store, name);
  if (*fd == -1)
    return NULL;
  vd = df_vdisk_load (store, name);
  if (vd == NULL) {
    close (*fd);
    *fd = -1;
  }
  return vd;
}

static struct df_version *
add_version (struct df_vdisk *vd)
{
  struct df_version *nv, *v;
  unsigned num = vd->nversions ? vd->versions[vd->nversions - 1].num + 1 : 1;

  if (num > DF_VERSION_MAX) {
    df_error (ENOSPC, "vdisk \"%s\" has used all version numbers up to %d",
              vd->name, DF_VERSION_MAX);
    return NULL;
  }
  nv = realloc (vd->versions, (vd->nversions + 1) * sizeof *nv);
  if (nv == NULL) {
    df_error_errno ("%s", vd->name);
    return NULL;
  }
  vd->versions = nv;
  v = &nv[vd->nversions++];
  memset (v, 0, sizeof *v);
  v->num = num;
  snprintf (v->file, sizeof v->file, "%04u.layer", num);
  return v;
}

/* Fills hash/size/mtime of v from a sealed layer at path. */
static int
record_seal (struct df_version *v, const char *path,
             const uint8_t hash[DF_HASH_LEN])
{
  struct stat st;

  if (stat (path, &st) == -1)
    return df_error_errno ("%s", path);
  memcpy (v->hash, hash, DF_HASH_LEN);
  v->size = st.st_size;
  v->mtime_ns = stat_mtime_ns (&st);
  v->sealed = true;
  return 0;
}

int
df_version_new (const char *store, const char *name, unsigned *num)
{
  CLEANUP_CLOSE int lock = -1;
  CLEANUP_FREE char *path = NULL;
  struct df_vdisk *vd = load_locked (store, name, &lock);
  struct df_version *parent, *v;
  struct df_layer *l;
  unsigned parent_num;
  int r = -1;

  if (vd == NULL)
    return -1;
  if ((v = df_vdisk_maintenance (vd)) != NULL) {
    df_error (EEXIST, "vdisk \"%s\" version %u is already in maintenance; "
              "promote or delete it first", name, v->num);
    goto out;
  }
  parent = df_vdisk_newest (vd);
  if (parent == NULL) {
    df_error (ENOENT, "vdisk \"%s\" has no version to build on", name);
    goto out;
  }
  parent_num = parent->num;
  v = add_version (vd);
  if (v == NULL)
    goto out;
  parent = df_vdisk_version (vd, parent_num);    /* the array moved */
  v->parent = parent_num;
  v->state = DF_STATE_MAINTENANCE;
  path = df_vdisk_layer_path (vd, v);
  if (path == NULL)
    goto out;
  l = df_layer_create (path, vd->size, vd->block_size, parent->id,
                       parent->hash, 0);
  if (l == NULL)
    goto out;
  memcpy (v->id, df_layer_info (l)->id, DF_LAYER_ID_LEN);
  v->created_ns = df_layer_info (l)->created_ns;
  r = df_layer_flush (l);
  df_layer_close (l);
  if (r == 0 && (r = df_vdisk_save (vd)) == -1)
    unlink (path);
  if (r == 0)
    *num = v->num;
 out:
  df_vdisk_free (vd);
  return r;
}

/* Opening a layer writable fails while an editor holds it (the plugin's
 * edit/ exports lock the layer).  The hold ends when the server has
 * closed the editor's connection, a moment after the client left: a
 * promote run right then waits that moment out, up to SEAL_WAIT_MS.
 */
#define SEAL_WAIT_MS 3000

static struct df_layer *
open_for_seal (const char *path)
{
  const uint64_t deadline = df_now_mono_ns () + SEAL_WAIT_MS * UINT64_C (1000000);
  const struct timespec pause = { .tv_nsec = 50 * 1000000 };
  struct df_layer *l;

  while ((l = df_layer_open (path, true)) == NULL && errno == EBUSY &&
         df_now_mono_ns () < deadline)
    nanosleep (&pause, NULL);
  if (l)
    df_error_clear ();            /* an EBUSY we waited out */
  return l;
}

int
df_version_promote (const char *store, const char *name, unsigned num,
                    enum df_version_state to)
{
  CLEANUP_CLOSE int lock = -1;
  CLEANUP_FREE char *path = NULL;
  struct df_vdisk *vd = load_locked (store, name, &lock);
  struct df_version *v;
  int r = -1;

  if (vd == NULL)
    return -1;
  v = df_vdisk_version (vd, num);
  if (v == NULL) {
    df_error (ENOENT, "vdisk \"%s\" has no version %u", name, num);
    goto out;
  }
  if (to != DF_STATE_TEST && to != DF_STATE_PRODUCTION) {
    df_error (EINVAL, "a version is promoted to test or production");
    goto out;
  }
  if (v->state == DF_STATE_RETIRED ||
      (v->state == DF_STATE_PRODUCTION) ||
      (v->state == DF_STATE_TEST && to == DF_STATE_TEST)) {
    df_error (EINVAL, "vdisk \"%s\" version %u is %s and cannot become %s",
              name, num, df_state_name (v->state), df_state_name (to));
    goto out;
  }
  if (v->state == DF_STATE_MAINTENANCE) {
    uint8_t hash[DF_HASH_LEN];
    struct df_layer *l;

    path = df_vdisk_layer_path (vd, v);
    if (path == NULL)
      goto out;
    l = open_for_seal (path);
    if (l) {
      r = df_layer_seal (l, hash);
      df_layer_close (l);
    }
    else if (errno == EROFS && (l = df_layer_open (path, false)) != NULL) {
      /* Sealed, but the manifest was not updated: finish that seal. */
      df_error_clear ();
      r = df_layer_hash (l, hash);
      df_layer_close (l);
    }
    else
      goto out;
    if (r == -1 || (r = record_seal (v, path, hash)) == -1)
      goto out;
    r = -1;
  }
  v->state = to;
  r = df_vdisk_save (vd);
 out:
  df_vdisk_free (vd);
  return r;
}

int
df_version_rollback (const char *store, const char *name, unsigned *retired)
{
  CLEANUP_CLOSE int lock = -1;
  struct df_vdisk *vd = load_locked (store, name, &lock);
  struct df_version *v, *older = NULL;
  size_t i;
  int r = -1;

  if (vd == NULL)
    return -1;
  v = df_vdisk_pick (vd, DF_TYPE_PRODUCTION);
  if (v == NULL) {
    df_error (ENOENT, "vdisk \"%s\" has no production version", name);
    goto out;
  }
  for (i = 0; i < vd->nversions; i++)
    if (vd->versions[i].num < v->num &&
        vd->versions[i].state == DF_STATE_PRODUCTION)
      older = &vd->versions[i];
  if (older == NULL) {
    df_error (EINVAL, "vdisk \"%s\" version %u is its only production "
              "version; there is nothing to roll back to", name, v->num);
    goto out;
  }
  v->state = DF_STATE_RETIRED;
  r = df_vdisk_save (vd);
  if (r == 0)
    *retired = v->num;
 out:
  df_vdisk_free (vd);
  return r;
}

int
df_version_delete (const char *store, const char *name, unsigned num)
{
  CLEANUP_CLOSE int lock = -1;
  CLEANUP_FREE char *path = NULL;
  struct df_vdisk *vd = load_locked (store, name, &lock);
  struct df_version *v;
  size_t i;
  int r = -1;

  if (vd == NULL)
    return -1;
  v = df_vdisk_version (vd, num);
  if (v == NULL) {
    df_error (ENOENT, "vdisk \"%s\" has no version %u", name, num);
    goto out;
  }
  for (i = 0; i < vd->nversions; i++)
    if (vd->versions[i].parent == num) {
      df_error (EBUSY, "vdisk \"%s\" version %u depends on version %u; "
                "merge or delete it first", name, vd->versions[i].num, num);
      goto out;
    }
  if (vd->nversions == 1) {
    df_error (EBUSY, "version %u is the only version of vdisk \"%s\"",
              num, name);
    goto out;
  }
  path = df_vdisk_layer_path (vd, v);
  if (path == NULL)
    goto out;
  /* Manifest first: a crash then leaves an unlisted file, not a listed
   * version without its file.  Running sessions keep their open fd.
   */
  i = v - vd->versions;
  memmove (v, v + 1, (vd->nversions - i - 1) * sizeof *v);
  vd->nversions--;
  r = df_vdisk_save (vd);
  if (r == 0 && unlink (path) == -1 && errno != ENOENT)
    r = df_error_errno ("remove %s", path);
 out:
  df_vdisk_free (vd);
  return r;
}
