/* tftp-get — a TFTP client with the options the usual command-line
 * clients lack: blksize (RFC 2348), tsize (RFC 2349) and windowsize
 * (RFC 7440).  For the integration tests and the benchmark; built, not
 * installed.
 *
 * Within a window it ACKs the last block, or the short final block.  A
 * block out of order means a loss: it ACKs the last block received in
 * order, once, and the server starts the next window after it.  On a
 * timeout it repeats the request (nothing received yet) or its last ACK.
 */
#include <config.h>

#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <netdb.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>
#include <fcntl.h>

#include "error.h"
#include "util.h"
#include "tftp/tftp-packet.h"

struct get {
  int sock, out;
  struct sockaddr_storage server, peer;
  socklen_t server_len, peer_len;
  bool pinned;                  /* peer is the server's transfer port */
  unsigned blksize, windowsize, timeout_ms, retries, in_window;
  uint64_t expected;            /* next block, as a 64-bit sequence */
  uint64_t bytes, tsize;
  bool have_tsize, gap_acked, done;
  uint8_t req[600];
  size_t req_len;
};

static void
usage (void)
{
  printf ("Usage: tftp-get [OPTION]... HOST PORT FILE\n"
          "Fetch FILE from a TFTP server, octet mode.\n"
          "\n"
          "  -o, --output FILE     write the data to FILE (default: discard)\n"
          "  -b, --blksize N       ask for blocks of N bytes (RFC 2348)\n"
          "  -w, --windowsize N    ask for windows of N blocks (RFC 7440)\n"
          "  -s, --tsize           ask for the file size (RFC 2349)\n"
          "  -t, --timeout MS      wait this long before resending (1000)\n"
          "  -h, --help            show this help and exit\n"
          "\n"
          "Prints the negotiated options and the rate on stderr.\n");
}

static void
die (const char *msg)
{
  fprintf (stderr, "tftp-get: %s\n", msg);
  exit (EXIT_FAILURE);
}

static void
send_to_peer (struct get *g, const void *buf, size_t len)
{
  const struct sockaddr_storage *to = g->pinned ? &g->peer : &g->server;
  socklen_t tolen = g->pinned ? g->peer_len : g->server_len;

  if (sendto (g->sock, buf, len, 0, (const struct sockaddr *) to, tolen) == -1)
    fprintf (stderr, "tftp-get: send: %m\n");
}

static void
send_ack (struct get *g, uint64_t seq)
{
  uint8_t ack[TFTP_HEADER_SIZE];

  tftp_put_header (ack, TFTP_ACK, (uint16_t) seq);
  send_to_peer (g, ack, sizeof ack);
}

static void
on_oack (struct get *g, const uint8_t *buf, size_t n)
{
  struct tftp_options o;

  if (g->expected != 1 || g->bytes > 0)
    return;                     /* a repeated OACK: our ACK 0 is lost */
  if (tftp_parse_oack (buf, n, &o) == -1)
    die (df_error_get ());
  if (o.present & TFTP_OPT_BLKSIZE)
    g->blksize = o.blksize;
  else
    g->blksize = TFTP_BLKSIZE_DEFAULT;
  g->windowsize = (o.present & TFTP_OPT_WINDOWSIZE) ? o.windowsize : 1;
  g->have_tsize = o.present & TFTP_OPT_TSIZE;
  g->tsize = o.tsize;
  send_ack (g, 0);
}

static void
on_data (struct get *g, uint16_t block, const uint8_t *data, size_t len)
{
  if (block != (uint16_t) g->expected) {
    if (!g->gap_acked)          /* once per gap: no ACK storm */
      send_ack (g, g->expected - 1);
    g->gap_acked = true;
    g->in_window = 0;
    return;
  }
  if (len > g->blksize)
    die ("DATA larger than the block size");
  if (g->out >= 0 && df_write_full (g->out, data, len) == -1) {
    df_error_errno ("write failed");
    die (df_error_get ());
  }
  g->bytes += len;
  g->gap_acked = false;
  g->retries = 0;
  if (len < g->blksize) {
    send_ack (g, g->expected);
    g->done = true;
    return;
  }
  if (++g->in_window == g->windowsize) {
    send_ack (g, g->expected);
    g->in_window = 0;
  }
  g->expected++;
}

static void
on_packet (struct get *g, const uint8_t *buf, size_t n)
{
  const uint8_t *data;
  size_t len;
  uint16_t block, code;
  char msg[200];

  switch (tftp_packet_opcode (buf, n)) {
  case TFTP_OACK:
    on_oack (g, buf, n);
    return;
  case TFTP_DATA:
    if (tftp_parse_data (buf, n, &block, &data, &len) == 0)
      on_data (g, block, data, len);
    return;
  case TFTP_ERROR:
    if (tftp_parse_error (buf, n, &code, msg, sizeof msg) == 0) {
      fprintf (stderr, "tftp-get: server error %u: %s\n", code, msg);
      exit (EXIT_FAILURE);
    }
    return;
  default:
    fprintf (stderr, "tftp-get: ignored a packet of %zu bytes\n", n);
  }
}

/* The first answer fixes the server's transfer port; other ports get
 * ERROR 5.
 */
static bool
accept_source (struct get *g, const struct sockaddr_storage *from,
               socklen_t len)
{
  uint8_t err[64];
  ssize_t n;

  if (!g->pinned) {
    g->peer = *from;
    g->peer_len = len;
    g->pinned = true;
    return true;
  }
  if (len == g->peer_len && memcmp (from, &g->peer, len) == 0)
    return true;
  n = tftp_build_error (err, sizeof err, TFTP_EBADID, "unknown transfer ID");
  sendto (g->sock, err, n, 0, (const struct sockaddr *) from, len);
  return false;
}

static void
on_timeout (struct get *g)
{
  if (++g->retries > 5)
    die ("timed out");
  if (!g->pinned)
    send_to_peer (g, g->req, g->req_len);
  else
    send_ack (g, g->expected - 1);
}

static void
run (struct get *g)
{
  static uint8_t buf[TFTP_HEADER_SIZE + TFTP_BLKSIZE_MAX + 1];
  struct pollfd pfd = { .fd = g->sock, .events = POLLIN };
  struct sockaddr_storage from;
  socklen_t len;
  ssize_t n;

  send_to_peer (g, g->req, g->req_len);
  while (!g->done) {
    int r = poll (&pfd, 1, g->timeout_ms);
    if (r == -1 && errno == EINTR)
      continue;
    if (r == 0) {
      on_timeout (g);
      continue;
    }
    len = sizeof from;
    n = recvfrom (g->sock, buf, sizeof buf, 0, (struct sockaddr *) &from, &len);
    if (n >= 0 && accept_source (g, &from, len))
      on_packet (g, buf, n);
  }
}

static void
resolve (struct get *g, const char *host, const char *port)
{
  struct addrinfo hints = { .ai_socktype = SOCK_DGRAM,
                            .ai_flags = AI_NUMERICSERV };
  struct addrinfo *ai;

  if (getaddrinfo (host, port, &hints, &ai) != 0)
    die ("cannot resolve the server address");
  memcpy (&g->server, ai->ai_addr, ai->ai_addrlen);
  g->server_len = ai->ai_addrlen;
  g->sock = socket (ai->ai_family, SOCK_DGRAM | SOCK_CLOEXEC, 0);
  freeaddrinfo (ai);
  if (g->sock == -1)
    die ("socket failed");
}

static void
report (const struct get *g, uint64_t ns)
{
  double secs = (double) ns / 1e9;

  fprintf (stderr, "tftp-get: %" PRIu64 " bytes in %.3f s (%.1f MB/s), "
           "blksize %u, windowsize %u", g->bytes, secs,
           secs > 0 ? (double) g->bytes / secs / 1e6 : 0.0, g->blksize,
           g->windowsize);
  if (g->have_tsize)
    fprintf (stderr, ", tsize %" PRIu64, g->tsize);
  fprintf (stderr, "\n");
}

int
main (int argc, char **argv)
{
  static const struct option longopts[] = {
    { "output", required_argument, NULL, 'o' },
    { "blksize", required_argument, NULL, 'b' },
    { "windowsize", required_argument, NULL, 'w' },
    { "tsize", no_argument, NULL, 's' },
    { "timeout", required_argument, NULL, 't' },
    { "help", no_argument, NULL, 'h' },
    { NULL, 0, NULL, 0 },
  };
  struct get g = { .out = -1, .blksize = TFTP_BLKSIZE_DEFAULT,
                   .windowsize = 1, .timeout_ms = 1000, .expected = 1 };
  struct tftp_options o = { 0 };
  ssize_t n;
  uint64_t start;
  int c;

  while ((c = getopt_long (argc, argv, "o:b:w:st:h", longopts, NULL)) != -1) {
    switch (c) {
    case 'o':
      g.out = open (optarg, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
      if (g.out == -1)
        die ("cannot create the output file");
      break;
    case 'b': o.present |= TFTP_OPT_BLKSIZE; o.blksize = atoi (optarg); break;
    case 'w': o.present |= TFTP_OPT_WINDOWSIZE; o.windowsize = atoi (optarg); break;
    case 's': o.present |= TFTP_OPT_TSIZE; o.tsize = 0; break;
    case 't': g.timeout_ms = atoi (optarg); break;
    case 'h': usage (); return EXIT_SUCCESS;
    default: return EXIT_FAILURE;
    }
  }
  if (optind != argc - 3)
    die ("expected HOST PORT FILE; try --help");
  resolve (&g, argv[optind], argv[optind + 1]);
  n = tftp_build_request (g.req, sizeof g.req, TFTP_RRQ, argv[optind + 2],
                          "octet", &o);
  if (n == -1)
    die ("file name too long");
  g.req_len = n;
  start = df_now_mono_ns ();
  run (&g);
  report (&g, df_now_mono_ns () - start);
  if (g.out >= 0 && close (g.out) == -1)
    die ("close of the output file failed");
  return EXIT_SUCCESS;
}
