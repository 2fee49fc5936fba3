/* diskfarm — NBD upstream: the block device and its requests (see
 * upstream.h; conn.c holds the libnbd connections, failover.c the
 * supervisor, replay.c the kept writes).
 */
#include <config.h>

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "error.h"
#include "upstream/upstream-int.h"

#define CHUNK (32 * 1024 * 1024)        /* largest request sent */

void
up_log (struct upstream *up, enum df_upstream_log level, const char *fmt, ...)
{
  char msg[512];
  va_list ap;

  if (up->p.log == NULL)
    return;
  va_start (ap, fmt);
  vsnprintf (msg, sizeof msg, fmt, ap);
  va_end (ap);
  up->p.log (up->p.opaque, level, msg);
}

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
static void
checkin (struct upstream *up, struct uconn *c, bool failed)
{
  up->out--;
  c->busy = false;
  if (!failed && c->gen == up->gen && up->state == UP_UP) {
    c->next_free = up->free;
    up->free = c;
    pthread_cond_signal (&up->free_cond);
  }
  else
    pthread_cond_broadcast (&up->free_cond);
}

static int run_flush (struct upstream *up);

/* Sends r and waits for its answer, sending it again after failovers.
 * Returns 0 or -1 with errno and a message.
 */
static int
up_run (struct upstream *up, struct req *r)
{
  bool flush = false, owner = false;
  char why[256];
  int err;

  pthread_mutex_lock (&up->lock);
  for (;;) {
    struct uconn *c;
    int rv;

    if (wait_up (up) == -1) {
      pthread_mutex_unlock (&up->lock);
      return -1;
    }
    if ((c = up->free) == NULL) {
      pthread_cond_wait (&up->free_cond, &up->lock);
      continue;
    }
    up->free = c->next_free;
    up->out++;
    c->busy = true;
    c->busy_since = df_now_mono_ns ();
    r->flush_seq = up->log_seq;
    pthread_mutex_unlock (&up->lock);
    rv = uconn_run (up, c, r, 1, why, sizeof why);
    pthread_mutex_lock (&up->lock);
    if (rv == -1)
      up_round_lost (up, c, why);
    else if (r->error == 0 && up->p.replay_limit && logged_type (r->type))
      account (up, r, &flush, &owner);
    checkin (up, c, rv == -1);
    if (rv == 0)
      break;
  }
  err = r->error;
  pthread_mutex_unlock (&up->lock);
  if (err)
    return df_error (err, "%s of %" PRIu32 " bytes at %" PRIu64 ": %m",
                     type_name (r->type), r->count, r->offset);
  if (flush) {
    int rv = run_flush (up);
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

/* One request, start to end. */
static int
run1 (struct upstream *up, enum req_type type, void *buf, uint32_t count,
      uint64_t offset, uint32_t flags)
{
  struct req r = {
    .type = type, .buf = buf, .count = count, .offset = offset,
    .flags = flags,
  };

  return up_run (up, &r);
}

static int
run_flush (struct upstream *up)
{
  return run1 (up, R_FLUSH, NULL, 0, 0, 0);
}

static int
up_pread (struct df_bdev *b, void *buf, uint32_t count, uint64_t offset)
{
  struct upstream *up = (struct upstream *) b;
  char *p = buf;

  while (count > 0) {
    uint32_t n = count < CHUNK ? count : CHUNK;
    if (run1 (up, R_READ, p, n, offset, 0) == -1)
      return -1;
    p += n;
    offset += n;
    count -= n;
  }
  return 0;
}

/* FUA the server cannot do is a FLUSH after the request. */
static int
fua_after (struct upstream *up, uint32_t flags)
{
  return (flags & DF_FUA) && !up->can_fua ? run_flush (up) : 0;
}

static uint32_t
sent_flags (struct upstream *up, uint32_t flags)
{
  return up->can_fua ? flags : flags & ~DF_FUA;
}

static int
up_pwrite (struct df_bdev *b, const void *buf, uint32_t count,
           uint64_t offset, uint32_t flags)
{
  struct upstream *up = (struct upstream *) b;
  const char *p = buf;

  while (count > 0) {
    uint32_t n = count < CHUNK ? count : CHUNK;
    if (run1 (up, R_WRITE, (char *) p, n, offset,
              sent_flags (up, flags)) == -1)
      return -1;
    p += n;
    offset += n;
    count -= n;
  }
  return fua_after (up, flags);
}

static int
up_flush (struct df_bdev *b)
{
  return run_flush ((struct upstream *) b);
}

static int
up_trim (struct df_bdev *b, uint32_t count, uint64_t offset, uint32_t flags)
{
  struct upstream *up = (struct upstream *) b;

  if (!up->can_trim)
    return fua_after (up, flags);     /* a trim is advice */
  if (run1 (up, R_TRIM, NULL, count, offset, sent_flags (up, flags)) == -1)
    return -1;
  return fua_after (up, flags);
}

/* Zeroes as writes, for a server without WRITE_ZEROES. */
static int
write_zeroes (struct upstream *up, uint32_t count, uint64_t offset,
              uint32_t flags)
{
  uint32_t len = count < 1024 * 1024 ? count : 1024 * 1024;
  char *z = calloc (1, len);
  int rv = 0;

  if (z == NULL)
    return df_error_errno ("zeroes");
  while (rv == 0 && count > 0) {
    uint32_t n = count < len ? count : len;
    rv = run1 (up, R_WRITE, z, n, offset, sent_flags (up, flags));
    offset += n;
    count -= n;
  }
  free (z);
  return rv;
}

static int
up_zero (struct df_bdev *b, uint32_t count, uint64_t offset, uint32_t flags)
{
  struct upstream *up = (struct upstream *) b;
  int rv;

  if ((flags & DF_FAST_ZERO) && !(up->can_zero && up->can_fast_zero))
    return df_error (ENOTSUP, "the server cannot zero fast");
  if (up->can_zero)
    rv = run1 (up, R_ZERO, NULL, count, offset, sent_flags (up, flags));
  else
    rv = write_zeroes (up, count, offset, flags);
  return rv == -1 ? -1 : fua_after (up, flags);
}

static int
up_extents (struct df_bdev *b, uint32_t count, uint64_t offset,
            df_extent_fn fn, void *opaque)
{
  (void) b;
  return fn (opaque, offset, count, 0);   /* all data, as far as we know */
}

static void
up_close (struct df_bdev *b)
{
  struct upstream *up = (struct upstream *) b;
  size_t i;

  up_supervisor_stop (up);
  log_free (up);
  pthread_mutex_destroy (&up->lock);
  pthread_cond_destroy (&up->cond);
  pthread_cond_destroy (&up->free_cond);
  pthread_cond_destroy (&up->super_cond);
  for (i = 0; i < up->p.nservers; i++)
    free ((char *) up->p.servers[i]);
  free ((void *) up->p.servers);
  free ((char *) up->p.export_name);
  free (up->info.description);
  free (up);
}

static const struct df_bdev_ops upstream_ops = {
  .name = "upstream",
  .pread = up_pread,
  .pwrite = up_pwrite,
  .flush = up_flush,
  .zero = up_zero,
  .trim = up_trim,
  .extents = up_extents,
  .close = up_close,
};

static int
check_params (const struct df_upstream_params *p)
{
  struct df_upstream_addr a;
  size_t i;

  if (p->nservers == 0 || p->nservers > DF_UPSTREAM_MAX_SERVERS)
    return df_error (EINVAL, "give 1 to %d servers", DF_UPSTREAM_MAX_SERVERS);
  if (p->connections == 0 || p->connections > DF_UPSTREAM_MAX_CONNECTIONS)
    return df_error (EINVAL, "give 1 to %d connections",
                     DF_UPSTREAM_MAX_CONNECTIONS);
  for (i = 0; i < p->nservers; i++)
    if (df_upstream_parse_addr (p->servers[i], &a) == -1)
      return -1;
  return 0;
}

static struct upstream *
up_new (const struct df_upstream_params *p)
{
  struct upstream *up = calloc (1, sizeof *up);
  const char **servers = calloc (p->nservers, sizeof *servers);
  size_t i;

  if (up == NULL || servers == NULL)
    goto err;
  up->p = *p;
  up->p.servers = servers;
  up->p.export_name = strdup (p->export_name);
  if (up->p.export_name == NULL)
    goto err;
  for (i = 0; i < p->nservers; i++)
    if ((servers[i] = strdup (p->servers[i])) == NULL)
      goto err;
  up->bdev.ops = &upstream_ops;
  up->state = UP_DOWN;
  pthread_mutex_init (&up->lock, NULL);
  pthread_cond_init (&up->cond, NULL);
  pthread_cond_init (&up->free_cond, NULL);
  pthread_cond_init (&up->super_cond, NULL);
  return up;
 err:
  df_error_errno ("upstream");
  if (servers)
    for (i = 0; i < p->nservers; i++)
      free ((char *) servers[i]);
  free (servers);
  if (up)
    free ((char *) up->p.export_name);
  free (up);
  return NULL;
}

struct df_bdev *
df_upstream_open (const struct df_upstream_params *p)
{
  size_t order[DF_UPSTREAM_MAX_SERVERS], i;
  char why[1024] = "";
  struct upstream *up;

  if (check_params (p) == -1)
    return NULL;
  up = up_new (p);
  if (up == NULL)
    return NULL;
  for (i = 0; i < p->nservers; i++)
    order[i] = i;
  if (p->rank)
    p->rank (p->opaque, order, p->nservers);
  for (i = 0; i < p->nservers; i++) {
    size_t len = strlen (why);
    if (up_connect_round (up, order[i], true) == 0)
      break;
    snprintf (why + len, sizeof why - len, "%s%s", len ? "; " : "",
              df_error_get ());
  }
  if (i == p->nservers) {
    df_error (EHOSTUNREACH, "no server serves \"%s\": %s", p->export_name, why);
    goto err;
  }
  up->state = UP_UP;
  if (up_supervisor_start (up) == 0)
    return &up->bdev;
 err:
  up_close (&up->bdev);
  return NULL;
}

const struct df_upstream_info *
df_upstream_info (struct df_bdev *b)
{
  return &((struct upstream *) b)->info;
}

void
df_upstream_allow_failover (struct df_bdev *b, bool any_server)
{
  struct upstream *up = (struct upstream *) b;

  pthread_mutex_lock (&up->lock);
  up->any_server = any_server;
  pthread_mutex_unlock (&up->lock);
}

void
df_upstream_interrupt (struct df_bdev *b)
{
  struct upstream *up = (struct upstream *) b;

  pthread_mutex_lock (&up->lock);
  up->interrupted = true;
  pthread_cond_broadcast (&up->cond);
  pthread_mutex_unlock (&up->lock);
}

const char *
df_upstream_server (struct df_bdev *b, char *buf, size_t len)
{
  struct upstream *up = (struct upstream *) b;

  pthread_mutex_lock (&up->lock);
  snprintf (buf, len, "%s", up->p.servers[up->server]);
  pthread_mutex_unlock (&up->lock);
  return buf;
}

void
df_upstream_stats (struct df_bdev *b, struct df_upstream_stats *out)
{
  struct upstream *up = (struct upstream *) b;

  pthread_mutex_lock (&up->lock);
  *out = up->stats;
  out->connections = up->state == UP_UP ? up->nconns : 0;
  pthread_mutex_unlock (&up->lock);
}
