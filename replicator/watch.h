/* diskfarm-replicator watch — a promote on the source reaches this
 * server within seconds.
 *
 * It syncs, then asks the source's gateway for the manifests of what it
 * replicates (the farm directory's and each store's) every interval
 * seconds, and syncs again as soon as one of them changes: a sealed
 * version, a promote (vdisk.conf), a new device.  A manifest is a few
 * kilobytes and the gateway builds it from stat and vdisk.conf, so a
 * look every 2 seconds costs the source next to nothing, needs no
 * endpoint beyond the manifests replication uses anyway, and passes any
 * proxy.  A path unit cannot do it: the change happens in another
 * server's file system.  The timer (diskfarm-replicator.timer) stays
 * the safety net for changes nobody announces, such as a damaged local
 * replica.
 *
 * The digest of the manifests is taken before each sync, so a change
 * during a sync triggers the next one.  A failed sync is tried again
 * after 10, 20, 40... seconds (at most 5 minutes), or at once when the
 * manifests change.
 */
#ifndef DISKFARM_REPL_WATCH_H
#define DISKFARM_REPL_WATCH_H

#include "sync.h"

/* Runs until killed (SIGTERM: a sync in progress stops where it is; the
 * next run resumes).  Returns 2 only for an unusable farm at start.
 */
int repl_watch (const struct repl_opts *o, unsigned interval);

#endif
