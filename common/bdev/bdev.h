/* diskfarm — the block-device stack.
 *
 * Every data path is a stack of small objects behind this one interface
 * (see DESIGN.md "The block-device stack"): a layer chain, a write cache
 * over it, an NBD upstream, a read cache.  The nbdkit plugin and the FUSE
 * view are thin adapters over a df_bdev.
 *
 * An implementation embeds struct df_bdev as its first member and fills
 * in ops, size and flags.  Every call may run on several threads at once
 * for different ranges; requests never go past size (the caller checks).
 * Functions return 0, or -1 with errno and a df_error message.
 */
#ifndef DISKFARM_BDEV_H
#define DISKFARM_BDEV_H

#include <stdbool.h>
#include <stdint.h>

/* Request flags. */
#define DF_FUA        1u        /* durable before returning */
#define DF_MAY_TRIM   2u        /* zero: may deallocate */
#define DF_FAST_ZERO  4u        /* zero: fail with ENOTSUP unless cheap */

/* Device flags. */
#define DF_BDEV_RDONLY 1u
#define DF_BDEV_NATIVE_FUA 2u   /* FUA costs less than a flush */

/* Extent types (the NBD base:allocation bits). */
#define DF_EXTENT_HOLE 1u
#define DF_EXTENT_ZERO 2u

struct df_bdev;

/* What df_bdev_peek found at an offset. */
struct df_bdev_peek {
  uint32_t len;                 /* bytes described: 1 to count */
  bool zero;                    /* they read as zeros */
  const void *data;             /* else: here in memory, or NULL: pread */
};

/* Called in ascending order with contiguous extents.  Returning -1
 * stops the walk (the error propagates).
 */
typedef int (*df_extent_fn) (void *opaque, uint64_t offset, uint64_t length,
                             uint32_t type);

struct df_bdev_ops {
  const char *name;
  int (*pread) (struct df_bdev *b, void *buf, uint32_t count, uint64_t offset);
  int (*pwrite) (struct df_bdev *b, const void *buf, uint32_t count,
                 uint64_t offset, uint32_t flags);
  int (*flush) (struct df_bdev *b);
  int (*zero) (struct df_bdev *b, uint32_t count, uint64_t offset,
               uint32_t flags);
  int (*trim) (struct df_bdev *b, uint32_t count, uint64_t offset,
               uint32_t flags);
  /* Describes at least the first byte of [offset, offset+count). */
  int (*extents) (struct df_bdev *b, uint32_t count, uint64_t offset,
                  df_extent_fn fn, void *opaque);
  void (*close) (struct df_bdev *b);
  /* Optional: for a front end that sends from memory without copying
   * it first.  Describes the first bytes of [offset, offset+count) as a
   * struct df_bdev_peek.  Memory handed out stays valid and unchanged
   * until close, so only read-only devices hand any out.
   */
  int (*peek) (struct df_bdev *b, uint32_t count, uint64_t offset,
               struct df_bdev_peek *out);
};

struct df_bdev {
  const struct df_bdev_ops *ops;
  uint64_t size;
  uint32_t flags;
};

static inline int
df_bdev_pread (struct df_bdev *b, void *buf, uint32_t count, uint64_t offset)
{
  return b->ops->pread (b, buf, count, offset);
}

static inline int
df_bdev_pwrite (struct df_bdev *b, const void *buf, uint32_t count,
                uint64_t offset, uint32_t flags)
{
  return b->ops->pwrite (b, buf, count, offset, flags);
}

static inline int
df_bdev_flush (struct df_bdev *b)
{
  return b->ops->flush (b);
}

static inline int
df_bdev_zero (struct df_bdev *b, uint32_t count, uint64_t offset,
              uint32_t flags)
{
  return b->ops->zero (b, count, offset, flags);
}

static inline int
df_bdev_trim (struct df_bdev *b, uint32_t count, uint64_t offset,
              uint32_t flags)
{
  return b->ops->trim (b, count, offset, flags);
}

static inline int
df_bdev_extents (struct df_bdev *b, uint32_t count, uint64_t offset,
                 df_extent_fn fn, void *opaque)
{
  return b->ops->extents (b, count, offset, fn, opaque);
}

/* Without a peek op: all of it, to be read with pread. */
static inline int
df_bdev_peek (struct df_bdev *b, uint32_t count, uint64_t offset,
              struct df_bdev_peek *out)
{
  if (b->ops->peek)
    return b->ops->peek (b, count, offset, out);
  out->len = count;
  out->zero = false;
  out->data = NULL;
  return 0;
}

/* NULL is fine. */
static inline void
df_bdev_close (struct df_bdev *b)
{
  if (b)
    b->ops->close (b);
}

/* Splits the request [offset, offset+count) of a device of size bytes
 * at block_size boundaries: runs of whole blocks go to whole(), a part
 * of a block to partial() (skipped when partial is NULL, as trims do).
 * The short last block of the device counts as whole when the request
 * reaches the end.  data advances with the request; NULL stays NULL.
 */
typedef int (*df_whole_fn) (void *opaque, const char *data, uint64_t first,
                            uint64_t n);
typedef int (*df_partial_fn) (void *opaque, uint64_t block, const char *data,
                              uint32_t len, uint32_t within);
int df_bdev_for_blocks (uint64_t size, uint32_t block_size, const char *data,
                        uint32_t count, uint64_t offset, df_whole_fn whole,
                        df_partial_fn partial, void *opaque);

/* A device in RAM, all zero to start: for unit tests of the stack. */
struct df_bdev *df_mem_bdev_new (uint64_t size);

#endif
