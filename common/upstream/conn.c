/* diskfarm — NBD upstream: one connection, made by libnbd (its
 * requests run in wire.c).
 */
#include <config.h>

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
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
  if (nbd_can_fua (h) != up->can_fua || nbd_can_flush (h) != up->can_flush ||
      nbd_can_trim (h) != up->can_trim ||
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
  up->can_flush = nbd_can_flush (h) == 1;
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
  /* wire.c speaks the transmission phase: simple replies only. */
  nbd_set_request_structured_replies (h, false);
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
  if (c == NULL || (c->rbuf = malloc (UP_RBUF)) == NULL) {
    free (c);
    df_error_errno ("upstream connection");
    goto err;
  }
  c->h = h;
  c->fd = nbd_aio_get_fd (h);
  return c;
 err:
  df_error_prefix ("%s", server);
  nbd_close (h);
  return NULL;
}

void
uconn_close (struct upstream *up, struct uconn *c, bool drain)
{
  int fd = -1;

  if (c == NULL)
    return;
  if (drain && c->fd >= 0)
    fd = fcntl (c->fd, F_DUPFD_CLOEXEC, 3);
  nbd_close (c->h);             /* the socket lives on in fd */
  if (fd >= 0)
    up_drain_add (up, fd);
  free (c->rbuf);
  free (c);
}
