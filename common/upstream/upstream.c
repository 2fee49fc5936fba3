/* diskfarm — NBD upstream: the block device (see upstream.h; request.c
 * runs requests, conn.c holds the libnbd connections, failover.c the
 * supervisor, replay.c the kept writes).
 */
#include <config.h>

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <time.h>
#include <unistd.h>

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

static int
up_pread (struct df_bdev *b, void *buf, uint32_t count, uint64_t offset)
{
  struct upstream *up = (struct upstream *) b;
  char *p = buf;

  while (count > 0) {
    uint32_t n = count < CHUNK ? count : CHUNK;
    if (up_request (up, R_READ, p, n, offset, 0) == -1)
      return -1;
    p += n;
    offset += n;
    count -= n;
  }
  return 0;
}

#define MANY 64                 /* reads sent together at most */

static int
up_pread_many (struct df_bdev *b, struct df_bdev_read *rd, size_t n)
{
  struct upstream *up = (struct upstream *) b;
  struct req r[MANY];
  size_t i, k;
  int rv = 0;

  for (i = 0; i < n; i += k) {
    for (k = 0; k < MANY && i + k < n; k++) {
      if (rd[i + k].count > CHUNK)
        break;
      r[k] = (struct req) {
        .type = R_READ, .buf = rd[i + k].buf, .count = rd[i + k].count,
        .offset = rd[i + k].offset,
      };
    }
    if (k == 0) {               /* a read too big to send whole */
      rd[i].error = up_pread (b, rd[i].buf, rd[i].count, rd[i].offset) == -1
        ? errno : 0;
      k = 1;
      rv = rd[i].error ? -1 : rv;
      continue;
    }
    pthread_mutex_lock (&up->lock);
    if (up_run_round (up, r, k) == -1) {
      pthread_mutex_unlock (&up->lock);
      for (size_t j = 0; j < k; j++)
        rd[i + j].error = errno;
      return -1;
    }
    pthread_mutex_unlock (&up->lock);
    for (size_t j = 0; j < k; j++)
      if ((rd[i + j].error = r[j].error) != 0)
        rv = -1;
  }
  return rv;
}

/* FUA the server cannot do is a FLUSH after the request. */
static int
fua_after (struct upstream *up, uint32_t flags)
{
  return (flags & DF_FUA) && !up->can_fua ? up_flush_all (up) : 0;
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
    if (up_request (up, R_WRITE, (char *) p, n, offset,
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
  return up_flush_all ((struct upstream *) b);
}

static int
up_trim (struct df_bdev *b, uint32_t count, uint64_t offset, uint32_t flags)
{
  struct upstream *up = (struct upstream *) b;

  if (!up->can_trim)
    return fua_after (up, flags);     /* a trim is advice */
  if (up_request (up, R_TRIM, NULL, count, offset, sent_flags (up, flags)) == -1)
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
    rv = up_request (up, R_WRITE, z, n, offset, sent_flags (up, flags));
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
    rv = up_request (up, R_ZERO, NULL, count, offset, sent_flags (up, flags));
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
  up_pump_destroy (up);
  log_free (up);
  pthread_mutex_destroy (&up->lock);
  pthread_cond_destroy (&up->cond);
  pthread_cond_destroy (&up->free_cond);
  pthread_cond_destroy (&up->super_cond);
  pthread_cond_destroy (&up->drain_cond);
  if (up->lost_fd >= 0)
    close (up->lost_fd);
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
  .pread_many = up_pread_many,
  .pread_async = up_pread_async,
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
  pthread_cond_init (&up->drain_cond, NULL);
  pthread_mutex_init (&up->pump.lock, NULL);
  up->pump.efd = up->pump.epfd = -1;
  up->lost_fd = eventfd (0, EFD_CLOEXEC | EFD_NONBLOCK);
  if (up->lost_fd == -1 || up_pump_init (up) == -1) {
    if (up->lost_fd == -1)
      df_error_errno ("eventfd");
    up_close (&up->bdev);
    return NULL;
  }
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
  up->bdev.flags |= DF_BDEV_ASYNC;
  if (up_supervisor_start (up) == 0 && up_drainer_start (up) == 0 &&
      up_pump_start (up) == 0)
    return &up->bdev;
 err:
  {
    int err = errno;            /* the message stays current */
    up_close (&up->bdev);
    errno = err;
  }
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
