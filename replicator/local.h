/* diskfarm-replicator — what this server holds, for the plan.
 *
 * Store: every file the source lists, and of each local vDisk its
 * vdisk.conf, its NNNN.layer files, the files under boot/ and the boot
 * files its vdisk.conf names.  Farm: farm.conf and the devices.d files.
 * Nothing else is ever listed, so nothing else is ever deleted.
 *
 * Hashes are filled where the plan needs them (repl_plan_needs_hash):
 * remembered ones are free, others are computed once and remembered.
 */
#ifndef DISKFARM_REPL_LOCAL_H
#define DISKFARM_REPL_LOCAL_H

#include "manifest.h"
#include "plan.h"
#include "stage.h"

struct repl_scan {
  struct repl_local *files;     /* sorted by path */
  size_t nfiles;
};

/* Scans the tree of st; src says which paths the source has (and
 * whether this is a farm).  Caller frees with repl_scan_free.
 */
int repl_scan (struct repl_stage *st, const struct repl_manifest *src,
               struct repl_scan *out);
/* Computes the hashes the plan needs (see above). */
int repl_scan_hash (struct repl_stage *st, const struct repl_manifest *src,
                    struct repl_scan *scan);
void repl_scan_free (struct repl_scan *s);

#endif
