/* diskfarm — live figures of device sessions, published by the nbdkit
 * plugin and read by the gateway, without a copy on the I/O path.
 *
 * Each publishing process owns one file, DIR/nbdkit-PID.stats (DIR on a
 * tmpfs such as /run: the file is shared memory), holding a table of
 * fixed slots, one per session.  A session's counters live in its slot
 * and are updated in place with relaxed atomic adds; its identity
 * (device, export, client...) is written once when the slot is claimed,
 * under a sequence counter that readers check.
 *
 * The publisher holds an exclusive flock on its file for as long as it
 * lives: a reader that can take a lock on it knows the publisher is gone
 * (killed, crashed) and removes the file, so a dead nbdkit's sessions
 * disappear.  A file is created under a hidden name and renamed once
 * locked and filled, so no reader ever sees it unlocked while alive.
 *
 * Several nbdkit processes on one server each have their file; the
 * reader shows them all.
 */
#ifndef DISKFARM_STATS_H
#define DISKFARM_STATS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#define DF_STATS_DIR "/run/diskfarm"
#define DF_STATS_SLOTS 1024     /* sessions per publishing process */

/* A session counts as booting during its first DF_STATS_BOOT_NS or until
 * it has read DF_STATS_BOOT_BYTES, whichever comes first.
 */
#define DF_STATS_BOOT_NS (180 * 1000000000ULL)
#define DF_STATS_BOOT_BYTES (1024ULL * 1024 * 1024)

/* Updated on the I/O path with __atomic_* RELAXED operations only. */
struct df_stats_counters {
  uint64_t connections;         /* open now */
  uint64_t bytes_read, bytes_written;
  uint64_t reads, writes;       /* requests */
  uint64_t errors;              /* requests that failed */
  uint64_t cache_bytes;         /* write cache in use */
  uint64_t cache_limit;         /* 0: none */
  uint64_t cache_full;          /* writes refused with ENOSPC */
  uint64_t spare[7];            /* room for more without a new format */
};

/* Set when the session opens; strings NUL-terminated. */
struct df_stats_identity {
  char device[65];
  char export_name[160];
  char session[65];
  char client[64];              /* the client's address, "" if unknown */
  char vdisk[65];
  char cache_mode[16];
  uint32_t version;
  uint64_t since_ns;            /* connected since (CLOCK_REALTIME) */
};

/* ---- publishing (one per process) ---- */

struct df_stats_pub;

/* Creates DIR/nbdkit-PID.stats (and DIR, mode 0755).  NULL with a
 * message.
 */
struct df_stats_pub *df_stats_pub_open (const char *dir);
/* Removes the file.  Counters handed out are invalid afterwards. */
void df_stats_pub_close (struct df_stats_pub *pub);
/* A slot for a new session: its counters, zeroed (connections too).
 * NULL (errno ENOSPC) when every slot is taken: the caller keeps its
 * counters elsewhere, unpublished.  Thread-safe.
 */
struct df_stats_counters *df_stats_claim (struct df_stats_pub *pub,
                                          const struct df_stats_identity *id);
/* Gives the slot of counters back (the session is gone).  Thread-safe. */
void df_stats_release (struct df_stats_pub *pub, struct df_stats_counters *c);

/* ---- reading ---- */

enum df_session_state {
  DF_SESSION_BOOTING,
  DF_SESSION_ACTIVE,
  DF_SESSION_LINGERING,         /* no connection: kept for a reconnect */
};

struct df_stats_session {
  struct df_stats_identity id;
  struct df_stats_counters c;
  pid_t pid;                    /* of the publisher */
};

/* Calls fn for every session published in dir by a live process, and
 * removes the files of dead ones.  A missing dir has no sessions.
 * fn returning -1 stops the walk (and df_stats_read returns -1).
 */
int df_stats_read (const char *dir,
                   int (*fn) (const struct df_stats_session *s, void *opaque),
                   void *opaque);

/* The state of a session at now_ns (CLOCK_REALTIME). */
enum df_session_state df_stats_state (const struct df_stats_session *s,
                                      uint64_t now_ns);
const char *df_session_state_name (enum df_session_state s);

#endif
