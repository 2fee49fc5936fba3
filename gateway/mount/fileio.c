/* diskfarm-gateway mount — file data: the FUSE adapter over the block
 * device stack.
 *
 * Every handle of a file shares the file's chain (node->bdev), opened by
 * the first open and closed by the last release.  For an edit file that
 * is the maintenance version opened writable: df_vdisk_open takes the
 * layer's writer lock, the one the plugin's edit/ export takes, so one
 * process edits a version at a time, farm-wide.
 */
#include <config.h>

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <linux/falloc.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/uio.h>
#include <unistd.h>

#include "error.h"
#include "log.h"
#include "mount.h"

/* Extents are asked for in pieces that fit the bdev's 32-bit count. */
#define EXTENT_STEP (UINT64_C (1) << 30)

static int
errno_or_eio (void)
{
  return errno > 0 ? errno : EIO;
}

static const char *
node_path (const struct node *n, char *buf, size_t len)
{
  if (n->kind == NODE_EDITFILE)
    snprintf (buf, len, "edit/%s", n->vdisk);
  else
    snprintf (buf, len, "img/%s/%s", n->vdisk, n->name);
  return buf;
}

static void
log_io_error (const struct node *n, const char *what, uint64_t offset)
{
  int saved = errno;
  char path[2 * DF_NAME_MAX + 16];

  df_log_error ("%s: %s at %" PRIu64 ": %s", node_path (n, path, sizeof path),
                what, offset, df_error_get ());
  errno = saved;
}

/* Opens the chain n names, checking that the manifest still says so. */
static struct df_bdev *
open_chain (struct gw_mount *m, const struct node *n)
{
  struct vd_info *info = catalog_vdisk (m->catalog, n->vdisk);
  const struct df_version *v;
  struct df_bdev *b = NULL;
  bool edit = n->kind == NODE_EDITFILE;

  if (info == NULL)
    return NULL;
  v = df_vdisk_version (info->vd, n->version);
  /* ESTALE: the kernel looks the name up again and opens what it
   * names now.
   */
  if (v == NULL || memcmp (v->id, n->id, DF_LAYER_ID_LEN) != 0)
    df_error (ESTALE, "vdisk \"%s\" version %u is gone", n->vdisk,
              n->version);
  else if (edit && v->state != DF_STATE_MAINTENANCE)
    df_error (ESTALE, "vdisk \"%s\" version %u is no longer in maintenance",
              n->vdisk, n->version);
  else if ((b = df_vdisk_open (info->vd, n->version, edit)) == NULL &&
           errno == EBUSY)
    df_error (EBUSY, "vdisk \"%s\" version %u is being edited elsewhere "
              "(an edit/ export or another mount)", n->vdisk, n->version);
  vd_info_put (info);
  return b;
}

struct df_bdev *
node_open_bdev (struct gw_mount *m, struct node *n)
{
  struct df_bdev *b;

  pthread_mutex_lock (&n->lock);
  while (n->busy)
    pthread_cond_wait (&n->cond, &n->lock);
  if (n->bdev) {
    n->users++;
    b = n->bdev;
    pthread_mutex_unlock (&n->lock);
    return b;
  }
  n->busy = true;
  pthread_mutex_unlock (&n->lock);

  b = open_chain (m, n);

  pthread_mutex_lock (&n->lock);
  n->busy = false;
  if (b) {
    n->bdev = b;
    n->users = 1;
  }
  pthread_cond_broadcast (&n->cond);
  pthread_mutex_unlock (&n->lock);
  return b;
}

struct df_bdev *
node_peek_bdev (struct node *n)
{
  struct df_bdev *b;

  pthread_mutex_lock (&n->lock);
  while (n->busy)
    pthread_cond_wait (&n->cond, &n->lock);
  b = n->bdev;
  if (b)
    n->users++;
  pthread_mutex_unlock (&n->lock);
  return b;
}

int
node_put_bdev (struct node *n)
{
  struct df_bdev *b;
  int r = 0;

  pthread_mutex_lock (&n->lock);
  if (--n->users > 0) {
    pthread_mutex_unlock (&n->lock);
    return 0;
  }
  b = n->bdev;
  n->bdev = NULL;
  n->busy = true;
  pthread_mutex_unlock (&n->lock);

  /* The editor's writes become durable before its lock goes. */
  if (!(b->flags & DF_BDEV_RDONLY) && (r = df_bdev_flush (b)) == -1)
    log_io_error (n, "flush", 0);
  df_bdev_close (b);

  pthread_mutex_lock (&n->lock);
  n->busy = false;
  pthread_cond_broadcast (&n->cond);
  pthread_mutex_unlock (&n->lock);
  return r;
}

/* ---- extents: allocated bytes, SEEK_DATA / SEEK_HOLE ---- */

struct extent_walk {
  int whence;                   /* SEEK_DATA, SEEK_HOLE, or 0: count */
  uint64_t from;
  uint64_t next;                /* end of what was described */
  uint64_t bytes;               /* count: data bytes */
  bool found;
  uint64_t at;
};

static int
extent_cb (void *opaque, uint64_t offset, uint64_t length, uint32_t type)
{
  struct extent_walk *w = opaque;
  bool hole = type & DF_EXTENT_HOLE;

  w->next = offset + length;
  if (w->whence == 0) {
    if (!hole)
      w->bytes += length;
    return 0;
  }
  if (hole == (w->whence == SEEK_HOLE)) {
    w->found = true;
    w->at = offset > w->from ? offset : w->from;
    return -1;                  /* stop the walk */
  }
  return 0;
}

/* Walks [w->from, end of device) until the callback finds its place. */
static int
walk_extents (struct df_bdev *b, struct extent_walk *w)
{
  uint64_t pos = w->from;

  while (pos < b->size && !w->found) {
    uint64_t len = b->size - pos < EXTENT_STEP ? b->size - pos : EXTENT_STEP;

    w->next = pos;
    if (df_bdev_extents (b, len, pos, extent_cb, w) == -1 && !w->found)
      return -1;
    if (w->next <= pos)
      return df_error (EIO, "%s: extents made no progress at %" PRIu64,
                       b->ops->name, pos);
    pos = w->next;
  }
  return 0;
}

int
bdev_data_bytes (struct df_bdev *b, uint64_t *bytes)
{
  struct extent_walk w = { 0 };

  if (walk_extents (b, &w) == -1)
    return -1;
  *bytes = w.bytes;
  return 0;
}

/* ---- FUSE operations ---- */

static struct gw_mount *
mount_of (fuse_req_t req)
{
  return fuse_req_userdata (req);
}

static struct node *
handle_node (struct fuse_file_info *fi)
{
  return (struct node *) (uintptr_t) fi->fh;
}

void
fileio_open (fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
  struct gw_mount *m = mount_of (req);
  struct node *n = nodes_get (m->nodes, ino);
  bool writing = (fi->flags & O_ACCMODE) != O_RDONLY;

  if (n->kind == NODE_VERSION && (writing || (fi->flags & O_TRUNC))) {
    fuse_reply_err (req, EROFS);
    return;
  }
  if (n->kind == NODE_EDITFILE && (fi->flags & O_TRUNC)) {
    /* A vDisk has a fixed size: never truncate it to nothing. */
    fuse_reply_err (req, EPERM);
    return;
  }
  if (n->kind != NODE_VERSION && n->kind != NODE_EDITFILE) {
    fuse_reply_err (req, EISDIR);
    return;
  }
  if (node_open_bdev (m, n) == NULL) {
    int err = errno_or_eio ();
    char path[2 * DF_NAME_MAX + 16];

    if (err == ESTALE)
      df_debug ("mount", "%s: %s", node_path (n, path, sizeof path),
                df_error_get ());
    else
      df_log (err == EBUSY || err == ENOENT ? DF_LOG_WARNING : DF_LOG_ERROR,
              "%s: %s", node_path (n, path, sizeof path), df_error_get ());
    fuse_reply_err (req, err);
    return;
  }
  fi->fh = (uintptr_t) n;
  /* A sealed version's pages stay valid from one open to the next. */
  fi->keep_cache = n->kind == NODE_VERSION;
  fi->noflush = n->kind == NODE_VERSION;
  if (fuse_reply_open (req, fi) != 0)
    node_put_bdev (n);          /* interrupted: no handle */
  else if (df_log_debug_enabled ("mount")) {
    char path[2 * DF_NAME_MAX + 16];

    df_debug ("mount", "open %s%s", node_path (n, path, sizeof path),
              writing ? " for writing" : "");
  }
}

void
fileio_release (fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
  struct node *n = handle_node (fi);

  (void) ino;
  node_put_bdev (n);
  fuse_reply_err (req, 0);
}

/* A read buffer per FUSE thread, freed when the thread ends, and zeros
 * to send from.
 */
static pthread_key_t buf_key;
static pthread_once_t buf_once = PTHREAD_ONCE_INIT;
static char *zeros;

static void
buffers_make (void)
{
  pthread_key_create (&buf_key, free);
  zeros = calloc (1, MOUNT_MAX_IO);
}

static char *
thread_buffer (void)
{
  char *buf = pthread_getspecific (buf_key);

  if (buf == NULL && (buf = malloc (MOUNT_MAX_IO)) != NULL)
    pthread_setspecific (buf_key, buf);
  return buf;
}

/* Pieces of one reply at most; past that, the rest is read whole. */
#define MAX_PIECES 64

/* Adds [p, p+len) to the reply, joined to the last piece if it follows
 * it in memory.
 */
static void
add_piece (struct iovec *iov, int *n, const void *p, size_t len)
{
  if (*n > 0 && (const char *) iov[*n - 1].iov_base + iov[*n - 1].iov_len == p)
    iov[*n - 1].iov_len += len;
  else {
    iov[*n].iov_base = (void *) p;
    iov[*n].iov_len = len;
    ++*n;
  }
}

/* Fills iov with the count bytes at off: data the device has in memory
 * is sent from there (one copy, into the kernel, instead of two), zeros
 * from zeros, the rest read into the thread's buffer.
 */
static int
gather (struct df_bdev *b, uint32_t count, uint64_t off, struct iovec *iov,
        int *n)
{
  char *buf = NULL;
  uint32_t done = 0;
  struct df_bdev_peek pk;

  *n = 0;
  while (done < count) {
    if (df_bdev_peek (b, count - done, off + done, &pk) == -1)
      return -1;
    if (*n >= MAX_PIECES - 1) {
      pk.len = count - done;
      pk.zero = false;
      pk.data = NULL;
    }
    if (pk.data == NULL && !pk.zero) {
      if (buf == NULL && (buf = thread_buffer ()) == NULL)
        return df_error_errno ("read buffer");
      if (df_bdev_pread (b, buf + done, pk.len, off + done) == -1)
        return -1;
      pk.data = buf + done;
    }
    add_piece (iov, n, pk.zero ? zeros : pk.data, pk.len);
    done += pk.len;
  }
  return 0;
}

void
fileio_read (fuse_req_t req, fuse_ino_t ino, size_t size, off_t off,
             struct fuse_file_info *fi)
{
  struct node *n = handle_node (fi);
  struct df_bdev *b = n->bdev;
  struct iovec iov[MAX_PIECES];
  uint32_t count;
  int niov;

  (void) ino;
  pthread_once (&buf_once, buffers_make);
  if ((uint64_t) off >= b->size) {
    fuse_reply_buf (req, NULL, 0);
    return;
  }
  if (zeros == NULL) {
    fuse_reply_err (req, ENOMEM);
    return;
  }
  count = size < MOUNT_MAX_IO ? size : MOUNT_MAX_IO;
  if ((uint64_t) count > b->size - off)
    count = b->size - off;
  if (gather (b, count, off, iov, &niov) == -1) {
    log_io_error (n, "read", off);
    fuse_reply_err (req, errno_or_eio ());
    return;
  }
  fuse_reply_iov (req, iov, niov);
}

void
fileio_write (fuse_req_t req, fuse_ino_t ino, const char *buf, size_t size,
              off_t off, struct fuse_file_info *fi)
{
  struct node *n = handle_node (fi);
  struct df_bdev *b = n->bdev;
  uint32_t count;

  (void) ino;
  if (n->kind != NODE_EDITFILE || (b->flags & DF_BDEV_RDONLY)) {
    fuse_reply_err (req, EROFS);
    return;
  }
  /* Like a disk: nothing past the end. */
  if ((uint64_t) off >= b->size) {
    fuse_reply_err (req, ENOSPC);
    return;
  }
  count = size < MOUNT_MAX_IO ? size : MOUNT_MAX_IO;
  if ((uint64_t) count > b->size - off)
    count = b->size - off;
  if (df_bdev_pwrite (b, buf, count, off, 0) == -1) {
    log_io_error (n, "write", off);
    fuse_reply_err (req, errno_or_eio ());
    return;
  }
  fuse_reply_write (req, count);
}

void
fileio_fsync (fuse_req_t req, fuse_ino_t ino, int datasync,
              struct fuse_file_info *fi)
{
  struct node *n = handle_node (fi);
  struct df_bdev *b = n->bdev;

  (void) ino;
  (void) datasync;              /* the layer has no metadata apart */
  if (!(b->flags & DF_BDEV_RDONLY) && df_bdev_flush (b) == -1) {
    log_io_error (n, "flush", 0);
    fuse_reply_err (req, errno_or_eio ());
    return;
  }
  fuse_reply_err (req, 0);
}

/* Zeroes [off, end) in pieces that fit a request's 32-bit count. */
static int
zero_range (struct df_bdev *b, uint64_t off, uint64_t end, uint32_t flags)
{
  while (off < end) {
    uint32_t len = end - off < EXTENT_STEP ? end - off : EXTENT_STEP;

    if (df_bdev_zero (b, len, off, flags) == -1)
      return -1;
    off += len;
  }
  return 0;
}

void
fileio_fallocate (fuse_req_t req, fuse_ino_t ino, int mode, off_t offset,
                  off_t length, struct fuse_file_info *fi)
{
  struct node *n = handle_node (fi);
  struct df_bdev *b = n->bdev;
  uint64_t off = offset, end = (uint64_t) offset + length;

  (void) ino;
  if (n->kind != NODE_EDITFILE) {
    fuse_reply_err (req, EROFS);
    return;
  }
  if (mode & ~(FALLOC_FL_KEEP_SIZE | FALLOC_FL_PUNCH_HOLE |
               FALLOC_FL_ZERO_RANGE)) {
    fuse_reply_err (req, EOPNOTSUPP);
    return;
  }
  if (end > b->size) {
    if (!(mode & FALLOC_FL_KEEP_SIZE)) {
      fuse_reply_err (req, EFBIG);       /* a vDisk does not grow */
      return;
    }
    end = b->size;
  }
  /* A punched hole must read back as zeros, which a trim alone does not
   * promise (bdev.h): zero with leave to deallocate, which frees whole
   * blocks the way a trim does and zeroes the partial ones at the ends.
   */
  if (off < end && (mode & (FALLOC_FL_PUNCH_HOLE | FALLOC_FL_ZERO_RANGE)) &&
      zero_range (b, off, end, (mode & FALLOC_FL_PUNCH_HOLE)
                  ? DF_MAY_TRIM : 0) == -1) {
    log_io_error (n, "fallocate", off);
    fuse_reply_err (req, errno_or_eio ());
    return;
  }
  /* Plain allocation: every block of a vDisk already exists. */
  fuse_reply_err (req, 0);
}

void
fileio_lseek (fuse_req_t req, fuse_ino_t ino, off_t off, int whence,
              struct fuse_file_info *fi)
{
  struct node *n = handle_node (fi);
  struct df_bdev *b = n->bdev;
  struct extent_walk w = { .whence = whence, .from = off };

  (void) ino;
  if (whence != SEEK_DATA && whence != SEEK_HOLE) {
    fuse_reply_err (req, EINVAL);
    return;
  }
  if (off < 0 || (uint64_t) off >= b->size) {
    fuse_reply_err (req, ENXIO);
    return;
  }
  if (walk_extents (b, &w) == -1) {
    log_io_error (n, "extents", off);
    fuse_reply_err (req, errno_or_eio ());
    return;
  }
  if (w.found)
    fuse_reply_lseek (req, w.at);
  else if (whence == SEEK_HOLE)
    fuse_reply_lseek (req, b->size);     /* the end is a hole */
  else
    fuse_reply_err (req, ENXIO);
}
