/* slowfs — a deliberately slow pass-through FUSE file system for tests.
 *
 *   slowfs [--delay MS] [--hold FILE] [--log FILE] SOURCE MOUNTPOINT
 *
 * Mirrors SOURCE at MOUNTPOINT (in the foreground, multithreaded; stop it
 * with fusermount3 -u).  Every operation first waits while FILE exists
 * (--hold: the test decides when a blocked open may go on), writing
 * "held OP PATH" to the log the first time an operation is held, then
 * sleeps MS milliseconds (--delay).  A store or cache directory on it
 * makes one device's open take as long as the test wants.
 */
#define FUSE_USE_VERSION 31

#include <config.h>

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <fuse.h>
#include <getopt.h>
#include <limits.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <time.h>
#include <unistd.h>

static int root = -1;
static unsigned delay_ms;
static const char *hold_file;
static FILE *log_file;
static pthread_mutex_t log_lock = PTHREAD_MUTEX_INITIALIZER;

/* "/a/b" -> "a/b", "/" -> "." (relative to root). */
static const char *
rel (const char *path)
{
  return path[1] ? path + 1 : ".";
}

static void
slow (const char *op, const char *path)
{
  struct timespec ts = { delay_ms / 1000, (delay_ms % 1000) * 1000000L };
  bool logged = false;

  while (hold_file && access (hold_file, F_OK) == 0) {
    if (!logged && log_file) {
      pthread_mutex_lock (&log_lock);
      fprintf (log_file, "held %s %s\n", op, path);
      fflush (log_file);
      pthread_mutex_unlock (&log_lock);
      logged = true;
    }
    usleep (10000);
  }
  if (delay_ms)
    nanosleep (&ts, NULL);
}

#define ERR(r) ((r) == -1 ? -errno : 0)

static int
sf_getattr (const char *path, struct stat *st, struct fuse_file_info *fi)
{
  slow ("getattr", path);
  if (fi)
    return ERR (fstat (fi->fh, st));
  return ERR (fstatat (root, rel (path), st, AT_SYMLINK_NOFOLLOW));
}

static int
sf_readdir (const char *path, void *buf, fuse_fill_dir_t fill, off_t off,
            struct fuse_file_info *fi, enum fuse_readdir_flags flags)
{
  int fd;
  DIR *d;
  struct dirent *de;

  (void) off;
  (void) fi;
  (void) flags;
  slow ("readdir", path);
  fd = openat (root, rel (path), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (fd == -1)
    return -errno;
  d = fdopendir (fd);
  if (d == NULL) {
    close (fd);
    return -errno;
  }
  while ((de = readdir (d)) != NULL)
    if (fill (buf, de->d_name, NULL, 0, 0))
      break;
  closedir (d);
  return 0;
}

static int
sf_mkdir (const char *path, mode_t mode)
{
  slow ("mkdir", path);
  return ERR (mkdirat (root, rel (path), mode));
}

static int
sf_unlink (const char *path)
{
  slow ("unlink", path);
  return ERR (unlinkat (root, rel (path), 0));
}

static int
sf_rmdir (const char *path)
{
  slow ("rmdir", path);
  return ERR (unlinkat (root, rel (path), AT_REMOVEDIR));
}

static int
sf_rename (const char *from, const char *to, unsigned int flags)
{
  slow ("rename", from);
  if (flags)
    return -EINVAL;
  return ERR (renameat (root, rel (from), root, rel (to)));
}

static int
sf_chmod (const char *path, mode_t mode, struct fuse_file_info *fi)
{
  slow ("chmod", path);
  if (fi)
    return ERR (fchmod (fi->fh, mode));
  return ERR (fchmodat (root, rel (path), mode, 0));
}

static int
sf_truncate (const char *path, off_t size, struct fuse_file_info *fi)
{
  int fd, r;

  slow ("truncate", path);
  if (fi)
    return ERR (ftruncate (fi->fh, size));
  fd = openat (root, rel (path), O_WRONLY | O_CLOEXEC);
  if (fd == -1)
    return -errno;
  r = ERR (ftruncate (fd, size));
  close (fd);
  return r;
}

static int
sf_utimens (const char *path, const struct timespec tv[2],
            struct fuse_file_info *fi)
{
  slow ("utimens", path);
  if (fi)
    return ERR (futimens (fi->fh, tv));
  return ERR (utimensat (root, rel (path), tv, AT_SYMLINK_NOFOLLOW));
}

static int
sf_open (const char *path, struct fuse_file_info *fi)
{
  int fd;

  slow ("open", path);
  fd = openat (root, rel (path), fi->flags & ~O_NOFOLLOW);
  if (fd == -1)
    return -errno;
  fi->fh = fd;
  return 0;
}

static int
sf_create (const char *path, mode_t mode, struct fuse_file_info *fi)
{
  int fd;

  slow ("create", path);
  fd = openat (root, rel (path), fi->flags, mode);
  if (fd == -1)
    return -errno;
  fi->fh = fd;
  return 0;
}

static int
sf_read (const char *path, char *buf, size_t size, off_t off,
         struct fuse_file_info *fi)
{
  ssize_t r;

  slow ("read", path);
  r = pread (fi->fh, buf, size, off);
  return r == -1 ? -errno : (int) r;
}

static int
sf_write (const char *path, const char *buf, size_t size, off_t off,
          struct fuse_file_info *fi)
{
  ssize_t r;

  slow ("write", path);
  r = pwrite (fi->fh, buf, size, off);
  return r == -1 ? -errno : (int) r;
}

static int
sf_statfs (const char *path, struct statvfs *st)
{
  slow ("statfs", path);
  return ERR (fstatvfs (root, st));
}

static int
sf_release (const char *path, struct fuse_file_info *fi)
{
  (void) path;
  close (fi->fh);
  return 0;
}

static int
sf_fsync (const char *path, int datasync, struct fuse_file_info *fi)
{
  slow ("fsync", path);
  return ERR (datasync ? fdatasync (fi->fh) : fsync (fi->fh));
}

static int
sf_fallocate (const char *path, int mode, off_t off, off_t len,
              struct fuse_file_info *fi)
{
  slow ("fallocate", path);
  return ERR (fallocate (fi->fh, mode, off, len));
}

static const struct fuse_operations ops = {
  .getattr = sf_getattr,
  .readdir = sf_readdir,
  .mkdir = sf_mkdir,
  .unlink = sf_unlink,
  .rmdir = sf_rmdir,
  .rename = sf_rename,
  .chmod = sf_chmod,
  .truncate = sf_truncate,
  .utimens = sf_utimens,
  .open = sf_open,
  .create = sf_create,
  .read = sf_read,
  .write = sf_write,
  .statfs = sf_statfs,
  .release = sf_release,
  .fsync = sf_fsync,
  .fallocate = sf_fallocate,
};

static void
usage (void)
{
  fprintf (stderr, "usage: slowfs [--delay MS] [--hold FILE] [--log FILE] "
           "SOURCE MOUNTPOINT\n");
  exit (2);
}

int
main (int argc, char **argv)
{
  static const struct option longopts[] = {
    { "delay", required_argument, NULL, 'd' },
    { "hold", required_argument, NULL, 'h' },
    { "log", required_argument, NULL, 'l' },
    { NULL, 0, NULL, 0 },
  };
  char *fargv[] = { argv[0], "-f", "-o", "fsname=slowfs", NULL, NULL };
  int c;

  while ((c = getopt_long (argc, argv, "", longopts, NULL)) != -1)
    switch (c) {
    case 'd': delay_ms = atoi (optarg); break;
    case 'h': hold_file = optarg; break;
    case 'l':
      log_file = fopen (optarg, "a");
      if (log_file == NULL) {
        perror (optarg);
        return 1;
      }
      break;
    default: usage ();
    }
  if (optind + 2 != argc)
    usage ();
  root = open (argv[optind], O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (root == -1) {
    perror (argv[optind]);
    return 1;
  }
  fargv[4] = argv[optind + 1];
  return fuse_main (5, fargv, &ops, NULL);
}
