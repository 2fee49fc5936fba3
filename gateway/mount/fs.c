/* diskfarm-gateway mount — FUSE operations on names, and the table of
 * every operation.
 *
 * The low-level API: the file system hands the kernel its own inode
 * numbers and timeouts per name, so sealed versions are cached for a
 * day while names that change are asked again after a second; it also
 * lets the watcher invalidate one name (notify_inval_entry), and no path
 * is rebuilt and resolved on every request.
 */
#include <config.h>

#include <dirent.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "error.h"
#include "log.h"
#include "mount.h"

/* readdir's d_ino for names not looked up yet: anything but 0, which
 * readdir(3) skips.
 */
#define UNKNOWN_INO 0xffffffff

static struct gw_mount *
mount_of (fuse_req_t req)
{
  return fuse_req_userdata (req);
}

static void
fs_init (void *userdata, struct fuse_conn_info *conn)
{
  (void) userdata;
  /* 1 MiB requests: max_pages follows max_write; max_read must be the
   * mount option given to fuse_session_new.
   */
  conn->max_write = MOUNT_MAX_IO;
  conn->max_read = MOUNT_MAX_IO;
  conn->max_readahead = MOUNT_MAX_IO;
  /* Read-ahead requests are background requests: let several
   * sequential readers keep the threads busy.
   */
  conn->max_background = 64;
  conn->congestion_threshold = 48;
  conn->want &= ~FUSE_CAP_WRITEBACK_CACHE;
}

static void
fs_lookup (fuse_req_t req, fuse_ino_t parent, const char *name)
{
  struct gw_mount *m = mount_of (req);
  struct node *p = nodes_get (m->nodes, parent), tmpl, *n;
  struct fuse_entry_param e;

  if (tree_resolve (m, p, name, &tmpl) == -1) {
    fuse_reply_err (req, errno > 0 ? errno : EIO);
    return;
  }
  n = nodes_ref (m->nodes, &tmpl);
  if (n == NULL) {
    fuse_reply_err (req, ENOMEM);
    return;
  }
  /* A version's allocated size, once: it never changes. */
  if (n->kind == NODE_VERSION &&
      __atomic_load_n (&n->data_bytes, __ATOMIC_RELAXED) < 0) {
    struct df_bdev *b = node_open_bdev (m, n);
    uint64_t bytes;

    if (b == NULL)
      df_log_warning ("img/%s/%s: %s", n->vdisk, n->name, df_error_get ());
    else {
      if (bdev_data_bytes (b, &bytes) == 0)
        __atomic_store_n (&n->data_bytes, (int64_t) bytes, __ATOMIC_RELAXED);
      node_put_bdev (n);
    }
  }
  memset (&e, 0, sizeof e);
  e.ino = node_ino (n);
  e.generation = 1;
  tree_stat (m, n, &e.attr, &e.attr_timeout);
  e.entry_timeout = tree_entry_timeout (n);
  if (fuse_reply_entry (req, &e) != 0)
    nodes_forget (m->nodes, n, 1);
}

static void
fs_forget (fuse_req_t req, fuse_ino_t ino, uint64_t nlookup)
{
  struct gw_mount *m = mount_of (req);

  nodes_forget (m->nodes, nodes_get (m->nodes, ino), nlookup);
  fuse_reply_none (req);
}

static void
fs_forget_multi (fuse_req_t req, size_t count,
                 struct fuse_forget_data *forgets)
{
  struct gw_mount *m = mount_of (req);
  size_t i;

  for (i = 0; i < count; i++)
    nodes_forget (m->nodes, nodes_get (m->nodes, forgets[i].ino),
                  forgets[i].nlookup);
  fuse_reply_none (req);
}

static void
fs_getattr (fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
  struct gw_mount *m = mount_of (req);
  struct stat st;
  double timeout;
  struct node *n = nodes_get (m->nodes, ino);

  /* An open file keeps its version: only a name can be stale. */
  if (fi == NULL && !tree_current (m, n)) {
    fuse_reply_err (req, ESTALE);
    return;
  }
  tree_stat (m, n, &st, &timeout);
  fuse_reply_attr (req, &st, timeout);
}

/* Only an edit file takes changes, and only harmless ones: times are
 * ignored, the size stays what it is.
 */
static void
fs_setattr (fuse_req_t req, fuse_ino_t ino, struct stat *attr, int to_set,
            struct fuse_file_info *fi)
{
  struct gw_mount *m = mount_of (req);
  struct node *n = nodes_get (m->nodes, ino);
  struct stat st;
  double timeout;

  (void) fi;
  if (n->kind != NODE_EDITFILE) {
    fuse_reply_err (req, EROFS);
    return;
  }
  if ((to_set & (FUSE_SET_ATTR_MODE | FUSE_SET_ATTR_UID | FUSE_SET_ATTR_GID)) ||
      ((to_set & FUSE_SET_ATTR_SIZE) && (uint64_t) attr->st_size != n->size)) {
    fuse_reply_err (req, EPERM);
    return;
  }
  tree_stat (m, n, &st, &timeout);
  fuse_reply_attr (req, &st, timeout);
}

static void
fs_readlink (fuse_req_t req, fuse_ino_t ino)
{
  struct gw_mount *m = mount_of (req);
  struct node *n = nodes_get (m->nodes, ino);
  char target[16];

  if (n->kind != NODE_PRODUCTION) {
    fuse_reply_err (req, EINVAL);
    return;
  }
  if (tree_readlink (m, n, target) == -1)
    fuse_reply_err (req, errno > 0 ? errno : EIO);
  else
    fuse_reply_readlink (req, target);
}

/* A directory's listing, made at opendir and served in slices. */
struct dirbuf {
  char *data;
  size_t len;
};

static int
dirbuf_add (fuse_req_t req, struct dirbuf *d, const char *name,
            fuse_ino_t ino, mode_t type)
{
  struct stat st = { .st_ino = ino, .st_mode = type };
  size_t len = fuse_add_direntry (req, NULL, 0, name, NULL, 0);
  char *nd = realloc (d->data, d->len + len);

  if (nd == NULL)
    return -1;
  d->data = nd;
  fuse_add_direntry (req, d->data + d->len, len, name, &st, d->len + len);
  d->len += len;
  return 0;
}

/* The type of the entries of a directory. */
static mode_t
entry_type (const struct node *dir, const char *name)
{
  switch (dir->kind) {
  case NODE_ROOT:
  case NODE_IMG:
    return S_IFDIR;
  case NODE_VDISK:
    return strcmp (name, MOUNT_PRODUCTION) == 0 ? S_IFLNK : S_IFREG;
  default:
    return S_IFREG;
  }
}

static void
fs_opendir (fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
  struct gw_mount *m = mount_of (req);
  struct node *n = nodes_get (m->nodes, ino);
  struct dirbuf *d = calloc (1, sizeof *d);
  char **names = tree_list (m, n);
  size_t i;
  int err = ENOMEM;

  if (names == NULL)
    err = errno > 0 ? errno : EIO;
  if (d == NULL || names == NULL)
    goto fail;
  if (dirbuf_add (req, d, ".", ino, S_IFDIR) == -1 ||
      dirbuf_add (req, d, "..", n->parent ? node_ino (n->parent) : ino,
                  S_IFDIR) == -1)
    goto fail;
  /* Names get their inode numbers at lookup. */
  for (i = 0; names[i]; i++)
    if (dirbuf_add (req, d, names[i], UNKNOWN_INO,
                    entry_type (n, names[i])) == -1)
      goto fail;
  df_strv_free (names);
  /* Someone looks: check soon that what they saw before still is. */
  nodes_watch_wake (m->nodes);
  fi->fh = (uintptr_t) d;
  if (fuse_reply_open (req, fi) != 0) {
    free (d->data);
    free (d);
  }
  return;

 fail:
  df_strv_free (names);
  if (d)
    free (d->data);
  free (d);
  fuse_reply_err (req, err);
}

static void
fs_readdir (fuse_req_t req, fuse_ino_t ino, size_t size, off_t off,
            struct fuse_file_info *fi)
{
  struct dirbuf *d = (struct dirbuf *) (uintptr_t) fi->fh;
  size_t len;
  char *slice;

  (void) ino;
  if ((size_t) off >= d->len) {
    fuse_reply_buf (req, NULL, 0);
    return;
  }
  /* A copy: once the kernel has the reply, the directory may be closed
   * and d freed by another thread before fuse_reply_buf returns (and
   * ASan looks at the buffer after writev returns).
   */
  len = d->len - off < size ? d->len - off : size;
  slice = malloc (len);
  if (slice == NULL) {
    fuse_reply_err (req, ENOMEM);
    return;
  }
  memcpy (slice, d->data + off, len);
  fuse_reply_buf (req, slice, len);
  free (slice);
}

static void
fs_releasedir (fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
  struct dirbuf *d = (struct dirbuf *) (uintptr_t) fi->fh;

  (void) ino;
  free (d->data);
  free (d);
  fuse_reply_err (req, 0);
}

const struct fuse_lowlevel_ops gw_mount_ops = {
  .init = fs_init,
  .lookup = fs_lookup,
  .forget = fs_forget,
  .forget_multi = fs_forget_multi,
  .getattr = fs_getattr,
  .setattr = fs_setattr,
  .readlink = fs_readlink,
  .opendir = fs_opendir,
  .readdir = fs_readdir,
  .releasedir = fs_releasedir,
  .open = fileio_open,
  .release = fileio_release,
  .read = fileio_read,
  .write = fileio_write,
  .fsync = fileio_fsync,
  .fallocate = fileio_fallocate,
  .lseek = fileio_lseek,
};
