/* diskfarm — device sessions: what dev/DEVICE@SESSION means, for every
 * front end (nbdkit, FUSE, the gateway's figures).
 *
 * A session is a device's view of its vDisk through its write cache
 * (DESIGN.md "Write cache rules").  Opening DEVICE@SESSION resolves the
 * device in the farm: its vDisk, the version its type boots (or the one
 * a resumed disk cache was made on), the write cache mode and limit, and
 * opens the chain and the cache.  All openers of one DEVICE@SESSION share
 * one session and one cache (multi-conn); the session "0" is what a tool
 * gets when it names no session.
 *
 * Rules:
 *   linger     When the last user closes, the session stays for
 *              `linger` seconds: a RAM cache in memory; a disk cache is
 *              spilled, flushed and closed, so that this or another
 *              server with the same cache directory can resume it.
 *   resume     Opening a lingering (or, for disk caches, any) session
 *              again finds its data, on the version it was made on.
 *   supersede  A new session of a device discards the device's other
 *              sessions and their cache files as soon as nobody uses
 *              them.  Session "0" supersedes nothing.
 *   private    A private vDisk (or a maintenance device) has no cache:
 *              the session writes the vDisk's maintenance version, made
 *              if there is none; one device at a time.
 *   device     Cache mode "device": the export is read-only.
 *
 * Cache files: CACHEDIR/DEVICE/sessions/SESSION.layer for sessions, and
 * CACHEDIR/DEVICE/persistent.layer for a persistent cache, which no
 * session name can reach.  CACHEDIR is the plugin's cache-dir, else the
 * vDisk's STORE/caches.
 *
 * Concurrency: opening, resuming, parking and discarding do their file
 * I/O outside the set's lock.  A session being opened (or resumed, or
 * parked, or ended) makes only the openers of that same DEVICE@SESSION
 * wait; everybody else goes on.  One exception within a device: a new
 * session of a persistent or private device waits until the device's
 * previous session has let go of the file they share.
 */
#ifndef DISKFARM_SESSION_H
#define DISKFARM_SESSION_H

#include <stdbool.h>
#include <stdint.h>

#include "bdev/bdev.h"
#include "cache/cache.h"
#include "farm/farm.h"
#include "session/farmstate.h"
#include "util.h"

/* Per-session counters, updated on the I/O path with relaxed atomics.
 * Only uint64_t fields, so that a publisher can place them in shared
 * memory (see counters_alloc below) and readers load them atomically.
 */
struct df_session_counters {
  uint64_t read_bytes;
  uint64_t read_requests;
  uint64_t write_bytes;         /* writes, zeroes and trims */
  uint64_t write_requests;
  uint64_t errors;              /* failed requests of any kind */
  uint64_t cache_full;          /* writes refused with ENOSPC */
};

struct df_session;

struct df_sessions_params {
  struct df_farmstate *farm;    /* not owned; outlives the set */
  const char *cache_dir;        /* NULL: STORE/caches of the vDisk (copied) */
  uint64_t device_limit;        /* per device when its spec names none */
  uint64_t ram_limit;           /* RAM per ram+disk cache before spilling */
  unsigned linger;              /* seconds a closed session stays */
  struct df_cache_budget *budget;   /* shared by all caches; may be NULL */
  df_log_fn log;                /* may be NULL */
  void *log_opaque;
  /* Where a session's counters live.  alloc is called when a session
   * is being opened (no lock held; it may block, delaying only that
   * session) and returns zeroed counters, or NULL: the open then fails
   * with ENOMEM.  free is called when the session is gone.  Both NULL:
   * calloc and free.
   */
  struct df_session_counters *(*counters_alloc) (void *opaque,
                                                 const char *device,
                                                 const char *session);
  void (*counters_free) (void *opaque, struct df_session_counters *c);
  void *counters_opaque;
};

struct df_sessions;

/* NULL with a message. */
struct df_sessions *df_sessions_new (const struct df_sessions_params *p);
/* Starts the thread that ends sessions whose linger time is over (a
 * server calls it once it runs; until then sessions only end when
 * superseded or at df_sessions_free).
 */
int df_sessions_start (struct df_sessions *set);
/* Stops that thread and parks and frees every session: disk caches stay
 * on disk for a restarted or another server.  Every session must have
 * been closed.  NULL is fine.
 */
void df_sessions_free (struct df_sessions *set);

/* Opens, joins or resumes DEVICE@SESSION for one user (one NBD
 * connection).  client is the user's address, for the figures (may be
 * NULL).  Returns NULL with errno and a message: EINVAL for a bad name,
 * ENOENT for an unknown device or a vDisk without a bootable version,
 * EBUSY for a session in use on another server or a private vDisk in use
 * by another device.
 */
struct df_session *df_session_open (struct df_sessions *set,
                                    const char *device, const char *session,
                                    const char *client);
/* One user is done.  NULL is fine. */
void df_session_close (struct df_session *s);

/* The session's device: counts every request into the counters, and
 * logs the first ENOSPC of the session (cache full).  Valid until the
 * user's df_session_close.
 */
struct df_bdev *df_session_bdev (struct df_session *s);
bool df_session_readonly (const struct df_session *s);

/* "device D session S: vdisk V version N, write cache M vdisk=V
 * version=N hash=HEX" (hash= only for a sealed version), the tail being
 * what clients parse (nbdkit-diskfarm-plugin(1)).  Caller frees; NULL
 * with a message.
 */
char *df_session_describe (const struct df_session *s);

/* A session counts as booting for its first DF_SESSION_BOOT_SECONDS or
 * its first DF_SESSION_BOOT_BYTES read, whichever ends first.
 */
#define DF_SESSION_BOOT_SECONDS 180
#define DF_SESSION_BOOT_BYTES (UINT64_C (256) << 20)

enum df_session_state {
  DF_SESSION_BOOTING,
  DF_SESSION_ACTIVE,
  DF_SESSION_LINGERING,         /* nobody connected; kept to resume */
};
const char *df_session_state_name (enum df_session_state st);

struct df_session_figures {
  char device[DF_NAME_MAX + 1];
  char session[DF_NAME_MAX + 1];
  char export_name[2 * DF_NAME_MAX + 6];    /* dev/DEVICE@SESSION */
  uint64_t id;                  /* unique in this process */
  char client[64];              /* of the latest user; "" if none given */
  unsigned connections;
  uint64_t connected_since_ns;  /* wall clock, first opened here */
  struct df_session_counters counters;
  /* Where the session's counters live (what counters_alloc gave), so
   * that a publisher finds its slot; valid while s is held.
   */
  const struct df_session_counters *counters_at;
  enum df_cache_mode cache_mode;
  uint64_t cache_used;          /* bytes counted against the limit */
  uint64_t cache_limit;         /* 0: none */
  char vdisk[DF_NAME_MAX + 1];
  unsigned version;
  enum df_session_state state;
};

/* A consistent copy of one session's figures (counters read atomically
 * one by one).  s must be held (open) or be given by df_sessions_foreach.
 */
void df_session_figures (struct df_session *s, struct df_session_figures *out);

/* Calls fn with the figures of every session that is open or lingering
 * (not those still opening).  Stops at fn returning -1 and returns -1.
 */
int df_sessions_foreach (struct df_sessions *set,
                         int (*fn) (void *opaque,
                                    const struct df_session_figures *f),
                         void *opaque);

#endif
