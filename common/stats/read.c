/* diskfarm — reading the session figures of every publisher (see
 * stats.h).
 */
#include <config.h>

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "cleanup.h"
#include "error.h"
#include "stats/stats-int.h"
#include "util.h"

#define SEQ_TRIES 100

/* A consistent copy of a slot; false if it is free (or keeps changing). */
static bool
copy_slot (const struct stats_slot *slot, struct df_stats_session *out)
{
  int i;

  for (i = 0; i < SEQ_TRIES; i++) {
    uint64_t s1 = __atomic_load_n (&slot->seq, __ATOMIC_ACQUIRE), s2;
    bool used;

    if (s1 & 1)
      continue;
    used = __atomic_load_n (&slot->in_use, __ATOMIC_RELAXED) == SLOT_PUBLISHED;
    if (used)
      stats_copy_words (&out->id, &slot->id, sizeof out->id);
    __atomic_thread_fence (__ATOMIC_ACQUIRE);
    s2 = __atomic_load_n (&slot->seq, __ATOMIC_RELAXED);
    if (s1 != s2)
      continue;
    if (!used)
      return false;
    stats_copy_words (out->words, slot->words, sizeof out->words);
    /* Strings are trusted only up to their buffers. */
    out->id.device[sizeof out->id.device - 1] = '\0';
    out->id.export_name[sizeof out->id.export_name - 1] = '\0';
    out->id.session[sizeof out->id.session - 1] = '\0';
    out->id.client[sizeof out->id.client - 1] = '\0';
    out->id.vdisk[sizeof out->id.vdisk - 1] = '\0';
    out->id.cache_mode[sizeof out->id.cache_mode - 1] = '\0';
    return true;
  }
  return false;
}

static int
read_file (int fd, int (*fn) (const struct df_stats_session *, void *),
           void *opaque)
{
  size_t len = stats_file_size ();
  const struct stats_file *f;
  struct df_stats_session s;
  struct stat st;
  size_t i;
  int r = 0;

  if (fstat (fd, &st) == -1 || (size_t) st.st_size < len)
    return 0;                   /* not ours, or another format */
  f = mmap (NULL, len, PROT_READ, MAP_SHARED, fd, 0);
  if (f == MAP_FAILED)
    return 0;
  if (memcmp (f->header.magic, STATS_MAGIC, 8) == 0 &&
      f->header.format == STATS_FORMAT &&
      f->header.slot_size == sizeof (struct stats_slot) &&
      f->header.nslots == DF_STATS_SLOTS &&
      f->header.header_size == sizeof (struct stats_header))
    for (i = 0; i < DF_STATS_SLOTS && r == 0; i++) {
      memset (&s, 0, sizeof s);
      if (copy_slot (&f->slots[i], &s)) {
        s.pid = f->header.pid;
        r = fn (&s, opaque);
      }
    }
  munmap ((void *) f, len);
  return r;
}

/* 1 if the publisher of the file at path is alive, 0 if the file was
 * left behind (and is removed now, if this reader may: the directory's
 * permissions decide; a dead file is never shown either way), -1 if it
 * cannot be told.  A new publisher of the same pid may have renamed
 * its file over the dead one meanwhile: only the file read is removed.
 */
static int
alive (const char *path, int fd)
{
  struct stat a, b;

  if (flock (fd, LOCK_SH | LOCK_NB) == -1)
    return errno == EWOULDBLOCK ? 1 : -1;
  if (fstat (fd, &a) == 0 && lstat (path, &b) == 0 &&
      a.st_dev == b.st_dev && a.st_ino == b.st_ino)
    unlink (path);
  flock (fd, LOCK_UN);
  return 0;
}

static bool
is_stats_name (const char *name)
{
  size_t n = strlen (name);

  return strncmp (name, "nbdkit-", 7) == 0 && n > 13 &&
    strcmp (name + n - 6, ".stats") == 0;
}

int
df_stats_read (const char *dir,
               int (*fn) (const struct df_stats_session *, void *),
               void *opaque)
{
  DIR *d = opendir (dir);
  struct dirent *de;
  int r = 0;

  if (d == NULL)
    return errno == ENOENT ? 0 : df_error_errno ("%s", dir);
  while (r == 0 && (de = readdir (d)) != NULL) {
    CLEANUP_FREE char *path = NULL;
    int fd;

    if (!is_stats_name (de->d_name) ||
        (path = df_path_join (dir, de->d_name)) == NULL)
      continue;
    fd = open (path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
    if (fd == -1)
      continue;
    if (alive (path, fd) == 1)
      r = read_file (fd, fn, opaque);
    close (fd);
  }
  closedir (d);
  return r;
}

const char *
df_stats_state_name (uint32_t state)
{
  static const char *const names[] = { "booting", "active", "lingering" };

  return state < 3 ? names[state] : "unknown";
}
