/* diskfarm — leaving the page cache as it was found (see pagecache.h). */
#include <config.h>

#include <fcntl.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "pagecache.h"

struct df_cache_snap {
  int fd;                       /* our own: a dup */
  uint64_t start;               /* page-aligned */
  size_t npages;
  unsigned char *resident;      /* mincore's vector: bit 0 per page */
};

struct df_cache_snap *
df_cache_snapshot (int fd, uint64_t offset, uint64_t len)
{
  struct df_cache_snap *s = calloc (1, sizeof *s);
  uint64_t page = sysconf (_SC_PAGESIZE), span;
  void *map = MAP_FAILED;

  if (s == NULL)
    return NULL;
  s->fd = fcntl (fd, F_DUPFD_CLOEXEC, 0);
  if (s->fd == -1) {
    free (s);
    return NULL;
  }
  s->start = offset / page * page;
  span = offset + len - s->start;
  s->npages = (span + page - 1) / page;
  if (len == 0 || span > SIZE_MAX / 2)
    return s;                   /* nothing known: nothing dropped */
  s->resident = calloc (s->npages, 1);
  if (s->resident)
    map = mmap (NULL, span, PROT_READ, MAP_SHARED, s->fd, s->start);
  if (map == MAP_FAILED || mincore (map, span, s->resident) == -1) {
    /* Unknown: keep everything rather than drop a device's pages. */
    free (s->resident);
    s->resident = NULL;
  }
  if (map != MAP_FAILED)
    munmap (map, span);
  return s;
}

void
df_cache_restore (struct df_cache_snap *s)
{
  uint64_t page = sysconf (_SC_PAGESIZE);
  size_t i = 0;

  if (s == NULL)
    return;
  while (s->resident && i < s->npages) {
    size_t j = i;
    if (s->resident[i] & 1) {
      i++;
      continue;
    }
    while (j < s->npages && !(s->resident[j] & 1))
      j++;
    posix_fadvise (s->fd, s->start + i * page, (j - i) * page,
                   POSIX_FADV_DONTNEED);
    i = j;
  }
}

void
df_cache_release (struct df_cache_snap *s)
{
  if (s == NULL)
    return;
  df_cache_restore (s);
  close (s->fd);
  free (s->resident);
  free (s);
}

void
df_cache_drop (int fd)
{
  posix_fadvise (fd, 0, 0, POSIX_FADV_DONTNEED);
}
