/* diskfarm-gateway attach — the device as one FUSE file (--file), for
 * qemu -drive file=PATH,format=raw and anything that reads files.
 *
 * The low-level libfuse API over the block-device stack: the mount
 * point is the file itself (a regular file, made if missing).  Direct
 * I/O (no page cache: the stack has its own caches, and the NBD socket
 * sees the same blocks), 1 MiB requests, many threads.  fsync is a
 * FLUSH; fallocate PUNCH_HOLE and ZERO_RANGE are trim and zero.
 */
#include <config.h>

#define FUSE_USE_VERSION 312
#include <fuse_lowlevel.h>

#include <errno.h>
#include <fcntl.h>
#include <linux/falloc.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "attach.h"
#include "error.h"
#include "util.h"

#define MAX_IO (1024 * 1024)
#define MAX_THREADS 32

struct attach_fuse {
  struct df_bdev *b;
  bool readonly;
  char *path;
  bool created;                 /* the file was made here */
  struct fuse_session *se;
  pthread_t loop_thread;        /* the thread in attach_fuse_run */
  bool running;
  struct timespec start;
};

static void
fill_attr (struct attach_fuse *f, struct stat *st)
{
  memset (st, 0, sizeof *st);
  st->st_ino = FUSE_ROOT_ID;
  st->st_mode = S_IFREG | (f->readonly ? 0440 : 0660);
  st->st_nlink = 1;
  st->st_uid = geteuid ();
  st->st_gid = getegid ();
  st->st_size = f->b->size;
  st->st_blksize = 4096;
  st->st_blocks = (f->b->size + 511) / 512;
  st->st_atim = st->st_mtim = st->st_ctim = f->start;
}

static void
ff_init (void *userdata, struct fuse_conn_info *conn)
{
  (void) userdata;
  conn->max_write = MAX_IO;
  conn->max_read = MAX_IO;
  conn->max_readahead = MAX_IO;
  conn->max_background = 64;
  conn->congestion_threshold = 48;
  if (conn->capable & FUSE_CAP_ASYNC_DIO)
    conn->want |= FUSE_CAP_ASYNC_DIO;
}

static void
ff_getattr (fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
  struct attach_fuse *f = fuse_req_userdata (req);
  struct stat st;

  (void) fi;
  if (ino != FUSE_ROOT_ID) {
    fuse_reply_err (req, ENOENT);
    return;
  }
  fill_attr (f, &st);
  fuse_reply_attr (req, &st, 3600);
}

static void
ff_lookup (fuse_req_t req, fuse_ino_t parent, const char *name)
{
  (void) parent;
  (void) name;
  fuse_reply_err (req, ENOENT);       /* a file has no entries */
}

/* A disk has the size it has: truncating to it is fine, nothing else
 * changes; owner and modes are fixed.
 */
static void
ff_setattr (fuse_req_t req, fuse_ino_t ino, struct stat *attr, int to_set,
            struct fuse_file_info *fi)
{
  struct attach_fuse *f = fuse_req_userdata (req);
  struct stat st;

  (void) ino;
  (void) fi;
  if ((to_set & FUSE_SET_ATTR_SIZE) && (uint64_t) attr->st_size != f->b->size) {
    fuse_reply_err (req, f->readonly ? EROFS : EPERM);
    return;
  }
  fill_attr (f, &st);
  fuse_reply_attr (req, &st, 3600);
}

static void
ff_open (fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
  struct attach_fuse *f = fuse_req_userdata (req);

  (void) ino;
  if (f->readonly && (fi->flags & O_ACCMODE) != O_RDONLY) {
    fuse_reply_err (req, EROFS);
    return;
  }
  fi->direct_io = 1;
  fi->keep_cache = 0;
  fuse_reply_open (req, fi);
}

static void
ff_read (fuse_req_t req, fuse_ino_t ino, size_t size, off_t off,
         struct fuse_file_info *fi)
{
  struct attach_fuse *f = fuse_req_userdata (req);
  char *buf;

  (void) ino;
  (void) fi;
  if (off < 0 || (uint64_t) off >= f->b->size) {
    fuse_reply_buf (req, NULL, 0);
    return;
  }
  if (size > f->b->size - off)
    size = f->b->size - off;
  buf = malloc (size ? size : 1);
  if (buf == NULL) {
    fuse_reply_err (req, ENOMEM);
    return;
  }
  if (df_bdev_pread (f->b, buf, size, off) == -1)
    fuse_reply_err (req, errno ? errno : EIO);
  else
    fuse_reply_buf (req, buf, size);
  free (buf);
}

static void
ff_write (fuse_req_t req, fuse_ino_t ino, const char *buf, size_t size,
          off_t off, struct fuse_file_info *fi)
{
  struct attach_fuse *f = fuse_req_userdata (req);
  uint32_t flags = (fi->flags & (O_SYNC | O_DSYNC)) ? DF_FUA : 0;

  (void) ino;
  if (f->readonly) {
    fuse_reply_err (req, EROFS);
    return;
  }
  if (off < 0 || (uint64_t) off > f->b->size || size > f->b->size - off) {
    fuse_reply_err (req, ENOSPC);
    return;
  }
  if (df_bdev_pwrite (f->b, buf, size, off, flags) == -1)
    fuse_reply_err (req, errno ? errno : EIO);
  else
    fuse_reply_write (req, size);
}

static void
ff_flush (fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
  (void) ino;
  (void) fi;
  fuse_reply_err (req, 0);      /* close(2) promises no durability */
}

static void
ff_fsync (fuse_req_t req, fuse_ino_t ino, int datasync,
          struct fuse_file_info *fi)
{
  struct attach_fuse *f = fuse_req_userdata (req);

  (void) ino;
  (void) datasync;
  (void) fi;
  if (!f->readonly && df_bdev_flush (f->b) == -1)
    fuse_reply_err (req, errno ? errno : EIO);
  else
    fuse_reply_err (req, 0);
}

static void
ff_fallocate (fuse_req_t req, fuse_ino_t ino, int mode, off_t off,
              off_t len, struct fuse_file_info *fi)
{
  struct attach_fuse *f = fuse_req_userdata (req);
  int r = 0;

  (void) ino;
  (void) fi;
  if (f->readonly) {
    fuse_reply_err (req, EROFS);
    return;
  }
  if (off < 0 || len <= 0 || (uint64_t) off > f->b->size ||
      (uint64_t) len > f->b->size - off || len > UINT32_MAX) {
    fuse_reply_err (req, (mode & FALLOC_FL_KEEP_SIZE) || off < 0 || len <= 0
                    ? EINVAL : EFBIG);
    return;
  }
  if (mode & FALLOC_FL_PUNCH_HOLE)
    r = df_bdev_trim (f->b, len, off, 0);
  else if (mode & FALLOC_FL_ZERO_RANGE)
    r = df_bdev_zero (f->b, len, off, DF_MAY_TRIM);
  else if (mode & ~FALLOC_FL_KEEP_SIZE) {
    fuse_reply_err (req, EOPNOTSUPP);
    return;
  }
  /* mode 0: the blocks are there already. */
  fuse_reply_err (req, r == -1 ? (errno ? errno : EIO) : 0);
}

static const struct fuse_lowlevel_ops ops = {
  .init = ff_init,
  .lookup = ff_lookup,
  .getattr = ff_getattr,
  .setattr = ff_setattr,
  .open = ff_open,
  .read = ff_read,
  .write = ff_write,
  .flush = ff_flush,
  .fsync = ff_fsync,
  .fallocate = ff_fallocate,
};

/* A mount left by a killed attach answers ENOTCONN: take it away. */
static int
clear_dead_mount (const char *path)
{
  struct stat st;

  if (stat (path, &st) == 0 || errno != ENOTCONN)
    return 0;
  if (umount2 (path, MNT_DETACH) == -1)
    return df_error_errno ("%s: a dead FUSE mount is in the way, and "
                           "unmounting it failed", path);
  return 0;
}

/* A live mount on the file (another attach's): mounting over it would
 * hide that disk from whoever opens the path.  A mount root is on
 * another device than its directory.
 */
static int
check_not_mounted (const char *path, const struct stat *st)
{
  char *dir = strdup (path), *slash;
  struct stat dst;
  int r;

  if (dir == NULL)
    return df_error_errno ("%s", path);
  slash = strrchr (dir, '/');
  if (slash == dir)
    slash[1] = '\0';
  else if (slash)
    *slash = '\0';
  r = stat (slash ? dir : ".", &dst);
  free (dir);
  if (r == -1)
    return df_error_errno ("the directory of %s", path);
  if (dst.st_dev != st->st_dev)
    return df_error (EBUSY, "%s is in use: something is mounted on it "
                     "(another attach?)", path);
  return 0;
}

/* The mount point: the file itself, made if missing. */
static int
prepare_file (struct attach_fuse *f)
{
  struct stat st;
  int fd;

  if (clear_dead_mount (f->path) == -1)
    return -1;
  if (stat (f->path, &st) == 0) {
    if (!S_ISREG (st.st_mode))
      return df_error (EINVAL, "%s is not a regular file (--file names the "
                       "file to show the disk as)", f->path);
    return check_not_mounted (f->path, &st);
  }
  if (errno != ENOENT)
    return df_error_errno ("%s", f->path);
  fd = open (f->path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
  if (fd == -1)
    return df_error_errno ("creating %s", f->path);
  close (fd);
  f->created = true;
  return 0;
}

struct attach_fuse *
attach_fuse_mount (struct df_bdev *b, const char *path, bool readonly)
{
  struct attach_fuse *f = calloc (1, sizeof *f);
  char *argv[] = { (char *) "diskfarm-attach", (char *) "-o", NULL, NULL };
  char opts[256];
  struct fuse_args args = FUSE_ARGS_INIT (3, argv);

  if (f == NULL) {
    df_error_errno ("FUSE file");
    return NULL;
  }
  f->b = b;
  f->readonly = readonly;
  clock_gettime (CLOCK_REALTIME, &f->start);
  f->path = realpath (path, NULL);
  if (f->path == NULL && errno == ENOENT)
    f->path = strdup (path);
  if (f->path == NULL) {
    df_error_errno ("%s", path);
    goto err;
  }
  if (prepare_file (f) == -1)
    goto err;
  snprintf (opts, sizeof opts, "fsname=diskfarm,subtype=diskfarm,"
            "default_permissions,max_read=%d%s", MAX_IO,
            geteuid () == 0 ? ",allow_other" : "");
  argv[2] = opts;
  f->se = fuse_session_new (&args, &ops, sizeof ops, f);
  fuse_opt_free_args (&args);
  if (f->se == NULL) {
    df_error (EIO, "%s: cannot start a FUSE session", f->path);
    goto err;
  }
  if (fuse_session_mount (f->se, f->path) == -1) {
    df_error (EIO, "%s: cannot mount the FUSE file (is /dev/fuse there?)",
              f->path);
    goto err;
  }
  return f;
 err:
  attach_fuse_free (f);
  return NULL;
}

static void
wake_handler (int sig)
{
  (void) sig;
}

int
attach_fuse_run (struct attach_fuse *f)
{
  struct fuse_loop_config *cfg = fuse_loop_cfg_create ();
  struct sigaction sa = { .sa_handler = wake_handler };
  int r;

  if (cfg == NULL)
    return df_error (ENOMEM, "FUSE loop");
  /* attach_fuse_stop interrupts the loop's wait with SIGUSR1. */
  sigemptyset (&sa.sa_mask);
  sigaction (SIGUSR1, &sa, NULL);
  f->loop_thread = pthread_self ();
  __atomic_store_n (&f->running, true, __ATOMIC_RELEASE);
  fuse_loop_cfg_set_clone_fd (cfg, 0);
  fuse_loop_cfg_set_max_threads (cfg, MAX_THREADS);
  fuse_loop_cfg_set_idle_threads (cfg, MAX_THREADS);
  r = fuse_session_loop_mt (f->se, cfg);
  __atomic_store_n (&f->running, false, __ATOMIC_RELEASE);
  fuse_loop_cfg_destroy (cfg);
  if (r < 0)
    return df_error (-r, "%s: FUSE loop: %m", f->path);
  return 0;
}

void
attach_fuse_stop (struct attach_fuse *f)
{
  int i;

  fuse_session_exit (f->se);
  /* The loop may miss a signal sent just before it waits: send a few. */
  for (i = 0; i < 20 && __atomic_load_n (&f->running, __ATOMIC_ACQUIRE); i++) {
    pthread_kill (f->loop_thread, SIGUSR1);
    usleep (50000);
  }
}

void
attach_fuse_free (struct attach_fuse *f)
{
  if (f == NULL)
    return;
  if (f->se) {
    fuse_session_unmount (f->se);
    fuse_session_destroy (f->se);
  }
  if (f->created)
    unlink (f->path);
  free (f->path);
  free (f);
}
