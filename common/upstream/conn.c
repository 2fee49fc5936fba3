/* diskfarm — NBD upstream: one libnbd connection and its poller. */
#include <config.h>

#include <errno.h>
#include <inttypes.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <unistd.h>

#include "error.h"
#include "upstream/upstream-int.h"

/* Drives a connecting handle until it is ready or the deadline. */
static int
wait_connected (struct nbd_handle *h, uint64_t deadline)
{
  while (nbd_aio_is_connecting (h)) {
    uint64_t now = df_now_mono_ns ();
    unsigned dir = nbd_aio_get_direction (h);
    struct pollfd pfd = { .fd = nbd_aio_get_fd (h) };
    int r;

    if (now >= deadline)
      return df_error (ETIMEDOUT, "no answer in time");
    if (pfd.fd == -1)
      return df_error (EIO, "%s", nbd_get_error ());
    pfd.events = (dir & LIBNBD_AIO_DIRECTION_READ ? POLLIN : 0)
      | (dir & LIBNBD_AIO_DIRECTION_WRITE ? POLLOUT : 0);
    r = poll (&pfd, 1, (deadline - now) / 1000000 + 1);
    if (r == -1 && errno != EINTR)
      return df_error_errno ("poll");
    if (r <= 0)
      continue;
    if (pfd.revents & (POLLIN | POLLHUP | POLLERR))
      nbd_aio_notify_read (h);
    else if (pfd.revents & POLLOUT)
      nbd_aio_notify_write (h);
  }
  if (!nbd_aio_is_ready (h))
    return df_error (nbd_get_errno () ? nbd_get_errno () : EIO, "%s",
                     nbd_get_error () ? nbd_get_error () : "not ready");
  return 0;
}

/* Does h offer what the first connection offered? */
static int
check_same (struct upstream *up, struct nbd_handle *h,
            const struct df_upstream_info *now)
{
  const struct df_upstream_info *was = &up->info;
  char a[16], b[16];

  if ((uint64_t) nbd_get_size (h) != up->bdev.size)
    return df_error (ESTALE, "the export has another size (%" PRId64
                     " bytes, not %" PRIu64 ")", nbd_get_size (h),
                     up->bdev.size);
  if (now->readonly != was->readonly)
    return df_error (ESTALE, "the export is %s here",
                     now->readonly ? "read-only" : "writable");
  if (was->has_identity &&
      (!now->has_identity || memcmp (now->hash, was->hash, DF_HASH_LEN) ||
       now->version != was->version || strcmp (now->vdisk, was->vdisk)))
    return df_error (ESTALE, "not an identical replica: it serves %s "
                     "version %u (hash %s...), the device has %s version %u "
                     "(hash %s...)", now->has_identity ? now->vdisk : "?",
                     now->version, df_hex (now->hash, 6, a), was->vdisk,
                     was->version, df_hex (was->hash, 6, b));
  if (!was->has_identity && now->has_identity)
    return df_error (ESTALE, "it serves a sealed version, the device had "
                     "an unsealed one");
  if (nbd_can_fua (h) != up->can_fua || nbd_can_trim (h) != up->can_trim ||
      nbd_can_zero (h) != up->can_zero)
    return df_error (ESTALE, "the export offers other features here");
  return 0;
}

/* Reads what the export is; the first connection sets it. */
static int
check_export (struct upstream *up, struct nbd_handle *h, bool first)
{
  struct df_upstream_info now = { 0 };
  char *desc = nbd_get_export_description (h);
  int r = 0;

  df_upstream_parse_identity (desc, &now);
  now.readonly = nbd_is_read_only (h) == 1;
  now.multi_conn = nbd_can_multi_conn (h) == 1;
  if (!first) {
    r = check_same (up, h, &now);
    free (desc);
    return r;
  }
  now.description = desc;
  free (up->info.description);    /* an earlier server's, if any */
  up->info = now;
  up->bdev.size = nbd_get_size (h);
  up->bdev.flags = now.readonly ? DF_BDEV_RDONLY : 0;
  up->can_fua = nbd_can_fua (h) == 1;
  up->can_trim = nbd_can_trim (h) == 1;
  up->can_zero = nbd_can_zero (h) == 1;
  up->can_fast_zero = nbd_can_fast_zero (h) == 1;
  if (up->can_fua)
    up->bdev.flags |= DF_BDEV_NATIVE_FUA;
  return 0;
}

struct uconn *
uconn_open (struct upstream *up, size_t k, bool first)
{
  const char *server = up->p.servers[k];
  uint64_t deadline = df_now_mono_ns ()
    + (uint64_t) up->p.connect_timeout * 1000000000;
  struct df_upstream_addr a;
  struct nbd_handle *h;
  struct uconn *c;
  char port[8];
  int r;

  if (df_upstream_parse_addr (server, &a) == -1)
    return NULL;
  h = nbd_create ();
  if (h == NULL) {
    df_error (ENOMEM, "%s", nbd_get_error ());
    return NULL;
  }
  nbd_set_export_name (h, up->p.export_name);
  nbd_set_full_info (h, true);
  nbd_set_pread_initialize (h, false);
  snprintf (port, sizeof port, "%u", a.port);
  r = a.path[0] ? nbd_aio_connect_unix (h, a.path)
                : nbd_aio_connect_tcp (h, a.host, port);
  if (r == -1)
    df_error (nbd_get_errno () ? nbd_get_errno () : EIO, "%s",
              nbd_get_error ());
  if (r == -1 || wait_connected (h, deadline) == -1 ||
      check_export (up, h, first) == -1)
    goto err;
  c = calloc (1, sizeof *c);
  if (c == NULL) {
    df_error_errno ("upstream connection");
    goto err;
  }
  c->wake_fd = eventfd (0, EFD_CLOEXEC | EFD_NONBLOCK);
  if (c->wake_fd == -1) {
    df_error_errno ("eventfd");
    free (c);
    goto err;
  }
  c->up = up;
  c->h = h;
  return c;
 err:
  df_error_prefix ("%s", server);
  nbd_close (h);
  return NULL;
}

static void
wake (struct uconn *c)
{
  uint64_t one = 1;

  if (write (c->wake_fd, &one, sizeof one) == -1 && errno != EAGAIN)
    abort ();                   /* an eventfd write cannot fail otherwise */
}

/* Next poll timeout (ms, -1: none), or 0 with the round marked lost
 * when the oldest request waited too long.  Lock held.
 */
static int
io_deadline (struct upstream *up, struct uconn *c)
{
  uint64_t limit = (uint64_t) up->p.io_timeout * 1000000000, now;
  char why[64];

  if (limit == 0 || c->head == NULL)
    return -1;
  now = df_now_mono_ns ();
  if (now - c->head->sent_ns < limit)
    return (c->head->sent_ns + limit - now) / 1000000 + 1;
  snprintf (why, sizeof why, "no reply for %u s", up->p.io_timeout);
  up_round_lost (up, c, why);
  return 0;
}

static void *
poller_main (void *arg)
{
  struct uconn *c = arg;
  struct upstream *up = c->up;

  for (;;) {
    struct pollfd pfd[2] = {
      { .fd = nbd_aio_get_fd (c->h), .events = POLLIN },
      { .fd = c->wake_fd, .events = POLLIN },
    };
    int timeout;
    uint64_t junk;

    pthread_mutex_lock (&up->lock);
    timeout = c->dead ? 0 : io_deadline (up, c);
    pthread_mutex_unlock (&up->lock);
    if (timeout == 0 || pfd[0].fd == -1)
      break;
    if (nbd_aio_get_direction (c->h) & LIBNBD_AIO_DIRECTION_WRITE)
      pfd[0].events |= POLLOUT;
    if (poll (pfd, 2, timeout) == -1 && errno != EINTR)
      break;
    if (pfd[1].revents && read (c->wake_fd, &junk, sizeof junk) == -1 &&
        errno != EAGAIN)
      break;
    if (pfd[0].revents & (POLLIN | POLLHUP | POLLERR))
      nbd_aio_notify_read (c->h);
    else if (pfd[0].revents & POLLOUT)
      nbd_aio_notify_write (c->h);
    if (nbd_aio_is_dead (c->h) || nbd_aio_is_closed (c->h))
      break;
  }
  if (nbd_aio_is_dead (c->h) || nbd_aio_is_closed (c->h)) {
    const char *why = nbd_get_error ();
    pthread_mutex_lock (&up->lock);
    up_round_lost (up, c, why ? why : "the connection closed");
    pthread_mutex_unlock (&up->lock);
  }
  return NULL;
}

int
uconn_start (struct uconn *c)
{
  int err = pthread_create (&c->poller, NULL, poller_main, c);

  if (err)
    return df_error (err, "upstream poller thread: %m");
  c->poller_running = true;
  return 0;
}

static void
unlink_req (struct uconn *c, struct req *r)
{
  if (r->prev) r->prev->next = r->next;
  else c->head = r->next;
  if (r->next) r->next->prev = r->prev;
  else c->tail = r->prev;
  r->prev = r->next = NULL;
}

static bool
modifies (enum req_type t)
{
  return t == R_WRITE || t == R_TRIM || t == R_ZERO;
}

/* libnbd's completion callback, on the poller's thread or in the
 * nbd_aio_* call itself.  ENOTCONN: the connection died under the
 * request; ESHUTDOWN: the server is going away.  Both send it again.
 */
static int
completed (void *user_data, int *error)
{
  struct req *r = user_data;
  struct upstream *up = r->up;
  int err = *error;

  pthread_mutex_lock (&up->lock);
  if (r->state == RS_INFLIGHT) {
    struct uconn *c = r->conn;
    unlink_req (c, r);
    if (err == ENOTCONN || err == ESHUTDOWN) {
      r->state = RS_RETRY;
      up_round_lost (up, c, err == ESHUTDOWN ? "the server is shutting down"
                     : nbd_get_error () ? nbd_get_error ()
                     : "the connection died");
    }
    else {
      r->state = RS_DONE;
      r->error = err;
      if (err == 0 && !r->replay && up->p.replay_limit &&
          (modifies (r->type) || r->type == R_FLUSH)) {
        r->completing = true;
        up->completing++;
      }
    }
    pthread_cond_signal (&r->cond);
  }
  pthread_mutex_unlock (&up->lock);
  return 1;
}

static int64_t
issue (struct uconn *c, struct req *r)
{
  nbd_completion_callback cb = { .callback = completed, .user_data = r };
  uint32_t f = (r->flags & DF_FUA) ? LIBNBD_CMD_FLAG_FUA : 0;

  switch (r->type) {
  case R_READ:
    return nbd_aio_pread (c->h, r->buf, r->count, r->offset, cb, 0);
  case R_WRITE:
    return nbd_aio_pwrite (c->h, r->buf, r->count, r->offset, cb, f);
  case R_FLUSH:
    return nbd_aio_flush (c->h, cb, 0);
  case R_TRIM:
    return nbd_aio_trim (c->h, r->count, r->offset, cb, f);
  case R_ZERO:
    if (!(r->flags & DF_MAY_TRIM))
      f |= LIBNBD_CMD_FLAG_NO_HOLE;
    if (r->flags & DF_FAST_ZERO)
      f |= LIBNBD_CMD_FLAG_FAST_ZERO;
    return nbd_aio_zero (c->h, r->count, r->offset, cb, f);
  }
  abort ();
}

int
uconn_submit (struct uconn *c, struct req *r)
{
  struct upstream *up = c->up;
  unsigned dir = 0;
  bool dead = false, first;
  int64_t cookie;
  int err = 0, rv;
  char why[256] = "";

  pthread_mutex_lock (&up->lock);
  if (c->dead) {
    r->state = RS_RETRY;
    pthread_mutex_unlock (&up->lock);
    return -1;
  }
  r->state = RS_INFLIGHT;
  r->conn = c;
  r->sent_ns = df_now_mono_ns ();
  /* The poller's timeout starts with the oldest request: tell it. */
  first = c->head == NULL && up->p.io_timeout;
  r->prev = c->tail;
  r->next = NULL;
  if (c->tail) c->tail->next = r;
  else c->head = r;
  c->tail = r;
  c->users++;
  pthread_mutex_unlock (&up->lock);

  cookie = issue (c, r);
  if (cookie == -1) {
    err = nbd_get_errno () ? nbd_get_errno () : EIO;
    snprintf (why, sizeof why, "%s", nbd_get_error ());
    dead = nbd_aio_is_dead (c->h) || nbd_aio_is_closed (c->h);
  }
  else {
    dir = nbd_aio_get_direction (c->h);
    if (first || (dir & LIBNBD_AIO_DIRECTION_WRITE))
      wake (c);                 /* before users drops: c may go then */
  }

  pthread_mutex_lock (&up->lock);
  if (cookie == -1 && r->state == RS_INFLIGHT) {
    /* Not sent (the callback will not be called). */
    unlink_req (c, r);
    if (dead) {
      r->state = RS_RETRY;
      up_round_lost (up, c, why);
    }
    else {
      r->state = RS_DONE;
      r->error = err;
      df_error (err, "%s", why);
    }
  }
  if (--c->users == 0 && c->dead)
    pthread_cond_broadcast (&up->cond);
  rv = r->state == RS_RETRY ? -1 : 0;
  pthread_mutex_unlock (&up->lock);
  return rv;
}

void
uconn_drop (struct uconn *c)
{
  struct upstream *up = c->up;
  struct linger lg = { .l_onoff = 1, .l_linger = 0 };
  struct req *r;
  int fd;

  pthread_mutex_lock (&up->lock);
  c->dead = true;
  pthread_mutex_unlock (&up->lock);
  if (c->poller_running) {
    wake (c);
    pthread_join (c->poller, NULL);
  }
  pthread_mutex_lock (&up->lock);
  while (c->users > 0)
    pthread_cond_wait (&up->cond, &up->lock);
  pthread_mutex_unlock (&up->lock);
  /* Nothing unsent may reach the server later: reset, do not linger. */
  fd = nbd_aio_get_fd (c->h);
  if (fd >= 0)
    setsockopt (fd, SOL_SOCKET, SO_LINGER, &lg, sizeof lg);
  nbd_close (c->h);             /* frees the callbacks without calling */
  pthread_mutex_lock (&up->lock);
  while ((r = c->head) != NULL) {
    unlink_req (c, r);
    r->state = RS_RETRY;
    pthread_cond_signal (&r->cond);
  }
  pthread_mutex_unlock (&up->lock);
  close (c->wake_fd);
  free (c);
}
