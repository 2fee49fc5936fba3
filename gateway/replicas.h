/* diskfarm — comparing the replicas that servers report (their
 * /v1/vdisks documents), for diskfarm status.  Pure: no network, no
 * farm; fuzzed with arbitrary documents (fuzz-gw-json.c), unit-tested from
 * a table (test-replicas.c).
 */
#ifndef DISKFARM_REPLICAS_H
#define DISKFARM_REPLICAS_H

#include <stdbool.h>
#include <stddef.h>

#include <jansson.h>

/* The verdict on one version across the servers that carry its store,
 * from best to worst.
 */
enum replica_verdict {
  VERDICT_IDENTICAL,            /* same size, mtime and hash everywhere */
  VERDICT_INCOMPLETE,           /* some copy is shorter, or unsealed */
  VERDICT_DIFFERS,              /* copies differ, or one failed its check */
  VERDICT_MISSING,              /* some server lacks it */
};

const char *replica_verdict_name (enum replica_verdict v);

struct replica_server {
  const char *name;
  json_t *vdisks;               /* its /v1/vdisks document; NULL: unknown */
};

/* Does server carry store?  (The farm decides.) */
typedef bool (*replica_holds_fn) (void *opaque, const char *server,
                                  const char *store);

/* One row per sealed version of every vDisk any server reports:
 *   {"vdisk", "store", "version", "state", "replicas": VERDICT,
 *    "checking": true while a copy's hash is still being checked,
 *    "pending": [NAME...] the servers that do not hold it identical (yet)
 *               to the copy most servers hold,
 *    "servers": {NAME: {"replica", "size", "mtime_ns", "hash",
 *                       "verified"} or {"replica": "missing"}}}
 * sorted by vDisk and version.  Servers with an unknown document are
 * left out of the verdicts.  *worst receives the worst verdict
 * (VERDICT_IDENTICAL when there is nothing to compare).  Never fails on
 * a malformed document: what cannot be read counts as missing.
 */
json_t *replicas_compare (const struct replica_server *servers, size_t n,
                          replica_holds_fn holds, void *opaque,
                          enum replica_verdict *worst);

#endif
