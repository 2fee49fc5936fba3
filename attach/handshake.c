/* diskfarm-attach — NBD client handshake (see handshake.h).
 *
 * The protocol is doc/proto.md of the NBD project; the constants below
 * are its names.  Every read has the caller's deadline, so a server
 * that accepts and then says nothing cannot hang the boot.
 */
#include <config.h>

#include <endian.h>
#include <errno.h>
#include <limits.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>
#include <fcntl.h>

#include "cleanup.h"
#include "error.h"
#include "handshake.h"
#include "util.h"

#define NBD_MAGIC 0x4e42444d41474943ULL           /* "NBDMAGIC" */
#define NBD_IHAVEOPT 0x49484156454f5054ULL        /* "IHAVEOPT" */
#define NBD_OLDSTYLE_MAGIC 0x0000420281861253ULL
#define NBD_REP_MAGIC 0x0003e889045565a9ULL

#define NBD_FLAG_FIXED_NEWSTYLE (1 << 0)          /* handshake flags */
#define NBD_FLAG_NO_ZEROES (1 << 1)
#define NBD_FLAG_C_FIXED_NEWSTYLE (1 << 0)        /* client flags */
#define NBD_FLAG_C_NO_ZEROES (1 << 1)

#define NBD_OPT_EXPORT_NAME 1
#define NBD_OPT_GO 7

#define NBD_REP_ACK 1
#define NBD_REP_INFO 3
#define NBD_REP_FLAG_ERROR (1u << 31)
#define NBD_REP_ERR_UNSUP (NBD_REP_FLAG_ERROR | 1)
#define NBD_REP_ERR_POLICY (NBD_REP_FLAG_ERROR | 2)
#define NBD_REP_ERR_UNKNOWN (NBD_REP_FLAG_ERROR | 6)

#define NBD_INFO_EXPORT 0
#define NBD_INFO_BLOCK_SIZE 3

/* Longest option reply we read (error messages are short). */
#define MAX_REPLY (64 * 1024)

/* Waits until fd is ready for events or the deadline passes. */
static int
wait_fd (int fd, short events, uint64_t deadline)
{
  for (;;) {
    struct pollfd p = { .fd = fd, .events = events };
    uint64_t now = df_now_mono_ns ();
    uint64_t ms;
    int r;

    if (now >= deadline)
      return df_error (ETIMEDOUT, "timed out");
    ms = (deadline - now + 999999) / 1000000;
    r = poll (&p, 1, ms > INT_MAX ? INT_MAX : (int) ms);
    if (r > 0)
      return 0;
    if (r == -1 && errno != EINTR)
      return df_error_errno ("poll");
  }
}

/* Reads exactly len bytes; what names them for messages. */
static int
recv_full (int fd, void *buf, size_t len, uint64_t deadline, const char *what)
{
  char *p = buf;

  while (len > 0) {
    ssize_t r;

    if (wait_fd (fd, POLLIN, deadline) == -1) {
      if (errno == ETIMEDOUT)
        return df_error (ETIMEDOUT, "timed out waiting for %s", what);
      return -1;
    }
    r = recv (fd, p, len, MSG_DONTWAIT);
    if (r == 0)
      return df_error (ECONNRESET, "the server closed the connection "
                       "instead of sending %s", what);
    if (r == -1) {
      if (errno == EAGAIN || errno == EINTR)
        continue;
      return df_error_errno ("reading %s", what);
    }
    p += r;
    len -= r;
  }
  return 0;
}

static int
send_full (int fd, const void *buf, size_t len, uint64_t deadline)
{
  const char *p = buf;

  while (len > 0) {
    ssize_t r;

    if (wait_fd (fd, POLLOUT, deadline) == -1) {
      if (errno == ETIMEDOUT)
        return df_error (ETIMEDOUT, "timed out sending to the server");
      return -1;
    }
    r = send (fd, p, len, MSG_DONTWAIT | MSG_NOSIGNAL);
    if (r == -1) {
      if (errno == EAGAIN || errno == EINTR)
        continue;
      return df_error_errno ("sending to the server");
    }
    p += r;
    len -= r;
  }
  return 0;
}

static uint16_t
get16 (const unsigned char *p)
{
  uint16_t v;
  memcpy (&v, p, 2);
  return be16toh (v);
}

static uint32_t
get32 (const unsigned char *p)
{
  uint32_t v;
  memcpy (&v, p, 4);
  return be32toh (v);
}

static uint64_t
get64 (const unsigned char *p)
{
  uint64_t v;
  memcpy (&v, p, 8);
  return be64toh (v);
}

static unsigned char *
put16 (unsigned char *p, uint16_t v)
{
  v = htobe16 (v);
  memcpy (p, &v, 2);
  return p + 2;
}

static unsigned char *
put32 (unsigned char *p, uint32_t v)
{
  v = htobe32 (v);
  memcpy (p, &v, 4);
  return p + 4;
}

static unsigned char *
put64 (unsigned char *p, uint64_t v)
{
  v = htobe64 (v);
  memcpy (p, &v, 8);
  return p + 8;
}

/* Sends an option with its data. */
static int
send_option (int fd, uint32_t option, const void *data, size_t len,
             uint64_t deadline)
{
  unsigned char hdr[16], *p = hdr;

  p = put64 (p, NBD_IHAVEOPT);
  p = put32 (p, option);
  put32 (p, len);
  if (send_full (fd, hdr, sizeof hdr, deadline) == -1)
    return -1;
  return send_full (fd, data, len, deadline);
}

/* An error reply to NBD_OPT_GO, with the server's message if any. */
static int
go_error (uint32_t type, const unsigned char *msg, size_t len,
          const char *export)
{
  char text[256], quoted[260], says[300], q[128];
  size_t n = len < sizeof text - 1 ? len : sizeof text - 1;

  memcpy (text, msg, n);
  text[n] = '\0';
  says[0] = '\0';
  if (n > 0)
    snprintf (says, sizeof says, " (server says: \"%s\")",
              df_quote (text, quoted, sizeof quoted));
  df_quote (export, q, sizeof q);
  switch (type) {
  case NBD_REP_ERR_UNKNOWN:
    return df_error (ENOENT, "unknown export \"%s\"%s", q, says);
  case NBD_REP_ERR_POLICY:
    return df_error (EACCES, "export \"%s\" refused by the server's "
                     "policy%s", q, says);
  case NBD_REP_FLAG_ERROR | 5:
    return df_error (EPROTO, "the server requires TLS, which "
                     "diskfarm-attach does not speak%s", says);
  case NBD_REP_FLAG_ERROR | 7:
    return df_error (ESHUTDOWN, "the server is shutting down%s", says);
  default:
    return df_error (EPROTO, "the server rejected export \"%s\" with "
                     "error %u%s", q, type & ~NBD_REP_FLAG_ERROR, says);
  }
}

/* Parses one NBD_REP_INFO; sets *have_export for NBD_INFO_EXPORT. */
static int
go_info (const unsigned char *d, uint32_t len, struct nbd_export_info *info,
         bool *have_export)
{
  if (len < 2)
    return df_error (EPROTO, "protocol error: short NBD_REP_INFO");
  switch (get16 (d)) {
  case NBD_INFO_EXPORT:
    if (len != 12)
      return df_error (EPROTO, "protocol error: NBD_INFO_EXPORT of %u "
                       "bytes", len);
    info->size = get64 (d + 2);
    info->flags = get16 (d + 10);
    *have_export = true;
    return 0;
  case NBD_INFO_BLOCK_SIZE:
    if (len != 14)
      return df_error (EPROTO, "protocol error: NBD_INFO_BLOCK_SIZE of %u "
                       "bytes", len);
    info->min_block = get32 (d + 2);
    info->pref_block = get32 (d + 6);
    info->max_block = get32 (d + 10);
    return 0;
  default:                      /* the protocol says: ignore */
    return 0;
  }
}

/* NBD_OPT_GO.  Returns 0 when the export is selected, 1 when the server
 * does not support GO (try NBD_OPT_EXPORT_NAME), -1 on error.
 */
static int
opt_go (int fd, const char *export, uint64_t deadline,
        struct nbd_export_info *info)
{
  size_t namelen = strlen (export);
  CLEANUP_FREE unsigned char *req = malloc (namelen + 8);
  unsigned char *p = req;
  bool have_export = false;

  if (req == NULL)
    return df_error_errno ("malloc");
  p = put32 (p, namelen);
  memcpy (p, export, namelen);
  p += namelen;
  p = put16 (p, 1);                    /* one information request: */
  p = put16 (p, NBD_INFO_BLOCK_SIZE);  /* NBD_INFO_EXPORT comes anyway */
  if (send_option (fd, NBD_OPT_GO, req, p - req, deadline) == -1)
    return -1;

  for (;;) {
    unsigned char hdr[20];
    CLEANUP_FREE unsigned char *data = NULL;
    uint32_t type, len;

    if (recv_full (fd, hdr, sizeof hdr, deadline, "the reply to NBD_OPT_GO")
        == -1)
      return -1;
    type = get32 (hdr + 12);
    len = get32 (hdr + 16);
    if (get64 (hdr) != NBD_REP_MAGIC || get32 (hdr + 8) != NBD_OPT_GO)
      return df_error (EPROTO, "protocol error: bad option reply header");
    if (len > MAX_REPLY)
      return df_error (EPROTO, "protocol error: option reply of %u bytes",
                       len);
    data = malloc (len + 1);
    if (data == NULL)
      return df_error_errno ("malloc");
    if (recv_full (fd, data, len, deadline, "the reply to NBD_OPT_GO") == -1)
      return -1;

    if (type == NBD_REP_ACK) {
      if (!have_export)
        return df_error (EPROTO, "protocol error: NBD_OPT_GO acknowledged "
                         "without NBD_INFO_EXPORT");
      return 0;
    }
    if (type == NBD_REP_INFO) {
      if (go_info (data, len, info, &have_export) == -1)
        return -1;
      continue;
    }
    if (type == NBD_REP_ERR_UNSUP)
      return 1;
    if (type & NBD_REP_FLAG_ERROR)
      return go_error (type, data, len, export);
    return df_error (EPROTO, "protocol error: reply type %u to NBD_OPT_GO",
                     type);
  }
}

/* NBD_OPT_EXPORT_NAME: the server answers with the export, or hangs up
 * without a reason when it does not know the name.
 */
static int
opt_export_name (int fd, const char *export, bool no_zeroes,
                 uint64_t deadline, struct nbd_export_info *info)
{
  unsigned char reply[10 + 124];
  size_t len = no_zeroes ? 10 : sizeof reply;
  char q[128];

  if (send_option (fd, NBD_OPT_EXPORT_NAME, export, strlen (export),
                   deadline) == -1)
    return -1;
  if (recv_full (fd, reply, len, deadline, "the export") == -1) {
    if (errno == ECONNRESET)
      return df_error (ENOENT, "the server hung up on export \"%s\" "
                       "(unknown export?  It gives no reason: it does "
                       "not support NBD_OPT_GO)",
                       df_quote (export, q, sizeof q));
    return -1;
  }
  info->size = get64 (reply);
  info->flags = get16 (reply + 8);
  return 0;
}

int
nbd_handshake (int fd, const char *export, uint64_t deadline,
               struct nbd_export_info *info)
{
  unsigned char greet[18], cflags[4];
  uint64_t opt;
  uint16_t hflags;
  uint32_t c = 0;
  int r;

  memset (info, 0, sizeof *info);
  if (recv_full (fd, greet, 16, deadline, "the server's greeting") == -1)
    return -1;
  if (get64 (greet) != NBD_MAGIC)
    return df_error (EPROTO, "not an NBD server (no NBDMAGIC greeting)");
  opt = get64 (greet + 8);
  if (opt == NBD_OLDSTYLE_MAGIC)
    return df_error (EPROTO, "the server speaks the oldstyle protocol, "
                     "which has no export names");
  if (opt != NBD_IHAVEOPT)
    return df_error (EPROTO, "not an NBD server (bad greeting)");
  if (recv_full (fd, greet + 16, 2, deadline, "the server's greeting") == -1)
    return -1;
  hflags = get16 (greet + 16);
  if (hflags & NBD_FLAG_FIXED_NEWSTYLE)
    c |= NBD_FLAG_C_FIXED_NEWSTYLE;
  if (hflags & NBD_FLAG_NO_ZEROES)
    c |= NBD_FLAG_C_NO_ZEROES;
  put32 (cflags, c);
  if (send_full (fd, cflags, sizeof cflags, deadline) == -1)
    return -1;

  /* Without fixed newstyle, an unknown option may end the session:
   * only NBD_OPT_EXPORT_NAME is safe.
   */
  if (hflags & NBD_FLAG_FIXED_NEWSTYLE) {
    r = opt_go (fd, export, deadline, info);
    if (r <= 0)
      return r;
  }
  return opt_export_name (fd, export, c & NBD_FLAG_C_NO_ZEROES, deadline,
                          info);
}

int
nbd_pick_block_size (const struct nbd_export_info *info, uint32_t want,
                     uint32_t *out)
{
  uint32_t min = info->min_block;
  uint32_t bs = want ? want : (min > 512 ? min : 512);

  if (min && !df_is_power_of_2 (min))
    return df_error (EPROTO, "the server's minimum block size %u is not "
                     "a power of 2", min);
  if (bs > 4096)
    return df_error (EINVAL, "the server needs blocks of at least %u "
                     "bytes; the kernel's NBD client takes at most 4096",
                     bs);
  if (bs < min)
    return df_error (EINVAL, "block size %u is below the server's "
                     "minimum of %u", bs, min);
  *out = bs;
  return 0;
}

static int
set_int_opt (int fd, int level, int name, int value)
{
  return setsockopt (fd, level, name, &value, sizeof value);
}

int
nbd_dial (const struct attach_server *srv, uint64_t deadline)
{
  CLEANUP_CLOSE int fd = -1;
  int err = 0;
  socklen_t errlen = sizeof err;

  fd = socket (srv->addr.ss_family, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK,
               0);
  if (fd == -1)
    return df_error_errno ("socket");
  if (connect (fd, (const struct sockaddr *) &srv->addr, srv->addrlen) == -1) {
    if (errno != EINPROGRESS)
      return df_error_errno ("connect");
    if (wait_fd (fd, POLLOUT, deadline) == -1) {
      if (errno == ETIMEDOUT)
        return df_error (ETIMEDOUT, "connect: no answer (timed out)");
      return -1;
    }
    if (getsockopt (fd, SOL_SOCKET, SO_ERROR, &err, &errlen) == -1)
      return df_error_errno ("getsockopt");
    if (err) {
      errno = err;
      return df_error_errno ("connect");
    }
  }
  /* The kernel takes a blocking socket.  Small requests must not wait
   * for Nagle; keepalive notices a dead server while the disk is idle.
   */
  if (fcntl (fd, F_SETFL, fcntl (fd, F_GETFL) & ~O_NONBLOCK) == -1 ||
      set_int_opt (fd, IPPROTO_TCP, TCP_NODELAY, 1) == -1 ||
      set_int_opt (fd, SOL_SOCKET, SO_KEEPALIVE, 1) == -1 ||
      set_int_opt (fd, IPPROTO_TCP, TCP_KEEPIDLE, 10) == -1 ||
      set_int_opt (fd, IPPROTO_TCP, TCP_KEEPINTVL, 5) == -1 ||
      set_int_opt (fd, IPPROTO_TCP, TCP_KEEPCNT, 3) == -1)
    return df_error_errno ("setting socket options");
  return TAKE_FD (fd);
}
