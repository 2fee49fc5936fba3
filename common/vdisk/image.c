/* diskfarm — import, export and merge: whole-image copies (see vdisk.h). */
#include <config.h>

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <libnbd.h>

#include "cleanup.h"
#include "error.h"
#include "run.h"
#include "util.h"
#include "ini/ini.h"
#include "layer/layer.h"
#include "vdisk/copy.h"
#include "vdisk/vdisk.h"

/* Writes a new sealed base layer at path with the content of src.
 * On success fills v (id, hash, size, mtime, created) and returns 0.
 */
static int
write_base (struct copy_src *src, const char *path, uint64_t size,
            uint32_t block_size, struct df_version *v,
            df_progress_fn progress, void *opaque)
{
  uint8_t hash[DF_HASH_LEN];
  struct df_layer *l;
  struct stat st;
  int r;

  l = df_layer_create (path, size, block_size, NULL, NULL,
                       DF_LAYER_BULK);
  if (l == NULL)
    return -1;
  {
    struct copy_dst dst;
    copy_dst_layer (&dst, l);
    r = copy_image (src, &dst, progress, opaque);
  }
  if (r == 0)
    r = df_layer_seal (l, hash);
  if (r == 0) {
    memcpy (v->id, df_layer_info (l)->id, DF_LAYER_ID_LEN);
    v->created_ns = df_layer_info (l)->created_ns;
  }
  df_layer_close (l);
  if (r == 0 && stat (path, &st) == -1)
    r = df_error_errno ("%s", path);
  if (r == -1) {
    unlink (path);
    return -1;
  }
  memcpy (v->hash, hash, DF_HASH_LEN);
  v->size = st.st_size;
  v->mtime_ns = (uint64_t) st.st_mtim.tv_sec * 1000000000 + st.st_mtim.tv_nsec;
  v->sealed = true;
  return 0;
}

/* Removes leftovers of imports of this name that were killed. */
static void
remove_stale_imports (const char *vdisks, const char *name)
{
  DIR *d = opendir (vdisks);
  struct dirent *de;
  size_t n = strlen (name);

  if (d == NULL)
    return;
  while ((de = readdir (d)) != NULL)
    if (strncmp (de->d_name, ".import-", 8) == 0 &&
        strncmp (de->d_name + 8, name, n) == 0 && de->d_name[8 + n] == '.') {
      CLEANUP_FREE char *p = df_path_join (vdisks, de->d_name);
      /* Leftovers: a failure here is not the import's. */
      if (p == NULL || df_remove_tree (p) == -1)
        df_error_clear ();
    }
  closedir (d);
}

int
df_vdisk_import (const char *store, const char *name, const char *image,
                 const struct df_import_opts *opts)
{
  uint32_t bs = opts && opts->block_size ? opts->block_size
                                         : DF_LAYER_DEFAULT_BLOCK;
  CLEANUP_FREE char *vdisks = NULL, *final = NULL, *tmp = NULL;
  CLEANUP_FREE char *layer = NULL, *conf = NULL;
  struct copy_src src = { .fd = -1 };
  struct df_vdisk *vd = NULL;
  struct df_version *v;
  struct stat st;
  int r = -1;

  if (df_name_check ("vdisk", name) == -1)
    return -1;
  if (bs < DF_LAYER_MIN_BLOCK || bs > DF_LAYER_MAX_BLOCK || !df_is_power_of_2 (bs))
    return df_error (EINVAL, "block size %" PRIu32 " is not a power of two "
                     "from %d to %d", bs, DF_LAYER_MIN_BLOCK, DF_LAYER_MAX_BLOCK);
  vdisks = df_path_join (store, "vdisks");
  final = vdisks ? df_path_join (vdisks, name) : NULL;
  if (final == NULL)
    return df_error_errno ("%s", store);
  if (stat (final, &st) == 0)
    return df_error (EEXIST, "vdisk \"%s\" already exists in store %s",
                     name, store);
  if (df_mkdir_p (vdisks, 0755) == -1)
    return -1;
  remove_stale_imports (vdisks, name);
  if (asprintf (&tmp, "%s/.import-%s.XXXXXX", vdisks, name) == -1) {
    tmp = NULL;
    return df_error_errno ("%s", store);
  }
  if (mkdtemp (tmp) == NULL)
    return df_error_errno ("create %s", tmp);
  if (chmod (tmp, 0755) == -1) {
    df_error_errno ("%s", tmp);
    goto out;
  }

  if (copy_src_open_image (&src, image) == -1)
    goto out;
  if (src.size == 0) {
    df_error (EINVAL, "%s: image is empty", image);
    goto out;
  }
  layer = df_path_join (tmp, "0001.layer");
  conf = df_path_join (tmp, "vdisk.conf");
  vd = calloc (1, sizeof *vd);
  if (layer == NULL || conf == NULL || vd == NULL ||
      (vd->ini = df_ini_new (conf)) == NULL) {
    df_error_errno ("%s", tmp);
    goto out;
  }
  if (df_ini_set (vd->ini, "vdisk", "size", "0") == -1)
    goto out;
  vd->name = strdup (name);
  vd->store = strdup (store);
  vd->dir = strdup (tmp);
  vd->versions = calloc (1, sizeof *vd->versions);
  if (!vd->name || !vd->store || !vd->dir || !vd->versions) {
    df_error_errno ("%s", name);
    goto out;
  }
  /* Sizes are whole sectors; an odd-sized raw file is padded with zeros. */
  vd->size = df_round_up (src.size, 512);
  vd->block_size = bs;
  vd->access = DF_ACCESS_STANDARD;
  vd->nversions = 1;
  v = &vd->versions[0];
  v->num = 1;
  snprintf (v->file, sizeof v->file, "0001.layer");
  v->state = DF_STATE_PRODUCTION;
  if (write_base (&src, layer, vd->size, bs, v,
                  opts ? opts->progress : NULL, opts ? opts->opaque : NULL) == -1) {
    df_error_prefix ("import %s", image);
    goto out;
  }
  if (df_vdisk_save (vd) == -1)
    goto out;
  if (rename (tmp, final) == -1) {
    if (errno == ENOTEMPTY || errno == EEXIST)
      df_error (EEXIST, "vdisk \"%s\" was created in store %s meanwhile",
                name, store);
    else
      df_error_errno ("rename %s to %s", tmp, final);
    goto out;
  }
  r = df_fsync_dir (vdisks);

 out:
  copy_src_close (&src);
  df_vdisk_free (vd);
  if (r == -1) {
    struct df_error_saved saved;
    df_error_save (&saved);
    df_remove_tree (tmp);
    df_error_restore (&saved);
  }
  return r;
}

static int
export_qcow2 (struct df_bdev *chain, const char *out, df_progress_fn progress,
              void *opaque)
{
  char sizebuf[32];
  char *create[] = { "qemu-img", "create", "-q", "-f", "qcow2", "--",
                     (char *) out, sizebuf, NULL };
  char *serve[] = { "qemu-nbd", "--format", "qcow2", "--cache=unsafe",
                    "--", (char *) out, NULL };
  struct nbd_handle *nbd;
  struct copy_src src;
  struct copy_dst dst;
  int r = -1;

  snprintf (sizebuf, sizeof sizebuf, "%" PRIu64, chain->size);
  if (df_run (create, NULL) == -1)
    return -1;
  nbd = nbd_create ();
  if (nbd == NULL)
    return df_error (ENOMEM, "%s", nbd_get_error ());
  if (nbd_connect_systemd_socket_activation (nbd, serve) == -1) {
    df_error (EIO, "%s: qemu-nbd: %s", out, nbd_get_error ());
    goto out;
  }
  copy_src_bdev (&src, chain);
  copy_dst_nbd (&dst, nbd);
  if (copy_image (&src, &dst, progress, opaque) == -1)
    goto out;
  if (nbd_flush (nbd, 0) == -1 || nbd_shutdown (nbd, 0) == -1) {
    df_error (EIO, "%s: %s", out, nbd_get_error ());
    goto out;
  }
  r = 0;
 out:
  nbd_close (nbd);
  return r;
}

static int
export_raw (struct df_bdev *chain, const char *out, df_progress_fn progress,
            void *opaque)
{
  CLEANUP_CLOSE int fd = open (out, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC,
                               0644);
  struct copy_src src;
  struct copy_dst dst;

  if (fd == -1)
    return df_error_errno ("%s", out);
  if (ftruncate (fd, chain->size) == -1)
    return df_error_errno ("%s", out);
  copy_src_bdev (&src, chain);
  copy_dst_fd (&dst, fd);
  /* Like cp and qemu-img convert, an export is not fsync'd: the copy is
   * the user's file, and sync(1) is theirs to run.
   */
  if (copy_image (&src, &dst, progress, opaque) == -1)
    return -1;
  if (close (TAKE_FD (fd)) == -1)
    return df_error_errno ("close %s", out);
  return 0;
}

int
df_vdisk_export (const struct df_vdisk *vd, unsigned num, const char *out,
                 const char *format, df_progress_fn progress, void *opaque)
{
  struct df_bdev *chain;
  int r;

  if (strcmp (format, "raw") != 0 && strcmp (format, "qcow2") != 0)
    return df_error (EINVAL, "export format \"%s\" is not raw or qcow2",
                     format);
  chain = df_vdisk_open (vd, num, false);
  if (chain == NULL)
    return -1;
  if (strcmp (format, "raw") == 0)
    r = export_raw (chain, out, progress, opaque);
  else
    r = export_qcow2 (chain, out, progress, opaque);
  df_bdev_close (chain);
  if (r == -1) {
    df_error_prefix ("export to %s", out);
    unlink (out);
  }
  return r;
}

int
df_version_merge (const char *store, const char *name, unsigned num,
                  unsigned *merged, df_progress_fn progress, void *opaque)
{
  CLEANUP_CLOSE int lock = df_vdisk_lock (store, name);
  CLEANUP_FREE char *path = NULL;
  struct df_vdisk *vd = NULL;
  struct df_version *src_v, *v, *nv;
  struct df_bdev *chain = NULL;
  struct copy_src src;
  int r = -1;

  if (lock == -1 || (vd = df_vdisk_load (store, name)) == NULL)
    return -1;
  if ((v = df_vdisk_maintenance (vd)) != NULL) {
    df_error (EBUSY, "vdisk \"%s\" version %u is in maintenance; promote "
              "or delete it before merging", name, v->num);
    goto out;
  }
  if (num == 0) {
    src_v = df_vdisk_newest (vd);
    if (src_v == NULL) {
      df_error (ENOENT, "vdisk \"%s\" has no version to merge", name);
      goto out;
    }
  }
  else if ((src_v = df_vdisk_version (vd, num)) == NULL) {
    df_error (ENOENT, "vdisk \"%s\" has no version %u", name, num);
    goto out;
  }
  if (src_v->parent == 0) {
    df_error (EINVAL, "vdisk \"%s\" version %u is already a base",
              name, src_v->num);
    goto out;
  }
  num = src_v->num;
  chain = df_vdisk_open (vd, num, false);
  if (chain == NULL)
    goto out;
  nv = realloc (vd->versions, (vd->nversions + 1) * sizeof *nv);
  if (nv == NULL) {
    df_error_errno ("%s", name);
    goto out;
  }
  vd->versions = nv;
  src_v = df_vdisk_version (vd, num);
  v = &nv[vd->nversions];
  memset (v, 0, sizeof *v);
  v->num = nv[vd->nversions - 1].num + 1;
  if (v->num > DF_VERSION_MAX) {
    df_error (ENOSPC, "vdisk \"%s\" has used all version numbers", name);
    goto out;
  }
  snprintf (v->file, sizeof v->file, "%04u.layer", v->num);
  v->state = src_v->state;
  path = df_vdisk_layer_path (vd, v);
  if (path == NULL)
    goto out;
  copy_src_bdev (&src, chain);
  if (write_base (&src, path, vd->size, vd->block_size, v, progress,
                  opaque) == -1)
    goto out;
  vd->nversions++;
  r = df_vdisk_save (vd);
  if (r == -1)
    unlink (path);
  else
    *merged = v->num;
 out:
  df_bdev_close (chain);
  df_vdisk_free (vd);
  return r;
}
