/* diskfarm-replicator — file I/O that leaves the page cache alone, and
 * content hashes of files.
 *
 * A server that replicates is usually streaming vDisks at the same time;
 * its page cache holds what its devices read.  Replication reads big
 * files (hashes, delta signatures) and writes big files (new layers):
 * what it reads is dropped afterwards unless it was cached before (a
 * layer a device is reading keeps its pages), and what it writes is
 * dropped once it is durable (posix_fadvise DONTNEED).
 */
#ifndef DISKFARM_REPL_IO_H
#define DISKFARM_REPL_IO_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/stat.h>
#include <sys/types.h>

#include "hash/hash.h"
#include "manifest.h"

/* Which pages of [0, size) of fd are in the page cache now. */
struct repl_cache_snap;
struct repl_cache_snap *repl_cache_snapshot (int fd, uint64_t size);
/* Drops the pages that were not cached at the snapshot, and frees it.
 * NULL is fine.  Never fails (dropping is advice).
 */
void repl_cache_release (struct repl_cache_snap *s);

/* Drops the pages of a file written here, once it is durable. */
void repl_cache_drop (int fd);

/* Modification time of a stat result in nanoseconds. */
uint64_t repl_mtime_ns (const struct stat *st);
uint64_t repl_ctime_ns (const struct stat *st);

/* The replication hash of the file at path: the layer content hash
 * (docs/layer-format.md, through common/layer) for a layer, SHA-256 of
 * the bytes otherwise.  Leaves the page cache as it found it.
 */
int repl_hash_file (const char *path, enum repl_kind kind,
                    uint8_t hash[DF_HASH_LEN]);

#endif
