/* diskfarm — a block device in RAM, for tests of the stack. */
#include <config.h>

#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "bdev/bdev.h"
#include "error.h"
#include "util.h"

struct mem_bdev {
  struct df_bdev bdev;
  uint8_t *data;
};

static int
mem_pread (struct df_bdev *b, void *buf, uint32_t count, uint64_t offset)
{
  struct mem_bdev *m = (struct mem_bdev *) b;

  memcpy (buf, m->data + offset, count);
  return 0;
}

static int
mem_pwrite (struct df_bdev *b, const void *buf, uint32_t count,
            uint64_t offset, uint32_t flags)
{
  struct mem_bdev *m = (struct mem_bdev *) b;

  (void) flags;
  memcpy (m->data + offset, buf, count);
  return 0;
}

static int
mem_flush (struct df_bdev *b)
{
  (void) b;
  return 0;
}

static int
mem_zero (struct df_bdev *b, uint32_t count, uint64_t offset, uint32_t flags)
{
  struct mem_bdev *m = (struct mem_bdev *) b;

  (void) flags;
  memset (m->data + offset, 0, count);
  return 0;
}

static int
mem_extents (struct df_bdev *b, uint32_t count, uint64_t offset,
             df_extent_fn fn, void *opaque)
{
  struct mem_bdev *m = (struct mem_bdev *) b;
  uint32_t type = df_is_zero (m->data + offset, count) ? DF_EXTENT_ZERO : 0;

  return fn (opaque, offset, count, type);
}

static void
mem_close (struct df_bdev *b)
{
  struct mem_bdev *m = (struct mem_bdev *) b;

  free (m->data);
  free (m);
}

static const struct df_bdev_ops mem_ops = {
  .name = "mem",
  .pread = mem_pread,
  .pwrite = mem_pwrite,
  .flush = mem_flush,
  .zero = mem_zero,
  .trim = mem_zero,
  .extents = mem_extents,
  .close = mem_close,
};

struct df_bdev *
df_mem_bdev_new (uint64_t size)
{
  struct mem_bdev *m = calloc (1, sizeof *m);

  if (m == NULL || (m->data = calloc (1, size ? size : 1)) == NULL) {
    free (m);
    df_error_errno ("memory device of %ju bytes", (uintmax_t) size);
    return NULL;
  }
  m->bdev.ops = &mem_ops;
  m->bdev.size = size;
  return &m->bdev;
}

int
df_bdev_for_blocks (uint64_t size, uint32_t bs, const char *data,
                    uint32_t count, uint64_t offset, df_whole_fn whole,
                    df_partial_fn partial, void *opaque)
{
  while (count > 0) {
    uint64_t b = offset / bs;
    uint32_t within = offset % bs, len;
    uint64_t n = within ? 0 : count / bs;

    if (!within && count % bs && offset + count == size)
      n++;
    if (n > 0) {
      len = n * bs > count ? count : n * bs;
      if (whole (opaque, data, b, n) == -1)
        return -1;
    }
    else {
      len = bs - within < count ? bs - within : count;
      if (partial && partial (opaque, b, data, len, within) == -1)
        return -1;
    }
    if (data)
      data += len;
    offset += len;
    count -= len;
  }
  return 0;
}
