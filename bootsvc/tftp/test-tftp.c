/* Unit tests: bootsvc/tftp — packet parsing and building, negotiation,
 * path checks, netascii, and real transfers through the event loop over
 * loopback UDP, the test playing the client with hand-made packets:
 * windows, loss, duplicate ACKs (Sorcerer's Apprentice), rollover,
 * retransmission, refusals, rate limit.
 */
#include <config.h>

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/stat.h>

#include "test-helpers.h"
#include "evloop/evloop.h"
#include "tftp/tftp.h"
#include "tftp/tftp-int.h"
#include "tftp/tftp-packet.h"

/* ---- packets ---- */

/* A request from strings: "path", "mode", then name/value pairs. */
static size_t
make_packet (uint8_t *buf, uint16_t op, const char *const *strs, size_t n)
{
  size_t pos = 2, i;

  buf[0] = op >> 8;
  buf[1] = op & 0xff;
  for (i = 0; i < n; i++) {
    memcpy (buf + pos, strs[i], strlen (strs[i]) + 1);
    pos += strlen (strs[i]) + 1;
  }
  return pos;
}
#define PACKET(buf, op, ...)                                            \
  make_packet (buf, op, (const char *const[]) { __VA_ARGS__ },          \
               sizeof ((const char *const[]) { __VA_ARGS__ }) / sizeof (char *))

static void
test_parse_request_good (void **state)
{
  uint8_t buf[512];
  struct tftp_request req;
  size_t n = PACKET (buf, TFTP_RRQ, "boot/ipxe.efi", "OcTeT", "blksize",
                     "1468", "TSIZE", "0", "timeout", "3", "windowsize", "8");

  (void) state;
  assert_int_equal (tftp_parse_request (buf, n, &req), 0);
  assert_int_equal (req.opcode, TFTP_RRQ);
  assert_string_equal (req.path, "boot/ipxe.efi");
  assert_int_equal (req.mode, TFTP_MODE_OCTET);
  assert_int_equal (req.opts.present, TFTP_OPT_BLKSIZE | TFTP_OPT_TSIZE
                    | TFTP_OPT_TIMEOUT | TFTP_OPT_WINDOWSIZE);
  assert_int_equal (req.opts.blksize, 1468);
  assert_int_equal (req.opts.tsize, 0);
  assert_int_equal (req.opts.timeout, 3);
  assert_int_equal (req.opts.windowsize, 8);
  assert_int_equal (req.ignored, 0);

  n = PACKET (buf, TFTP_WRQ, "x", "netascii");
  assert_int_equal (tftp_parse_request (buf, n, &req), 0);
  assert_int_equal (req.opcode, TFTP_WRQ);
  assert_int_equal (req.mode, TFTP_MODE_NETASCII);
  assert_int_equal (req.opts.present, 0);

  /* PXE ROMs pad with NULs: an empty option name ends the list. */
  n = PACKET (buf, TFTP_RRQ, "x", "octet", "blksize", "512", "", "");
  assert_int_equal (tftp_parse_request (buf, n, &req), 0);
  assert_int_equal (req.opts.present, TFTP_OPT_BLKSIZE);
}

static void
test_parse_request_options (void **state)
{
  uint8_t buf[512];
  struct tftp_request req;
  size_t n;

  (void) state;
  /* Unknown options and out-of-range values are ignored (RFC 2347). */
  n = PACKET (buf, TFTP_RRQ, "f", "octet", "multicast", "", "blksize", "7",
              "timeout", "0", "windowsize", "65536", "tsize", "12x");
  assert_int_equal (tftp_parse_request (buf, n, &req), 0);
  assert_int_equal (req.opts.present, 0);
  assert_int_equal (req.ignored, 5);
  n = PACKET (buf, TFTP_RRQ, "f", "octet", "timeout", "256", "blksize", "-1",
              "windowsize", "0", "blksize2", "1");
  assert_int_equal (tftp_parse_request (buf, n, &req), 0);
  assert_int_equal (req.opts.present, 0);
  /* Limits themselves are fine; a blksize over 65464 is granted less. */
  n = PACKET (buf, TFTP_RRQ, "f", "octet", "timeout", "255", "blksize",
              "99999999999", "windowsize", "65535");
  assert_int_equal (tftp_parse_request (buf, n, &req), 0);
  assert_int_equal (req.opts.timeout, 255);
  assert_int_equal (req.opts.blksize, TFTP_BLKSIZE_MAX);
  assert_int_equal (req.opts.windowsize, 65535);
  n = PACKET (buf, TFTP_RRQ, "f", "octet", "timeout", "1", "blksize", "8",
              "windowsize", "1");
  assert_int_equal (tftp_parse_request (buf, n, &req), 0);
  assert_int_equal (req.opts.present, TFTP_OPT_TIMEOUT | TFTP_OPT_BLKSIZE
                    | TFTP_OPT_WINDOWSIZE);
  assert_int_equal (req.opts.blksize, 8);
  /* A known option twice, in any case and even with a bad value, makes
   * the request ambiguous.
   */
  n = PACKET (buf, TFTP_RRQ, "f", "octet", "blksize", "1024", "BlkSize", "512");
  assert_int_equal (tftp_parse_request (buf, n, &req), -1);
  assert_int_equal (req.error, TFTP_EOPTNEG);
  assert_error_contains ("twice");
  n = PACKET (buf, TFTP_RRQ, "f", "octet", "tsize", "x", "tsize", "0");
  assert_int_equal (tftp_parse_request (buf, n, &req), -1);
  /* Unknown ones may repeat. */
  n = PACKET (buf, TFTP_RRQ, "f", "octet", "foo", "1", "foo", "2");
  assert_int_equal (tftp_parse_request (buf, n, &req), 0);
  /* A name without a value. */
  n = PACKET (buf, TFTP_RRQ, "f", "octet", "blksize", "512", "tsize");
  assert_int_equal (tftp_parse_request (buf, n, &req), -1);
  assert_int_equal (req.error, TFTP_EBADOP);
}

static void
test_parse_request_malformed (void **state)
{
  uint8_t buf[512];
  struct tftp_request req;
  size_t n;

  (void) state;
  n = PACKET (buf, TFTP_RRQ, "file", "octet");
  assert_int_equal (tftp_parse_request (buf, n - 1, &req), -1);
  assert_int_equal (req.error, TFTP_EBADOP);
  assert_error_contains ("NUL");
  n = PACKET (buf, TFTP_RRQ, "file");
  assert_int_equal (tftp_parse_request (buf, n, &req), -1);
  assert_error_contains ("mode");
  /* A NUL inside the name: what follows it is read as the mode. */
  n = PACKET (buf, TFTP_RRQ, "pxelinux.0", "../../etc/passwd", "octet");
  assert_int_equal (tftp_parse_request (buf, n, &req), -1);
  assert_int_equal (req.error, TFTP_EBADOP);
  assert_error_contains ("mode \"../../etc/passwd\"");
  n = PACKET (buf, TFTP_RRQ, "file", "mail");
  assert_int_equal (tftp_parse_request (buf, n, &req), -1);
  n = PACKET (buf, TFTP_ACK, "file", "octet");
  assert_int_equal (tftp_parse_request (buf, n, &req), -1);
  for (n = 0; n < 4; n++)
    assert_int_equal (tftp_parse_request ("\0\1\0\0", n, &req), -1);
  /* An empty name parses; the path check refuses it. */
  assert_int_equal (tftp_parse_request ("\0\1\0octet", 9, &req), 0);
  assert_string_equal (req.path, "");
}

static void
test_parse_small (void **state)
{
  uint16_t block, code;
  const uint8_t *data;
  size_t len;
  char msg[8];
  struct tftp_options o;

  (void) state;
  assert_int_equal (tftp_parse_ack ("\0\4\1\2", 4, &block), 0);
  assert_int_equal (block, 0x102);
  assert_int_equal (tftp_parse_ack ("\0\4\1", 3, &block), -1);
  assert_int_equal (tftp_parse_ack ("\0\3\1\2", 4, &block), -1);
  assert_int_equal (tftp_parse_data ("\0\3\xff\xffxyz", 7, &block, &data,
                                     &len), 0);
  assert_int_equal (block, 65535);
  assert_int_equal (len, 3);
  assert_memory_equal (data, "xyz", 3);
  /* Messages without their NUL, and too long for the buffer. */
  assert_int_equal (tftp_parse_error ("\0\5\0\1not found", 13, &code, msg,
                                      sizeof msg), 0);
  assert_int_equal (code, 1);
  assert_string_equal (msg, "not fou");
  assert_int_equal (tftp_parse_error ("\0\5\0\2", 4, &code, msg, sizeof msg), 0);
  assert_string_equal (msg, "");
  assert_int_equal (tftp_parse_error ("\0\5\0", 3, &code, msg, sizeof msg), -1);
  assert_int_equal (tftp_parse_oack ("\0\6blksize\0" "1024\0tsize\0" "77\0",
                                     25, &o), 0);
  assert_int_equal (o.present, TFTP_OPT_BLKSIZE | TFTP_OPT_TSIZE);
  assert_int_equal (o.blksize, 1024);
  assert_int_equal (o.tsize, 77);
  assert_int_equal (tftp_parse_oack ("\0\6what\0" "1\0", 9, &o), -1);
  assert_int_equal (tftp_packet_opcode ("\0", 1), -1);
}

static void
test_negotiate_oack (void **state)
{
  static const struct tftp_limits lim = { 1468, 16 };
  uint8_t buf[512];
  struct tftp_request req;
  struct tftp_options ack;
  size_t n = PACKET (buf, TFTP_RRQ, "f", "octet", "blksize", "9000", "tsize",
                     "0", "windowsize", "64", "timeout", "2", "x", "y");
  ssize_t len;

  (void) state;
  assert_int_equal (tftp_parse_request (buf, n, &req), 0);
  tftp_negotiate (&req, &lim, 123456, &ack);
  assert_int_equal (ack.blksize, 1468);
  assert_int_equal (ack.windowsize, 16);
  assert_int_equal (ack.timeout, 2);
  assert_int_equal (ack.tsize, 123456);
  len = tftp_build_oack (buf, sizeof buf, &ack);
  assert_int_equal (len, 52);
  assert_memory_equal (buf, "\0\6blksize\0" "1468\0timeout\0" "2\0tsize\0"
                       "123456\0windowsize\0" "16\0", 52);
  assert_int_equal (tftp_build_oack (buf, 51, &ack), -1);
  assert_int_equal (errno, ENOBUFS);
  /* A small request is granted as asked. */
  n = PACKET (buf, TFTP_RRQ, "f", "octet", "blksize", "100");
  assert_int_equal (tftp_parse_request (buf, n, &req), 0);
  tftp_negotiate (&req, &lim, 0, &ack);
  assert_int_equal (ack.present, TFTP_OPT_BLKSIZE);
  assert_int_equal (ack.blksize, 100);
  /* netascii: no tsize (the length after conversion is unknown) and no
   * window.
   */
  n = PACKET (buf, TFTP_RRQ, "f", "netascii", "tsize", "0", "windowsize", "4");
  assert_int_equal (tftp_parse_request (buf, n, &req), 0);
  tftp_negotiate (&req, &lim, 10, &ack);
  assert_int_equal (ack.present, 0);
  /* No "tsize 0" for an empty file (curl refuses it). */
  n = PACKET (buf, TFTP_RRQ, "f", "octet", "tsize", "0");
  assert_int_equal (tftp_parse_request (buf, n, &req), 0);
  tftp_negotiate (&req, &lim, 0, &ack);
  assert_int_equal (ack.present, 0);
  /* Only unknown options: no OACK at all. */
  n = PACKET (buf, TFTP_RRQ, "f", "octet", "rollover", "0");
  assert_int_equal (tftp_parse_request (buf, n, &req), 0);
  tftp_negotiate (&req, &lim, 10, &ack);
  assert_int_equal (ack.present, 0);
  len = tftp_build_error (buf, sizeof buf, 1, "file not found");
  assert_int_equal (len, 19);
  assert_memory_equal (buf, "\0\5\0\1" "file not found", 19);
}

static void
test_path_check (void **state)
{
  static const char *const good[] = {
    "pxelinux.0", "boot/ipxe.efi", "a..b", "...", "x/.../y", ".hidden",
    "dir/./file", "with space",
  };
  static const char *const bad[] = {
    "", "/", "///", "..", "../etc/passwd", "a/../b", "a/..", "/../x",
    "a//..//b", "tab\there", "del\x7f", "new\nline",
  };
  char longname[TFTP_PATH_MAX + 2];
  const char *rel;
  size_t i;

  (void) state;
  for (i = 0; i < sizeof good / sizeof good[0]; i++) {
    if (tftp_path_check (good[i], &rel) == -1)
      fail_msg ("\"%s\" refused: %s", good[i], df_error_get ());
    assert_ptr_equal (rel, good[i]);
  }
  for (i = 0; i < sizeof bad / sizeof bad[0]; i++)
    if (tftp_path_check (bad[i], &rel) == 0)
      fail_msg ("\"%s\" accepted", bad[i]);
  assert_int_equal (tftp_path_check ("../x", &rel), -1);
  assert_int_equal (errno, EACCES);
  assert_int_equal (tftp_path_check ("//etc/passwd", &rel), 0);
  assert_string_equal (rel, "etc/passwd");
  memset (longname, 'a', sizeof longname - 1);
  longname[TFTP_PATH_MAX] = '\0';
  assert_int_equal (tftp_path_check (longname, &rel), 0);
  longname[TFTP_PATH_MAX] = 'a';
  longname[TFTP_PATH_MAX + 1] = '\0';
  assert_int_equal (tftp_path_check (longname, &rel), -1);
  assert_int_equal (errno, ENAMETOOLONG);
}

static void
test_netascii (void **state)
{
  uint8_t out[16];
  size_t used, n;
  int pending = -1;

  (void) state;
  n = tftp_netascii_encode ((const uint8_t *) "a\nb\rc", 5, &used, out,
                            sizeof out, &pending);
  assert_int_equal (n, 7);
  assert_int_equal (used, 5);
  assert_memory_equal (out, "a\r\nb\r\0c", 7);
  /* CR LF cut at the end of the output: LF is owed to the next one. */
  n = tftp_netascii_encode ((const uint8_t *) "ab\nc", 4, &used, out, 3,
                            &pending);
  assert_int_equal (n, 3);
  assert_int_equal (used, 3);
  assert_memory_equal (out, "ab\r", 3);
  assert_int_equal (pending, '\n');
  n = tftp_netascii_encode ((const uint8_t *) "c", 1, &used, out, 3, &pending);
  assert_int_equal (n, 2);
  assert_memory_equal (out, "\nc", 2);
  assert_int_equal (pending, -1);
}

/* ---- opening inside the root: openat2, and the walk without it ---- */

static void
check_opener (int (*opener) (int, const char *), int rootfd)
{
  static const struct { const char *path; int err; } cases[] = {
    { "dir/file", 0 }, { "/dir/file", 0 }, { "dir//sub/file2", 0 },
    { "fifo", 0 },              /* opens at once: O_NONBLOCK */
    { "link-out", ELOOP }, { "dir/link-in", ELOOP },
    { "linkdir/file", ELOOP }, { "nope", ENOENT }, { "dir/nope/x", ENOENT },
    { "dir/file/x", ENOTDIR },
  };
  size_t i;
  int fd;

  for (i = 0; i < sizeof cases / sizeof cases[0]; i++) {
    fd = opener (rootfd, cases[i].path);
    if (cases[i].err == 0 && fd == -1)
      fail_msg ("\"%s\": %s", cases[i].path, df_error_get ());
    if (cases[i].err && (fd != -1 || errno != cases[i].err))
      fail_msg ("\"%s\": fd %d, %s", cases[i].path, fd, df_error_get ());
    if (fd >= 0)
      close (fd);
  }
  /* ".." never leaves the root: clamped (openat2) or refused (walk). */
  fd = opener (rootfd, "../../etc/passwd");
  assert_int_equal (fd, -1);
  assert_true (errno == ENOENT || errno == EACCES);
}

static void
test_open_in_root (void **state)
{
  char *dir = test_tmpdir (), *p;
  int rootfd;

  (void) state;
  p = test_path (dir, "dir");
  assert_int_equal (mkdir (p, 0755), 0);
  free (p);
  p = test_path (dir, "dir/sub");
  assert_int_equal (mkdir (p, 0755), 0);
  free (p);
  test_write (dir, "dir/file", "x");
  test_write (dir, "dir/sub/file2", "y");
  p = test_path (dir, "fifo");
  assert_int_equal (mkfifo (p, 0644), 0);
  free (p);
  p = test_path (dir, "link-out");
  assert_int_equal (symlink ("/etc/passwd", p), 0);
  free (p);
  p = test_path (dir, "dir/link-in");
  assert_int_equal (symlink ("file", p), 0);
  free (p);
  p = test_path (dir, "linkdir");
  assert_int_equal (symlink ("dir", p), 0);
  free (p);
  rootfd = open (dir, O_PATH | O_DIRECTORY | O_CLOEXEC);
  assert_true (rootfd >= 0);
  check_opener (tftp_open_in_root, rootfd);
  check_opener (tftp_open_walk, rootfd);
  close (rootfd);
  test_tmpdir_free (dir);
}

/* ---- transfers over loopback ---- */

struct harness {
  struct df_loop *loop;
  struct tftp_server *srv;
  char *dir;
  int srv_fd, cl;               /* the server's port 69, the client */
  struct sockaddr_in srv_addr, peer;  /* peer: the transfer's port */
  uint8_t buf[TFTP_HEADER_SIZE + TFTP_BLKSIZE_MAX];
};

static int
udp_socket (struct sockaddr_in *addr)
{
  socklen_t len = sizeof *addr;
  int fd = socket (AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);

  assert_true (fd >= 0);
  memset (addr, 0, sizeof *addr);
  addr->sin_family = AF_INET;
  addr->sin_addr.s_addr = htonl (INADDR_LOOPBACK);
  assert_int_equal (bind (fd, (struct sockaddr *) addr, sizeof *addr), 0);
  assert_int_equal (getsockname (fd, (struct sockaddr *) addr, &len), 0);
  return fd;
}

static void
harness_start (struct harness *h, struct tftp_config *cfg)
{
  struct sockaddr_in a;

  memset (h, 0, sizeof *h);
  h->dir = test_tmpdir ();
  h->loop = df_loop_new ();
  assert_non_null (h->loop);
  h->srv_fd = udp_socket (&h->srv_addr);
  h->cl = udp_socket (&a);
  if (cfg->root == NULL && cfg->open == NULL)
    cfg->root = h->dir;
  h->srv = tftp_server_new (h->loop, h->srv_fd, cfg);
  if (h->srv == NULL)
    fail_msg ("tftp_server_new: %s", df_error_get ());
}

static void
harness_stop (struct harness *h)
{
  tftp_server_free (h->srv);
  df_loop_free (h->loop);
  close (h->srv_fd);
  close (h->cl);
  test_tmpdir_free (h->dir);
}

/* A file of size bytes of a pattern; returns its content (caller frees). */
static uint8_t *
make_file (struct harness *h, const char *name, size_t size, uint64_t seed)
{
  uint8_t *data = malloc (size + 1);
  char *path = test_path (h->dir, name);

  assert_non_null (data);
  test_fill (data, size, &seed);
  assert_int_equal (df_write_file_atomic (path, data, size, 0644), 0);
  free (path);
  return data;
}

/* Receives one packet on sock within timeout_ms, running the loop
 * meanwhile; -1 on timeout.  Records the sender in *from.
 */
static ssize_t
recv_on (struct harness *h, int sock, struct sockaddr_in *from,
         int timeout_ms)
{
  uint64_t deadline = df_now_mono_ns () + timeout_ms * UINT64_C (1000000);
  socklen_t len;
  ssize_t n;

  for (;;) {
    len = sizeof *from;
    n = recvfrom (sock, h->buf, sizeof h->buf, MSG_DONTWAIT,
                  (struct sockaddr *) from, &len);
    if (n >= 0)
      return n;
    assert_int_equal (errno, EAGAIN);
    if (df_now_mono_ns () > deadline)
      return -1;
    assert_int_equal (df_loop_once (h->loop, 5), 0);
  }
}

static ssize_t
client_recv (struct harness *h, int timeout_ms)
{
  return recv_on (h, h->cl, &h->peer, timeout_ms);
}

static void
send_to (int sock, const struct sockaddr_in *to, const void *buf, size_t n)
{
  assert_int_equal (sendto (sock, buf, n, 0, (const struct sockaddr *) to,
                            sizeof *to), (ssize_t) n);
}

static void
client_ack (struct harness *h, uint16_t block)
{
  uint8_t ack[4];

  tftp_put_header (ack, TFTP_ACK, block);
  send_to (h->cl, &h->peer, ack, sizeof ack);
}

/* Expects DATA with this wire block number; returns its length. */
static size_t
expect_data (struct harness *h, uint16_t block)
{
  ssize_t n = client_recv (h, 3000);
  uint16_t got;
  const uint8_t *data;
  size_t len;

  if (n < 0)
    fail_msg ("no DATA %u", block);
  if (tftp_parse_data (h->buf, n, &got, &data, &len) == -1)
    fail_msg ("opcode %d instead of DATA %u", tftp_packet_opcode (h->buf, n),
              block);
  if (got != block)
    fail_msg ("DATA %u instead of %u", got, block);
  return len;
}

static void
expect_error (struct harness *h, uint16_t code)
{
  ssize_t n = client_recv (h, 3000);
  uint16_t got;
  char msg[128];

  assert_true (n > 0);
  if (tftp_parse_error (h->buf, n, &got, msg, sizeof msg) == -1)
    fail_msg ("opcode %d instead of ERROR %u", tftp_packet_opcode (h->buf, n),
              code);
  if (got != code)
    fail_msg ("ERROR %u (%s) instead of %u", got, msg, code);
}

static void
expect_nothing (struct harness *h, int ms)
{
  ssize_t n = client_recv (h, ms);

  if (n >= 0)
    fail_msg ("unexpected packet: opcode %d, %zd bytes",
              tftp_packet_opcode (h->buf, n), n);
}

static void
send_request (struct harness *h, const void *pkt, size_t n)
{
  send_to (h->cl, &h->srv_addr, pkt, n);
}

static void
expect_oack (struct harness *h, struct tftp_options *o)
{
  ssize_t n = client_recv (h, 3000);

  assert_true (n > 0);
  if (tftp_parse_oack (h->buf, n, o) == -1)
    fail_msg ("no OACK (opcode %d)", tftp_packet_opcode (h->buf, n));
}

static struct tftp_stats
stats (struct harness *h)
{
  struct tftp_stats st;

  tftp_server_stats (h->srv, &st);
  return st;
}

/* Runs the loop until the server has finished every transfer. */
static void
settle (struct harness *h)
{
  int i;

  for (i = 0; i < 200 && stats (h).active > 0; i++)
    df_loop_once (h->loop, 10);
  assert_int_equal (stats (h).active, 0);
}

/* Lock-step transfer of a whole file, checking every byte. */
static void
receive_lockstep (struct harness *h, const uint8_t *want, size_t size,
                  unsigned blksize, uint64_t first)
{
  uint64_t seq;
  size_t off = 0, len;

  for (seq = first;; seq++) {
    len = expect_data (h, (uint16_t) seq);
    assert_true (off + len <= size);
    assert_memory_equal (h->buf + 4, want + off, len);
    off += len;
    client_ack (h, (uint16_t) seq);
    if (len < blksize)
      break;
  }
  assert_int_equal (off, size);
}

static void
test_transfer_plain (void **state)
{
  struct tftp_config cfg = { 0 };
  struct harness h;
  uint8_t pkt[64], *data;
  size_t n;

  (void) state;
  harness_start (&h, &cfg);
  data = make_file (&h, "f", 3000, 1);
  n = PACKET (pkt, TFTP_RRQ, "f", "octet");
  send_request (&h, pkt, n);
  receive_lockstep (&h, data, 3000, 512, 1);
  /* The transfer came from its own port, not the server's. */
  assert_int_not_equal (h.peer.sin_port, h.srv_addr.sin_port);
  settle (&h);
  assert_int_equal (stats (&h).started, 1);
  assert_int_equal (stats (&h).completed, 1);
  assert_int_equal (stats (&h).bytes, 3000);
  free (data);

  /* Sizes around the block size: an exact multiple ends with an empty
   * block, an empty file is one empty block.
   */
  data = make_file (&h, "g", 1024, 2);
  n = PACKET (pkt, TFTP_RRQ, "/g", "octet");
  send_request (&h, pkt, n);
  receive_lockstep (&h, data, 1024, 512, 1);
  free (data);
  data = make_file (&h, "e", 0, 3);
  n = PACKET (pkt, TFTP_RRQ, "e", "octet");
  send_request (&h, pkt, n);
  receive_lockstep (&h, data, 0, 512, 1);
  free (data);
  settle (&h);
  assert_int_equal (stats (&h).completed, 3);
  harness_stop (&h);
}

static void
test_transfer_oack (void **state)
{
  struct tftp_config cfg = { .max_blksize = 1000 };
  struct harness h;
  struct tftp_options o;
  uint8_t pkt[128], *data;
  size_t n;

  (void) state;
  harness_start (&h, &cfg);
  data = make_file (&h, "f", 5000, 4);
  n = PACKET (pkt, TFTP_RRQ, "f", "octet", "blksize", "1468", "tsize", "0",
              "timeout", "2", "bogus", "1");
  send_request (&h, pkt, n);
  expect_oack (&h, &o);
  assert_int_equal (o.present, TFTP_OPT_BLKSIZE | TFTP_OPT_TSIZE
                    | TFTP_OPT_TIMEOUT);
  assert_int_equal (o.blksize, 1000);
  assert_int_equal (o.tsize, 5000);
  assert_int_equal (o.timeout, 2);
  /* Data waits for ACK 0; an ACK 1 now is ignored. */
  client_ack (&h, 1);
  expect_nothing (&h, 100);
  client_ack (&h, 0);
  receive_lockstep (&h, data, 5000, 1000, 1);
  settle (&h);
  assert_int_equal (stats (&h).completed, 1);
  free (data);
  harness_stop (&h);
}

/* A duplicate ACK never makes the server send (Sorcerer's Apprentice):
 * only the timer does.
 */
static void
test_duplicate_ack (void **state)
{
  struct tftp_config cfg = { .timeout_ms = 2000 };
  struct harness h;
  uint8_t pkt[64], *data;
  size_t n;

  (void) state;
  harness_start (&h, &cfg);
  data = make_file (&h, "f", 2000, 5);
  n = PACKET (pkt, TFTP_RRQ, "f", "octet");
  send_request (&h, pkt, n);
  expect_data (&h, 1);
  client_ack (&h, 1);
  expect_data (&h, 2);
  client_ack (&h, 1);
  client_ack (&h, 1);
  client_ack (&h, 0);
  client_ack (&h, 9);           /* not sent yet: ignored too */
  expect_nothing (&h, 300);
  client_ack (&h, 2);
  assert_int_equal (expect_data (&h, 3), 512);
  assert_memory_equal (h.buf + 4, data + 1024, 512);
  client_ack (&h, 2);
  expect_nothing (&h, 200);
  assert_int_equal (stats (&h).bytes, 3 * 512);
  client_ack (&h, 3);
  assert_int_equal (expect_data (&h, 4), 2000 - 3 * 512);
  client_ack (&h, 4);
  settle (&h);
  assert_int_equal (stats (&h).completed, 1);
  assert_int_equal (stats (&h).bytes, 2000);
  free (data);
  harness_stop (&h);
}

static void
test_timeout_retransmit (void **state)
{
  struct tftp_config cfg = { .timeout_ms = 150, .max_retries = 2 };
  struct harness h;
  uint8_t pkt[64], *data;
  uint64_t t0, dt;
  size_t n;

  (void) state;
  harness_start (&h, &cfg);
  data = make_file (&h, "f", 1500, 6);
  n = PACKET (pkt, TFTP_RRQ, "f", "octet");
  send_request (&h, pkt, n);
  expect_data (&h, 1);
  client_ack (&h, 1);
  expect_data (&h, 2);
  /* ACK 2 lost: block 2 comes again after the timeout, not before. */
  t0 = df_now_mono_ns ();
  assert_int_equal (expect_data (&h, 2), 512);
  dt = df_now_mono_ns () - t0;
  assert_true (dt >= 120000000);
  assert_memory_equal (h.buf + 4, data + 512, 512);
  /* The resend counter restarts after progress. */
  client_ack (&h, 2);
  expect_data (&h, 3);
  expect_data (&h, 3);
  expect_data (&h, 3);
  /* Two resends spent: the server gives up and says so. */
  expect_error (&h, TFTP_EUNDEF);
  settle (&h);
  assert_int_equal (stats (&h).failed, 1);
  assert_int_equal (stats (&h).completed, 0);
  free (data);
  harness_stop (&h);
}

/* Receives a window of blocks first..first+count-1 and checks them. */
static void
expect_window (struct harness *h, const uint8_t *data, unsigned blksize,
               uint64_t first, unsigned count)
{
  uint64_t seq;

  for (seq = first; seq < first + count; seq++) {
    size_t len = expect_data (h, (uint16_t) seq);
    assert_memory_equal (h->buf + 4, data + (seq - 1) * blksize, len);
  }
}

static void
test_windowsize (void **state)
{
  struct tftp_config cfg = { .timeout_ms = 2000, .max_windowsize = 4 };
  struct harness h;
  struct tftp_options o;
  uint8_t pkt[128], *data;
  size_t n;

  (void) state;
  harness_start (&h, &cfg);
  data = make_file (&h, "f", 20 * 512 + 100, 7);
  n = PACKET (pkt, TFTP_RRQ, "f", "octet", "windowsize", "8");
  send_request (&h, pkt, n);
  expect_oack (&h, &o);
  assert_int_equal (o.windowsize, 4);
  client_ack (&h, 0);
  expect_window (&h, data, 512, 1, 4);
  expect_nothing (&h, 100);     /* a window, then wait */
  client_ack (&h, 4);
  expect_window (&h, data, 512, 5, 4);
  /* Block 7 lost: the client ACKs 6 and the window restarts at 7. */
  client_ack (&h, 6);
  expect_window (&h, data, 512, 7, 4);
  expect_nothing (&h, 100);
  client_ack (&h, 6);           /* a duplicate: nothing */
  expect_nothing (&h, 200);
  client_ack (&h, 10);
  expect_window (&h, data, 512, 11, 4);
  client_ack (&h, 14);
  expect_window (&h, data, 512, 15, 4);
  client_ack (&h, 18);
  /* 19, 20 and the last, short block: the window stops at the end. */
  expect_window (&h, data, 512, 19, 2);
  assert_int_equal (expect_data (&h, 21), 100);
  expect_nothing (&h, 100);
  client_ack (&h, 21);
  settle (&h);
  assert_int_equal (stats (&h).completed, 1);
  free (data);
  harness_stop (&h);
}

/* More than 65535 blocks: the block number goes 65535, 0, 1... */
static void
test_rollover (void **state)
{
  struct tftp_config cfg = { .timeout_ms = 2000 };
  struct harness h;
  struct tftp_options o;
  const size_t size = 8 * 65540 + 3;
  uint8_t pkt[128], *data;
  uint64_t seq, last = size / 8 + 1;
  size_t n, off = 0;

  (void) state;
  harness_start (&h, &cfg);
  data = make_file (&h, "big", size, 8);
  n = PACKET (pkt, TFTP_RRQ, "big", "octet", "blksize", "8", "windowsize",
              "64", "tsize", "0");
  send_request (&h, pkt, n);
  expect_oack (&h, &o);
  assert_int_equal (o.tsize, size);
  client_ack (&h, 0);
  for (seq = 1; seq <= last; seq++) {
    size_t len = expect_data (&h, (uint16_t) seq);
    assert_memory_equal (h.buf + 4, data + off, len);
    off += len;
    if (seq % 64 == 0 || seq == last)
      client_ack (&h, (uint16_t) seq);
  }
  assert_int_equal (off, size);
  settle (&h);
  assert_int_equal (stats (&h).completed, 1);
  free (data);
  harness_stop (&h);
}

static void
refused (struct harness *h, const uint8_t *pkt, size_t n, uint16_t code)
{
  uint64_t before = stats (h).refused;

  send_request (h, pkt, n);
  expect_error (h, code);
  assert_int_equal (stats (h).refused, before + 1);
  /* Refusals come from the server port. */
  assert_int_equal (h->peer.sin_port, h->srv_addr.sin_port);
}

static void
test_refusals (void **state)
{
  struct tftp_config cfg = { 0 };
  struct harness h;
  uint8_t pkt[TFTP_REQUEST_MAX + 200];
  char name[300], *p;
  size_t n;

  (void) state;
  harness_start (&h, &cfg);
  free (make_file (&h, "ok", 10, 9));
  p = test_path (h.dir, "sub");
  assert_int_equal (mkdir (p, 0755), 0);
  free (p);
  p = test_path (h.dir, "out");
  assert_int_equal (symlink ("/etc/passwd", p), 0);
  free (p);
  p = test_path (h.dir, "in");
  assert_int_equal (symlink ("ok", p), 0);
  free (p);

  refused (&h, pkt, PACKET (pkt, TFTP_WRQ, "ok", "octet"), TFTP_EACCESS);
  refused (&h, pkt, PACKET (pkt, TFTP_RRQ, "../ok", "octet"), TFTP_EACCESS);
  refused (&h, pkt, PACKET (pkt, TFTP_RRQ, "sub/../ok", "octet"), TFTP_EACCESS);
  /* Absolute names stay inside the root. */
  refused (&h, pkt, PACKET (pkt, TFTP_RRQ, "/etc/passwd", "octet"),
           TFTP_ENOTFOUND);
  refused (&h, pkt, PACKET (pkt, TFTP_RRQ, "out", "octet"), TFTP_EACCESS);
  refused (&h, pkt, PACKET (pkt, TFTP_RRQ, "in", "octet"), TFTP_EACCESS);
  refused (&h, pkt, PACKET (pkt, TFTP_RRQ, "sub", "octet"), TFTP_EACCESS);
  refused (&h, pkt, PACKET (pkt, TFTP_RRQ, "nope", "octet"), TFTP_ENOTFOUND);
  refused (&h, pkt, PACKET (pkt, TFTP_RRQ, "", "octet"), TFTP_EUNDEF);
  refused (&h, pkt, PACKET (pkt, TFTP_RRQ, "ok", "mail"), TFTP_EBADOP);
  refused (&h, pkt, PACKET (pkt, TFTP_RRQ, "ok", "../x", "octet"), TFTP_EBADOP);
  refused (&h, pkt, PACKET (pkt, TFTP_RRQ, "o\033k", "octet"), TFTP_EACCESS);
  refused (&h, pkt, PACKET (pkt, TFTP_RRQ, "ok", "octet", "blksize", "512",
                            "blksize", "512"), TFTP_EOPTNEG);
  memset (name, 'a', sizeof name - 1);
  name[sizeof name - 1] = '\0';
  refused (&h, pkt, PACKET (pkt, TFTP_RRQ, name, "octet"), TFTP_EACCESS);
  /* Longer than any request: truncated on receipt. */
  memset (pkt, 'a', sizeof pkt);
  pkt[0] = 0;
  pkt[1] = TFTP_RRQ;
  refused (&h, pkt, sizeof pkt, TFTP_EBADOP);
  assert_int_equal (stats (&h).started, 0);
  /* Stray packets on the server port: DATA, ACK and junk get ERROR 4,
   * and an ERROR is never answered.
   */
  send_request (&h, pkt, 1);
  expect_error (&h, TFTP_EBADOP);
  send_request (&h, "\0\4\0\1", 4);
  expect_error (&h, TFTP_EBADOP);
  send_request (&h, "\0\5\0\1oops", 9);
  expect_nothing (&h, 100);
  assert_int_equal (stats (&h).started, 0);
  /* And the server still serves. */
  n = PACKET (pkt, TFTP_RRQ, "/ok", "octet");
  send_request (&h, pkt, n);
  assert_int_equal (expect_data (&h, 1), 10);
  client_ack (&h, 1);
  settle (&h);
  assert_int_equal (stats (&h).completed, 1);
  harness_stop (&h);
}

/* A packet from another port gets ERROR 5; the transfer goes on. */
static void
test_wrong_tid (void **state)
{
  struct tftp_config cfg = { .timeout_ms = 2000 };
  struct harness h;
  struct sockaddr_in other_addr, from;
  uint8_t pkt[64], *data;
  uint16_t code;
  char msg[64];
  int other;
  size_t n;

  (void) state;
  harness_start (&h, &cfg);
  data = make_file (&h, "f", 700, 10);
  other = udp_socket (&other_addr);
  n = PACKET (pkt, TFTP_RRQ, "f", "octet");
  send_request (&h, pkt, n);
  expect_data (&h, 1);
  send_to (other, &h.peer, "\0\4\0\1", 4);
  assert_true (recv_on (&h, other, &from, 3000) > 0);
  assert_int_equal (tftp_parse_error (h.buf, 64, &code, msg, sizeof msg), 0);
  assert_int_equal (code, TFTP_EBADID);
  expect_nothing (&h, 100);
  client_ack (&h, 1);
  assert_int_equal (expect_data (&h, 2), 700 - 512);
  client_ack (&h, 2);
  settle (&h);
  assert_int_equal (stats (&h).completed, 1);
  close (other);
  free (data);
  harness_stop (&h);
}

static void
test_client_error (void **state)
{
  struct tftp_config cfg = { .timeout_ms = 2000 };
  struct harness h;
  struct tftp_options o;
  uint8_t pkt[64];
  size_t n;

  (void) state;
  harness_start (&h, &cfg);
  free (make_file (&h, "f", 5000, 11));
  /* PXE ROMs: ask tsize, then end the transfer after the OACK. */
  n = PACKET (pkt, TFTP_RRQ, "f", "octet", "tsize", "0");
  send_request (&h, pkt, n);
  expect_oack (&h, &o);
  assert_int_equal (o.tsize, 5000);
  send_to (h.cl, &h.peer, "\0\5\0\0TFTP Aborted", 17);
  settle (&h);
  assert_int_equal (stats (&h).completed, 1);
  /* An ERROR mid-transfer: failed, and not answered. */
  n = PACKET (pkt, TFTP_RRQ, "f", "octet");
  send_request (&h, pkt, n);
  expect_data (&h, 1);
  send_to (h.cl, &h.peer, "\0\5\0\3disk full", 14);
  settle (&h);
  expect_nothing (&h, 100);
  assert_int_equal (stats (&h).failed, 1);
  /* A DATA packet (a write, in a read transfer): ERROR 4, failed. */
  send_request (&h, pkt, n);
  expect_data (&h, 1);
  send_to (h.cl, &h.peer, "\0\3\0\1abc", 7);
  expect_error (&h, TFTP_EBADOP);
  settle (&h);
  assert_int_equal (stats (&h).failed, 2);
  harness_stop (&h);
}

/* A repeated request (same port) is the same transfer; when busy, new
 * clients are refused.
 */
static void
test_repeat_and_busy (void **state)
{
  struct tftp_config cfg = { .timeout_ms = 2000, .max_transfers = 1 };
  struct harness h;
  struct sockaddr_in other_addr, from;
  uint8_t pkt[64];
  uint16_t code;
  char msg[64];
  int other;
  size_t n;

  (void) state;
  harness_start (&h, &cfg);
  free (make_file (&h, "f", 5000, 12));
  n = PACKET (pkt, TFTP_RRQ, "f", "octet");
  send_request (&h, pkt, n);
  send_request (&h, pkt, n);
  expect_data (&h, 1);
  expect_nothing (&h, 100);
  assert_int_equal (stats (&h).started, 1);
  other = udp_socket (&other_addr);
  send_to (other, &h.srv_addr, pkt, n);
  assert_true (recv_on (&h, other, &from, 3000) > 0);
  assert_int_equal (tftp_parse_error (h.buf, 64, &code, msg, sizeof msg), 0);
  assert_int_equal (code, TFTP_EUNDEF);
  assert_string_equal (msg, "server busy, try again later");
  assert_int_equal (stats (&h).refused, 1);
  close (other);
  /* Freeing the server aborts the transfer with an ERROR. */
  tftp_server_free (h.srv);
  h.srv = NULL;
  expect_error (&h, TFTP_EUNDEF);
  harness_stop (&h);
}

static int
memfd_open (void *opaque, const char *path)
{
  const char *text = opaque;
  int fd;

  if (strcmp (path, "boot.ipxe") != 0) {
    errno = strcmp (path, "secret") == 0 ? EACCES : ENOENT;
    return -1;
  }
  fd = memfd_create ("boot.ipxe", MFD_CLOEXEC);
  assert_true (fd >= 0);
  assert_int_equal (write (fd, text, strlen (text)), (ssize_t) strlen (text));
  return fd;
}

static int
client_open (void *opaque, const char *path, const struct sockaddr *client,
             socklen_t len)
{
  const struct sockaddr_in *in = (const struct sockaddr_in *) client;

  assert_int_equal (len, sizeof *in);
  assert_int_equal (in->sin_family, AF_INET);
  assert_int_equal (ntohl (in->sin_addr.s_addr), INADDR_LOOPBACK);
  *(unsigned *) opaque = ntohs (in->sin_port);
  (void) path;
  errno = ENOENT;
  return -1;
}

static void
test_resolver (void **state)
{
  const char *script = "#!ipxe\nchain http://server/boot\n";
  struct tftp_config cfg = { .open = memfd_open, .opaque = (void *) script };
  struct harness h;
  uint8_t pkt[64];
  size_t n;

  (void) state;
  harness_start (&h, &cfg);
  n = PACKET (pkt, TFTP_RRQ, "/boot.ipxe", "octet");
  send_request (&h, pkt, n);
  receive_lockstep (&h, (const uint8_t *) script, strlen (script), 512, 1);
  refused (&h, pkt, PACKET (pkt, TFTP_RRQ, "other", "octet"), TFTP_ENOTFOUND);
  refused (&h, pkt, PACKET (pkt, TFTP_RRQ, "secret", "octet"), TFTP_EACCESS);
  /* The resolver never sees a name the checks refuse. */
  refused (&h, pkt, PACKET (pkt, TFTP_RRQ, "../boot.ipxe", "octet"),
           TFTP_EACCESS);
  settle (&h);
  assert_int_equal (stats (&h).completed, 1);
  harness_stop (&h);
}

/* open_client is told who asks. */
static void
test_resolver_client (void **state)
{
  unsigned port = 0;
  struct tftp_config cfg = { .open_client = client_open, .opaque = &port };
  struct sockaddr_in me;
  socklen_t len = sizeof me;
  struct harness h;
  uint8_t pkt[64];

  (void) state;
  harness_start (&h, &cfg);
  refused (&h, pkt, PACKET (pkt, TFTP_RRQ, "x", "octet"), TFTP_ENOTFOUND);
  assert_int_equal (getsockname (h.cl, (struct sockaddr *) &me, &len), 0);
  assert_int_equal (port, ntohs (me.sin_port));
  harness_stop (&h);
}

static void
test_netascii_transfer (void **state)
{
  struct tftp_config cfg = { 0 };
  struct harness h;
  struct tftp_options o;
  char text[1200], *want = malloc (2400), *p;
  uint8_t pkt[128];
  size_t n, i, wlen = 0;

  (void) state;
  harness_start (&h, &cfg);
  for (i = 0; i < sizeof text; i++)
    text[i] = i % 7 == 6 ? '\n' : i % 11 == 10 ? '\r' : 'a' + i % 26;
  for (i = 0; i < sizeof text; i++) {
    want[wlen++] = text[i] == '\n' || text[i] == '\r' ? '\r' : text[i];
    if (text[i] == '\n' || text[i] == '\r')
      want[wlen++] = text[i] == '\n' ? '\n' : '\0';
  }
  p = test_path (h.dir, "t.txt");
  assert_int_equal (df_write_file_atomic (p, text, sizeof text, 0644), 0);
  free (p);
  n = PACKET (pkt, TFTP_RRQ, "t.txt", "netascii", "blksize", "100", "tsize",
              "0", "windowsize", "4");
  send_request (&h, pkt, n);
  expect_oack (&h, &o);
  assert_int_equal (o.present, TFTP_OPT_BLKSIZE);
  client_ack (&h, 0);
  receive_lockstep (&h, (const uint8_t *) want, wlen, 100, 1);
  settle (&h);
  assert_int_equal (stats (&h).completed, 1);
  free (want);
  harness_stop (&h);
}

/* 20 KB/s per client: 8 KiB cannot take much less than 0.3 s. */
static void
test_rate_limit (void **state)
{
  struct tftp_config cfg = { .rate_limit = 20000 };
  struct harness h;
  uint8_t pkt[64], *data;
  uint64_t t0;
  size_t n;

  (void) state;
  harness_start (&h, &cfg);
  data = make_file (&h, "f", 8192, 13);
  n = PACKET (pkt, TFTP_RRQ, "f", "octet");
  t0 = df_now_mono_ns ();
  send_request (&h, pkt, n);
  receive_lockstep (&h, data, 8192, 512, 1);
  assert_true (df_now_mono_ns () - t0 > 250000000);
  settle (&h);
  assert_int_equal (stats (&h).completed, 1);
  free (data);
  harness_stop (&h);
}

/* Fetches the one-block file "f" through srv_fd's server from client
 * socket cl, and returns the port the data came from.
 */
static unsigned
fetch_one_block (struct df_loop *loop, struct tftp_server *srv, int cl,
                 const void *to, socklen_t tolen)
{
  uint64_t deadline = df_now_mono_ns () + UINT64_C (3000000000);
  struct sockaddr_storage from;
  socklen_t fromlen = sizeof from;
  uint8_t pkt[600];
  struct tftp_stats st;
  size_t n = PACKET (pkt, TFTP_RRQ, "f", "octet");
  ssize_t r;

  assert_int_equal (sendto (cl, pkt, n, 0, to, tolen), (ssize_t) n);
  while ((r = recvfrom (cl, pkt, sizeof pkt, MSG_DONTWAIT,
                        (struct sockaddr *) &from, &fromlen)) == -1) {
    assert_true (df_now_mono_ns () < deadline);
    df_loop_once (loop, 5);
  }
  assert_int_equal (r, 4 + 100);
  assert_int_equal (tftp_packet_opcode (pkt, r), TFTP_DATA);
  tftp_put_header (pkt, TFTP_ACK, 1);
  assert_int_equal (sendto (cl, pkt, 4, 0, (struct sockaddr *) &from,
                            fromlen), 4);
  do {
    df_loop_once (loop, 5);
    tftp_server_stats (srv, &st);
  } while (st.active > 0 && df_now_mono_ns () < deadline);
  assert_int_equal (st.completed, 1);
  /* sin_port and sin6_port share their place. */
  return ntohs (((struct sockaddr_in *) &from)->sin_port);
}

static int
bound_socket (int family, const void *addr, socklen_t len, void *out)
{
  int fd = socket (family, SOCK_DGRAM | SOCK_CLOEXEC, 0);

  assert_true (fd >= 0);
  if (bind (fd, addr, len) == -1) {
    close (fd);
    return -1;
  }
  assert_int_equal (getsockname (fd, out, &len), 0);
  return fd;
}

/* IPv6, and IPv4 clients of a dual-stack socket. */
static void
test_ipv6 (void **state)
{
  struct sockaddr_in6 any6 = { .sin6_family = AF_INET6 }, lo6 = any6, srv6;
  struct sockaddr_in lo4 = { .sin_family = AF_INET }, cl4, to4;
  struct sockaddr_in6 cl6;
  char *dir = test_tmpdir ();
  struct tftp_config cfg = { .root = dir };
  struct df_loop *loop = df_loop_new ();
  struct tftp_server *srv;
  int fd, cl;
  char text[101];

  (void) state;
  memset (text, 'x', 100);
  text[100] = '\0';
  test_write (dir, "f", text);
  lo6.sin6_addr = in6addr_loopback;
  fd = bound_socket (AF_INET6, &lo6, sizeof lo6, &srv6);
  if (fd == -1) {
    test_tmpdir_free (dir);
    df_loop_free (loop);
    skip ();
  }
  cl = bound_socket (AF_INET6, &lo6, sizeof lo6, &cl6);
  srv = tftp_server_new (loop, fd, &cfg);
  assert_non_null (srv);
  assert_int_not_equal (fetch_one_block (loop, srv, cl, &srv6, sizeof srv6),
                        ntohs (srv6.sin6_port));
  tftp_server_free (srv);
  close (fd);
  close (cl);

  fd = bound_socket (AF_INET6, &any6, sizeof any6, &srv6);
  lo4.sin_addr.s_addr = htonl (INADDR_LOOPBACK);
  cl = bound_socket (AF_INET, &lo4, sizeof lo4, &cl4);
  to4 = lo4;
  to4.sin_port = srv6.sin6_port;
  srv = tftp_server_new (loop, fd, &cfg);
  assert_non_null (srv);
  assert_int_not_equal (fetch_one_block (loop, srv, cl, &to4, sizeof to4),
                        ntohs (srv6.sin6_port));
  tftp_server_free (srv);
  close (fd);
  close (cl);
  df_loop_free (loop);
  test_tmpdir_free (dir);
}

static void
test_bad_config (void **state)
{
  struct df_loop *loop = df_loop_new ();
  struct tftp_config cfg = { .root = "/nonexistent/tftp" };
  struct sockaddr_in a;
  int fd = udp_socket (&a), tcp = socket (AF_INET, SOCK_STREAM, 0);

  (void) state;
  assert_null (tftp_server_new (loop, fd, &cfg));
  assert_error_contains ("/nonexistent/tftp");
  cfg.root = "/";
  assert_null (tftp_server_new (loop, tcp, &cfg));
  assert_error_contains ("not a UDP socket");
  cfg.root = NULL;
  assert_null (tftp_server_new (loop, fd, &cfg));
  tftp_server_free (NULL);
  close (fd);
  close (tcp);
  df_loop_free (loop);
}

int
main (void)
{
  const struct CMUnitTest tests[] = {
    cmocka_unit_test (test_parse_request_good),
    cmocka_unit_test (test_parse_request_options),
    cmocka_unit_test (test_parse_request_malformed),
    cmocka_unit_test (test_parse_small),
    cmocka_unit_test (test_negotiate_oack),
    cmocka_unit_test (test_path_check),
    cmocka_unit_test (test_netascii),
    cmocka_unit_test (test_open_in_root),
    cmocka_unit_test (test_transfer_plain),
    cmocka_unit_test (test_transfer_oack),
    cmocka_unit_test (test_duplicate_ack),
    cmocka_unit_test (test_timeout_retransmit),
    cmocka_unit_test (test_windowsize),
    cmocka_unit_test (test_rollover),
    cmocka_unit_test (test_refusals),
    cmocka_unit_test (test_wrong_tid),
    cmocka_unit_test (test_client_error),
    cmocka_unit_test (test_repeat_and_busy),
    cmocka_unit_test (test_resolver),
    cmocka_unit_test (test_resolver_client),
    cmocka_unit_test (test_netascii_transfer),
    cmocka_unit_test (test_rate_limit),
    cmocka_unit_test (test_ipv6),
    cmocka_unit_test (test_bad_config),
  };

  return cmocka_run_group_tests (tests, NULL, NULL);
}
