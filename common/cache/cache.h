/* diskfarm — device write caches: copy-on-write over a read-only device.
 *
 * A write cache is a block device stacked on the device's version (a
 * chain): reads of blocks the device never wrote go to the chain; writes
 * stay in the cache.  The cache works in 4 KiB blocks whatever the
 * vDisk's block size, so a 4 KiB write never costs a read-modify-write of
 * a larger block.
 *
 * Modes (DESIGN.md "Write cache rules"):
 *   ram         blocks in RAM
 *   disk        blocks in a layer file (docs/layer-format.md) whose parent
 *               is the version; FLUSH and FUA are durable
 *   ram+disk    RAM first, up to ram_limit.  A spiller thread keeps free
 *               RAM ready: when less than 1/8 of the budget is free it
 *               writes the least recently used blocks to the layer file
 *               until 1/4 is free again.  Writers never wait for it: a
 *               write that finds no free RAM goes to the file directly.
 *               A block is never dropped before its newest data is in
 *               the file.  FLUSH and FUA make what is in the file durable;
 *               df_cache_spill puts everything there.
 *   persistent  like disk; the file outlives the session
 * The layer file binds to the version's id and content hash, so a cache
 * can only be resumed on the version it was made on.
 *
 * Size limits: `limit` bytes per cache (blocks holding data, in RAM or on
 * disk, counted once) and a budget shared by every cache of a server.  A
 * write that needs more than is left fails with ENOSPC before anything is
 * written; reads keep working and nothing written before is touched.
 * Every failure reaches the caller: of the request itself, or of a
 * background write, at the next flush.
 *
 * Zeroing whole 4 KiB blocks only marks them; with DF_FAST_ZERO a zero
 * request that covers part of a block fails with ENOTSUP instead of
 * writing zeros.
 */
#ifndef DISKFARM_CACHE_H
#define DISKFARM_CACHE_H

#include <stdbool.h>
#include <stdint.h>

#include "bdev/bdev.h"
#include "farm/farm.h"
#include "hash/hash.h"
#include "layer/layer.h"

#define DF_CACHE_BLOCK 4096

/* Bytes shared by all caches of a server (atomic). */
struct df_cache_budget {
  uint64_t limit;               /* 0: none */
  uint64_t used;
};

struct df_cache_params {
  enum df_cache_mode mode;      /* RAM, DISK, RAM_DISK or PERSISTENT */
  uint64_t limit;               /* bytes, 0 = none */
  uint64_t ram_limit;           /* ram+disk: bytes of RAM before spilling */
  const char *path;             /* layer file for the disk modes */
  /* The version below: binds a disk cache to it. */
  const uint8_t *parent_id;
  const uint8_t *parent_hash;
  struct df_cache_budget *budget;   /* may be NULL */
};

/* Stacks a cache on lower (not owned: it must outlive the cache).  For
 * disk modes an existing file at path is resumed if it was made on this
 * parent, and refused otherwise; a missing one is created.  Returns NULL
 * with a message.
 */
struct df_bdev *df_cache_open (struct df_bdev *lower,
                               const struct df_cache_params *params);

struct df_cache_stats {
  uint64_t ram_blocks;          /* blocks held in RAM */
  uint64_t disk_blocks;         /* blocks held in the layer file only */
  uint64_t used_bytes;          /* counted against the limits */
  uint64_t enospc;              /* writes refused for lack of space */
  uint64_t spilled;             /* ram+disk: blocks the spiller wrote out */
  uint64_t bypassed;            /* ram+disk: blocks written to the file
                                   directly, RAM being full */
  uint64_t spill_errors;        /* background failures */
};
void df_cache_stats (struct df_bdev *cache, struct df_cache_stats *out);

/* Writes every RAM block to the layer file (ram+disk) and flushes it, so
 * that the file alone holds the cache: df_cache_open on it resumes, here
 * or in another process.  The RAM stays mapped for further writes.
 */
int df_cache_spill (struct df_bdev *cache);

/* The same without waiting for the disk (df_layer_save), for a server
 * stop: a later open in the same boot resumes everything; after a crash
 * of the host, the file holds the cache as of its last flush.
 */
int df_cache_save (struct df_bdev *cache);

#endif
