/* diskfarm-replicator — timestamps and content hashes of files; the
 * hashes leave the page cache as they found it (common/util/pagecache.h).
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
