/* diskfarm — the TFTP server: the listening socket, requests and
 * refusals.  Transfers are in tftp-transfer.c.
 */
#include <config.h>

#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include "cleanup.h"
#include "error.h"
#include "log.h"
#include "util.h"
#include "evloop/evloop.h"
#include "tftp/tftp-int.h"

void
tftp_send_error (int sock, const struct tftp_addr *to, uint16_t code,
                 const char *msg)
{
  uint8_t buf[160];
  ssize_t n = tftp_build_error (buf, sizeof buf, code, msg);

  if (n == -1)
    n = tftp_build_error (buf, sizeof buf, code, "");
  if (sendto (sock, buf, n, 0, (const struct sockaddr *) &to->ss,
              to->len) == -1)
    df_debug ("tftp", "ERROR %u not sent: %m", code);
}

/* The name a request asks for, cut and quoted for a log line, even when
 * the request is malformed.
 */
static const char *
quote_name (const uint8_t *pkt, size_t n, char *q, size_t qsize)
{
  char raw[100];
  size_t i, m = 0;

  for (i = 2; i < n && pkt[i] && m + 4 < sizeof raw; i++)
    raw[m++] = pkt[i];
  if (i < n && pkt[i])
    m += snprintf (raw + m, sizeof raw - m, "...");
  raw[m] = '\0';
  return df_quote (raw, q, qsize);
}

/* Answers a request with an ERROR and logs why. */
__attribute__ ((format (printf, 6, 7)))
static void
refuse (struct tftp_server *srv, const struct tftp_addr *from,
        const char *qname, uint16_t code, const char *msg,
        const char *fmt, ...)
{
  char peer[TFTP_PEER_NAME_MAX], why[256];
  va_list ap;

  va_start (ap, fmt);
  vsnprintf (why, sizeof why, fmt, ap);
  va_end (ap);
  tftp_send_error (srv->fd, from, code, msg);
  srv->stats.refused++;
  df_log_warning ("tftp: %s: refused \"%s\": %s",
                  tftp_addr_format (from, peer, sizeof peer), qname, why);
}

/* Opens what rel names, regular files only; sets *size. */
static int
open_file (struct tftp_server *srv, const char *rel,
           const struct tftp_addr *from, int64_t *size)
{
  CLEANUP_CLOSE int fd = -1;
  struct stat st;

  if (srv->cfg.open_client || srv->cfg.open) {
    fd = srv->cfg.open_client
      ? srv->cfg.open_client (srv->cfg.opaque, rel,
                              (const struct sockaddr *) &from->ss, from->len)
      : srv->cfg.open (srv->cfg.opaque, rel);
    if (fd == -1)
      return df_error (errno, "open: %m");
  }
  else if ((fd = tftp_open_in_root (srv->rootfd, rel)) == -1)
    return -1;
  if (fstat (fd, &st) == -1)
    return df_error_errno ("fstat");
  if (!S_ISREG (st.st_mode))
    return df_error (EACCES, "not a regular file");
  *size = st.st_size;
  return TAKE_FD (fd);
}

static uint16_t
errno_to_tftp (int err)
{
  switch (err) {
  case ENOENT: case ENOTDIR:
    return TFTP_ENOTFOUND;
  case EACCES: case EPERM: case ELOOP: case EXDEV: case EISDIR:
  case ENAMETOOLONG:
    return TFTP_EACCESS;
  default:
    return TFTP_EUNDEF;
  }
}

/* Refuses what must be refused before a file is opened; returns -1 if
 * it did, else 0 with *rel the name relative to the root.
 */
static int
check_request (struct tftp_server *srv, size_t n, bool trunc,
               const struct tftp_addr *from, const char *qname,
               struct tftp_request *req, const char **rel)
{
  uint16_t code;

  if (trunc) {
    refuse (srv, from, qname, TFTP_EBADOP, "request too long",
            "request longer than %d bytes", TFTP_REQUEST_MAX);
    return -1;
  }
  if (tftp_parse_request (srv->rxbuf, n, req) == -1) {
    refuse (srv, from, qname, req->error, tftp_error_message (req->error),
            "%s", df_error_get ());
    return -1;
  }
  if (req->opcode == TFTP_WRQ) {
    refuse (srv, from, qname, TFTP_EACCESS, "server is read-only",
            "write request (the server is read-only)");
    return -1;
  }
  if (tftp_path_check (req->path, rel) == -1) {
    code = errno_to_tftp (errno);
    refuse (srv, from, qname, code, tftp_error_message (code), "%s",
            df_error_get ());
    return -1;
  }
  if (srv->stats.active >= srv->cfg.max_transfers) {
    refuse (srv, from, qname, TFTP_EUNDEF, "server busy, try again later",
            "%u transfers running already", srv->stats.active);
    return -1;
  }
  return 0;
}

static void
handle_request (struct tftp_server *srv, size_t n, bool trunc,
                const struct tftp_addr *from, const struct tftp_addr *local)
{
  struct tftp_request req;
  struct tftp_transfer *t;
  struct tftp_transfer_args args = { .req = &req, .peer = from, .local = local };
  const char *rel = NULL;
  char qname[400];
  uint16_t code;

  quote_name (srv->rxbuf, n, qname, sizeof qname);
  /* A client that did not hear from us soon enough asks again, from
   * the same port: its transfer is under way already.
   */
  t = tftp_transfer_find (srv, from);
  if (t && !trunc && tftp_parse_request (srv->rxbuf, n, &req) == 0
      && tftp_transfer_is_repeat (t, req.path)) {
    df_debug ("tftp", "repeated request for \"%s\" ignored", qname);
    return;
  }
  if (t)
    tftp_transfer_supersede (t);
  if (check_request (srv, n, trunc, from, qname, &req, &rel) == -1)
    return;
  args.path = req.path;
  args.fd = open_file (srv, rel, from, &args.size);
  if (args.fd == -1) {
    code = errno_to_tftp (errno);
    refuse (srv, from, qname, code, tftp_error_message (code), "%s",
            df_error_get ());
    return;
  }
  if (tftp_transfer_start (srv, &args) == -1)
    refuse (srv, from, qname, TFTP_EUNDEF, "server busy, try again later",
            "%s", df_error_get ());
}

static void
handle_packet (struct tftp_server *srv, size_t n, bool trunc,
               const struct tftp_addr *from, const struct tftp_addr *local)
{
  int op = tftp_packet_opcode (srv->rxbuf, n);
  char peer[TFTP_PEER_NAME_MAX];

  if (op == TFTP_RRQ || op == TFTP_WRQ) {
    handle_request (srv, n, trunc, from, local);
    return;
  }
  df_debug ("tftp", "%s: opcode %d (%zu bytes) on the server port",
            tftp_addr_format (from, peer, sizeof peer), op, n);
  if (op != TFTP_ERROR)         /* never answer an error with an error */
    tftp_send_error (srv->fd, from, TFTP_EBADOP,
                     tftp_error_message (TFTP_EBADOP));
}

/* The address a request was sent to, from IP_PKTINFO/IPV6_PKTINFO, so
 * that the transfer answers from it on a multi-homed server.
 */
static void
local_from_cmsg (struct tftp_server *srv, struct cmsghdr *c,
                 struct tftp_addr *local)
{
  if (c->cmsg_level == IPPROTO_IP && c->cmsg_type == IP_PKTINFO
      && srv->family == AF_INET) {
    struct in_pktinfo pi;
    memcpy (&pi, CMSG_DATA (c), sizeof pi);
    ((struct sockaddr_in *) &local->ss)->sin_addr = pi.ipi_spec_dst;
  }
  else if (c->cmsg_level == IPPROTO_IPV6 && c->cmsg_type == IPV6_PKTINFO
           && srv->family == AF_INET6) {
    struct sockaddr_in6 *in6 = (struct sockaddr_in6 *) &local->ss;
    struct in6_pktinfo pi;
    memcpy (&pi, CMSG_DATA (c), sizeof pi);
    in6->sin6_addr = pi.ipi6_addr;
    if (IN6_IS_ADDR_LINKLOCAL (&pi.ipi6_addr))
      in6->sin6_scope_id = pi.ipi6_ifindex;
  }
}

static ssize_t
recv_request (struct tftp_server *srv, struct tftp_addr *from,
              struct tftp_addr *local, bool *trunc)
{
  union {
    struct cmsghdr align;
    char buf[CMSG_SPACE (sizeof (struct in6_pktinfo))
             + CMSG_SPACE (sizeof (struct in_pktinfo))];
  } ctl;
  struct iovec iov = { srv->rxbuf, TFTP_REQUEST_MAX };
  struct msghdr msg = {
    .msg_name = &from->ss, .msg_namelen = sizeof from->ss,
    .msg_iov = &iov, .msg_iovlen = 1,
    .msg_control = ctl.buf, .msg_controllen = sizeof ctl.buf,
  };
  struct cmsghdr *c;
  ssize_t n;

  do
    n = recvmsg (srv->fd, &msg, MSG_DONTWAIT);
  while (n == -1 && errno == EINTR);
  if (n == -1)
    return -1;
  from->len = msg.msg_namelen;
  *trunc = msg.msg_flags & MSG_TRUNC;
  srv->rxbuf[n] = '\0';
  *local = srv->bound;
  for (c = CMSG_FIRSTHDR (&msg); c; c = CMSG_NXTHDR (&msg, c))
    local_from_cmsg (srv, c, local);
  return n;
}

static void
server_event (void *opaque, int fd, unsigned events)
{
  struct tftp_server *srv = opaque;
  struct tftp_addr from, local;
  bool trunc;
  ssize_t n;
  int i;

  (void) fd;
  (void) events;
  for (i = 0; i < 64; i++) {    /* then let the transfers run */
    n = recv_request (srv, &from, &local, &trunc);
    if (n == -1) {
      if (errno != EAGAIN && errno != EWOULDBLOCK)
        df_debug ("tftp", "receive on the server port: %m");
      return;
    }
    handle_packet (srv, n, trunc, &from, &local);
  }
}

static int
setup_socket (struct tftp_server *srv, int fd)
{
  socklen_t len = sizeof (int);
  int type, on = 1;

  if (getsockopt (fd, SOL_SOCKET, SO_TYPE, &type, &len) == -1)
    return df_error_errno ("TFTP socket (fd %d)", fd);
  if (type != SOCK_DGRAM)
    return df_error (EINVAL, "TFTP socket (fd %d) is not a UDP socket", fd);
  srv->bound.len = sizeof srv->bound.ss;
  if (getsockname (fd, (struct sockaddr *) &srv->bound.ss, &srv->bound.len) == -1)
    return df_error_errno ("TFTP socket (fd %d)", fd);
  srv->family = srv->bound.ss.ss_family;
  if (srv->family == AF_INET) {
    ((struct sockaddr_in *) &srv->bound.ss)->sin_port = 0;
    if (setsockopt (fd, IPPROTO_IP, IP_PKTINFO, &on, sizeof on) == -1)
      return df_error_errno ("TFTP socket: IP_PKTINFO");
  }
  else if (srv->family == AF_INET6) {
    ((struct sockaddr_in6 *) &srv->bound.ss)->sin6_port = 0;
    if (setsockopt (fd, IPPROTO_IPV6, IPV6_RECVPKTINFO, &on, sizeof on) == -1)
      return df_error_errno ("TFTP socket: IPV6_RECVPKTINFO");
  }
  else
    return df_error (EINVAL, "TFTP socket (fd %d) is not an IP socket", fd);
  return 0;
}

static unsigned
clamp (unsigned v, unsigned dflt, unsigned lo, unsigned hi)
{
  if (v == 0)
    v = dflt;
  return v < lo ? lo : v > hi ? hi : v;
}

static void
apply_defaults (struct tftp_config *cfg)
{
  cfg->max_blksize = clamp (cfg->max_blksize, 1468, TFTP_BLKSIZE_DEFAULT,
                            TFTP_BLKSIZE_MAX);
  cfg->max_windowsize = clamp (cfg->max_windowsize, 64, 1,
                               TFTP_WINDOWSIZE_MAX);
  cfg->timeout_ms = clamp (cfg->timeout_ms, 1000, 1, 255000);
  cfg->max_retries = clamp (cfg->max_retries, 5, 1, 1000);
  cfg->max_transfers = clamp (cfg->max_transfers, 1024, 1, 1u << 20);
}

struct tftp_server *
tftp_server_new (struct df_loop *loop, int fd, const struct tftp_config *cfg)
{
  struct tftp_server *srv;
  char q[128];

  if (cfg->root == NULL && cfg->open == NULL && cfg->open_client == NULL) {
    df_error (EINVAL, "TFTP: neither a root directory nor a resolver");
    return NULL;
  }
  srv = calloc (1, sizeof *srv);
  if (srv == NULL) {
    df_error_errno ("TFTP server");
    return NULL;
  }
  srv->loop = loop;
  srv->fd = fd;
  srv->rootfd = -1;
  srv->cfg = *cfg;
  srv->cfg.root = NULL;
  apply_defaults (&srv->cfg);
  if (setup_socket (srv, fd) == -1)
    goto fail;
  if (cfg->open == NULL && cfg->open_client == NULL
      && (srv->rootfd = open (cfg->root, O_PATH | O_DIRECTORY | O_CLOEXEC)) == -1) {
    df_error_errno ("TFTP root \"%s\"", df_quote (cfg->root, q, sizeof q));
    goto fail;
  }
  /* Batches of up to 256 KiB. */
  srv->batch_max = 262144 / (TFTP_HEADER_SIZE + srv->cfg.max_blksize);
  if (srv->batch_max < 1)
    srv->batch_max = 1;
  if (srv->batch_max > TFTP_BATCH_MAX)
    srv->batch_max = TFTP_BATCH_MAX;
  srv->txbuf = malloc ((size_t) srv->batch_max
                       * (TFTP_HEADER_SIZE + srv->cfg.max_blksize));
  srv->scratch = malloc (srv->cfg.max_blksize);
  if (srv->txbuf == NULL || srv->scratch == NULL) {
    df_error_errno ("TFTP buffers");
    goto fail;
  }
  srv->watch = df_loop_watch (loop, fd, DF_LOOP_READ, server_event, srv);
  if (srv->watch == NULL)
    goto fail;
  return srv;

 fail:
  tftp_server_free (srv);
  return NULL;
}

void
tftp_server_free (struct tftp_server *srv)
{
  if (srv == NULL)
    return;
  while (srv->transfers)
    tftp_transfer_abort (srv->transfers, "server shutting down");
  df_watch_free (srv->watch);
  if (srv->rootfd >= 0)
    close (srv->rootfd);
  free (srv->txbuf);
  free (srv->scratch);
  free (srv);
}

void
tftp_server_stats (const struct tftp_server *srv, struct tftp_stats *out)
{
  *out = srv->stats;
}
