/* diskfarm — full reads and writes, whole files, atomic replacement
 * (see util.h).
 */
#include <config.h>

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "cleanup.h"
#include "error.h"
#include "util.h"

/* The buffer of df_copy_file_atomic: large enough that a kernel or an
 * initrd copies in a few dozen calls, on the heap (callers are threads
 * with small stacks, and a static buffer is not reentrant).
 */
#define COPY_BUFFER (1024 * 1024)

ssize_t
df_read_full (int fd, void *buf, size_t len)
{
  char *p = buf;
  size_t got = 0;

  while (got < len) {
    ssize_t r = read (fd, p + got, len - got);
    if (r == -1 && errno == EINTR)
      continue;
    if (r == -1)
      return -1;
    if (r == 0)
      break;
    got += r;
  }
  return got;
}

ssize_t
df_pread_full (int fd, void *buf, size_t len, uint64_t off)
{
  char *p = buf;
  size_t got = 0;

  while (got < len) {
    ssize_t r = pread (fd, p + got, len - got, off + got);
    if (r == -1 && errno == EINTR)
      continue;
    if (r == -1)
      return -1;
    if (r == 0)
      break;
    got += r;
  }
  return got;
}

int
df_write_full (int fd, const void *buf, size_t len)
{
  const char *p = buf;

  while (len > 0) {
    ssize_t r = write (fd, p, len);
    if (r == -1 && errno == EINTR)
      continue;
    if (r == -1)
      return -1;
    if (r == 0) {               /* no progress and no reason: never spin */
      errno = EIO;
      return -1;
    }
    p += r;
    len -= r;
  }
  return 0;
}

int
df_pwrite_full (int fd, const void *buf, size_t len, uint64_t off)
{
  const char *p = buf;

  while (len > 0) {
    ssize_t r = pwrite (fd, p, len, off);
    if (r == -1 && errno == EINTR)
      continue;
    if (r == -1)
      return -1;
    if (r == 0) {
      errno = EIO;
      return -1;
    }
    p += r;
    len -= r;
    off += r;
  }
  return 0;
}

int
df_read_file (const char *path, size_t max, char **data, size_t *len)
{
  CLEANUP_CLOSE int fd = -1;
  CLEANUP_FREE char *buf = NULL;
  struct stat st;
  ssize_t got;

  fd = open (path, O_RDONLY | O_CLOEXEC);
  if (fd == -1)
    return df_error_errno ("%s", path);
  if (fstat (fd, &st) == -1)
    return df_error_errno ("%s", path);
  if (!S_ISREG (st.st_mode))
    return df_error (EINVAL, "%s: not a regular file", path);
  if ((uint64_t) st.st_size > max)
    return df_error (EFBIG, "%s: file is larger than %zu bytes", path, max);
  buf = malloc (st.st_size + 1);
  if (buf == NULL)
    return df_error_errno ("%s", path);
  got = df_read_full (fd, buf, st.st_size);
  if (got == -1)
    return df_error_errno ("read: %s", path);
  buf[got] = '\0';
  *data = TAKE_PTR (buf);
  if (len)
    *len = got;
  return 0;
}

int
df_fsync_dir (const char *dir)
{
  CLEANUP_CLOSE int fd = open (dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);

  if (fd == -1 || fsync (fd) == -1)
    return df_error_errno ("fsync %s", dir);
  return 0;
}

/* fsyncs the directory holding path. */
static int
fsync_parent (const char *path)
{
  CLEANUP_FREE char *dir = strdup (path);
  char *slash;

  if (dir == NULL)
    return df_error_errno ("%s", path);
  slash = strrchr (dir, '/');
  if (slash == dir)
    slash[1] = '\0';
  else if (slash)
    *slash = '\0';
  else
    strcpy (dir, ".");
  return df_fsync_dir (dir);
}

/* What goes into the temporary file: fill writes it to fd and returns 0,
 * or -1 with a message.
 */
typedef int (*fill_fn) (int fd, const char *tmp, void *opaque);

/* The one implementation of "replace a file atomically": a temporary
 * file beside path (same file system, so rename is atomic), filled,
 * given its mode, fsync'd, renamed over path; then the directory is
 * fsync'd so that the rename itself survives a crash.
 */
static int
write_atomic (const char *path, mode_t mode, fill_fn fill, void *opaque)
{
  CLEANUP_FREE char *tmp = NULL;
  int fd;

  if (asprintf (&tmp, "%s.tmp.XXXXXX", path) == -1) {
    tmp = NULL;
    return df_error_errno ("%s", path);
  }
  fd = mkostemp (tmp, O_CLOEXEC);
  if (fd == -1)
    return df_error_errno ("create temporary file for %s", path);
  if (fill (fd, tmp, opaque) == -1)
    goto fail;
  if (fchmod (fd, mode) == -1 || fsync (fd) == -1) {
    df_error_errno ("write %s", tmp);
    goto fail;
  }
  if (close (fd) == -1) {
    fd = -1;
    df_error_errno ("close %s", tmp);
    goto fail;
  }
  fd = -1;
  if (rename (tmp, path) == -1) {
    df_error_errno ("rename %s to %s", tmp, path);
    goto fail;
  }
  return fsync_parent (path);

 fail:
  if (fd >= 0)
    close (fd);
  unlink (tmp);
  return -1;
}

struct bytes {
  const void *data;
  size_t len;
};

static int
fill_bytes (int fd, const char *tmp, void *opaque)
{
  const struct bytes *b = opaque;

  if (df_write_full (fd, b->data, b->len) == -1)
    return df_error_errno ("write %s", tmp);
  return 0;
}

int
df_write_file_atomic (const char *path, const void *data, size_t len,
                      mode_t mode)
{
  struct bytes b = { data, len };

  return write_atomic (path, mode, fill_bytes, &b);
}

struct copy {
  int in;
  const char *src;
};

static int
fill_copy (int fd, const char *tmp, void *opaque)
{
  const struct copy *c = opaque;
  CLEANUP_FREE char *buf = malloc (COPY_BUFFER);
  ssize_t n;

  if (buf == NULL)
    return df_error_errno ("copy %s", c->src);
  while ((n = df_read_full (c->in, buf, COPY_BUFFER)) > 0)
    if (df_write_full (fd, buf, n) == -1)
      return df_error_errno ("write %s", tmp);
  if (n == -1)
    return df_error_errno ("read %s", c->src);
  return 0;
}

int
df_copy_file_atomic (const char *src, const char *path, mode_t mode)
{
  CLEANUP_CLOSE int in = open (src, O_RDONLY | O_CLOEXEC);
  struct copy c = { in, src };
  struct stat st;

  if (in == -1)
    return df_error_errno ("%s", src);
  if (fstat (in, &st) == -1)
    return df_error_errno ("%s", src);
  if (!S_ISREG (st.st_mode))
    return df_error (EINVAL, "%s: not a regular file", src);
  return write_atomic (path, mode, fill_copy, &c);
}
