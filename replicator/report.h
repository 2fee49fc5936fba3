/* diskfarm-replicator — what the operator sees: progress on a terminal
 * (bytes, rate, ETA), one summary line per tree otherwise, errors as
 * they happen, and the --json report at the end.
 */
#ifndef DISKFARM_REPL_REPORT_H
#define DISKFARM_REPL_REPORT_H

#include <stdbool.h>
#include <stdint.h>

#include "plan.h"
#include "task.h"

struct repl_report;

/* progress: draw a progress line on stderr (a terminal, not --json). */
struct repl_report *repl_report_new (const char *server, const char *source,
                                     bool json, bool progress, bool quiet);
void repl_report_free (struct repl_report *r);

/* A tree ("farm" or "store NAME") starts; its figures follow. */
void repl_report_begin (struct repl_report *r, const char *tree);
/* Progress of the tree's transfers (a repl_progress_fn). */
void repl_report_progress (void *opaque, uint64_t done, uint64_t total);
/* An error or warning of the tree (a repl_error_fn). */
void repl_report_error (void *opaque, bool warning, const char *msg);
/* A file changed here (a repl_moved_fn). */
void repl_report_moved (void *opaque, const char *path, const char *how,
                        const char *from);
/* A note for the summary ("this server is the source", "dry run"). */
void repl_report_note (struct repl_report *r, const char *fmt, ...)
  __attribute__ ((format (printf, 2, 3)));
/* An action of a dry run. */
void repl_report_plan (struct repl_report *r, const struct repl_action *a);
/* The tree is done: its figures; prints its summary line. */
void repl_report_end (struct repl_report *r, const struct repl_stats *stats,
                      uint64_t wire_in, uint64_t wire_out, bool ok);

/* Prints the JSON report (with --json); returns the exit status: 0 if
 * every tree ended well, 1 otherwise.
 */
int repl_report_finish (struct repl_report *r);

#endif
