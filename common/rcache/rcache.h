/* diskfarm — a read cache of versions on a host (what PVS Accelerator
 * does on a hypervisor): blocks read from a read-only device below
 * (the NBD upstream of a version) are kept in a directory, and later
 * reads of them come from there.
 *
 * Keyed by the version's content hash: a block is only ever found for
 * the version it was read from, so a new version never reads stale
 * blocks, and every process on the host that attaches the same version
 * shares the blocks.  The directory holds one data file of SIZE bytes
 * in 64 KiB chunks (each with a valid bit per 4 KiB block) and an index
 * mapped by every process that uses it; the least recently used chunk
 * makes room.  Kept across restarts; after a reboot that did not let
 * the last user close it, the index starts empty (the data file may
 * not have reached the disk).
 *
 * Between processes: a robust process-shared mutex in the index guards
 * it (held for index updates only, never across file I/O); a process
 * that dies holding it leaves the next one an empty index.  flock on
 * DIR/lock orders opening and closing; a shared flock on the index says
 * who uses it.  A chunk being filled is pinned; readers check after
 * reading that the chunk was not reused meanwhile.
 *
 * The device is read-only: writes fail with EROFS (an overlay above
 * takes them).
 */
#ifndef DISKFARM_RCACHE_H
#define DISKFARM_RCACHE_H

#include <stdint.h>

#include "bdev/bdev.h"
#include "hash/hash.h"

#define DF_RCACHE_CHUNK (64 * 1024)

struct df_rcache_params {
  const char *dir;              /* made if missing */
  uint64_t size;                /* bytes of data; the first user of the
                                   directory sets it */
  const uint8_t *version_hash;  /* DF_HASH_LEN bytes: the key */
};

/* Stacks a read cache on lower (not owned: it must outlive it). */
struct df_bdev *df_rcache_open (struct df_bdev *lower,
                                const struct df_rcache_params *p);

struct df_rcache_stats {
  uint64_t size;                /* bytes of data (may differ from the
                                   size asked for: see above) */
  uint64_t used;                /* bytes in chunks holding blocks */
  uint64_t hits, misses;        /* reads of this process, by chunk part */
  uint64_t evictions;           /* of every process */
};
void df_rcache_stats (struct df_bdev *b, struct df_rcache_stats *out);

#endif
