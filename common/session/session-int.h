/* diskfarm — device sessions: what the files of common/session share.
 *
 * session.c   the set: open / join / resume / close, supersede, linger
 * resolve.c   DEVICE@SESSION to vDisk, version, cache (the file I/O)
 * account.c   the counting device, figures and descriptions
 */
#ifndef DISKFARM_SESSION_INT_H
#define DISKFARM_SESSION_INT_H

#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>

#include "session/session.h"

enum sess_state {
  SESS_OPENING,                 /* being set up or resumed by one opener */
  SESS_READY,                   /* open, or parked (lingering) */
  SESS_PARKING,                 /* the last user left; being parked */
  SESS_CLOSING,                 /* ending: its cache being closed, its file
                                 * removed; still listed, so that openers
                                 * of its name wait for the file */
  SESS_GONE,                    /* ended and off the list */
  SESS_FAILED,                  /* the opening failed; err and msg say why */
};

/* The device a user gets: forwards to the session's current device and
 * counts.
 */
struct counting {
  struct df_bdev bdev;
  struct df_session *s;
};

struct df_session {
  struct df_sessions *set;
  char device[DF_NAME_MAX + 1];
  char name[DF_NAME_MAX + 1];
  uint64_t id;

  /* Under set->lock. */
  enum sess_state state;
  unsigned refs;                /* users, and openers waiting */
  unsigned conns;               /* users with the session open */
  unsigned pins;                /* df_sessions_foreach looking at it */
  bool linked;                  /* in set->list */
  bool discard;                 /* superseded: goes when unused */
  bool remove;                  /* off the list: its cache file goes too */
  pthread_cond_t cond;          /* its state changed (with set->lock) */
  uint64_t idle_since;          /* monotonic ns when conns dropped to 0 */
  char client[64];
  int err;                      /* SESS_FAILED: errno and message */
  char *msg;
  struct df_session *next;      /* in set->list */
  struct df_session *dnext;     /* in a list of sessions to end or free */

  /* Set while SESS_OPENING by the opener; read-only afterwards. */
  struct df_cache_spec spec;
  char *dir;                    /* CACHEDIR/DEVICE */
  char *path;                   /* the cache file (disk modes) */
  struct df_chain_ref *chain;   /* the version below the cache */
  char *vdisk;
  char *vdisk_store;            /* private: the version is reopened */
  unsigned version;
  bool sealed;                  /* hash is the version's content hash */
  uint8_t hash[DF_HASH_LEN];
  bool parked;                  /* its disk cache was closed to a file */
  uint64_t since_ns;            /* wall clock, first opened */

  /* The current device; changed only by the opener or the parker.
   * bdev_lock orders that against df_session_figures reading the cache.
   */
  pthread_mutex_t bdev_lock;
  struct df_bdev *cache;        /* NULL while parked */
  struct df_bdev *private;      /* mode none: the writable version */
  struct counting counting;

  struct df_session_counters *counters;
  bool enospc_logged;           /* atomic */
};

/* Lock order: set->lock, then nothing: no other lock is taken while it
 * is held, and it is never held across file I/O, nor while logging
 * (the log hook may write to a pipe that blocks).  s->bdev_lock may be
 * held while a cache's own locks are taken (df_cache_stats); never the
 * other way round.  The farm state's locks are leaves as well.
 */
struct df_sessions {
  struct df_farmstate *farm;
  char *cache_dir;
  uint64_t device_limit, ram_limit;
  unsigned linger;
  struct df_cache_budget *budget;
  df_log_fn log;
  void *log_opaque;
  struct df_session_counters *(*counters_alloc) (void *, const char *,
                                                 const char *);
  void (*counters_free) (void *, struct df_session_counters *);
  void *counters_opaque;

  pthread_mutex_t lock;
  struct df_session *list;
  uint64_t next_id;
  pthread_cond_t changed;       /* wakes the reaper to stop */
  pthread_t reaper;
  bool reaper_running, stopping;
};

void session_log (struct df_sessions *set, enum df_log_level level,
                  const char *fmt, ...)
  __attribute__ ((format (printf, 3, 4)));

/* resolve.c */
/* Fills a new session from the farm and opens its cache (file I/O; no
 * lock held).
 */
int session_setup (struct df_session *s);
/* Opens the cache (or the writable version) of a parked session. */
int session_attach (struct df_session *s);
/* Makes a session resumable: spills and closes a disk cache, flushes and
 * closes a private version.  A RAM cache stays.
 */
void session_park (struct df_session *s);
/* Closes the session's devices and puts its chain; with remove, deletes
 * its cache file if nobody holds it (never a persistent one).  The
 * memory stays for those still holding the session.
 */
void session_release (struct df_session *s, bool remove);
/* Removes the files in the device's cache directory dir of sessions that
 * nobody holds and that are not live here.
 */
void session_sweep (struct df_sessions *set, const char *dir,
                    const char *device);
bool session_disk_mode (enum df_cache_mode m);

/* session.c: removes path, the cache file of DEVICE@NAME (a valid
 * session name), unless a session of that name is listed here or
 * anyone holds the file.  Meanwhile a placeholder session of that name
 * is listed as ending, so that an opener of the name waits for the file
 * to go instead of finding it locked by the check.  No lock held on
 * entry.
 */
void session_discard_file (struct df_sessions *set, const char *device,
                           const char *name, const char *path);

/* session.c: waits until no other session of s's device is being
 * parked or ended: it may hold what s needs (the persistent cache, a
 * private vDisk's writable version).  No lock held on entry.
 */
void session_wait_device (struct df_session *s);

/* account.c */
void session_counting_init (struct df_session *s);

#endif
