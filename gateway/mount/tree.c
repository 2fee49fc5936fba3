/* diskfarm-gateway mount — what each name is (see mount.h for the
 * layout), its attributes, and directory listings.
 */
#include <config.h>

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cleanup.h"
#include "error.h"
#include "log.h"
#include "mount.h"

/* Sealed versions never change: the kernel may keep their names,
 * attributes and pages as long as it likes (the watcher tells it when
 * one goes away).  What can change is asked again after a second.
 */
#define TIMEOUT_SEALED 86400.0
#define TIMEOUT_NAME 86400.0
#define TIMEOUT_CHANGING 1.0

/* "N" with no sign, no leading zero, 1..DF_VERSION_MAX. */
static unsigned
parse_version (const char *s)
{
  unsigned v = 0;
  size_t i;

  if (s[0] < '1' || s[0] > '9' || strlen (s) > 4)
    return 0;
  for (i = 0; s[i]; i++) {
    if (s[i] < '0' || s[i] > '9')
      return 0;
    v = v * 10 + (s[i] - '0');
  }
  return v;
}

/* A sealed version is shown under img/ whatever its state;
 * maintenance is only for its editor (edit/).
 */
static bool
shown (const struct df_version *v)
{
  return v->sealed && v->state != DF_STATE_MAINTENANCE;
}

static int
resolve_in_vdisk (struct gw_mount *m, const struct node *parent,
                  const char *name, struct node *out)
{
  struct vd_info *info = catalog_vdisk (m->catalog, parent->vdisk);
  const struct df_version *v;
  int r = -1;

  if (info == NULL)
    return -1;
  strcpy (out->vdisk, parent->vdisk);
  if (strcmp (name, MOUNT_PRODUCTION) == 0) {
    if (df_vdisk_pick (info->vd, DF_TYPE_PRODUCTION) == NULL) {
      errno = ENOENT;
      goto out;
    }
    out->kind = NODE_PRODUCTION;
    r = 0;
    goto out;
  }
  v = df_vdisk_version (info->vd, parse_version (name));
  if (v == NULL || !shown (v)) {
    errno = ENOENT;
    goto out;
  }
  out->kind = NODE_VERSION;
  out->version = v->num;
  memcpy (out->id, v->id, DF_LAYER_ID_LEN);
  out->size = info->vd->size;
  out->block_size = info->vd->block_size;
  out->mtime_ns = v->mtime_ns;
  out->sealed = true;
  r = 0;
 out:
  vd_info_put (info);
  return r;
}

static int
resolve_vdisk (struct gw_mount *m, const char *name, bool edit,
               struct node *out)
{
  struct vd_info *info = catalog_vdisk (m->catalog, name);
  const struct df_version *v;

  if (info == NULL)
    return -1;
  strcpy (out->vdisk, name);
  if (!edit) {
    out->kind = NODE_VDISK;
    out->mtime_ns = (uint64_t) info->stamp.mtime.tv_sec * 1000000000 +
      info->stamp.mtime.tv_nsec;
    vd_info_put (info);
    return 0;
  }
  v = df_vdisk_maintenance (info->vd);
  if (v == NULL) {
    vd_info_put (info);
    errno = ENOENT;
    return -1;
  }
  out->kind = NODE_EDITFILE;
  out->version = v->num;
  memcpy (out->id, v->id, DF_LAYER_ID_LEN);
  out->size = info->vd->size;
  out->block_size = info->vd->block_size;
  out->mtime_ns = v->created_ns;
  vd_info_put (info);
  return 0;
}

int
tree_resolve (struct gw_mount *m, const struct node *parent,
              const char *name, struct node *out)
{
  memset (out, 0, sizeof *out);
  out->parent = (struct node *) parent;
  out->data_bytes = -1;
  if (strlen (name) > DF_NAME_MAX || !df_name_valid (name)) {
    errno = ENOENT;
    return -1;
  }
  strcpy (out->name, name);
  switch (parent->kind) {
  case NODE_ROOT:
    if (strcmp (name, "img") == 0)
      out->kind = NODE_IMG;
    else if (strcmp (name, "edit") == 0)
      out->kind = NODE_EDIT;
    else {
      errno = ENOENT;
      return -1;
    }
    return 0;
  case NODE_IMG:
    return resolve_vdisk (m, name, false, out);
  case NODE_EDIT:
    return resolve_vdisk (m, name, true, out);
  case NODE_VDISK:
    return resolve_in_vdisk (m, parent, name, out);
  default:
    errno = ENOTDIR;
    return -1;
  }
}

bool
tree_current (struct gw_mount *m, const struct node *n)
{
  struct node now;

  if (n->parent == NULL || n->kind == NODE_IMG || n->kind == NODE_EDIT)
    return true;
  if (tree_resolve (m, n->parent, n->name, &now) == -1)
    return errno != ENOENT;     /* unreadable right now is not gone */
  return node_same (&now, n);
}

int
tree_readlink (struct gw_mount *m, const struct node *n, char *buf)
{
  struct vd_info *info = catalog_vdisk (m->catalog, n->vdisk);
  const struct df_version *v;

  if (info == NULL)
    return -1;
  v = df_vdisk_pick (info->vd, DF_TYPE_PRODUCTION);
  if (v)
    snprintf (buf, 16, "%u", v->num);
  vd_info_put (info);
  if (v == NULL) {
    errno = ENOENT;
    return -1;
  }
  return 0;
}

static void
set_times (struct stat *st, uint64_t ns)
{
  st->st_mtim.tv_sec = ns / 1000000000;
  st->st_mtim.tv_nsec = ns % 1000000000;
  st->st_atim = st->st_ctim = st->st_mtim;
}

/* Allocated bytes of the maintenance version, from its chain while the
 * file is open (cp, qemu-img and friends stat the file they opened);
 * unknown otherwise, for reading a large vDisk's maps on every stat
 * would cost more than the answer is worth.
 */
static int64_t
edit_data_bytes (struct node *n)
{
  struct df_bdev *b = node_peek_bdev (n);
  uint64_t bytes;
  int r;

  if (b == NULL)
    return -1;
  r = bdev_data_bytes (b, &bytes);
  node_put_bdev (n);
  return r == 0 ? (int64_t) bytes : -1;
}

static void
file_stat (struct node *n, struct stat *st)
{
  int64_t data = n->kind == NODE_EDITFILE ? edit_data_bytes (n)
                                          : __atomic_load_n (&n->data_bytes,
                                                             __ATOMIC_RELAXED);

  st->st_mode = S_IFREG | (n->kind == NODE_EDITFILE ? 0600 : 0444);
  st->st_nlink = 1;
  st->st_size = n->size;
  /* Holes are not counted: cp --sparse and friends look for them. */
  st->st_blocks = (data >= 0 ? (uint64_t) data : n->size) / 512;
  st->st_blksize = n->block_size;
  set_times (st, n->mtime_ns);
}

void
tree_stat (struct gw_mount *m, struct node *n, struct stat *st,
           double *attr_timeout)
{
  char target[16];

  memset (st, 0, sizeof *st);
  st->st_ino = node_ino (n);
  st->st_uid = m->uid;
  st->st_gid = m->gid;
  *attr_timeout = TIMEOUT_CHANGING;
  switch (n->kind) {
  case NODE_ROOT:
  case NODE_IMG:
  case NODE_EDIT:
  case NODE_VDISK:
    st->st_mode = S_IFDIR | 0555;
    st->st_nlink = 2;
    set_times (st, n->kind == NODE_VDISK ? n->mtime_ns : m->started_ns);
    break;
  case NODE_VERSION:
    file_stat (n, st);
    *attr_timeout = TIMEOUT_SEALED;
    break;
  case NODE_EDITFILE:
    file_stat (n, st);
    break;
  case NODE_PRODUCTION:
    st->st_mode = S_IFLNK | 0777;
    st->st_nlink = 1;
    st->st_size = tree_readlink (m, n, target) == 0 ? strlen (target) : 0;
    set_times (st, m->started_ns);
    break;
  }
}

double
tree_entry_timeout (const struct node *n)
{
  /* Every name the kernel keeps is checked by the watcher. */
  (void) n;
  return TIMEOUT_NAME;
}

/* Appends a copy of name to a NULL-terminated array of n entries. */
static int
push (char ***v, size_t *n, const char *name)
{
  char **nv = realloc (*v, (*n + 2) * sizeof **v);

  if (nv == NULL)
    return -1;
  *v = nv;
  if ((nv[*n] = strdup (name)) == NULL)
    return -1;
  nv[++*n] = NULL;
  return 0;
}

static char **
list_vdisk (struct gw_mount *m, const struct node *dir)
{
  struct vd_info *info = catalog_vdisk (m->catalog, dir->vdisk);
  char **v = calloc (1, sizeof *v);
  char num[16];
  size_t i, n = 0;

  if (info == NULL || v == NULL)
    goto fail;
  for (i = 0; i < info->vd->nversions; i++) {
    const struct df_version *ver = &info->vd->versions[i];

    snprintf (num, sizeof num, "%u", ver->num);
    if (shown (ver) && push (&v, &n, num) == -1)
      goto fail;
  }
  if (df_vdisk_pick (info->vd, DF_TYPE_PRODUCTION) &&
      push (&v, &n, MOUNT_PRODUCTION) == -1)
    goto fail;
  vd_info_put (info);
  return v;

 fail:
  if (info)
    errno = ENOMEM;
  vd_info_put (info);
  df_strv_free (v);
  return NULL;
}

/* edit/: the vDisks that have a maintenance version. */
static char **
list_edit (struct gw_mount *m)
{
  char **all = catalog_names (m->catalog);
  size_t i, j = 0;

  for (i = 0; all && all[i]; i++) {
    struct vd_info *info = catalog_vdisk (m->catalog, all[i]);

    if (info && df_vdisk_maintenance (info->vd))
      all[j++] = all[i];
    else
      free (all[i]);
    vd_info_put (info);
  }
  if (all)
    all[j] = NULL;
  return all;
}

char **
tree_list (struct gw_mount *m, const struct node *dir)
{
  char **v = NULL;
  size_t n = 0;

  switch (dir->kind) {
  case NODE_ROOT:
    if (push (&v, &n, "img") == -1 || push (&v, &n, "edit") == -1) {
      df_strv_free (v);
      errno = ENOMEM;
      return NULL;
    }
    return v;
  case NODE_IMG:
    return catalog_names (m->catalog);
  case NODE_EDIT:
    return list_edit (m);
  case NODE_VDISK:
    return list_vdisk (m, dir);
  default:
    errno = ENOTDIR;
    return NULL;
  }
}
