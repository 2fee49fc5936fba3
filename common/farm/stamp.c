/* diskfarm — has the farm directory changed?  One rule for every program
 * that follows the farm (the plugin, the boot service, the gateway).
 *
 * Edits are atomic renames, so each edited file gets a new inode.  A
 * stamp covers farm.conf and every device file: name, inode, size and
 * modification time in nanoseconds, so two renames within one timestamp
 * tick are both seen (the directory's own mtime would show only one).
 * A stamp taken less than a tick after the newest change it saw is
 * "unsettled": a later change within that same tick could leave every
 * field equal, so it counts as changed until a settled stamp replaces it.
 */
#include <config.h>

#include <dirent.h>
#include <fcntl.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "farm.h"
#include "util.h"

/* Generous: FAT keeps 2 s, some NFS servers 1 s; ext4 and xfs keep ns
 * but take them from a clock that advances in jiffies.
 */
#define TICK_NS (2 * UINT64_C (1000000000))

#define FNV_OFFSET UINT64_C (14695981039346656037)
#define FNV_PRIME UINT64_C (1099511628211)

static uint64_t
fnv (uint64_t h, const void *data, size_t len)
{
  const unsigned char *p = data;
  size_t i;

  for (i = 0; i < len; i++)
    h = (h ^ p[i]) * FNV_PRIME;
  return h;
}

/* Adds one file's identity; order-independent, so readdir order does
 * not matter.
 */
static void
add_file (struct df_farm_stamp *st, const char *name, const struct stat *sb)
{
  uint64_t mtime = (uint64_t) sb->st_mtim.tv_sec * 1000000000 +
    sb->st_mtim.tv_nsec;
  uint64_t ino = sb->st_ino, size = sb->st_size, h = FNV_OFFSET;

  h = fnv (h, name, strlen (name) + 1);
  h = fnv (h, &ino, sizeof ino);
  h = fnv (h, &size, sizeof size);
  h = fnv (h, &mtime, sizeof mtime);
  st->digest += h;
  st->files++;
  if (mtime > st->newest_ns)
    st->newest_ns = mtime;
}

/* A missing file has an identity too: absent. */
static void
add_path (struct df_farm_stamp *st, int dirfd, const char *name)
{
  struct stat sb;

  if (fstatat (dirfd, name, &sb, 0) == 0)
    add_file (st, name, &sb);
  else
    st->digest += fnv (FNV_OFFSET, name, strlen (name));
}

bool
df_farm_device_file (const char *name)
{
  size_t n = strlen (name);

  return name[0] != '.' && n > 5 && strcmp (name + n - 5, ".conf") == 0;
}

void
df_farm_stamp_take (const char *dir, struct df_farm_stamp *st)
{
  int dfd, ddfd;
  DIR *d;
  struct dirent *de;

  memset (st, 0, sizeof *st);
  st->taken_ns = df_now_real_ns ();
  dfd = open (dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (dfd == -1)
    return;                     /* invalid: always "changed" */
  add_path (st, dfd, "farm.conf");
  add_path (st, dfd, "devices.d");
  ddfd = openat (dfd, "devices.d", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  close (dfd);
  st->valid = true;
  if (ddfd == -1)
    return;
  d = fdopendir (ddfd);
  if (d == NULL) {
    close (ddfd);
    st->valid = false;
    return;
  }
  while ((de = readdir (d)) != NULL)
    if (df_farm_device_file (de->d_name))
      add_path (st, dirfd (d), de->d_name);
  closedir (d);
}

bool
df_farm_stamp_changed (const struct df_farm_stamp *old,
                       const struct df_farm_stamp *now)
{
  if (!old->valid || !now->valid)
    return true;
  if (old->digest != now->digest || old->files != now->files)
    return true;
  /* Unsettled: the newest change was within a tick of the stamp. */
  return old->newest_ns + TICK_NS > old->taken_ns;
}
