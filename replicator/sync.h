/* diskfarm-replicator — one sync: the farm directory from the farm's
 * config-server (unless --store narrows it to one store), then every
 * store this server carries from the source (--from, else the
 * config-server).  Shared stores are never copied: every server sees
 * the same files.
 *
 * Per tree: the manifests of the source and of the peers that carry the
 * tree, the local scan, the plan, its execution; again while big files
 * wait for a peer (fan-out), at most fanout_wait seconds (plus the
 * file's transfer time at 100 MiB/s) without a new holder appearing,
 * after which they come from any holder.
 */
#ifndef DISKFARM_REPL_SYNC_H
#define DISKFARM_REPL_SYNC_H

#include <stdbool.h>
#include <stdint.h>

struct repl_opts {
  const char *farm_dir;
  const char *server;           /* --server, or NULL */
  const char *store;            /* --store, or NULL: all */
  const char *from;             /* --from, or NULL: the config-server */
  uint64_t bwlimit;             /* bytes/s, 0: none */
  unsigned jobs;                /* concurrent transfers */
  unsigned fanout_wait;         /* seconds */
  bool fanout_rounds;           /* --fanout rounds: no relays */
  uint64_t delta_min, fanout_min;
  bool dry_run, json, verbose, verify, allow_empty, quiet, progress;
};

/* Runs one sync; returns the exit status (0 all identical now, 1 some
 * tree failed, 2 on bad usage or an unusable farm).
 */
int repl_sync (const struct repl_opts *o);

struct df_farm;
/* Does a sync of all stores copy this one (not shared, carried by this
 * server and the source)?
 */
bool repl_store_wanted (const struct df_farm *farm, const char *self,
                        const char *source, const char *store);

#endif
