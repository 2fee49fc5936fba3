/* diskfarm-replicator — carrying out a plan (plan.h).
 *
 * Phase by phase; within a phase, transfers run concurrently on the
 * run's engine.  An action runs only if every action of its group (its
 * vDisk; the farm directory is one group) in earlier phases succeeded:
 * a vdisk.conf never goes in before its layers, and nothing of a vDisk
 * is deleted before its new vdisk.conf is in.  A vDisk this server
 * edits itself (commit.h) is left alone with an error.  A vDisk's
 * manifest and deletions happen under its lock (df_vdisk_lock), like
 * the CLI's changes.
 */
#ifndef DISKFARM_REPL_EXEC_H
#define DISKFARM_REPL_EXEC_H

#include "plan.h"
#include "task.h"

/* Called for each failure with a full message ("PATH from SERVER:
 * what"), and for each warning (warning true).
 */
typedef void (*repl_error_fn) (void *opaque, bool warning, const char *msg);
/* Called for each file that changed here: how ("download", "delta",
 * "mtime", "delete") and from which server (NULL for local changes).
 */
typedef void (*repl_moved_fn) (void *opaque, const char *path, const char *how,
                               const char *from);

struct repl_exec_result {
  size_t failed;                /* actions that failed */
  size_t waiting;               /* WAIT actions, and those they held back */
};

int repl_exec (struct repl_run *run, const struct repl_plan *plan,
               const struct repl_manifest *src, const char *source,
               repl_error_fn err, repl_moved_fn moved, void *opaque,
               struct repl_exec_result *res);

#endif
