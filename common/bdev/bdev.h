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

#include <errno.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* Request flags. */
#define DF_FUA        1u        /* durable before returning */
#define DF_MAY_TRIM   2u        /* zero: may deallocate */
#define DF_FAST_ZERO  4u        /* zero: fail with ENOTSUP unless cheap */

/* Device flags. */
#define DF_BDEV_RDONLY 1u
#define DF_BDEV_NATIVE_FUA 2u   /* FUA costs less than a flush */
#define DF_BDEV_ASYNC 4u        /* pread_async runs reads while the caller
                                   goes on (else before it returns) */

/* Extent types (the NBD base:allocation bits). */
#define DF_EXTENT_HOLE 1u
#define DF_EXTENT_ZERO 2u

struct df_bdev;

/* One read of a batch (df_bdev_pread_many). */
struct df_bdev_read {
  void *buf;
  uint32_t count;
  uint64_t offset;
  int error;                    /* out: 0 or an errno */
};

/* Asynchronous reads (df_bdev_pread_async).  The caller fills buf,
 * count, offset and aio; the device sets error and tells aio.
 */
struct df_bdev_aio;
struct df_bdev_aread {
  void *buf;
  uint32_t count;
  uint64_t offset;
  int error;                    /* out: 0 or an errno */
  struct df_bdev_aio *aio;      /* told when the read is done */
  /* The device's own while it runs the read: */
  struct df_bdev_aread *next;
  uint64_t cookie;
};

struct df_bdev_aio {
  /* Reads that are done, each with its error set, in groups: once per
   * read, from any thread, maybe before pread_async returns.  It runs
   * on the device's I/O thread: it must not wait for another read.
   */
  void (*done) (struct df_bdev_aio *aio, struct df_bdev_aread **a,
                size_t n);
};

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
  /* Optional: n reads at once, so that a device below that can overlap
   * them (the NBD upstream sends them together) does.  Returns 0 if all
   * succeeded, else -1 with each read's error set.
   */
  int (*pread_many) (struct df_bdev *b, struct df_bdev_read *r, size_t n);
  /* Optional: starts n reads and returns; each is told to its aio when
   * done (errors included: it cannot fail otherwise).  A device sets
   * DF_BDEV_ASYNC when its reads do overlap with the caller's work.
   */
  void (*pread_async) (struct df_bdev *b, struct df_bdev_aread **a, size_t n);
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

static inline int
df_bdev_pread_many (struct df_bdev *b, struct df_bdev_read *r, size_t n)
{
  size_t i;
  int rv = 0;

  if (b->ops->pread_many)
    return b->ops->pread_many (b, r, n);
  for (i = 0; i < n; i++) {
    r[i].error = df_bdev_pread (b, r[i].buf, r[i].count, r[i].offset) == -1
      ? errno : 0;
    if (r[i].error)
      rv = -1;
  }
  return rv;
}

/* Tells each read's aio it is done, in groups of the same aio. */
void df_bdev_aio_complete (struct df_bdev_aread **a, size_t n);

/* Without a pread_async op the reads run before it returns. */
static inline void
df_bdev_pread_async (struct df_bdev *b, struct df_bdev_aread **a, size_t n)
{
  size_t i;

  if (b->ops->pread_async) {
    b->ops->pread_async (b, a, n);
    return;
  }
  for (i = 0; i < n; i++)
    a[i]->error = df_bdev_pread (b, a[i]->buf, a[i]->count, a[i]->offset)
      == -1 ? errno : 0;
  df_bdev_aio_complete (a, n);
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
