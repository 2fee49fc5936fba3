/* diskfarm — file I/O that leaves the page cache as it found it.
 *
 * A server that replicates (or serves replication) is usually streaming
 * vDisks at the same time; its page cache holds what its devices read.
 * Replication reads big files (hashes, delta signatures and deltas, the
 * files a gateway sends) and writes big files (new layers): what it
 * reads is dropped afterwards unless it was cached before (a layer a
 * device is reading keeps its pages), and what it writes is dropped
 * once it is durable (posix_fadvise DONTNEED).
 */
#ifndef DISKFARM_PAGECACHE_H
#define DISKFARM_PAGECACHE_H

#include <stdint.h>

/* Which pages of [offset, offset + len) of fd are in the page cache now.
 * The snapshot keeps its own descriptor of the file (a dup of fd), so fd
 * may be closed before the release.  NULL if out of memory or
 * descriptors (then nothing is dropped later).
 */
struct df_cache_snap;
struct df_cache_snap *df_cache_snapshot (int fd, uint64_t offset,
                                         uint64_t len);
/* Drops the pages of the range that were not cached at the snapshot.
 * A page still in use (a socket's buffer holds it after sendfile) stays:
 * restore again later.  NULL is fine.  Never fails (dropping is advice).
 */
void df_cache_restore (struct df_cache_snap *s);
/* df_cache_restore, and frees s.  NULL is fine. */
void df_cache_release (struct df_cache_snap *s);

/* Drops every page of a file written here, once it is durable. */
void df_cache_drop (int fd);

#endif
