/* diskfarm — NBD upstream: connection rounds and the supervisor that
 * replaces a lost round (failover).
 */
#include <config.h>

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <time.h>

#include "error.h"
#include "upstream/upstream-int.h"

void
up_round_lost (struct upstream *up, struct uconn *c, const char *why)
{
  uint64_t one = 1;
  unsigned i;

  if (c->gen != up->gen)
    return;
  if (up->state != UP_UP) {
    /* Another connection noticed first: this one's requests may have
     * waited longer.
     */
    uint64_t since = __atomic_load_n (&c->busy_since, __ATOMIC_RELAXED);
    if (up->state == UP_DOWN && c->busy && since < up->stall_since)
      up->stall_since = since;
    return;
  }
  up->state = UP_DOWN;
  up->down_since = df_now_mono_ns ();
  /* The client waits since the oldest request still unanswered. */
  up->stall_since = up->down_since;
  for (i = 0; i < up->nconns; i++) {
    uint64_t since = __atomic_load_n (&up->conns[i]->busy_since,
                                      __ATOMIC_RELAXED);
    if (up->conns[i]->busy && since < up->stall_since)
      up->stall_since = since;
  }
  up->stats.failovers++;
  snprintf (up->down_reason, sizeof up->down_reason, "%s",
            why && *why ? why : "connection lost");
  /* Threads waiting for answers on the round's other connections
   * return at once.  Not by shutting the sockets down: the server's
   * late replies would meet a reset (see drain.c).
   */
  for (i = 0; i < up->nconns; i++)
    __atomic_store_n (&up->conns[i]->lost, true, __ATOMIC_RELEASE);
  if (write (up->lost_fd, &one, sizeof one) == -1 && errno != EAGAIN)
    abort ();                   /* an eventfd write cannot fail otherwise */
  pthread_cond_broadcast (&up->free_cond);
  pthread_cond_signal (&up->super_cond);
}

int
up_connect_round (struct upstream *up, size_t k, bool first)
{
  struct uconn *c[DF_UPSTREAM_MAX_CONNECTIONS];
  unsigned n, i;

  c[0] = uconn_open (up, k, first);
  if (c[0] == NULL)
    return -1;
  n = up->info.multi_conn ? up->p.connections : 1;
  if (first && n < up->p.connections)
    up_log (up, DF_UP_INFO, "%s: the export allows one connection only",
            up->p.servers[k]);
  for (i = 1; i < n; i++) {
    c[i] = uconn_open (up, k, false);
    if (c[i] == NULL) {
      df_error_prefix ("connection %u of %u", i + 1, n);
      while (i > 0)
        uconn_close (up, c[--i], false);
      return -1;
    }
  }
  pthread_mutex_lock (&up->lock);
  up->gen++;
  up->free = NULL;
  for (i = 0; i < n; i++) {
    c[i]->gen = up->gen;
    c[i]->next_free = up->free;
    up->free = c[i];
    up->conns[i] = c[i];
  }
  up->nconns = n;
  up->server = k;
  pthread_mutex_unlock (&up->lock);
  return 0;
}

/* Drops the round in use, once every thread has given its connection
 * back (lock not held).  lost: the server may still be answering, its
 * sockets are drained.
 */
static void
drop_round (struct upstream *up, bool lost)
{
  struct uconn *c[DF_UPSTREAM_MAX_CONNECTIONS];
  uint64_t junk;
  unsigned n, i;

  pthread_mutex_lock (&up->lock);
  while (up->out > 0)
    pthread_cond_wait (&up->free_cond, &up->lock);
  n = up->nconns;
  memcpy (c, up->conns, n * sizeof *c);
  up->nconns = 0;
  up->free = NULL;
  /* Nobody waits on the lost round any more. */
  if (up->lost_fd >= 0 && read (up->lost_fd, &junk, sizeof junk) == -1 &&
      errno != EAGAIN)
    abort ();
  pthread_mutex_unlock (&up->lock);
  for (i = 0; i < n; i++)
    uconn_close (up, c[i], lost);
}

/* The servers to try, best first: the ranking, the server just lost
 * last; or that server alone when failover elsewhere is not allowed.
 */
static size_t
candidates (struct upstream *up, size_t *order)
{
  size_t n = up->p.nservers, i, j, lost;
  bool any;

  pthread_mutex_lock (&up->lock);
  lost = up->server;
  any = up->any_server;
  pthread_mutex_unlock (&up->lock);
  if (!any) {
    order[0] = lost;
    return 1;
  }
  for (i = 0; i < n; i++)
    order[i] = i;
  if (up->p.rank)
    up->p.rank (up->p.opaque, order, n);
  for (i = j = 0; i < n; i++)
    if (order[i] != lost)
      order[j++] = order[i];
  order[j++] = lost;
  return j;
}

/* Sleeps up to ms unless stopping; true if stopping. */
static bool
nap (struct upstream *up, unsigned ms)
{
  struct timespec ts;
  bool stop;

  clock_gettime (CLOCK_REALTIME, &ts);
  ts.tv_sec += ms / 1000;
  ts.tv_nsec += (long) (ms % 1000) * 1000000;
  if (ts.tv_nsec >= 1000000000) {
    ts.tv_sec++;
    ts.tv_nsec -= 1000000000;
  }
  pthread_mutex_lock (&up->lock);
  if (up->state != UP_STOPPING)
    pthread_cond_timedwait (&up->super_cond, &up->lock, &ts);
  stop = up->state == UP_STOPPING;
  pthread_mutex_unlock (&up->lock);
  return stop;
}

/* A new round on server k, with the kept writes replayed: 0, or -1
 * with the round dropped.
 */
static int
try_server (struct upstream *up, size_t k)
{
  /* The old round is gone: every write it answered is in the log. */
  if (up_connect_round (up, k, false) == -1)
    return -1;
  if (log_replay (up) == -1) {
    df_error_prefix ("%s: replaying the unflushed writes", up->p.servers[k]);
    drop_round (up, true);
    return -1;
  }
  return 0;
}

/* Finds a server for the device again; returns when one serves it or
 * when stopping.
 */
static void
recover (struct upstream *up)
{
  char last[DF_UPSTREAM_MAX_SERVERS][256] = { { 0 } };
  size_t order[DF_UPSTREAM_MAX_SERVERS], n, i;
  uint64_t pause, noticed;

  for (;;) {
    n = candidates (up, order);
    for (i = 0; i < n; i++) {
      size_t k = order[i];
      if (try_server (up, k) == 0) {
        pthread_mutex_lock (&up->lock);
        pause = df_now_mono_ns () - up->stall_since;
        noticed = up->down_since - up->stall_since;
        up->stats.last_pause_ns = pause;
        up->state = UP_UP;
        pthread_cond_broadcast (&up->cond);
        pthread_cond_broadcast (&up->free_cond);
        pthread_mutex_unlock (&up->lock);
        up_log (up, DF_UP_INFO, "now served by %s, after a pause of "
                "%.3f s (%.3f s to notice the loss)", up->p.servers[k],
                pause / 1e9, noticed / 1e9);
        return;
      }
      /* Retrying a list for minutes: say each server's trouble once. */
      if (strncmp (last[k], df_error_get (), sizeof last[k] - 1) != 0) {
        snprintf (last[k], sizeof last[k], "%s", df_error_get ());
        up_log (up, DF_UP_WARNING, "%s", last[k]);
      }
      pthread_mutex_lock (&up->lock);
      bool stop = up->state == UP_STOPPING;
      pthread_mutex_unlock (&up->lock);
      if (stop)
        return;
    }
    if (nap (up, 500))
      return;
  }
}

static void *
supervisor_main (void *arg)
{
  struct upstream *up = arg;
  char why[sizeof up->down_reason];
  size_t lost;

  pthread_mutex_lock (&up->lock);
  for (;;) {
    while (up->state == UP_UP)
      pthread_cond_wait (&up->super_cond, &up->lock);
    if (up->state == UP_STOPPING)
      break;
    snprintf (why, sizeof why, "%s", up->down_reason);
    lost = up->server;
    pthread_mutex_unlock (&up->lock);
    up_log (up, DF_UP_WARNING, "lost %s (%s); failing over",
            up->p.servers[lost], why);
    drop_round (up, true);
    recover (up);
    pthread_mutex_lock (&up->lock);
  }
  pthread_mutex_unlock (&up->lock);
  return NULL;
}

int
up_supervisor_start (struct upstream *up)
{
  int err = pthread_create (&up->supervisor, NULL, supervisor_main, up);

  if (err)
    return df_error (err, "upstream supervisor thread: %m");
  up->supervisor_running = true;
  return 0;
}

void
up_supervisor_stop (struct upstream *up)
{
  pthread_mutex_lock (&up->lock);
  up->state = UP_STOPPING;
  pthread_cond_broadcast (&up->super_cond);
  pthread_cond_broadcast (&up->cond);
  pthread_cond_broadcast (&up->free_cond);
  pthread_mutex_unlock (&up->lock);
  up_pump_stop (up);            /* gives its connection back */
  if (up->supervisor_running)
    pthread_join (up->supervisor, NULL);
  up->supervisor_running = false;
  drop_round (up, false);
  up_drainer_stop (up);
}
