/* diskfarm — removing a vDisk from its store (see vdisk.h). */
#include <config.h>

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include "cleanup.h"
#include "error.h"
#include "util.h"
#include "vdisk/vdisk.h"

/* The exclusive locks of a vDisk's layer files, held while it goes. */
struct held {
  int *fds;
  size_t n;
};

static void
held_release (struct held *h)
{
  size_t i;

  for (i = 0; i < h->n; i++)
    close (h->fds[i]);
  free (h->fds);
}

static bool
is_layer_name (const char *name)
{
  size_t n = strlen (name);

  return n > 6 && strcmp (name + n - 6, ".layer") == 0;
}

/* Takes one layer's lock exclusive, without waiting.  Every open layer
 * holds a lock on its file (common/layer: readers shared, a writer
 * exclusive), so failing here means someone has it open.
 */
static int
hold_layer (struct held *h, int dirfd, const char *file, const char *name)
{
  int fd = openat (dirfd, file, O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
  int *n;

  if (fd == -1)
    return df_error_errno ("%s", file);
  if (flock (fd, LOCK_EX | LOCK_NB) == -1) {
    int e = errno;
    close (fd);
    if (e == EWOULDBLOCK)
      return df_error (EBUSY, "vdisk \"%s\" is in use: its layer %s is open "
                       "(a device streaming it, its editor, or an export or "
                       "verify, on this server or another sharing the store); "
                       "stop them first", name, file);
    errno = e;
    return df_error_errno ("lock %s", file);
  }
  n = realloc (h->fds, (h->n + 1) * sizeof *n);
  if (n == NULL) {
    close (fd);
    return df_error_errno ("%s", file);
  }
  h->fds = n;
  h->fds[h->n++] = fd;
  return 0;
}

static int
hold_layers (struct held *h, const char *dir, const char *name)
{
  DIR *d = opendir (dir);
  struct dirent *de;
  int r = 0;

  if (d == NULL)
    return df_error_errno ("%s", dir);
  while (r == 0 && (de = readdir (d)) != NULL)
    if (is_layer_name (de->d_name))
      r = hold_layer (h, dirfd (d), de->d_name, name);
  closedir (d);
  return r;
}

/* Renames the vDisk directory to a hidden name (loaders and listings
 * see it gone at once), then deletes that.  A removal killed half-way
 * leaves STORE/vdisks/.remove-NAME.XXXXXX behind, invisible to diskfarm.
 */
static int
remove_dir (const char *store, const char *name, const char *dir)
{
  CLEANUP_FREE char *vdisks = df_path_join (store, "vdisks");
  CLEANUP_FREE char *tmp = NULL;

  if (vdisks == NULL ||
      asprintf (&tmp, "%s/.remove-%s.XXXXXX", vdisks, name) == -1) {
    tmp = NULL;
    return df_error_errno ("%s", dir);
  }
  if (mkdtemp (tmp) == NULL)
    return df_error_errno ("%s", tmp);
  /* rename(2) replaces the empty directory. */
  if (rename (dir, tmp) == -1) {
    df_error_errno ("rename %s to %s", dir, tmp);
    rmdir (tmp);
    return -1;
  }
  if (df_fsync_dir (vdisks) == -1)
    return -1;
  return df_remove_tree (tmp);
}

int
df_vdisk_remove (const char *store, const char *name)
{
  CLEANUP_CLOSE int lock = df_vdisk_lock (store, name);
  CLEANUP_FREE char *dir = NULL;
  struct held h = { NULL, 0 };
  int r;

  if (lock == -1)
    return -1;
  if (asprintf (&dir, "%s/vdisks/%s", store, name) == -1) {
    dir = NULL;
    return df_error_errno ("%s", name);
  }
  /* With every layer held, nobody can open one until the files are
   * gone (a reader that opened one just before checks, once it holds
   * its lock, that the file still has a name).
   */
  r = hold_layers (&h, dir, name);
  if (r == 0)
    r = remove_dir (store, name, dir);
  held_release (&h);
  return r;
}
