/* diskfarm-gateway serve — what the delta endpoint accepts as a librsync
 * signature (rsig.c).  Pure, fuzzed (fuzz-gw-rsig.c).
 */
#ifndef DISKFARM_GW_RSIG_H
#define DISKFARM_GW_RSIG_H

#include <stddef.h>
#include <stdint.h>

struct gw_rsig {
  uint32_t magic, block_len, strong_len;
  uint64_t blocks;
  uint64_t basis;               /* the basis size it describes, at most */
};

/* Checks a signature's header and length, and that its blocks are not
 * too small for the basis it describes (at least half of what
 * rs_sig_args recommends: librsync's 2 KiB default blocks over a 2 GiB
 * basis make a 36 MiB signature and a slow delta) and its strong sums
 * long enough.  -1 with a message saying what to change.
 */
int gw_rsig_check (const void *sig, size_t len, struct gw_rsig *out);

#endif
