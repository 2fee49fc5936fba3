/* diskfarm-replicator — putting files in place.
 *
 * A staged file becomes live in this order, so that a crash at any
 * point leaves the old file or the new one, whole and with the right
 * mtime:
 *
 *   1. its size and content hash are checked against the source's
 *      manifest (a layer through common/layer: header, map and the
 *      content hash of docs/layer-format.md; other files SHA-256);
 *   2. the exact mtime_ns is set, and fstat confirms the file system
 *      kept it (one that rounds timestamps cannot hold replicas);
 *   3. fsync; rename over the live name; fsync of the directory;
 *   4. its pages leave the page cache.
 *
 * vdisk.conf goes in only after repl_check_vdisk_conf has seen every
 * sealed layer it names here, identical.
 */
#ifndef DISKFARM_REPL_COMMIT_H
#define DISKFARM_REPL_COMMIT_H

#include "layer/layer.h"
#include "manifest.h"
#include "stage.h"

/* Step 1 on a complete staged file (fd open on spath).  A layer's
 * content hash comes from hs if it saw the file's bytes as they were
 * written (df_layer_hasher_final: what it did not hash on the way is
 * read from the file), else from the file; hs may be NULL.
 */
int repl_verify_staged (int fd, const char *spath, const struct repl_file *f,
                        struct df_layer_hasher *hs);

/* Steps 1-4; the hash is remembered for the live path.  hs as for
 * repl_verify_staged.
 */
int repl_commit (struct repl_stage *st, int fd, const char *spath,
                 const struct repl_file *f, struct df_layer_hasher *hs);

/* A live file with the right content and another mtime: checks its hash
 * again (remembered or computed), sets the mtime, confirms, fsyncs.
 */
int repl_fix_mtime (struct repl_stage *st, const struct repl_file *f);

/* Removes a live file (and fsyncs its directory); ENOENT is fine. */
int repl_remove (struct repl_stage *st, const char *path);
/* After a vDisk's files are removed: its boot/ directories, lock file
 * and directory, if nothing else is left in them.
 */
void repl_prune_vdisk (struct repl_stage *st, const char *vdisk);

/* The live file's hash: remembered, or computed (and remembered).
 * 1 with *st_out filled, 0 if there is no such file, -1 on error.
 */
int repl_live_hash (struct repl_stage *st, const char *path,
                    enum repl_kind kind, uint8_t hash[DF_HASH_LEN],
                    struct stat *st_out);

/* The staged vdisk.conf (text) may become live: it parses, and every
 * sealed version it names has its layer here with that size, mtime and
 * content hash.
 */
int repl_check_vdisk_conf (struct repl_stage *st, const char *vdisk,
                           const char *text, size_t len);

/* This server edits the vDisk itself (a maintenance version whose layer
 * is here and is not the source's sealed layer): replication must not
 * overwrite it.  -1 with a message saying so, 0 if it may go on.
 */
int repl_check_local_edit (struct repl_stage *st, const char *vdisk,
                           const struct repl_manifest *src,
                           const char *source);

#endif
