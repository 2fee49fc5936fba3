/* diskfarm-attach — connecting to a server of the list (see session.h). */
#include <config.h>

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "error.h"
#include "log.h"
#include "session.h"
#include "util.h"

void
session_close_fds (int *fds, size_t n)
{
  size_t i;

  for (i = 0; i < n; i++)
    if (fds[i] >= 0) {
      close (fds[i]);
      fds[i] = -1;
    }
}

/* One connection: TCP and the handshake, within connect_timeout. */
static int
open_one (const struct attach_options *o, const struct attach_server *srv,
          struct nbd_export_info *info)
{
  uint64_t deadline = df_now_mono_ns ()
    + (uint64_t) o->connect_timeout * 1000000000;
  int fd = nbd_dial (srv, deadline);

  if (fd == -1)
    return -1;
  if (nbd_handshake (fd, o->export, deadline, info) == -1) {
    int err = errno;
    close (fd);
    errno = err;
    return -1;
  }
  return fd;
}

int
session_open (struct attach_session *s, size_t server, int *fds)
{
  const struct attach_options *o = s->opts;
  const struct attach_server *srv = &o->servers[server];
  struct nbd_export_info info, more;
  uint32_t bs, n = o->connections, i;

  for (i = 0; i < o->connections; i++)
    fds[i] = -1;
  fds[0] = open_one (o, srv, &info);
  if (fds[0] == -1)
    return -1;
  if (nbd_pick_block_size (&info, o->block_size, &bs) == -1)
    goto err;
  if (n > 1 && !(info.flags & NBD_FLAG_CAN_MULTI_CONN)) {
    df_log_warning ("%s: the server does not allow several connections "
                    "to one export; using one", srv->name);
    n = 1;
  }
  for (i = 1; i < n; i++) {
    fds[i] = open_one (o, srv, &more);
    if (fds[i] == -1) {
      df_error_prefix ("connection %u of %u", i + 1, n);
      goto err;
    }
    if (more.size != info.size || more.flags != info.flags) {
      df_error (EPROTO, "connection %u of %u: the export changed size or "
                "flags", i + 1, n);
      goto err;
    }
  }
  s->server = server;
  s->info = info;
  s->block_size = bs;
  s->connections = n;
  return 0;
 err:
  session_close_fds (fds, o->connections);
  return -1;
}

int
session_open_any (struct attach_session *s, size_t first, int *fds,
                  session_report_fn report, void *ctx)
{
  const struct attach_options *o = s->opts;
  size_t i;

  for (i = 0; i < o->nservers; i++) {
    size_t k = (first + i) % o->nservers;

    if (session_open (s, k, fds) == 0)
      return 0;
    if (report)
      report (o, k, df_error_get (), ctx);
  }
  return -1;
}

const char *
session_describe (const struct attach_session *s, char *buf, size_t len)
{
  char size[32];
  uint16_t f = s->info.flags;

  snprintf (buf, len, "%s (%" PRIu64 " bytes), %s%s%s%s, block size %u, "
            "%u connection%s",
            df_format_size (s->info.size, size, sizeof size), s->info.size,
            f & NBD_FLAG_READ_ONLY ? "read-only" : "read-write",
            f & NBD_FLAG_SEND_FLUSH ? ", flush" : "",
            f & NBD_FLAG_SEND_FUA ? ", fua" : "",
            f & NBD_FLAG_SEND_TRIM ? ", trim" : "",
            s->block_size, s->connections, s->connections > 1 ? "s" : "");
  return buf;
}

void
session_log_changed (const struct attach_options *o, size_t k,
                     const char *message, void *ctx)
{
  struct session_log *log = ctx;

  if (strncmp (log->last[k], message, sizeof log->last[k] - 1) == 0)
    return;
  snprintf (log->last[k], sizeof log->last[k], "%s", message);
  df_log_warning ("%s: %s", o->servers[k].name, message);
}
