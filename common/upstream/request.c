/* diskfarm — NBD upstream: running requests on the round in use,
 * through failovers, and keeping what they wrote for the replay.
 */
#include <config.h>

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <time.h>

#include "error.h"
#include "upstream/upstream-int.h"

static const char *
type_name (enum req_type t)
{
  switch (t) {
  case R_READ: return "read";
  case R_WRITE: return "write";
  case R_FLUSH: return "flush";
  case R_TRIM: return "trim";
  case R_ZERO: return "zero";
  }
  return "request";
}

/* Waits until a round serves requests (lock held). */
static int
wait_up (struct upstream *up)
{
  while (up->state != UP_UP) {
    uint64_t limit = (uint64_t) up->p.dead_timeout * 1000000000;
    struct timespec ts;

    if (up->state == UP_STOPPING || up->interrupted)
      return df_error (ESHUTDOWN, "the device is being detached");
    if (limit && df_now_mono_ns () - up->down_since >= limit)
      return df_error (EIO, "no server has served the device for %u s "
                       "(%s)", up->p.dead_timeout, up->down_reason);
    clock_gettime (CLOCK_REALTIME, &ts);
    ts.tv_sec++;
    pthread_cond_timedwait (&up->cond, &up->lock, &ts);
  }
  return 0;
}

static bool
logged_type (enum req_type t)
{
  return t == R_WRITE || t == R_TRIM || t == R_ZERO || t == R_FLUSH;
}

/* Accounts an answered write or flush in the log (lock held).  Sets
 * *flush when the writer must send a FLUSH: its write could not be
 * kept, or the log grew past its limit and nobody flushes it yet (then
 * *owner: the writer clears log_flushing after).
 */
static void
account (struct upstream *up, struct req *r, bool *flush, bool *owner)
{
  if (r->type == R_FLUSH) {
    log_flushed (up, r->flush_seq);
    return;
  }
  if (log_append (up, r) == -1)
    *flush = true;            /* no copy kept: make it durable instead */
  if (up->log_bytes <= up->p.replay_limit)
    return;
  if (!up->log_flushing) {
    up->log_flushing = true;
    *flush = *owner = true;
    return;
  }
  while (up->log_flushing && up->log_bytes > 2 * up->p.replay_limit &&
         up->state != UP_STOPPING)
    pthread_cond_wait (&up->cond, &up->lock);
}

/* Gives a connection back (lock held).  One that failed, or whose
 * round is gone, stays out of the free list: the round is dropped.
 */
void
up_checkin (struct upstream *up, struct uconn *c, bool failed)
{
  up->out--;
  c->busy = false;
  if (!failed && c->gen == up->gen && up->state == UP_UP) {
    c->next_free = up->free;
    up->free = c;
    /* All of them: the pump may wait there too, for the others. */
    pthread_cond_broadcast (&up->free_cond);
  }
  else
    pthread_cond_broadcast (&up->free_cond);
}

struct uconn *
up_checkout (struct upstream *up)
{
  struct uconn *c;

  for (;;) {
    if (wait_up (up) == -1)
      return NULL;
    if ((c = up->free) != NULL)
      break;
    __atomic_add_fetch (&up->conn_waiters, 1, __ATOMIC_RELAXED);
    if (up->pump_holds)
      up_pump_kick (up);        /* it gives its connection back */
    pthread_cond_wait (&up->free_cond, &up->lock);
    if (__atomic_sub_fetch (&up->conn_waiters, 1, __ATOMIC_RELAXED) == 0)
      pthread_cond_broadcast (&up->free_cond);      /* the pump's turn */
  }
  up->free = c->next_free;
  up->out++;
  c->busy = true;
  __atomic_store_n (&c->busy_since, df_now_mono_ns (), __ATOMIC_RELAXED);
  return c;
}

int
up_run_round (struct upstream *up, struct req *r, size_t n)
{
  char why[256];

  for (;;) {
    struct uconn *c;
    int rv;

    if ((c = up_checkout (up)) == NULL)
      return -1;
    r[0].flush_seq = up->log_seq;
    pthread_mutex_unlock (&up->lock);
    rv = uconn_run (up, c, r, n, why, sizeof why);
    pthread_mutex_lock (&up->lock);
    if (rv == -1)
      up_round_lost (up, c, why);
    up_checkin (up, c, rv == -1);
    if (rv == 0)
      return 0;
  }
}

/* Sends r and waits for its answer, sending it again after failovers.
 * Returns 0 or -1 with errno and a message.
 */
static int
up_run (struct upstream *up, struct req *r)
{
  bool flush = false, owner = false;
  int err;

  pthread_mutex_lock (&up->lock);
  if (up_run_round (up, r, 1) == -1) {
    pthread_mutex_unlock (&up->lock);
    return -1;
  }
  if (r->error == 0 && up->p.replay_limit && logged_type (r->type))
    account (up, r, &flush, &owner);
  err = r->error;
  pthread_mutex_unlock (&up->lock);
  if (err)
    return df_error (err, "%s of %" PRIu32 " bytes at %" PRIu64 ": %m",
                     type_name (r->type), r->count, r->offset);
  if (flush) {
    int rv = up_flush_all (up);
    if (owner) {
      pthread_mutex_lock (&up->lock);
      up->log_flushing = false;
      pthread_cond_broadcast (&up->cond);
      pthread_mutex_unlock (&up->lock);
    }
    return rv;
  }
  return 0;
}

int
up_request (struct upstream *up, enum req_type type, void *buf,
            uint32_t count, uint64_t offset, uint32_t flags)
{
  struct req r = {
    .type = type, .buf = buf, .count = count, .offset = offset,
    .flags = flags,
  };

  return up_run (up, &r);
}

int
up_flush_all (struct upstream *up)
{
  return up_request (up, R_FLUSH, NULL, 0, 0, 0);
}

