/* diskfarm-replicator — moving one file: a whole-file download or a
 * delta, from the first of its sources that works, into the staging
 * area and then into place (commit.h).
 *
 * Whole files (download.c) resume: the staged file HASH.part has the
 * final size from the start and holds what has arrived; the holes
 * (SEEK_DATA/SEEK_HOLE) are what is still missing, fetched with Range
 * requests (If-Range: the hash, so a source whose file changed answers
 * with the whole file, which is refused).  Data is written in whole
 * pages, so a kill at any moment leaves whole pages or holes.  A layer
 * fetches its header and map first and then only its present blocks:
 * a child layer of a big disk moves its data, not its holes.
 *
 * Deltas (deltatask.c) sign the basis, POST the signature and patch
 * the answer as it streams in.  A delta that turns out corrupt, or a
 * result with the wrong content hash, falls back to a whole download.
 */
#ifndef DISKFARM_REPL_TASK_H
#define DISKFARM_REPL_TASK_H

#include <stdbool.h>
#include <stdint.h>

#include "gwclient.h"
#include "plan.h"
#include "stage.h"
#include "xfer.h"

/* A merged base becomes a delta only if both layers hold this much. */
#define REPL_DELTA_MIN_DATA (1024 * 1024)

/* What one sync moved (for the summary and --json). */
struct repl_stats {
  unsigned files_downloaded, files_delta, files_mtime, files_deleted;
  unsigned files_failed, files_same;
  uint64_t bytes_files;         /* size of the files that moved */
  uint64_t bytes_saved;         /* by deltas: size minus bytes on the wire */
};

/* Shared by the tasks of one sync of one tree. */
struct repl_run {
  struct repl_engine *e;
  struct repl_stage *st;
  const char *store;            /* NULL: the farm directory */
  const struct repl_gw *gws;    /* the source and the peers */
  size_t ngws;
  struct repl_stats *stats;
  bool verbose;
  bool resume_ok;               /* the file system reports holes */
};

struct repl_task;
typedef void (*repl_task_done_fn) (void *opaque, struct repl_task *t, int r);

/* Starts moving a->file (a DOWNLOAD or DELTA action).  done runs once,
 * with 0 (committed) or -1 (the message is in repl_task_error), usually
 * from repl_engine_run, but already from here when nothing needs to
 * move: done must not free the task (free them after the run).  NULL
 * here (with a message) if it could not even start.
 */
struct repl_task *repl_task_start (struct repl_run *run,
                                   const struct repl_action *a,
                                   repl_task_done_fn done, void *opaque);
const char *repl_task_error (const struct repl_task *t);
/* How it ended up moving (a failed delta falls back to a download),
 * and from which server.
 */
bool repl_task_was_delta (const struct repl_task *t);
const char *repl_task_from (const struct repl_task *t);
/* Did its last pass come from a relay (a peer's copy still arriving)? */
bool repl_task_was_relayed (const struct repl_task *t);
/* A warning worth showing even when the task succeeded, or NULL. */
const char *repl_task_note (const struct repl_task *t);
void repl_task_free (struct repl_task *t);

/* The gateway of a server, or NULL. */
const struct repl_gw *repl_run_gw (const struct repl_run *run,
                                   const char *server);
/* "/v1/stores/STORE/WHAT/PATH" or "/v1/farm/WHAT/PATH" (caller frees). */
char *repl_run_url (const struct repl_run *run, const char *what,
                    const char *path);

/* Does the file system of the staging area report holes?  (Resuming
 * relies on SEEK_DATA; without it a partial file starts over.)
 */
bool repl_holes_work (struct repl_stage *st);

#endif
