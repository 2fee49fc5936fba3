/* diskfarm-replicator — the staging area of a replicated tree (a store
 * or the farm directory), and what it remembers between runs.
 *
 *   ROOT/.replicator/lock          flock: one sync of ROOT at a time
 *   ROOT/.replicator/staging/      files on their way in: HASH.part
 *                                  (downloads, resumable), HASH.delta
 *                                  (patch output, not resumable)
 *   ROOT/.replicator/hashes.json   content hashes of the files here, by
 *                                  path, valid while inode, size, mtime
 *                                  and ctime are unchanged
 *
 * The staging directory is inside ROOT so that a commit is a rename on
 * one file system, and outside vdisks/ so that no reader (plugin,
 * gateway, CLI) ever sees a staged file.  Staged files never carry the
 * source's mtime: it is set just before the rename, after the hash
 * check.
 *
 * Hashes (ctime cannot be set by a user, so a replica changed in any
 * way, even with its mtime put back, is hashed again) save rehashing
 * every layer on every run.  Losing the file costs one rehash.
 */
#ifndef DISKFARM_REPL_STAGE_H
#define DISKFARM_REPL_STAGE_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/stat.h>

#include "hash/hash.h"
#include "manifest.h"

struct repl_stage;

/* Opens (creating) ROOT/.replicator and takes its lock.  If another
 * sync holds it: wait, or fail with EWOULDBLOCK and a message.
 */
struct repl_stage *repl_stage_open (const char *root, bool wait);
/* Saves the hashes (if they changed) and releases the lock.  NULL ok. */
void repl_stage_close (struct repl_stage *st);
int repl_stage_save (struct repl_stage *st);

const char *repl_stage_root (const struct repl_stage *st);
/* ROOT/PATH (caller frees). */
char *repl_stage_live_path (const struct repl_stage *st, const char *path);
/* The staged file for f: staging/HASH.SUFFIX (caller frees). */
char *repl_stage_file_path (const struct repl_stage *st,
                            const struct repl_file *f, const char *suffix);

/* The remembered hash of path if st (its stat now) matches the record. */
bool repl_stage_known_hash (struct repl_stage *st, const char *path,
                            const struct stat *now, uint8_t hash[DF_HASH_LEN]);
void repl_stage_remember (struct repl_stage *st, const char *path,
                          const struct stat *now,
                          const uint8_t hash[DF_HASH_LEN]);
void repl_stage_forget (struct repl_stage *st, const char *path);
/* Forgets every remembered hash (--verify: hash everything again). */
void repl_stage_forget_all (struct repl_stage *st);

/* Removes staged files whose hash is not in keep (n hashes): what no
 * plan wants any more.  Errors are ignored (it is tidying).
 */
void repl_stage_tidy (struct repl_stage *st, const uint8_t (*keep)[DF_HASH_LEN],
                      size_t n);

#endif
