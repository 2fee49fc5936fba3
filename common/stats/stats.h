/* diskfarm — live figures of device sessions, published by the nbdkit
 * plugin and read by the gateway, without a copy on the I/O path.
 *
 * Each publishing process owns one file, DIR/nbdkit-PID.stats (DIR on a
 * tmpfs such as /run: the file is shared memory), holding a table of
 * fixed slots, one per session.  A slot has two parts:
 *
 *   counters  DF_STATS_WORDS 64-bit words that the session updates in
 *             place on its I/O path with relaxed atomic adds (the
 *             publisher hands them to the session as its counters);
 *   identity  device, export, client, vDisk, cache, connections, state...
 *             rewritten by the publisher when they change (once a
 *             second at most), under a sequence counter that readers
 *             check, so that they never see half of one.
 *
 * The publisher holds an exclusive flock on its file for as long as it
 * lives: a reader that can take a lock on it knows the publisher is gone
 * (killed, crashed) and removes the file, so a dead nbdkit's sessions
 * disappear.  A file is created under a hidden name and renamed once
 * locked and filled, so no reader ever sees it unlocked while alive.
 * Several nbdkit processes on one server each have their file; the
 * reader shows them all.
 */
#ifndef DISKFARM_STATS_H
#define DISKFARM_STATS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "session/session.h"

#define DF_STATS_DIR "/run/diskfarm"
#define DF_STATS_SLOTS 1024     /* sessions per publishing process */
#define DF_STATS_WORDS 16       /* counter words per session */

/* The counter words, in this order (the format: a publisher lays its
 * counters out so); the rest are zero.
 */
enum df_stats_word {
  DF_STATS_READ_BYTES,
  DF_STATS_READ_REQUESTS,
  DF_STATS_WRITE_BYTES,         /* writes, zeroes and trims */
  DF_STATS_WRITE_REQUESTS,
  DF_STATS_ERRORS,              /* requests that failed */
  DF_STATS_CACHE_FULL,          /* writes refused with ENOSPC */
};

enum df_stats_state {
  DF_STATS_BOOTING,
  DF_STATS_ACTIVE,
  DF_STATS_LINGERING,           /* no connection: kept for a reconnect */
};

/* What the publisher says of a session; strings NUL-terminated. */
struct df_stats_identity {
  char device[65];
  char export_name[160];
  char session[65];
  char client[64];              /* the client's address, "" if unknown */
  char vdisk[65];
  char cache_mode[16];
  uint32_t version;
  uint32_t state;               /* enum df_stats_state */
  uint32_t connections;
  uint64_t since_ns;            /* connected since (CLOCK_REALTIME) */
  uint64_t cache_bytes;         /* write cache in use */
  uint64_t cache_limit;         /* 0: none */
};

/* ---- publishing (one per process) ---- */

struct df_stats_pub;

/* Creates DIR/nbdkit-PID.stats (and DIR, mode 0755).  NULL with a
 * message.
 */
struct df_stats_pub *df_stats_pub_open (const char *dir);
/* Removes the file.  Counter words handed out are invalid afterwards. */
void df_stats_pub_close (struct df_stats_pub *pub);
/* A slot for a new session known to the publisher as key: its counter
 * words, zeroed.  Readers do not see it until its first
 * df_stats_update.  NULL (errno ENOSPC) when every slot is taken: the
 * caller keeps its counters elsewhere, unpublished.  Thread-safe.
 */
uint64_t *df_stats_claim (struct df_stats_pub *pub, uint64_t key);
/* The counter words of the slot claimed for key, or NULL. */
uint64_t *df_stats_find (struct df_stats_pub *pub, uint64_t key);
/* Are these the counter words of one of pub's slots?  (NULL pub: no.) */
bool df_stats_holds (const struct df_stats_pub *pub, const uint64_t *words);
/* Publishes (or rewrites) the identity of the session whose words
 * these are (words of pub's, see df_stats_holds).  Thread-safe.
 */
void df_stats_update (struct df_stats_pub *pub, uint64_t *words,
                      const struct df_stats_identity *id);
/* Gives the slot back (the session is gone).  NULL is fine. */
void df_stats_release (struct df_stats_pub *pub, uint64_t *words);

/* ---- publishing a device-session set (publish.c) ----
 *
 * Order: new, hooks (into the set's params), df_sessions_new; start
 * once the process runs (after nbdkit forked: the file carries the pid);
 * at the end stop, df_sessions_free (which gives the slots back), free.
 */

struct df_stats_publisher;

/* log receives warnings (a full table); may be NULL.  NULL with a
 * message.
 */
struct df_stats_publisher *df_stats_publisher_new (df_log_fn log,
                                                   void *log_opaque);
/* Sets the counters hooks of p: the sessions' counters go into slots. */
void df_stats_publisher_hooks (struct df_stats_publisher *sp,
                               struct df_sessions_params *p);
/* Opens DIR/nbdkit-PID.stats and starts the thread that rewrites every
 * session's identity each interval_ms.  Until then (and if it is never
 * called: publishing off) sessions count unpublished.  -1 with a
 * message.
 */
int df_stats_publisher_start (struct df_stats_publisher *sp,
                              struct df_sessions *set, const char *dir,
                              unsigned interval_ms);
/* Publishes the identity of a session the caller holds now (a new one
 * shows at once, not at the next interval).  NULL sp is fine.
 */
void df_stats_publisher_session (struct df_stats_publisher *sp,
                                 struct df_session *s);
/* Has the thread publish every session soon (a session's user left: it
 * may be lingering now).  NULL is fine.
 */
void df_stats_publisher_poke (struct df_stats_publisher *sp);
/* Stops the thread (before df_sessions_free).  NULL is fine. */
void df_stats_publisher_stop (struct df_stats_publisher *sp);
/* Removes the file (after df_sessions_free).  NULL is fine. */
void df_stats_publisher_free (struct df_stats_publisher *sp);

/* ---- reading ---- */

struct df_stats_session {
  struct df_stats_identity id;
  uint64_t words[DF_STATS_WORDS];
  pid_t pid;                    /* of the publisher */
};

/* Calls fn for every published session of every live publisher in dir,
 * and removes the files of dead ones.  A missing dir has no sessions.
 * fn returning -1 stops the walk (and df_stats_read returns -1).
 */
int df_stats_read (const char *dir,
                   int (*fn) (const struct df_stats_session *s, void *opaque),
                   void *opaque);

const char *df_stats_state_name (uint32_t state);

#endif
