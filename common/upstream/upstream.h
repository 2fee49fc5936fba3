/* diskfarm — the NBD upstream: a block device served by farm servers,
 * with failover (libnbd).
 *
 * df_upstream_open connects to the first server (in the order the rank
 * hook gives, else list order) that serves the export, with several
 * connections when the export allows multi-conn, and checks what it
 * serves: the export description's tail "vdisk=NAME version=N hash=HEX"
 * (nbdkit-diskfarm-plugin(1)).  Each request takes a free connection
 * of the round; asynchronous reads (pread_async, DF_BDEV_ASYNC) are
 * streamed over the one a pump thread keeps (pump.c).
 *
 * Failover: a connection is dead when libnbd says so (reset, end of
 * file), when a request has had no reply for io_timeout seconds, or when
 * the server answers ESHUTDOWN (it is going away).  Then every
 * connection to that server is dropped, and a supervisor thread
 * reconnects — to another server only if failover to other servers is
 * allowed (df_upstream_allow_failover), and only to one that serves an
 * identical replica (same size, read-only flag and content hash);
 * otherwise to the same server.  Requests that were in flight, and new
 * ones, wait and are sent again there: callers see a pause, not an
 * error, for up to dead_timeout seconds (0: for ever).
 *
 * No acknowledged write is lost when the server dies: every write,
 * zero and trim that succeeded is kept (a copy of the data) until a
 * FLUSH that covers it succeeds, and is replayed, in order, on the next
 * server before anything else goes there.  When the kept data passes
 * replay_limit bytes, the writer that passed it sends a FLUSH itself.
 * This protects the server-side write caches whose FLUSH is durable on
 * storage every server reaches; whether the device has one is the
 * caller's decision (it allows failover or not).
 *
 * Thread safety: every df_bdev call may run on many threads at once.
 * Messages (failovers, pauses) go to params->log.
 */
#ifndef DISKFARM_UPSTREAM_H
#define DISKFARM_UPSTREAM_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "bdev/bdev.h"
#include "hash/hash.h"
#include "util.h"

#define DF_UPSTREAM_MAX_SERVERS 16
#define DF_UPSTREAM_MAX_CONNECTIONS 16
#define DF_UPSTREAM_DEFAULT_PORT 10809

enum df_upstream_log { DF_UP_ERROR, DF_UP_WARNING, DF_UP_INFO, DF_UP_DEBUG };

struct df_upstream_params {
  const char *export_name;      /* e.g. dev/DEVICE@SESSION */
  /* "HOST", "HOST:PORT", "[IPv6]:PORT" or "unix:PATH" */
  const char *const *servers;
  size_t nservers;
  unsigned connections;         /* wanted (1 if the export forbids more) */
  unsigned connect_timeout;     /* s, per connection attempt */
  unsigned io_timeout;          /* s; 0: a slow server is never dead */
  unsigned dead_timeout;        /* s requests wait for a server; 0: for ever */
  uint64_t replay_limit;        /* bytes of unflushed writes kept */
  /* Fills order[0..n-1] with server indexes, best first (called before
   * each connection round, from the supervisor thread).  NULL: list
   * order.
   */
  void (*rank) (void *opaque, size_t *order, size_t n);
  void (*log) (void *opaque, enum df_upstream_log level, const char *msg);
  void *opaque;
};

/* What the first server said the export is. */
struct df_upstream_info {
  char *description;            /* may be NULL */
  bool has_identity;            /* the tail below was there */
  char vdisk[DF_NAME_MAX + 1];
  unsigned version;
  uint8_t hash[DF_HASH_LEN];
  bool readonly;
  bool multi_conn;
};

/* Connects (trying each server once, in rank order) and returns the
 * device; NULL with a message naming each server's failure.
 */
struct df_bdev *df_upstream_open (const struct df_upstream_params *p);

const struct df_upstream_info *df_upstream_info (struct df_bdev *b);

/* Lets a failover go to any listed server with an identical replica
 * (default: only back to the server in use).
 */
void df_upstream_allow_failover (struct df_bdev *b, bool any_server);

/* Requests waiting for a server fail with ESHUTDOWN from now on (those
 * a server has are answered as usual): to detach while no server
 * answers.
 */
void df_upstream_interrupt (struct df_bdev *b);

/* The server in use now ("HOST:PORT"), into buf. */
const char *df_upstream_server (struct df_bdev *b, char *buf, size_t len);

struct df_upstream_stats {
  uint64_t failovers;           /* connection rounds lost */
  uint64_t last_pause_ns;       /* from the loss to the next server */
  uint64_t replayed;            /* writes sent again after a failover */
  uint64_t unflushed_bytes;     /* kept for replay now */
  unsigned connections;
};
void df_upstream_stats (struct df_bdev *b, struct df_upstream_stats *out);

/* ---- pure helpers (identity.c) ---- */

/* Parses the tail "vdisk=NAME version=N hash=HEX" at the end of an
 * export description into info's identity fields; 0 if present and
 * well formed, -1 otherwise (no message: a description without it is
 * normal).
 */
int df_upstream_parse_identity (const char *desc, struct df_upstream_info *out);

/* A server address: host (IPv6 without brackets) and port (as
 * df_address_split reads them, default 10809), or "unix:PATH" (then
 * port is 0).  -1 with a message on bad input.
 */
struct df_upstream_addr {
  char host[256];
  unsigned port;
  char path[108];
};
int df_upstream_parse_addr (const char *s, struct df_upstream_addr *out);

#endif
