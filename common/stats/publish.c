/* diskfarm — a device-session set's figures published (see stats.h).
 *
 * The session library asks for each session's counters through its
 * allocator hook: they are placed in a slot of the shared-memory table,
 * so the I/O path counts straight into what readers see.  The
 * identity (names, state, connections, cache use) is rewritten from the
 * session's figures when a session opens and then every interval by a
 * thread of ours.  A session whose slot could not be had (the table is
 * full, or publishing is off or not started) counts on the heap,
 * unpublished.
 */
#include <config.h>

#include <errno.h>
#include <pthread.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "error.h"
#include "stats/stats.h"
#include "util.h"

/* The session's counters are the first words of a slot, in the order
 * of the file's format.
 */
#define SAME_WORD(field, word)                                          \
  _Static_assert (offsetof (struct df_session_counters, field) ==      \
                  (word) * sizeof (uint64_t), #field " is word " #word)
SAME_WORD (read_bytes, DF_STATS_READ_BYTES);
SAME_WORD (read_requests, DF_STATS_READ_REQUESTS);
SAME_WORD (write_bytes, DF_STATS_WRITE_BYTES);
SAME_WORD (write_requests, DF_STATS_WRITE_REQUESTS);
SAME_WORD (errors, DF_STATS_ERRORS);
SAME_WORD (cache_full, DF_STATS_CACHE_FULL);
_Static_assert (sizeof (struct df_session_counters) <=
                DF_STATS_WORDS * sizeof (uint64_t), "counters fit a slot");

struct df_stats_publisher {
  struct df_stats_pub *pub;     /* set once by start (atomic); NULL: off */
  struct df_sessions *set;
  uint64_t interval_ns;
  uint64_t next_key;            /* atomic */
  bool full_logged;             /* atomic */
  df_log_fn log;
  void *log_opaque;

  pthread_mutex_t lock;         /* stopping and the thread; a leaf */
  pthread_cond_t cond;
  pthread_t thread;
  bool running, stopping;
  bool poked;                   /* publish now, not at the next interval */
};

static struct df_stats_pub *
pub_of (struct df_stats_publisher *sp)
{
  return __atomic_load_n (&sp->pub, __ATOMIC_ACQUIRE);
}

static struct df_session_counters *
counters_alloc (void *opaque, const char *device, const char *session)
{
  struct df_stats_publisher *sp = opaque;
  struct df_stats_pub *pub = pub_of (sp);
  uint64_t *words = NULL;
  char msg[256];

  if (pub) {
    words = df_stats_claim (pub, __atomic_add_fetch (&sp->next_key, 1,
                                                     __ATOMIC_RELAXED));
    if (words == NULL && sp->log &&
        !__atomic_exchange_n (&sp->full_logged, true, __ATOMIC_RELAXED)) {
      snprintf (msg, sizeof msg, "session figures: all %d slots are taken: "
                "session %s@%s and further ones are not published",
                DF_STATS_SLOTS, device, session);
      sp->log (sp->log_opaque, DF_LOG_WARNING, msg);
    }
  }
  if (words)
    return (struct df_session_counters *) words;
  return calloc (1, sizeof (struct df_session_counters));
}

static void
counters_free (void *opaque, struct df_session_counters *c)
{
  struct df_stats_publisher *sp = opaque;
  struct df_stats_pub *pub = pub_of (sp);

  if (df_stats_holds (pub, (uint64_t *) c))
    df_stats_release (pub, (uint64_t *) c);
  else
    free (c);
}

static uint32_t
state_of (enum df_session_state st)
{
  switch (st) {
  case DF_SESSION_BOOTING: return DF_STATS_BOOTING;
  case DF_SESSION_ACTIVE: return DF_STATS_ACTIVE;
  case DF_SESSION_LINGERING: return DF_STATS_LINGERING;
  }
  return DF_STATS_ACTIVE;
}

static void
identity_of (const struct df_session_figures *f, struct df_stats_identity *id)
{
  memset (id, 0, sizeof *id);
  snprintf (id->device, sizeof id->device, "%s", f->device);
  snprintf (id->export_name, sizeof id->export_name, "%s", f->export_name);
  snprintf (id->session, sizeof id->session, "%s", f->session);
  snprintf (id->client, sizeof id->client, "%s", f->client);
  snprintf (id->vdisk, sizeof id->vdisk, "%s", f->vdisk);
  snprintf (id->cache_mode, sizeof id->cache_mode, "%s",
            df_cache_mode_name (f->cache_mode));
  id->version = f->version;
  id->state = state_of (f->state);
  id->connections = f->connections;
  id->since_ns = f->connected_since_ns;
  id->cache_bytes = f->cache_used;
  id->cache_limit = f->cache_limit;
}

static int
publish_one (void *opaque, const struct df_session_figures *f)
{
  struct df_stats_publisher *sp = opaque;
  struct df_stats_pub *pub = pub_of (sp);
  uint64_t *words = (uint64_t *) f->counters_at;
  struct df_stats_identity id;

  if (!df_stats_holds (pub, words))
    return 0;                   /* unpublished: counts on the heap */
  identity_of (f, &id);
  df_stats_update (pub, words, &id);
  return 0;
}

struct df_stats_publisher *
df_stats_publisher_new (df_log_fn log, void *log_opaque)
{
  struct df_stats_publisher *sp = calloc (1, sizeof *sp);
  pthread_condattr_t ca;

  if (sp == NULL) {
    df_error_errno ("session figures");
    return NULL;
  }
  sp->log = log;
  sp->log_opaque = log_opaque;
  pthread_mutex_init (&sp->lock, NULL);
  pthread_condattr_init (&ca);
  pthread_condattr_setclock (&ca, CLOCK_MONOTONIC);
  pthread_cond_init (&sp->cond, &ca);
  pthread_condattr_destroy (&ca);
  return sp;
}

void
df_stats_publisher_hooks (struct df_stats_publisher *sp,
                          struct df_sessions_params *p)
{
  p->counters_alloc = counters_alloc;
  p->counters_free = counters_free;
  p->counters_opaque = sp;
}

static void *
publisher_main (void *opaque)
{
  struct df_stats_publisher *sp = opaque;
  struct timespec ts;
  uint64_t due;

  pthread_mutex_lock (&sp->lock);
  while (!sp->stopping) {
    due = df_now_mono_ns () + sp->interval_ns;
    ts.tv_sec = due / 1000000000;
    ts.tv_nsec = due % 1000000000;
    while (!sp->stopping && !sp->poked && df_now_mono_ns () < due)
      pthread_cond_timedwait (&sp->cond, &sp->lock, &ts);
    if (sp->stopping)
      break;
    sp->poked = false;
    pthread_mutex_unlock (&sp->lock);
    df_sessions_foreach (sp->set, publish_one, sp);
    pthread_mutex_lock (&sp->lock);
  }
  pthread_mutex_unlock (&sp->lock);
  return NULL;
}

int
df_stats_publisher_start (struct df_stats_publisher *sp,
                          struct df_sessions *set, const char *dir,
                          unsigned interval_ms)
{
  struct df_stats_pub *pub;
  int err;

  if (pub_of (sp))
    return df_error (EBUSY, "session figures: already published");
  pub = df_stats_pub_open (dir);
  if (pub == NULL)
    return -1;
  sp->set = set;
  sp->interval_ns = (uint64_t) (interval_ms ? interval_ms : 1) * 1000000;
  err = pthread_create (&sp->thread, NULL, publisher_main, sp);
  if (err) {
    df_stats_pub_close (pub);
    return df_error (err, "session figures: cannot start a thread: %m");
  }
  /* Sessions opened from now on get slots (the thread only publishes
   * the ones that have).
   */
  __atomic_store_n (&sp->pub, pub, __ATOMIC_RELEASE);
  sp->running = true;
  return 0;
}

void
df_stats_publisher_session (struct df_stats_publisher *sp,
                            struct df_session *s)
{
  struct df_session_figures f;

  if (sp == NULL || pub_of (sp) == NULL || s == NULL)
    return;
  df_session_figures (s, &f);
  publish_one (sp, &f);
}

void
df_stats_publisher_poke (struct df_stats_publisher *sp)
{
  if (sp == NULL)
    return;
  pthread_mutex_lock (&sp->lock);
  sp->poked = true;
  pthread_cond_signal (&sp->cond);
  pthread_mutex_unlock (&sp->lock);
}

void
df_stats_publisher_stop (struct df_stats_publisher *sp)
{
  if (sp == NULL)
    return;
  pthread_mutex_lock (&sp->lock);
  sp->stopping = true;
  pthread_cond_broadcast (&sp->cond);
  pthread_mutex_unlock (&sp->lock);
  if (sp->running)
    pthread_join (sp->thread, NULL);
  sp->running = false;
}

void
df_stats_publisher_free (struct df_stats_publisher *sp)
{
  if (sp == NULL)
    return;
  df_stats_publisher_stop (sp);
  df_stats_pub_close (pub_of (sp));
  pthread_mutex_destroy (&sp->lock);
  pthread_cond_destroy (&sp->cond);
  free (sp);
}
