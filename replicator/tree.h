/* diskfarm-replicator — one tree, the farm directory or a store, synced
 * from its source: the manifests of the source and of the peers that
 * carry the tree (fetched at once; only the source's is required), the
 * local scan, the plan, its execution; again, every second, while big
 * files wait for a peer (fan-out), each at most its wait limit without
 * a new holder appearing (sync.h).
 */
#ifndef DISKFARM_REPL_TREE_H
#define DISKFARM_REPL_TREE_H

#include <stdbool.h>

#include "farm/farm.h"
#include "report.h"
#include "sync.h"

struct repl_tree_spec {
  const struct repl_opts *o;
  struct df_farm *farm;
  struct repl_report *report;
  const char *self;             /* this server */
  const char *source;           /* the server to pull from */
  const char *store;            /* the store; NULL: the farm directory */
};

/* Syncs the tree whose directory here is root; reports through
 * spec->report (begin, errors, end).  True if it ended identical.
 */
bool repl_tree_sync (const struct repl_tree_spec *spec, const char *root);

#endif
