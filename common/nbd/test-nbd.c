/* Unit tests of the NBD server, with libnbd as the client. */
#include <config.h>

#include <errno.h>
#include <pthread.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <libnbd.h>

#include "test-helpers.h"
#include "bdev/bdev.h"
#include "nbd/proto.h"
#include "nbd/server.h"

#define SIZE (4 * 1024 * 1024)

static char logged[1024];
static pthread_mutex_t log_lock = PTHREAD_MUTEX_INITIALIZER;

static void
log_message (void *opaque, const char *msg)
{
  (void) opaque;
  pthread_mutex_lock (&log_lock);
  snprintf (logged, sizeof logged, "%s", msg);
  pthread_mutex_unlock (&log_lock);
}

struct fixture {
  struct df_bdev *mem;
  struct df_nbd_export e;
  struct df_nbd_server *srv;
};

static struct fixture *
fixture_new (bool readonly)
{
  struct fixture *f = calloc (1, sizeof *f);

  assert_non_null (f);
  f->mem = df_mem_bdev_new (SIZE);
  assert_non_null (f->mem);
  f->e = (struct df_nbd_export) {
    .bdev = f->mem, .name = "dev/pc1@s1", .description = "a test device",
    .readonly = readonly, .multi_conn = true, .log = log_message,
  };
  f->srv = df_nbd_server_new (&f->e, 4);
  assert_non_null (f->srv);
  return f;
}

static void
fixture_free (struct fixture *f)
{
  df_nbd_server_free (f->srv);
  df_bdev_close (f->mem);
  free (f);
}

/* A libnbd handle connected to the server over a socketpair. */
static struct nbd_handle *
client (struct fixture *f, const char *name, bool opt_mode)
{
  struct nbd_handle *h = nbd_create ();
  int sv[2];

  assert_non_null (h);
  assert_int_equal (socketpair (AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv), 0);
  assert_int_equal (df_nbd_server_add_fd (f->srv, sv[1]), 0);
  nbd_set_export_name (h, name);
  nbd_set_full_info (h, true);
  if (opt_mode)
    nbd_set_opt_mode (h, true);
  if (nbd_connect_socket (h, sv[0]) == -1)
    fail_msg ("connect: %s", nbd_get_error ());
  return h;
}

static void
test_read_write (void **state)
{
  struct fixture *f = fixture_new (false);
  struct nbd_handle *h = client (f, "", false);
  char buf[8192], back[8192];
  uint64_t seed = 1;
  char *desc;

  (void) state;
  assert_int_equal (nbd_get_size (h), SIZE);
  assert_int_equal (nbd_is_read_only (h), 0);
  assert_int_equal (nbd_can_multi_conn (h), 1);
  assert_int_equal (nbd_can_fua (h), 1);
  assert_int_equal (nbd_can_trim (h), 1);
  assert_int_equal (nbd_can_zero (h), 1);
  assert_int_equal (nbd_get_block_size (h, LIBNBD_SIZE_PREFERRED), 4096);
  desc = nbd_get_export_description (h);
  assert_string_equal (desc, "a test device");
  free (desc);

  test_fill (buf, sizeof buf, &seed);
  assert_int_equal (nbd_pwrite (h, buf, sizeof buf, 12345, 0), 0);
  assert_int_equal (nbd_pwrite (h, buf, 100, SIZE - 100, LIBNBD_CMD_FLAG_FUA), 0);
  assert_int_equal (nbd_flush (h, 0), 0);
  assert_int_equal (nbd_pread (h, back, sizeof back, 12345, 0), 0);
  assert_memory_equal (buf, back, sizeof buf);
  assert_int_equal (df_bdev_pread (f->mem, back, 100, SIZE - 100), 0);
  assert_memory_equal (buf, back, 100);

  assert_int_equal (nbd_zero (h, 4096, 12345, 0), 0);
  assert_int_equal (nbd_pread (h, back, 4096, 12345, 0), 0);
  assert_true (df_is_zero (back, 4096));
  assert_int_equal (nbd_trim (h, 4096, 16384, LIBNBD_CMD_FLAG_FUA), 0);
  assert_int_equal (nbd_cache (h, SIZE, 0, 0), 0);

  /* Past the end: an error, and the connection goes on. */
  assert_int_equal (nbd_pread (h, back, 4096, SIZE - 100, 0), -1);
  assert_int_equal (nbd_get_errno (), EINVAL);
  nbd_set_strict_mode (h, 0);
  assert_int_equal (nbd_pwrite (h, buf, 4096, SIZE - 100, 0), -1);
  assert_int_equal (nbd_get_errno (), ENOSPC);
  assert_int_equal (nbd_pread (h, back, 10, 0, 0), 0);

  assert_int_equal (nbd_shutdown (h, 0), 0);
  nbd_close (h);
  fixture_free (f);
}

static char listed[256];

static int
list_one (void *opaque, const char *name, const char *description)
{
  (void) opaque;
  snprintf (listed, sizeof listed, "%s: %s", name, description);
  return 0;
}

static void
test_names (void **state)
{
  struct fixture *f = fixture_new (true);
  struct nbd_handle *h = client (f, "dev/pc1@s1", false);
  char buf[512] = { 1 };
  char *name;

  (void) state;
  assert_int_equal (nbd_is_read_only (h), 1);
  assert_int_equal (nbd_pwrite (h, buf, sizeof buf, 0, 0) == -1 ||
                    nbd_get_errno () == EPERM, 1);
  nbd_set_strict_mode (h, 0);
  assert_int_equal (nbd_pwrite (h, buf, sizeof buf, 0, 0), -1);
  assert_int_equal (nbd_get_errno (), EPERM);
  name = nbd_get_canonical_export_name (h);
  assert_string_equal (name, "dev/pc1@s1");
  free (name);
  nbd_close (h);

  /* Another name is refused; the listing names the export. */
  h = client (f, "dev/other", true);
  assert_int_equal (nbd_opt_go (h), -1);
  assert_int_equal (nbd_aio_is_negotiating (h), 1);
  listed[0] = '\0';
  assert_int_equal (nbd_opt_list (h, (nbd_list_callback) {
                                    .callback = list_one }), 1);
  assert_string_equal (listed, "dev/pc1@s1: a test device");
  nbd_opt_abort (h);
  nbd_close (h);
  fixture_free (f);
}

/* Several connections with many requests in flight each. */
struct hammer {
  struct fixture *f;
  unsigned index;
};

static void *
hammer_main (void *arg)
{
  struct hammer *hm = arg;
  struct nbd_handle *h = client (hm->f, "", false);
  uint64_t seed = hm->index + 7;
  static const unsigned n = 64;
  char *bufs = malloc (n * 4096), *back = malloc (4096);
  char *reads = malloc (n * 4096);
  unsigned i;

  assert_non_null (bufs);
  assert_non_null (back);
  assert_non_null (reads);
  for (i = 0; i < n; i++) {
    uint64_t off = ((uint64_t) hm->index * n + i) * 4096;
    test_fill (bufs + i * 4096, 4096, &seed);
    if (nbd_aio_pwrite (h, bufs + i * 4096, 4096, off,
                        (nbd_completion_callback) { 0 }, 0) == -1)
      fail_msg ("aio_pwrite: %s", nbd_get_error ());
  }
  while (nbd_aio_in_flight (h) > 0)
    assert_int_not_equal (nbd_poll (h, -1), -1);
  for (i = 0; i < n; i++) {
    uint64_t off = ((uint64_t) hm->index * n + i) * 4096;
    assert_int_equal (nbd_pread (h, back, 4096, off, 0), 0);
    assert_memory_equal (back, bufs + i * 4096, 4096);
  }
  /* Reads in flight together: the server runs them as batches. */
  memset (reads, 0, n * 4096);
  for (i = 0; i < n; i++) {
    uint64_t off = ((uint64_t) hm->index * n + i) * 4096;
    if (nbd_aio_pread (h, reads + i * 4096, 4096, off,
                       (nbd_completion_callback) { 0 }, 0) == -1)
      fail_msg ("aio_pread: %s", nbd_get_error ());
  }
  while (nbd_aio_in_flight (h) > 0)
    assert_int_not_equal (nbd_poll (h, -1), -1);
  assert_memory_equal (reads, bufs, n * 4096);
  free (reads);
  nbd_shutdown (h, 0);
  nbd_close (h);
  free (bufs);
  free (back);
  return NULL;
}

static void
test_parallel (void **state)
{
  struct fixture *f = fixture_new (false);
  struct hammer hm[4];
  pthread_t t[4];
  unsigned i;

  (void) state;
  for (i = 0; i < 4; i++) {
    hm[i] = (struct hammer) { f, i };
    assert_int_equal (pthread_create (&t[i], NULL, hammer_main, &hm[i]), 0);
  }
  for (i = 0; i < 4; i++)
    pthread_join (t[i], NULL);
  fixture_free (f);
}

/* Raw bytes into the serial server: what comes back. */
static size_t
serve_raw (const void *in, size_t len, uint8_t *out, size_t outlen)
{
  struct df_bdev *mem = df_mem_bdev_new (SIZE);
  struct df_nbd_export e = { .bdev = mem, .name = "x", .log = log_message };
  int a[2], b[2];
  ssize_t r;
  size_t got = 0;

  assert_int_equal (socketpair (AF_UNIX, SOCK_STREAM, 0, a), 0);
  assert_int_equal (socketpair (AF_UNIX, SOCK_STREAM, 0, b), 0);
  assert_int_equal (write (a[0], in, len), (ssize_t) len);
  shutdown (a[0], SHUT_WR);
  df_nbd_serve_serial (&e, a[1], b[1]);
  close (b[1]);
  while (got < outlen && (r = read (b[0], out + got, outlen - got)) > 0)
    got += r;
  close (a[0]);
  close (a[1]);
  close (b[0]);
  df_bdev_close (mem);
  return got;
}

static void
test_protocol_errors (void **state)
{
  uint8_t in[64], out[256];
  size_t n;

  (void) state;
  /* Unknown client flags: the greeting only. */
  memset (in, 0, sizeof in);
  nbd_put32 (in, 0x80);
  n = serve_raw (in, 4, out, sizeof out);
  assert_int_equal (n, 18);
  assert_true (nbd_get64 (out) == NBD_MAGIC);
  assert_non_null (strstr (logged, "unknown flags"));

  /* An option longer than the limit ends the connection. */
  nbd_put32 (in, NBD_FLAG_C_FIXED_NEWSTYLE | NBD_FLAG_C_NO_ZEROES);
  nbd_put64 (in + 4, NBD_IHAVEOPT);
  nbd_put32 (in + 12, NBD_OPT_GO);
  nbd_put32 (in + 16, 0xffffffff);
  n = serve_raw (in, 20, out, sizeof out);
  assert_int_equal (n, 18);
  assert_non_null (strstr (logged, "too long"));

  /* An unknown option gets ERR_UNSUP, then EXPORT_NAME "" enters
   * transmission (10 bytes, no zeroes) and a bad request magic ends it.
   */
  nbd_put32 (in + 12, 99);
  nbd_put32 (in + 16, 0);
  nbd_put64 (in + 20, NBD_IHAVEOPT);
  nbd_put32 (in + 28, NBD_OPT_EXPORT_NAME);
  nbd_put32 (in + 32, 0);
  memset (in + 36, 0xee, 28);
  n = serve_raw (in, 64, out, sizeof out);
  assert_int_equal (n, 18 + 20 + 10);
  assert_int_equal (nbd_get32 (out + 18 + 12), NBD_REP_ERR_UNSUP);
  assert_true (nbd_get64 (out + 38) == SIZE);
  assert_non_null (strstr (logged, "bad request magic"));
}

/* A unix socket: one left by a process that ended is replaced; one a
 * live server listens on is refused, and that server keeps serving.
 */
static void
test_unix_socket (void **state)
{
  struct fixture *a = fixture_new (false), *b = fixture_new (false);
  char *dir = test_tmpdir (), *path = test_path (dir, "s.sock");
  struct sockaddr_un sa = { .sun_family = AF_UNIX };
  struct nbd_handle *h;
  int fd;

  (void) state;
  /* Left behind: bound, never unlinked. */
  snprintf (sa.sun_path, sizeof sa.sun_path, "%s", path);
  fd = socket (AF_UNIX, SOCK_STREAM, 0);
  assert_int_equal (bind (fd, (struct sockaddr *) &sa, sizeof sa), 0);
  close (fd);
  assert_int_equal (df_nbd_server_listen_unix (a->srv, path, 0600), 0);

  assert_int_equal (df_nbd_server_listen_unix (b->srv, path, 0600), -1);
  assert_int_equal (errno, EADDRINUSE);
  assert_non_null (strstr (df_error_get (), "in use"));
  df_error_clear ();
  fixture_free (b);             /* must not take a's socket away */

  h = nbd_create ();
  assert_non_null (h);
  if (nbd_connect_unix (h, path) == -1)
    fail_msg ("connect: %s", nbd_get_error ());
  assert_int_equal (nbd_get_size (h), SIZE);
  nbd_shutdown (h, 0);
  nbd_close (h);
  fixture_free (a);
  assert_int_equal (access (path, F_OK), -1);
  free (path);
  test_tmpdir_free (dir);
}

int
main (void)
{
  const struct CMUnitTest tests[] = {
    cmocka_unit_test (test_read_write),
    cmocka_unit_test (test_names),
    cmocka_unit_test (test_parallel),
    cmocka_unit_test (test_protocol_errors),
    cmocka_unit_test (test_unix_socket),
  };

  return cmocka_run_group_tests (tests, NULL, NULL);
}
