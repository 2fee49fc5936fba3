/* diskfarm — the farm as a serving process follows it, and the read-only
 * chains its exports share.  Used by the nbdkit plugin and the FUSE
 * front end alike.
 *
 * Snapshots: df_farmstate_get returns the farm as of now, read again
 * when its files changed (df_farm_stamp_changed).  A snapshot is
 * refcounted and stays valid while held, whatever reloads happen
 * meanwhile.  Nobody waits for another thread's reload: a thread that
 * sees a change reads the farm itself, and its copy becomes the current
 * one unless a copy read after it was installed first.  A farm that
 * changed but cannot be read is reported once (through the log hook),
 * and the last good one is kept.  So is a change of this server's name
 * (without a name given, the farm's rules may pick another).
 *
 * Chains: every export of one version shares one read-only chain
 * (df_farmstate_chain); it is opened by the first user and closed when
 * the last one puts it.  Layer files are opened outside any lock: two
 * first users at once each open it and one copy is kept.
 */
#ifndef DISKFARM_FARMSTATE_H
#define DISKFARM_FARMSTATE_H

#include <stdbool.h>
#include <stdint.h>

#include "bdev/bdev.h"
#include "farm/farm.h"
#include "hash/hash.h"
#include "layer/layer.h"
#include "log.h"

/* Where a library module's events go (it never prints).  msg is only
 * valid during the call.
 */
typedef void (*df_log_fn) (void *opaque, enum df_log_level level,
                           const char *msg);

struct df_farmstate_params {
  const char *dir;              /* the farm directory (copied) */
  const char *server;           /* this server's name; NULL: the farm's
                                 * choice (df_farm_local_server) */
  df_log_fn log;                /* may be NULL */
  void *log_opaque;
};

struct df_farmstate;

/* Reads the farm and finds this server in it; NULL with a message. */
struct df_farmstate *df_farmstate_new (const struct df_farmstate_params *p);
/* Every snapshot and chain must have been put.  NULL is fine. */
void df_farmstate_free (struct df_farmstate *fs);

/* A held snapshot.  farm and server are valid until df_farm_ref_put. */
struct df_farm_ref {
  const struct df_farm *farm;
  const char *server;           /* this server's name in farm */
};
/* NULL with a message only if the farm never could be read. */
struct df_farm_ref *df_farmstate_get (struct df_farmstate *fs);
/* NULL is fine. */
void df_farm_ref_put (struct df_farm_ref *ref);

/* A shared read-only chain: base..version of a vDisk. */
struct df_chain_ref {
  struct df_bdev *bdev;
  unsigned version;
  bool sealed;                  /* hash is the version's content hash */
  uint8_t id[DF_LAYER_ID_LEN];
  uint8_t hash[DF_HASH_LEN];
};
/* NULL with a message (ENOENT if the vDisk has no such version). */
struct df_chain_ref *df_farmstate_chain (struct df_farmstate *fs,
                                         const struct df_vdisk *vd,
                                         unsigned version);
/* NULL is fine. */
void df_farmstate_chain_put (struct df_farmstate *fs, struct df_chain_ref *c);

/* Calls the log hook, if any, with a formatted message. */
void df_farmstate_log (struct df_farmstate *fs, enum df_log_level level,
                       const char *fmt, ...)
  __attribute__ ((format (printf, 3, 4)));

#endif
