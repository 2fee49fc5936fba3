/* Unit tests: the NBD client handshake of diskfarm-attach, against
 * scripted server byte streams (what servers send is spelled out here
 * from the protocol), and nbd_dial against a closed port.  Handshakes
 * with real servers are in tests/integration/test-attach-errors.sh.
 */
#include <config.h>

#include <endian.h>
#include <netinet/in.h>
#include <sys/socket.h>

#include "test-helpers.h"
#include "handshake.h"

#define NBDMAGIC 0x4e42444d41474943ULL
#define IHAVEOPT 0x49484156454f5054ULL
#define REPMAGIC 0x0003e889045565a9ULL

/* A server's side of the conversation, built up front. */
struct script {
  unsigned char buf[4096];
  size_t len;
};

static void
put (struct script *s, const void *p, size_t n)
{
  assert_true (s->len + n <= sizeof s->buf);
  memcpy (s->buf + s->len, p, n);
  s->len += n;
}

static void
put16 (struct script *s, uint16_t v)
{
  v = htobe16 (v);
  put (s, &v, 2);
}

static void
put32 (struct script *s, uint32_t v)
{
  v = htobe32 (v);
  put (s, &v, 4);
}

static void
put64 (struct script *s, uint64_t v)
{
  v = htobe64 (v);
  put (s, &v, 8);
}

static void
greeting (struct script *s, uint16_t flags)
{
  put64 (s, NBDMAGIC);
  put64 (s, IHAVEOPT);
  put16 (s, flags);
}

static void
reply (struct script *s, uint32_t type, const void *data, uint32_t len)
{
  put64 (s, REPMAGIC);
  put32 (s, 7);                 /* NBD_OPT_GO */
  put32 (s, type);
  put32 (s, len);
  put (s, data, len);
}

static void
info_export (struct script *s, uint64_t size, uint16_t flags)
{
  struct script d = { .len = 0 };

  put16 (&d, 0);
  put64 (&d, size);
  put16 (&d, flags);
  reply (s, 3, d.buf, d.len);
}

static void
info_block_size (struct script *s, uint32_t min, uint32_t pref, uint32_t max)
{
  struct script d = { .len = 0 };

  put16 (&d, 3);
  put32 (&d, min);
  put32 (&d, pref);
  put32 (&d, max);
  reply (s, 3, d.buf, d.len);
}

/* Runs the handshake against the script; what the client sent goes to
 * sent (up to *sent_len bytes).  Returns nbd_handshake's result.
 */
static int
run (const struct script *s, bool hang_up, int timeout_ms,
     struct nbd_export_info *info, unsigned char *sent, size_t *sent_len)
{
  int sv[2], r, err;
  ssize_t n;

  assert_int_equal (socketpair (AF_UNIX, SOCK_STREAM, 0, sv), 0);
  assert_int_equal (write (sv[1], s->buf, s->len), (ssize_t) s->len);
  if (hang_up)
    shutdown (sv[1], SHUT_WR);
  r = nbd_handshake (sv[0], "dev/pc1@s1",
                     df_now_mono_ns () + (uint64_t) timeout_ms * 1000000,
                     info);
  err = errno;
  close (sv[0]);
  n = read (sv[1], sent, *sent_len);
  *sent_len = n > 0 ? n : 0;
  close (sv[1]);
  errno = err;
  return r;
}

static void
test_go (void **state)
{
  struct script s = { .len = 0 };
  struct nbd_export_info info;
  unsigned char sent[256];
  size_t len = sizeof sent;
  struct script want = { .len = 0 };

  (void) state;
  greeting (&s, 3);
  info_block_size (&s, 512, 4096, 32 << 20);
  reply (&s, 3, "\0\x01name", 6);         /* NBD_INFO_NAME: ignored */
  info_export (&s, 64 << 20, 1 | 4 | 8 | 32 | 256);
  reply (&s, 1, NULL, 0);
  assert_int_equal (run (&s, false, 1000, &info, sent, &len), 0);
  assert_int_equal (info.size, 64 << 20);
  assert_int_equal (info.flags, 1 | 4 | 8 | 32 | 256);
  assert_int_equal (info.min_block, 512);
  assert_int_equal (info.pref_block, 4096);
  assert_int_equal (info.max_block, 32 << 20);

  /* Client flags, then NBD_OPT_GO asking for NBD_INFO_BLOCK_SIZE. */
  put32 (&want, 3);
  put64 (&want, IHAVEOPT);
  put32 (&want, 7);
  put32 (&want, 4 + 10 + 2 + 2);
  put32 (&want, 10);
  put (&want, "dev/pc1@s1", 10);
  put16 (&want, 1);
  put16 (&want, 3);
  assert_int_equal (len, want.len);
  assert_memory_equal (sent, want.buf, want.len);
}

static void
test_unknown_export (void **state)
{
  struct script s = { .len = 0 };
  struct nbd_export_info info;
  unsigned char sent[256];
  size_t len = sizeof sent;
  static const char msg[] = "no such session\x01";

  (void) state;
  greeting (&s, 1);
  reply (&s, (1u << 31) | 6, msg, sizeof msg - 1);
  assert_int_equal (run (&s, false, 1000, &info, sent, &len), -1);
  assert_int_equal (errno, ENOENT);
  assert_error_contains ("unknown export \"dev/pc1@s1\"");
  /* The server's text, with its control character escaped. */
  assert_error_contains ("server says: \"no such session\\x01\"");
}

static void
test_policy (void **state)
{
  struct script s = { .len = 0 };
  struct nbd_export_info info;
  unsigned char sent[256];
  size_t len = sizeof sent;

  (void) state;
  greeting (&s, 1);
  reply (&s, (1u << 31) | 2, NULL, 0);
  assert_int_equal (run (&s, false, 1000, &info, sent, &len), -1);
  assert_int_equal (errno, EACCES);
  assert_error_contains ("refused by the server's policy");
}

/* A server without NBD_OPT_GO: NBD_OPT_EXPORT_NAME, without zeroes. */
static void
test_fallback_export_name (void **state)
{
  struct script s = { .len = 0 };
  struct nbd_export_info info;
  unsigned char sent[256];
  size_t len = sizeof sent;

  (void) state;
  greeting (&s, 3);
  reply (&s, (1u << 31) | 1, NULL, 0);
  put64 (&s, 1 << 30);
  put16 (&s, 1 | 2);
  assert_int_equal (run (&s, false, 1000, &info, sent, &len), 0);
  assert_int_equal (info.size, 1 << 30);
  assert_int_equal (info.flags, 3);
  assert_int_equal (info.min_block, 0);
  /* The second option sent is NBD_OPT_EXPORT_NAME with the name. */
  assert_int_equal (len, 4 + 16 + 18 + 16 + 10);
  assert_memory_equal (sent + len - 10, "dev/pc1@s1", 10);
}

/* Old (not fixed) newstyle: only NBD_OPT_EXPORT_NAME, and 124 zeroes. */
static void
test_unfixed_newstyle (void **state)
{
  struct script s = { .len = 0 };
  struct nbd_export_info info;
  unsigned char sent[256], zeroes[124] = { 0 };
  size_t len = sizeof sent;

  (void) state;
  greeting (&s, 0);
  put64 (&s, 4096);
  put16 (&s, 1);
  put (&s, zeroes, sizeof zeroes);
  assert_int_equal (run (&s, false, 1000, &info, sent, &len), 0);
  assert_int_equal (info.size, 4096);
  assert_int_equal (len, 4 + 16 + 10);
  assert_int_equal (sent[3], 0);        /* no client flags */
  assert_int_equal (sent[4 + 11], 1);   /* NBD_OPT_EXPORT_NAME */
}

static void
test_export_name_hang_up (void **state)
{
  struct script s = { .len = 0 };
  struct nbd_export_info info;
  unsigned char sent[256];
  size_t len = sizeof sent;

  (void) state;
  greeting (&s, 0);
  assert_int_equal (run (&s, true, 1000, &info, sent, &len), -1);
  assert_int_equal (errno, ENOENT);
  assert_error_contains ("hung up on export");
}

static void
test_oldstyle_and_garbage (void **state)
{
  struct script s = { .len = 0 };
  struct nbd_export_info info;
  unsigned char sent[256];
  size_t len = sizeof sent;

  (void) state;
  put64 (&s, NBDMAGIC);
  put64 (&s, 0x00420281861253ULL);
  assert_int_equal (run (&s, true, 1000, &info, sent, &len), -1);
  assert_error_contains ("oldstyle");

  s.len = 0;
  len = sizeof sent;
  put (&s, "HTTP/1.1 400 Bad Request\r\n", 26);
  assert_int_equal (run (&s, true, 1000, &info, sent, &len), -1);
  assert_int_equal (errno, EPROTO);
  assert_error_contains ("not an NBD server");
}

static void
test_protocol_errors (void **state)
{
  struct script s = { .len = 0 };
  struct nbd_export_info info;
  unsigned char sent[256];
  size_t len = sizeof sent;

  (void) state;
  /* ACK without the export's size. */
  greeting (&s, 1);
  reply (&s, 1, NULL, 0);
  assert_int_equal (run (&s, true, 1000, &info, sent, &len), -1);
  assert_error_contains ("without NBD_INFO_EXPORT");

  /* A reply that announces more than it may. */
  s.len = 0;
  len = sizeof sent;
  greeting (&s, 1);
  put64 (&s, REPMAGIC);
  put32 (&s, 7);
  put32 (&s, 3);
  put32 (&s, 1 << 20);
  assert_int_equal (run (&s, true, 1000, &info, sent, &len), -1);
  assert_error_contains ("option reply of 1048576 bytes");

  /* NBD_INFO_EXPORT of the wrong length. */
  s.len = 0;
  len = sizeof sent;
  greeting (&s, 1);
  reply (&s, 3, "\0\0\0\0\0\0\0\0\0\0\0", 11);
  assert_int_equal (run (&s, true, 1000, &info, sent, &len), -1);
  assert_error_contains ("NBD_INFO_EXPORT of 11 bytes");

  /* A reply to another option. */
  s.len = 0;
  len = sizeof sent;
  greeting (&s, 1);
  put64 (&s, REPMAGIC);
  put32 (&s, 1);
  put32 (&s, 1);
  put32 (&s, 0);
  assert_int_equal (run (&s, true, 1000, &info, sent, &len), -1);
  assert_error_contains ("bad option reply header");
}

static void
test_hang_up_and_timeout (void **state)
{
  struct script s = { .len = 0 };
  struct nbd_export_info info;
  unsigned char sent[256];
  size_t len = sizeof sent;
  uint64_t t0;

  (void) state;
  assert_int_equal (run (&s, true, 1000, &info, sent, &len), -1);
  assert_int_equal (errno, ECONNRESET);
  assert_error_contains ("closed the connection instead of sending the "
                         "server's greeting");

  /* Silent after the greeting's magic: the deadline ends it. */
  put64 (&s, NBDMAGIC);
  len = sizeof sent;
  t0 = df_now_mono_ns ();
  assert_int_equal (run (&s, false, 200, &info, sent, &len), -1);
  assert_int_equal (errno, ETIMEDOUT);
  assert_error_contains ("timed out waiting for the server's greeting");
  assert_true (df_now_mono_ns () - t0 >= 190000000);
  assert_true (df_now_mono_ns () - t0 < 2000000000);
}

static void
test_block_size (void **state)
{
  struct nbd_export_info info = { .size = 1 << 20 };
  uint32_t bs;

  (void) state;
  assert_int_equal (nbd_pick_block_size (&info, 0, &bs), 0);
  assert_int_equal (bs, 512);
  info.min_block = 1;
  assert_int_equal (nbd_pick_block_size (&info, 0, &bs), 0);
  assert_int_equal (bs, 512);
  info.min_block = 4096;
  assert_int_equal (nbd_pick_block_size (&info, 0, &bs), 0);
  assert_int_equal (bs, 4096);
  assert_int_equal (nbd_pick_block_size (&info, 1024, &bs), -1);
  assert_error_contains ("below the server's minimum");
  info.min_block = 8192;
  assert_int_equal (nbd_pick_block_size (&info, 0, &bs), -1);
  assert_error_contains ("at most 4096");
  info.min_block = 768;
  assert_int_equal (nbd_pick_block_size (&info, 0, &bs), -1);
  assert_error_contains ("not a power of 2");
}

static void
test_dial_refused (void **state)
{
  struct attach_server srv;
  struct sockaddr_in sin = { .sin_family = AF_INET };
  socklen_t sl = sizeof sin;
  char addr[32];
  int l;

  (void) state;
  /* A port that was just free: bind, learn it, close. */
  l = socket (AF_INET, SOCK_STREAM, 0);
  sin.sin_addr.s_addr = htonl (INADDR_LOOPBACK);
  assert_int_equal (bind (l, (struct sockaddr *) &sin, sizeof sin), 0);
  assert_int_equal (getsockname (l, (struct sockaddr *) &sin, &sl), 0);
  close (l);
  snprintf (addr, sizeof addr, "127.0.0.1:%u", ntohs (sin.sin_port));
  assert_int_equal (attach_server_parse (addr, &srv), 0);
  assert_int_equal (nbd_dial (&srv, df_now_mono_ns () + 1000000000), -1);
  assert_int_equal (errno, ECONNREFUSED);
  assert_error_contains ("connect: Connection refused");
}

int
main (void)
{
  const struct CMUnitTest tests[] = {
    cmocka_unit_test (test_go),
    cmocka_unit_test (test_unknown_export),
    cmocka_unit_test (test_policy),
    cmocka_unit_test (test_fallback_export_name),
    cmocka_unit_test (test_unfixed_newstyle),
    cmocka_unit_test (test_export_name_hang_up),
    cmocka_unit_test (test_oldstyle_and_garbage),
    cmocka_unit_test (test_protocol_errors),
    cmocka_unit_test (test_hang_up_and_timeout),
    cmocka_unit_test (test_block_size),
    cmocka_unit_test (test_dial_refused),
  };

  return cmocka_run_group_tests (tests, NULL, NULL);
}
