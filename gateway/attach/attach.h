/* diskfarm-gateway attach — a farm disk on a client: shared between the
 * command's files.
 */
#ifndef DISKFARM_GATEWAY_ATTACH_H
#define DISKFARM_GATEWAY_ATTACH_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "bdev/bdev.h"
#include "upstream/upstream.h"

/* ---- attach-main.c, run.c ---- */

struct attach_opts {
  const char *export;           /* dev/DEVICE[@SESSION], img/VDISK[@N] */
  const char *servers, *farm;
  const char *file, *nbd_socket;
  const char *overlay;
  const char *read_cache;
  const char *pid_file;
  unsigned connections, connect_timeout, io_timeout, dead_timeout;
  uint64_t replay_limit, read_cache_size;
  bool shared_cache, read_only, verbose;
};

/* Attaches, serves until a signal, detaches: 0 or -1 (reported). */
int attach_run (const struct attach_opts *o);

/* dev/DEVICE[@SESSION] or img/VDISK[@VERSION], names checked; -1 with
 * a message.
 */
int attach_export_check (const char *export);

/* ---- policy.c: what the stack is, from what the server said ---- */

struct attach_facts {
  bool readonly;                /* the server exports it read-only */
  bool has_identity;            /* its description names a content hash */
  const char *mode;             /* its write cache mode; NULL: not said */
  bool shared;                  /* server caches on storage all servers see */
  bool overlay;                 /* --overlay given */
  bool read_cache;              /* --read-cache given */
  bool want_readonly;           /* --read-only */
};

struct attach_plan {
  bool overlay;                 /* writes go to the local overlay */
  bool read_cache;
  bool readonly;                /* presented read-only */
  bool failover;                /* to any server with an identical replica */
  char why[200];                /* why failover is safe, or is not */
};

/* Decides the plan; -1 with a message if the options do not fit the
 * device.  Pure: no I/O.
 */
int attach_plan (const struct attach_facts *f, struct attach_plan *out);

/* The write cache mode named in an export description ("... write
 * cache MODE ..."), into buf; NULL if none is named.
 */
const char *attach_desc_cache_mode (const char *desc, char *buf, size_t len);

/* ---- fuse-file.c: the --file front end ---- */

struct attach_fuse;
/* Mounts a FUSE file at path (created if missing, removed at the end if
 * it was) serving b.  A dead FUSE mount left there by a killed attach
 * is cleared first.  NULL with a message.
 */
struct attach_fuse *attach_fuse_mount (struct df_bdev *b, const char *path,
                                       bool readonly);
/* Serves requests until attach_fuse_stop (or an unmount); returns then. */
int attach_fuse_run (struct attach_fuse *f);
/* From any thread (signal handling): ends attach_fuse_run. */
void attach_fuse_stop (struct attach_fuse *f);
void attach_fuse_free (struct attach_fuse *f);

/* ---- load.c: the servers' load figures from their gateways ---- */

struct attach_load;
/* Asks the gateways of the farm's servers names[0..n-1] (the farm's
 * token and CA) for their load every few seconds, in a thread.  NULL
 * with a message.
 */
struct attach_load *attach_load_start (const char *farm_dir,
                                       const char *const *names, size_t n);
/* An upstream rank hook: least loaded first; servers whose load is
 * unknown after those, in list order.
 */
void attach_load_rank (void *opaque, size_t *order, size_t n);
/* Waits up to ms for a first answer from every server. */
void attach_load_wait (struct attach_load *l, unsigned ms);
void attach_load_stop (struct attach_load *l);

/* Pure: orders by load (negative: unknown), stable. */
void attach_rank_by_load (const double *load, size_t *order, size_t n);

/* ---- farm.c: servers from a farm directory ---- */

struct attach_servers {
  char *nbd[DF_UPSTREAM_MAX_SERVERS];     /* "HOST:PORT", "unix:PATH" */
  char *name[DF_UPSTREAM_MAX_SERVERS];    /* in the farm; NULL: a list */
  size_t n;
  bool shared;                  /* every store of the farm is shared */
};
/* Reads farm.conf of dir: its servers and whether the stores (so the
 * default cache directories) are shared.
 */
int attach_servers_from_farm (const char *dir, struct attach_servers *out);
/* From --servers HOST:PORT,... */
int attach_servers_from_list (const char *list, struct attach_servers *out);
void attach_servers_free (struct attach_servers *s);

#endif
