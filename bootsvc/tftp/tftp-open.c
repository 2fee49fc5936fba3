/* diskfarm — opening a client's file inside the served root. */
#include <config.h>

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <linux/openat2.h>
#include <stdbool.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "cleanup.h"
#include "error.h"
#include "tftp/tftp-int.h"

/* O_NONBLOCK: opening a FIFO must not hang the event loop. */
#define OPEN_FLAGS (O_RDONLY | O_NONBLOCK | O_NOCTTY | O_CLOEXEC)

static int
symlink_error (void)
{
  return df_error (ELOOP, "the path goes through a symbolic link");
}

/* Opens the directory comp inside at, not through a symlink. */
static int
open_dir (int at, const char *comp)
{
  int fd = openat (at, comp, O_PATH | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
  struct stat st;

  if (fd >= 0)
    return fd;
  /* O_PATH | O_NOFOLLOW on a symlink fails with ENOTDIR: say why. */
  if (errno == ENOTDIR && fstatat (at, comp, &st, AT_SYMLINK_NOFOLLOW) == 0
      && S_ISLNK (st.st_mode))
    return symlink_error ();
  return df_error (errno, "open: %m");
}

int
tftp_open_walk (int dirfd, const char *path)
{
  CLEANUP_CLOSE int dir = -1;
  char comp[NAME_MAX + 1];
  int at = dirfd, fd;

  for (;;) {
    size_t n;

    path += strspn (path, "/");
    n = strcspn (path, "/");
    if (n > NAME_MAX)
      return df_error (ENAMETOOLONG, "open: %m");
    memcpy (comp, n ? path : ".", n ? n : 1);
    comp[n ? n : 1] = '\0';
    if (strcmp (comp, "..") == 0)
      return df_error (EACCES, "the path contains \"..\"");
    path += n;
    if (path[strspn (path, "/")] == '\0')
      break;
    if ((fd = open_dir (at, comp)) == -1)
      return -1;
    if (dir >= 0)
      close (dir);
    at = dir = fd;
  }
  fd = openat (at, comp, OPEN_FLAGS | O_NOFOLLOW);
  if (fd == -1 && errno == ELOOP)
    return symlink_error ();
  if (fd == -1)
    return df_error (errno, "open: %m");
  return fd;
}

int
tftp_open_in_root (int dirfd, const char *path)
{
  static bool no_openat2;
  struct open_how how = {
    .flags = OPEN_FLAGS,
    .resolve = RESOLVE_IN_ROOT | RESOLVE_NO_SYMLINKS | RESOLVE_NO_MAGICLINKS,
  };
  int fd, tries = 0;

  if (no_openat2)
    return tftp_open_walk (dirfd, path);
  /* EAGAIN: a rename in the tree raced the lookup; try again. */
  do
    fd = syscall (SYS_openat2, dirfd, path, &how, sizeof how);
  while (fd == -1 && (errno == EAGAIN || errno == EINTR) && ++tries < 8);
  if (fd == -1 && errno == ENOSYS) {
    no_openat2 = true;
    return tftp_open_walk (dirfd, path);
  }
  if (fd == -1 && errno == ELOOP)
    return symlink_error ();
  if (fd == -1)
    return df_error (errno, "open: %m");
  return fd;
}
