/* diskfarm — one TFTP read transfer: windows, ACKs, retransmission.
 *
 * Blocks carry a 64-bit sequence number (the first data block is 1);
 * the wire carries its low 16 bits, so block numbers roll over from
 * 65535 to 0.  base is the first block not yet acknowledged and next the
 * next one to send: base..next-1 are in flight, at most windowsize.
 *
 * Blocks are resent only when the timer expires.  An ACK for a block
 * already acknowledged is ignored: answering duplicates with data is the
 * Sorcerer's Apprentice bug (RFC 1123 4.2.3.1), which doubles the
 * traffic at every delayed ACK.  An ACK for a block before the last one
 * sent means the client saw a gap (RFC 7440 section 4): the next window
 * starts right after it.
 */
#include <config.h>

#include <errno.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/uio.h>
#include <unistd.h>

#include "error.h"
#include "log.h"
#include "util.h"
#include "evloop/evloop.h"
#include "tftp/tftp-int.h"

struct tftp_transfer {
  struct tftp_server *srv;
  struct tftp_transfer *list_prev, *list_next;  /* srv->transfers */
  struct tftp_client *client;
  struct tftp_addr peer;
  char peer_name[TFTP_PEER_NAME_MAX];
  char *path;                   /* as requested, for logs */
  int sock, fd;
  struct df_watch *watch;
  struct df_timer *timer;
  enum tftp_mode mode;
  unsigned blksize, windowsize, retries;
  uint64_t timeout_ns, start_ns;
  uint64_t size;
  uint64_t base, next, last;    /* block sequence numbers */
  bool oack_pending;            /* OACK sent, waiting for ACK 0 */
  bool paused;                  /* rate limit: the timer resumes sending */
  bool blocked;                 /* socket buffer full: waiting for room */
  /* netascii runs lock-step (window 1): where block base starts in the
   * file (and the byte owed after a CR), and where the block after it
   * starts.
   */
  uint64_t na_off, na_next_off;
  int na_pending, na_next_pending;
  size_t oack_len;
  uint8_t oack[128];
};

/* Frees what transfer_new set up; t is not linked yet or unlinked. */
static void
transfer_destroy (struct tftp_transfer *t)
{
  df_watch_free (t->watch);
  df_timer_free (t->timer);
  if (t->sock >= 0)
    close (t->sock);
  if (t->fd >= 0)
    close (t->fd);
  tftp_client_put (t->srv, t->client);
  free (t->path);
  free (t);
}

static void
transfer_free (struct tftp_transfer *t)
{
  struct tftp_server *srv = t->srv;

  if (t->list_prev)
    t->list_prev->list_next = t->list_next;
  else
    srv->transfers = t->list_next;
  if (t->list_next)
    t->list_next->list_prev = t->list_prev;
  srv->stats.active--;
  transfer_destroy (t);
}

static int
transfer_complete (struct tftp_transfer *t, const char *what)
{
  char q[128], sz[32];
  double secs = (double) (df_now_mono_ns () - t->start_ns) / 1e9;

  t->srv->stats.completed++;
  df_log_info ("tftp: %s: %s \"%s\" (%s in %.2f s)", t->peer_name, what,
               df_quote (t->path, q, sizeof q),
               df_format_size (t->size, sz, sizeof sz), secs);
  transfer_free (t);
  return -1;
}

/* Ends a transfer that went wrong; sends an ERROR unless code < 0.
 * Returns -1: t is gone.
 */
__attribute__ ((format (printf, 4, 5)))
static int
transfer_fail (struct tftp_transfer *t, int code, const char *msg,
               const char *fmt, ...)
{
  char why[256], q[128];
  va_list ap;

  va_start (ap, fmt);
  vsnprintf (why, sizeof why, fmt, ap);
  va_end (ap);
  if (code >= 0)
    tftp_send_error (t->sock, &t->peer, code, msg);
  t->srv->stats.failed++;
  df_log_warning ("tftp: %s: transfer of \"%s\" failed after block %" PRIu64
                  ": %s", t->peer_name, df_quote (t->path, q, sizeof q),
                  t->base ? t->base - 1 : 0, why);
  transfer_free (t);
  return -1;
}

void
tftp_transfer_abort (struct tftp_transfer *t, const char *why)
{
  transfer_fail (t, TFTP_EUNDEF, why, "%s", why);
}

void
tftp_transfer_supersede (struct tftp_transfer *t)
{
  if (!t->oack_pending && t->next > t->last)
    transfer_complete (t, "sent");
  else
    transfer_fail (t, -1, NULL, "the client sent a new request");
}

/* Where packet i of a batch is built. */
static uint8_t *
slot (struct tftp_server *srv, unsigned i)
{
  return srv->txbuf + (size_t) i * (TFTP_HEADER_SIZE + srv->cfg.max_blksize);
}

static size_t
block_len (const struct tftp_transfer *t, uint64_t seq)
{
  return seq < t->last ? t->blksize
    : (size_t) (t->size - (seq - 1) * t->blksize);
}

/* Reads len bytes at off, or fails: the file must not shrink. */
static int
read_exact (int fd, uint8_t *buf, size_t len, uint64_t off)
{
  ssize_t r = df_pread_full (fd, buf, len, off);

  if (r == -1)
    return df_error_errno ("read at offset %" PRIu64, off);
  if ((size_t) r < len)
    return df_error (EIO, "file shrank to %" PRIu64 " bytes", off + r);
  return 0;
}

/* Octet blocks first..first+n-1 straight into the batch's packets, with
 * one preadv: consecutive blocks are consecutive in the file.
 */
static int
fill_octet (struct tftp_transfer *t, uint64_t first, unsigned n,
            size_t *lens)
{
  struct iovec iov[TFTP_BATCH_MAX];
  uint64_t off = (first - 1) * t->blksize;
  size_t total = 0;
  unsigned i;

  for (i = 0; i < n; i++) {
    lens[i] = block_len (t, first + i);
    iov[i].iov_base = slot (t->srv, i) + TFTP_HEADER_SIZE;
    iov[i].iov_len = lens[i];
    total += lens[i];
  }
  if (preadv (t->fd, iov, n, off) == (ssize_t) total)
    return 0;
  /* Short or failed: block by block, to finish or to say why. */
  for (i = 0; i < n; i++)
    if (read_exact (t->fd, iov[i].iov_base, lens[i],
                    off + (uint64_t) i * t->blksize) == -1)
      return -1;
  return 0;
}

/* Block base in netascii; sets last when the file ends in it. */
static int
fill_netascii (struct tftp_transfer *t, size_t *len)
{
  struct tftp_server *srv = t->srv;
  uint8_t *out = slot (srv, 0) + TFTP_HEADER_SIZE;
  uint64_t off = t->na_off;
  int pending = t->na_pending;
  size_t o = 0, used;
  ssize_t r;

  for (;;) {
    o += tftp_netascii_encode (NULL, 0, &used, out + o, t->blksize - o,
                               &pending);
    if (o == t->blksize)
      break;
    r = pread (t->fd, srv->scratch, t->blksize - o, off);
    if (r == -1 && errno == EINTR)
      continue;
    if (r == -1)
      return df_error_errno ("read at offset %" PRIu64, off);
    if (r == 0) {
      t->last = t->base;
      break;
    }
    o += tftp_netascii_encode (srv->scratch, r, &used, out + o,
                               t->blksize - o, &pending);
    off += used;
  }
  t->na_next_off = off;
  t->na_next_pending = pending;
  *len = o;
  return 0;
}

/* Sends the n packets built in the batch with sendmmsg.  Returns how
 * many went out; fewer than n means the socket buffer is full.  A
 * packet refused for another reason counts as lost on the way: the
 * timer resends it.
 */
static unsigned
send_batch (struct tftp_transfer *t, uint64_t first, unsigned n,
            const size_t *lens)
{
  struct tftp_server *srv = t->srv;
  struct mmsghdr msgs[TFTP_BATCH_MAX];
  struct iovec iov[TFTP_BATCH_MAX];
  unsigned i, sent = 0;
  int r;

  memset (msgs, 0, n * sizeof msgs[0]);
  for (i = 0; i < n; i++) {
    tftp_put_header (slot (srv, i), TFTP_DATA, (uint16_t) (first + i));
    iov[i].iov_base = slot (srv, i);
    iov[i].iov_len = TFTP_HEADER_SIZE + lens[i];
    msgs[i].msg_hdr.msg_name = &t->peer.ss;
    msgs[i].msg_hdr.msg_namelen = t->peer.len;
    msgs[i].msg_hdr.msg_iov = &iov[i];
    msgs[i].msg_hdr.msg_iovlen = 1;
  }
  while (sent < n) {
    r = sendmmsg (t->sock, msgs + sent, n - sent, 0);
    if (r == -1 && errno == EINTR)
      continue;
    if (r == -1 && (errno == EAGAIN || errno == EWOULDBLOCK))
      break;
    if (r == -1) {
      df_debug ("tftp", "%s: DATA %" PRIu64 " not sent: %m", t->peer_name,
                first + sent);
      r = 1;
    }
    sent += r;
  }
  for (i = 0; i < sent; i++) {
    srv->stats.bytes += lens[i];
    df_debug ("tftp", "%s: DATA %" PRIu64 " (wire %u, %zu bytes)",
              t->peer_name, first + i, (unsigned) (uint16_t) (first + i),
              lens[i]);
  }
  return sent;
}

static int
transfer_wait_room (struct tftp_transfer *t)
{
  t->blocked = true;
  if (df_watch_set_events (t->watch, DF_LOOP_READ | DF_LOOP_WRITE) == -1)
    return transfer_fail (t, TFTP_EUNDEF, "internal error", "%s",
                          df_error_get ());
  df_timer_arm (t->timer, t->timeout_ns);
  return 0;
}

/* How many blocks may go now: the window's room, up to the last block,
 * at most a batch.
 */
static unsigned
batch_size (const struct tftp_transfer *t)
{
  uint64_t n = t->base + t->windowsize - t->next;

  if (n > t->last - t->next + 1)
    n = t->last - t->next + 1;
  if (n > t->srv->batch_max)
    n = t->srv->batch_max;
  return n;
}

/* Sends what the window and the rate limit allow, then arms the timer
 * (retransmission, or the end of a rate-limit pause).  Returns 0, or -1
 * if the transfer ended (t is gone).
 */
static int
transfer_send (struct tftp_transfer *t)
{
  size_t lens[TFTP_BATCH_MAX];
  uint64_t wait_ns = 0;

  t->paused = false;
  while (t->next - t->base < t->windowsize && t->next <= t->last) {
    unsigned n = batch_size (t), k, sent;

    for (k = 0; k < n; k++)
      if (!tftp_client_take (t->srv, t->client,
                             TFTP_HEADER_SIZE + t->blksize, &wait_ns))
        break;
    if (k > 0) {
      if ((t->mode == TFTP_MODE_OCTET ? fill_octet (t, t->next, k, lens)
           : fill_netascii (t, &lens[0])) == -1)
        return transfer_fail (t, TFTP_EUNDEF, "read error", "%s",
                              df_error_get ());
      sent = send_batch (t, t->next, k, lens);
      t->next += sent;
      if (sent < k)
        return transfer_wait_room (t);
    }
    if (k < n) {
      t->paused = true;
      df_timer_arm (t->timer, wait_ns);
      return 0;
    }
  }
  df_timer_arm (t->timer, t->timeout_ns);
  return 0;
}

static void
send_oack (struct tftp_transfer *t)
{
  if (sendto (t->sock, t->oack, t->oack_len, 0,
              (const struct sockaddr *) &t->peer.ss, t->peer.len) == -1)
    df_debug ("tftp", "%s: OACK not sent: %m", t->peer_name);
  else
    df_debug ("tftp", "%s: OACK", t->peer_name);
  df_timer_arm (t->timer, t->timeout_ns);
}

static void
transfer_timer (void *opaque)
{
  struct tftp_transfer *t = opaque;

  if (t->paused) {
    transfer_send (t);
    return;
  }
  if (++t->retries > t->srv->cfg.max_retries) {
    transfer_fail (t, TFTP_EUNDEF, "timed out", "no answer after %u resends",
                   t->srv->cfg.max_retries);
    return;
  }
  df_debug ("tftp", "%s: timeout, resending from block %" PRIu64,
            t->peer_name, t->oack_pending ? 0 : t->base);
  if (t->oack_pending) {
    send_oack (t);
    return;
  }
  t->next = t->base;
  transfer_send (t);
}

static int
transfer_ack (struct tftp_transfer *t, uint16_t block)
{
  uint16_t delta = (uint16_t) (block - (uint16_t) t->base);
  uint64_t seq;

  if (t->oack_pending) {
    if (block != 0)
      return 0;
    df_debug ("tftp", "%s: ACK 0 (options accepted)", t->peer_name);
    t->oack_pending = false;
    t->base = t->next = 1;
    t->retries = 0;
    return transfer_send (t);
  }
  if (delta >= t->next - t->base) {
    df_debug ("tftp", "%s: ACK %u ignored (duplicate or stale)",
              t->peer_name, block);
    return 0;
  }
  seq = t->base + delta;
  df_debug ("tftp", "%s: ACK %" PRIu64, t->peer_name, seq);
  if (seq == t->last)
    return transfer_complete (t, "sent");
  if (t->mode == TFTP_MODE_NETASCII) {
    t->na_off = t->na_next_off;
    t->na_pending = t->na_next_pending;
  }
  t->base = seq + 1;
  t->retries = 0;
  if (t->base < t->next)
    t->next = t->base;          /* the client saw a gap */
  return transfer_send (t);
}

static int
transfer_packet (struct tftp_transfer *t, const uint8_t *buf, size_t n)
{
  int op = tftp_packet_opcode (buf, n);
  uint16_t block, code;
  char msg[128], q[160];

  if (op == TFTP_ACK && tftp_parse_ack (buf, n, &block) == 0)
    return transfer_ack (t, block);
  if (op == TFTP_ERROR && tftp_parse_error (buf, n, &code, msg, sizeof msg) == 0) {
    /* PXE ROMs ask for tsize, then end the transfer and ask again:
     * the size was all they wanted.
     */
    if (t->oack_pending)
      return transfer_complete (t, "sent the size of");
    return transfer_fail (t, -1, NULL, "client sent error %u \"%s\"", code,
                          df_quote (msg, q, sizeof q));
  }
  return transfer_fail (t, TFTP_EBADOP, tftp_error_message (TFTP_EBADOP),
                        "unexpected packet (opcode %d, %zu bytes)", op, n);
}

/* Reads what the client sent, several packets per system call.
 * Packets from another address or port get ERROR 5 (RFC 1350 section
 * 4) and leave the transfer alone.  Returns -1 if the transfer ended.
 */
static int
transfer_receive (struct tftp_transfer *t)
{
  enum { BATCH = 8, ROUNDS = 8, SIZE = 600 };
  uint8_t bufs[BATCH][SIZE];
  struct mmsghdr msgs[BATCH];
  struct iovec iov[BATCH];
  struct tftp_addr from[BATCH];
  int i, r, round;

  for (round = 0; round < ROUNDS; round++) {
    memset (msgs, 0, sizeof msgs);
    for (i = 0; i < BATCH; i++) {
      iov[i] = (struct iovec) { bufs[i], SIZE };
      msgs[i].msg_hdr.msg_iov = &iov[i];
      msgs[i].msg_hdr.msg_iovlen = 1;
      msgs[i].msg_hdr.msg_name = &from[i].ss;
      msgs[i].msg_hdr.msg_namelen = sizeof from[i].ss;
    }
    r = recvmmsg (t->sock, msgs, BATCH, MSG_DONTWAIT, NULL);
    if (r == -1 && errno == EINTR)
      continue;
    if (r == -1)
      return 0;
    for (i = 0; i < r; i++) {
      from[i].len = msgs[i].msg_hdr.msg_namelen;
      if (!tftp_addr_equal (&from[i], &t->peer))
        tftp_send_error (t->sock, &from[i], TFTP_EBADID,
                         tftp_error_message (TFTP_EBADID));
      else if (transfer_packet (t, bufs[i], msgs[i].msg_len) == -1)
        return -1;
    }
    if (r < BATCH)
      return 0;
  }
  return 0;
}

static void
transfer_event (void *opaque, int fd, unsigned events)
{
  struct tftp_transfer *t = opaque;

  (void) fd;
  if ((events & DF_LOOP_WRITE) && t->blocked) {
    t->blocked = false;
    if (df_watch_set_events (t->watch, DF_LOOP_READ) == -1
        || transfer_send (t) == -1)
      return;
  }
  if (events & DF_LOOP_READ)
    transfer_receive (t);
}

/* A socket on the address the request came to, any port. */
static int
transfer_socket (struct tftp_server *srv, const struct tftp_addr *local)
{
  int s = socket (srv->family, SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);

  if (s == -1)
    return df_error_errno ("socket");
  if (bind (s, (const struct sockaddr *) &local->ss, local->len) == 0)
    return s;
  /* A broadcast or multicast destination cannot be bound: let the
   * kernel pick the source address.
   */
  if (bind (s, (const struct sockaddr *) &srv->bound.ss, srv->bound.len) == 0)
    return s;
  df_error_errno ("bind transfer socket");
  close (s);
  return -1;
}

static struct tftp_transfer *
transfer_new (struct tftp_server *srv, const struct tftp_transfer_args *a)
{
  struct tftp_transfer *t = calloc (1, sizeof *t);

  if (t == NULL) {
    close (a->fd);
    df_error_errno ("transfer");
    return NULL;
  }
  t->srv = srv;
  t->fd = a->fd;
  t->peer = *a->peer;
  tftp_addr_format (a->peer, t->peer_name, sizeof t->peer_name);
  t->sock = transfer_socket (srv, a->local);
  if (t->sock >= 0)
    t->watch = df_loop_watch (srv->loop, t->sock, DF_LOOP_READ,
                              transfer_event, t);
  if (t->watch)
    t->timer = df_loop_timer (srv->loop, transfer_timer, t);
  t->path = strdup (a->path);
  t->client = tftp_client_get (srv, a->peer);
  if (t->timer == NULL || t->path == NULL || t->client == NULL) {
    if (t->timer && (t->path == NULL || t->client == NULL))
      df_error (ENOMEM, "transfer: out of memory");
    transfer_destroy (t);
    return NULL;
  }
  return t;
}

/* Transfer parameters from the negotiated options. */
static void
transfer_setup (struct tftp_transfer *t, const struct tftp_request *req,
                const struct tftp_options *ack)
{
  const struct tftp_config *cfg = &t->srv->cfg;

  t->mode = req->mode;
  t->blksize = (ack->present & TFTP_OPT_BLKSIZE)
    ? ack->blksize : TFTP_BLKSIZE_DEFAULT;
  t->windowsize = (ack->present & TFTP_OPT_WINDOWSIZE) ? ack->windowsize : 1;
  t->timeout_ns = (ack->present & TFTP_OPT_TIMEOUT)
    ? ack->timeout * UINT64_C (1000000000)
    : cfg->timeout_ms * UINT64_C (1000000);
  t->last = t->mode == TFTP_MODE_OCTET ? t->size / t->blksize + 1 : UINT64_MAX;
  t->na_pending = -1;
  t->start_ns = df_now_mono_ns ();
}

int
tftp_transfer_start (struct tftp_server *srv,
                     const struct tftp_transfer_args *a)
{
  struct tftp_limits lim = { srv->cfg.max_blksize, srv->cfg.max_windowsize };
  struct tftp_options ack;
  struct tftp_transfer *t = transfer_new (srv, a);

  if (t == NULL)
    return -1;
  t->size = a->size;
  tftp_negotiate (a->req, &lim, a->size, &ack);
  transfer_setup (t, a->req, &ack);
  t->list_next = srv->transfers;
  if (t->list_next)
    t->list_next->list_prev = t;
  srv->transfers = t;
  srv->stats.started++;
  srv->stats.active++;
  df_debug ("tftp", "%s: start \"%s\" blksize %u windowsize %u timeout %"
            PRIu64 " ms", t->peer_name, t->path, t->blksize, t->windowsize,
            t->timeout_ns / 1000000);
  if (ack.present) {
    /* 4 options with 20-digit values fit in 128 bytes. */
    t->oack_len = tftp_build_oack (t->oack, sizeof t->oack, &ack);
    t->oack_pending = true;
    send_oack (t);
    return 0;
  }
  t->base = t->next = 1;
  transfer_send (t);            /* a failure here is a failed transfer */
  return 0;
}

struct tftp_transfer *
tftp_transfer_find (struct tftp_server *srv, const struct tftp_addr *peer)
{
  struct tftp_transfer *t;

  for (t = srv->transfers; t; t = t->list_next)
    if (tftp_addr_equal (&t->peer, peer))
      return t;
  return NULL;
}

bool
tftp_transfer_is_repeat (const struct tftp_transfer *t, const char *path)
{
  return t->base <= 1 && strcmp (t->path, path) == 0;
}
