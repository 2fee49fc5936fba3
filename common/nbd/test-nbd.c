/* Unit tests of the NBD server, with libnbd as the client. */
#include <config.h>

#include <errno.h>
#include <inttypes.h>
#include <poll.h>
#include <pthread.h>
#include <stdatomic.h>
#include <time.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <libnbd.h>

#include "test-helpers.h"
#include "bdev/bdev.h"
#include "nbd/proto.h"
#include "nbd/server.h"
#include "nbd/server-int.h"         /* ASYNC_JOBS, BATCH */

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

/* A device with asynchronous reads (DF_BDEV_ASYNC): a thread of its own
 * completes what was queued, newest first (out of order), in small
 * groups.  It can hold the first reads until `hold` are queued (the
 * server goes on reading while reads are out), or all of them until
 * the gate opens.  Reads at or past `bad` fail with EIO.
 */
struct adev {
  struct df_bdev bdev;
  struct df_bdev *mem;
  uint64_t bad;
  pthread_mutex_t lock;
  pthread_cond_t cond;          /* queued, gate or stop changed */
  pthread_cond_t changed;       /* submitted or completed grew */
  struct df_bdev_aread *head;   /* queued, newest first */
  size_t queued, max_queued;
  unsigned hold;                /* first reads: wait for this many */
  bool gate_closed, stop;
  unsigned submitted, completed, sync_reads;
  /* Set when the server has returned: no done may come after. */
  const atomic_bool *server_gone;
  atomic_uint late_dones;
  pthread_t thread;
};

static int
adev_pread (struct df_bdev *b, void *buf, uint32_t count, uint64_t offset)
{
  struct adev *d = (struct adev *) b;

  pthread_mutex_lock (&d->lock);
  d->sync_reads++;
  pthread_mutex_unlock (&d->lock);
  if (offset + count > d->bad)
    return df_error (EIO, "bad block");
  return df_bdev_pread (d->mem, buf, count, offset);
}

static void
adev_pread_async (struct df_bdev *b, struct df_bdev_aread **a, size_t n)
{
  struct adev *d = (struct adev *) b;
  size_t i;

  pthread_mutex_lock (&d->lock);
  for (i = 0; i < n; i++) {
    a[i]->next = d->head;
    d->head = a[i];
  }
  d->queued += n;
  d->submitted += n;
  pthread_cond_broadcast (&d->cond);
  pthread_cond_broadcast (&d->changed);
  pthread_mutex_unlock (&d->lock);
}

/* Runs a list of reads and tells them done, in groups of 1 to 7. */
static void
adev_complete (struct adev *d, struct df_bdev_aread *list, size_t n)
{
  struct df_bdev_aread **a = malloc (n * sizeof *a);
  size_t i, k;

  assert_non_null (a);
  for (i = 0; list; list = list->next, i++) {
    a[i] = list;
    a[i]->error = a[i]->offset + a[i]->count > d->bad ? EIO
      : df_bdev_pread (d->mem, a[i]->buf, a[i]->count, a[i]->offset) == -1
      ? errno : 0;
  }
  for (i = 0; i < n; i += k) {
    k = n - i < 1 + i % 7 ? n - i : 1 + i % 7;
    if (d->server_gone && atomic_load (d->server_gone))
      d->late_dones += k;
    df_bdev_aio_complete (a + i, k);
  }
  free (a);
}

static void *
adev_main (void *arg)
{
  struct adev *d = arg;
  struct timespec deadline;

  clock_gettime (CLOCK_REALTIME, &deadline);
  deadline.tv_sec += 10;
  pthread_mutex_lock (&d->lock);
  for (;;) {
    struct df_bdev_aread *list;
    size_t n;

    while (!d->stop && (d->head == NULL || d->gate_closed ||
                        d->queued < d->hold))
      if (d->hold && d->queued < d->hold) {
        if (pthread_cond_timedwait (&d->cond, &d->lock, &deadline)
            == ETIMEDOUT)
          d->hold = 0;          /* the test's assertion says so */
      }
      else
        pthread_cond_wait (&d->cond, &d->lock);
    if (d->head == NULL)
      break;                    /* stopping */
    list = d->head;
    n = d->queued;
    if (n > d->max_queued)
      d->max_queued = n;
    d->head = NULL;
    d->queued = 0;
    d->hold = 0;
    pthread_mutex_unlock (&d->lock);
    adev_complete (d, list, n);
    pthread_mutex_lock (&d->lock);
    d->completed += n;
    pthread_cond_broadcast (&d->changed);
  }
  pthread_mutex_unlock (&d->lock);
  return NULL;
}

static void
adev_close (struct df_bdev *b)
{
  struct adev *d = (struct adev *) b;

  pthread_mutex_lock (&d->lock);
  d->stop = true;
  d->gate_closed = false;
  pthread_cond_broadcast (&d->cond);
  pthread_mutex_unlock (&d->lock);
  pthread_join (d->thread, NULL);
  df_bdev_close (d->mem);
  pthread_mutex_destroy (&d->lock);
  pthread_cond_destroy (&d->cond);
  pthread_cond_destroy (&d->changed);
  free (d);
}

static int
adev_pwrite (struct df_bdev *b, const void *buf, uint32_t count,
             uint64_t offset, uint32_t flags)
{
  return df_bdev_pwrite (((struct adev *) b)->mem, buf, count, offset, flags);
}

static int
adev_flush (struct df_bdev *b)
{
  (void) b;
  return 0;
}

static int
adev_zero (struct df_bdev *b, uint32_t count, uint64_t offset,
           uint32_t flags)
{
  return df_bdev_zero (((struct adev *) b)->mem, count, offset, flags);
}

static int
adev_extents (struct df_bdev *b, uint32_t count, uint64_t offset,
              df_extent_fn fn, void *opaque)
{
  (void) b;
  return fn (opaque, offset, count, 0);
}

static const struct df_bdev_ops adev_ops = {
  .name = "async", .pread = adev_pread, .pwrite = adev_pwrite,
  .flush = adev_flush, .zero = adev_zero, .trim = adev_zero,
  .extents = adev_extents, .close = adev_close,
  .pread_async = adev_pread_async,
};

/* Filled with a pattern (into *data, caller frees); then adev_start. */
static struct adev *
adev_new (uint8_t **data)
{
  struct adev *d = calloc (1, sizeof *d);
  uint64_t seed = 21;

  assert_non_null (d);
  d->bdev = (struct df_bdev) {
    .ops = &adev_ops, .size = SIZE, .flags = DF_BDEV_ASYNC,
  };
  d->mem = df_mem_bdev_new (SIZE);
  assert_non_null (d->mem);
  d->bad = SIZE;
  *data = malloc (SIZE);
  assert_non_null (*data);
  test_fill (*data, SIZE, &seed);
  assert_int_equal (df_bdev_pwrite (d->mem, *data, SIZE, 0, 0), 0);
  pthread_mutex_init (&d->lock, NULL);
  pthread_cond_init (&d->cond, NULL);
  pthread_cond_init (&d->changed, NULL);
  return d;
}

/* Its thread, once the test has set hold, bad, gate and server_gone. */
static void
adev_start (struct adev *d)
{
  assert_int_equal (pthread_create (&d->thread, NULL, adev_main, d), 0);
}

/* Waits (10 s at most) until the device has had n reads, or (done)
 * told n reads done.
 */
static void
adev_wait (struct adev *d, bool done, unsigned n)
{
  unsigned *count = done ? &d->completed : &d->submitted;
  struct timespec deadline;

  clock_gettime (CLOCK_REALTIME, &deadline);
  deadline.tv_sec += 10;
  pthread_mutex_lock (&d->lock);
  while (*count < n)
    if (pthread_cond_timedwait (&d->changed, &d->lock, &deadline)
        == ETIMEDOUT)
      fail_msg ("the device %s %u reads of %u", done ? "completed" : "got",
                *count, n);
  pthread_mutex_unlock (&d->lock);
}

static unsigned
adev_submitted (struct adev *d)
{
  unsigned n;

  pthread_mutex_lock (&d->lock);
  n = d->submitted;
  pthread_mutex_unlock (&d->lock);
  return n;
}

static void
adev_open_gate (struct adev *d)
{
  pthread_mutex_lock (&d->lock);
  d->gate_closed = false;
  pthread_cond_broadcast (&d->cond);
  pthread_mutex_unlock (&d->lock);
}

/* Reads held by the device while the server waits for more: more than
 * one batch of the server's (32) is out at once.
 */
#define ASYNC_HOLD 48
#define ASYNC_READS 1024

struct aread_check {
  atomic_uint *ok, *failed;
  int want;                     /* the errno expected */
};

static int
aread_done (void *user_data, int *error)
{
  struct aread_check *ac = user_data;

  if (*error == ac->want)
    (*ac->ok)++;
  else
    (*ac->failed)++;
  return 1;
}

/* n random 4 KiB reads a client has out at once, each checked. */
struct reads {
  unsigned n, bad;              /* bad: those at or past the device's bad */
  uint8_t *bufs;
  uint64_t *off;
  struct aread_check *ac;
  atomic_uint ok, failed;
};

/* Sends r's reads on h; those at or past bad are to fail with EIO. */
static void
reads_send (struct reads *r, struct nbd_handle *h, unsigned n,
            uint64_t seed, uint64_t bad)
{
  unsigned i;

  r->n = n;
  r->bad = 0;
  r->bufs = malloc ((size_t) n * 4096);
  r->off = calloc (n, sizeof *r->off);
  r->ac = calloc (n, sizeof *r->ac);
  assert_non_null (r->bufs);
  assert_non_null (r->off);
  assert_non_null (r->ac);
  for (i = 0; i < n; i++) {
    r->off[i] = test_rand (&seed) % (SIZE / 4096) * 4096;
    r->ac[i] = (struct aread_check) {
      &r->ok, &r->failed, r->off[i] >= bad ? EIO : 0,
    };
    r->bad += r->off[i] >= bad;
    if (nbd_aio_pread (h, r->bufs + (size_t) i * 4096, 4096, r->off[i],
                       (nbd_completion_callback) {
                         .callback = aread_done, .user_data = &r->ac[i] },
                       0) == -1)
      fail_msg ("aio_pread: %s", nbd_get_error ());
  }
}

/* Waits for r's replies: each as expected, with the data of disk
 * (those under bad), and frees r.
 */
static void
reads_check (struct reads *r, struct nbd_handle *h, const uint8_t *disk,
             uint64_t bad)
{
  unsigned i;

  while (nbd_aio_in_flight (h) > 0)
    assert_int_not_equal (nbd_poll (h, -1), -1);
  assert_int_equal (r->failed, 0);
  assert_int_equal (r->ok, r->n);
  for (i = 0; i < r->n; i++)
    if (r->off[i] < bad && memcmp (r->bufs + (size_t) i * 4096,
                                   disk + r->off[i], 4096) != 0)
      fail_msg ("read %u at %" PRIu64 " has wrong data", i, r->off[i]);
  free (r->bufs);
  free (r->off);
  free (r->ac);
}

/* Many reads in flight over one connection: the server hands them to
 * the device's pread_async and goes on reading while they run; the
 * device answers out of order; every reply has its read's data, and a
 * read the device fails gets EIO.
 */
static void
test_async_reads (void **state)
{
  uint8_t *data, buf[4096];
  struct adev *d = adev_new (&data);
  struct df_nbd_export e = {
    .bdev = &d->bdev, .name = "a", .log = log_message,
  };
  struct fixture f = { .srv = df_nbd_server_new (&e, 4) };
  struct reads r = { 0 };
  struct nbd_handle *h;

  (void) state;
  assert_non_null (f.srv);
  d->hold = ASYNC_HOLD;
  d->bad = SIZE - 65536;
  adev_start (d);
  h = client (&f, "", false);
  reads_send (&r, h, ASYNC_READS, 5, d->bad);
  assert_true (r.bad > 0);
  reads_check (&r, h, data, d->bad);
  /* The connection carries on after the errors. */
  assert_int_equal (nbd_pread (h, buf, 4096, 8192, 0), 0);
  assert_memory_equal (buf, data + 8192, 4096);
  nbd_shutdown (h, 0);
  nbd_close (h);
  df_nbd_server_free (f.srv);
  adev_wait (d, true, ASYNC_READS + 1);
  pthread_mutex_lock (&d->lock);
  if (d->max_queued < ASYNC_HOLD)
    fail_msg ("at most %zu reads were out at once", d->max_queued);
  assert_int_equal (d->sync_reads, 0);
  assert_int_equal (d->submitted, ASYNC_READS + 1);
  pthread_mutex_unlock (&d->lock);
  df_bdev_close (&d->bdev);
  free (data);
}

/* A client with more reads out than a connection may hand the device
 * (ASYNC_JOBS): the server reads no more while that many are out, and
 * reads on once replies went; every reply has its read's data (the
 * jobs of replies gone out are reused).
 */
static void
test_async_bound (void **state)
{
  enum { N = ASYNC_JOBS + 200 };
  uint8_t *data;
  struct adev *d = adev_new (&data);
  struct df_nbd_export e = {
    .bdev = &d->bdev, .name = "a", .log = log_message,
  };
  struct fixture f = { .srv = df_nbd_server_new (&e, 4) };
  struct reads r = { 0 };
  struct nbd_handle *h;
  uint64_t t0;
  unsigned i;

  (void) state;
  assert_non_null (f.srv);
  d->bad = SIZE;
  d->gate_closed = true;
  adev_start (d);
  h = client (&f, "", false);
  reads_send (&r, h, N, 9, d->bad);
  /* The reader stops before a batch that would pass the bound: it
   * has handed over more than the bound less a batch.
   */
  for (i = 0; i < 100 && adev_submitted (d) <= ASYNC_JOBS - BATCH; i++)
    if (nbd_poll (h, 100) == -1)
      fail_msg ("poll: %s", nbd_get_error ());
  adev_wait (d, false, ASYNC_JOBS - BATCH + 1);
  /* What must not happen: more handed over while none went back. */
  t0 = df_now_mono_ns ();
  while (df_now_mono_ns () - t0 < 300000000) {
    if (nbd_poll (h, 50) == -1)
      fail_msg ("poll: %s", nbd_get_error ());
    if (adev_submitted (d) > ASYNC_JOBS)
      fail_msg ("%u reads out at once, over %u", adev_submitted (d),
                ASYNC_JOBS);
  }
  adev_open_gate (d);
  reads_check (&r, h, data, d->bad);
  nbd_shutdown (h, 0);
  nbd_close (h);
  df_nbd_server_free (f.srv);
  assert_int_equal (adev_submitted (d), N);
  df_bdev_close (&d->bdev);
  free (data);
}

/* Has `flag` been set within `ms`?  For what must not happen: the
 * wait passes when it does not.
 */
static bool
happens_within (pthread_mutex_t *lock, pthread_cond_t *cond,
                const atomic_bool *flag, unsigned ms)
{
  struct timespec deadline;
  bool got;

  clock_gettime (CLOCK_REALTIME, &deadline);
  deadline.tv_nsec += (long) ms * 1000000;
  deadline.tv_sec += deadline.tv_nsec / 1000000000;
  deadline.tv_nsec %= 1000000000;
  pthread_mutex_lock (lock);
  while (!atomic_load (flag) &&
         pthread_cond_timedwait (cond, lock, &deadline) != ETIMEDOUT)
    ;
  got = atomic_load (flag);
  pthread_mutex_unlock (lock);
  return got;
}

struct freer {
  struct df_nbd_server *srv;
  atomic_bool gone;
  pthread_mutex_t lock;
  pthread_cond_t cond;
};

static void *
freer_main (void *arg)
{
  struct freer *fr = arg;

  df_nbd_server_free (fr->srv);
  pthread_mutex_lock (&fr->lock);
  fr->gone = true;
  pthread_cond_broadcast (&fr->cond);
  pthread_mutex_unlock (&fr->lock);
  return NULL;
}

/* A client that goes away with reads outstanding: the server ends the
 * connection (and frees it) only after the device told every read
 * done.  Under ASan a done after the free is also a use after free.
 */
static void
test_async_disconnect (void **state)
{
  uint8_t *data, buf[16][4096];
  struct adev *d = adev_new (&data);
  struct df_nbd_export e = {
    .bdev = &d->bdev, .name = "a", .log = log_message,
  };
  struct freer fr = {
    .srv = df_nbd_server_new (&e, 4),
    .lock = PTHREAD_MUTEX_INITIALIZER, .cond = PTHREAD_COND_INITIALIZER,
  };
  struct fixture f = { .srv = fr.srv };
  struct nbd_handle *h;
  pthread_t t;
  unsigned i;

  (void) state;
  assert_non_null (fr.srv);
  d->gate_closed = true;
  d->server_gone = &fr.gone;
  adev_start (d);
  h = client (&f, "", false);
  for (i = 0; i < 16; i++)
    if (nbd_aio_pread (h, buf[i], 4096, i * 65536,
                       (nbd_completion_callback) { 0 }, 0) == -1)
      fail_msg ("aio_pread: %s", nbd_get_error ());
  /* Until the requests are sent and the device has them all. */
  for (i = 0; i < 100 && adev_submitted (d) < 16; i++)
    if (nbd_poll (h, 100) == -1)
      fail_msg ("poll: %s", nbd_get_error ());
  adev_wait (d, false, 16);
  nbd_close (h);                /* the client is gone, no NBD_CMD_DISC */
  assert_int_equal (pthread_create (&t, NULL, freer_main, &fr), 0);
  if (happens_within (&fr.lock, &fr.cond, &fr.gone, 300))
    fail_msg ("the server was freed with 16 reads outstanding");
  adev_open_gate (d);
  pthread_join (t, NULL);
  adev_wait (d, true, 16);
  assert_int_equal (d->late_dones, 0);
  df_bdev_close (&d->bdev);
  free (data);
}

struct serial {
  const struct df_nbd_export *e;
  int fd;
  atomic_bool gone;
  pthread_mutex_t lock;
  pthread_cond_t cond;
};

static void *
serial_main (void *arg)
{
  struct serial *s = arg;

  df_nbd_serve_serial (s->e, s->fd, s->fd);
  pthread_mutex_lock (&s->lock);
  s->gone = true;
  pthread_cond_broadcast (&s->cond);
  pthread_mutex_unlock (&s->lock);
  return NULL;
}

static void
get_all (int fd, void *buf, size_t len)
{
  uint8_t *p = buf;

  while (len > 0) {
    ssize_t r = read (fd, p, len);
    if (r <= 0)
      fail_msg ("short read from the server");
    p += r;
    len -= r;
  }
}

/* The NBD handshake by hand: NBD_OPT_EXPORT_NAME "". */
static void
raw_handshake (int fd)
{
  uint8_t out[20], in[18 + 10];

  nbd_put32 (out, NBD_FLAG_C_FIXED_NEWSTYLE | NBD_FLAG_C_NO_ZEROES);
  nbd_put64 (out + 4, NBD_IHAVEOPT);
  nbd_put32 (out + 12, NBD_OPT_EXPORT_NAME);
  nbd_put32 (out + 16, 0);
  assert_int_equal (write (fd, out, sizeof out), sizeof out);
  get_all (fd, in, sizeof in);
  assert_true (nbd_get64 (in) == NBD_MAGIC);
  assert_true (nbd_get64 (in + 18) == SIZE);
}

#define HALF_READS 17

/* A client that sends its reads and half closes (the server reads end
 * of file with every read still in the device): the serving thread
 * returns only after every read was told done, and every reply goes
 * out, matched by its cookie, with its data or the device's error.
 */
static void
test_async_half_close (void **state)
{
  uint8_t *data, req[HALF_READS][NBD_REQUEST_SIZE], h[NBD_SIMPLE_REPLY_SIZE];
  uint8_t buf[4096];
  struct adev *d = adev_new (&data);
  struct df_nbd_export e = {
    .bdev = &d->bdev, .name = "a", .log = log_message,
  };
  struct serial s = {
    .e = &e, .lock = PTHREAD_MUTEX_INITIALIZER,
    .cond = PTHREAD_COND_INITIALIZER,
  };
  bool seen[HALF_READS] = { false };
  unsigned i, replies = 0;
  pthread_t t;
  int sv[2];

  (void) state;
  d->gate_closed = true;
  d->server_gone = &s.gone;
  d->bad = SIZE - 65536;
  adev_start (d);
  assert_int_equal (socketpair (AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv), 0);
  s.fd = sv[1];
  assert_int_equal (pthread_create (&t, NULL, serial_main, &s), 0);
  raw_handshake (sv[0]);
  for (i = 0; i < HALF_READS; i++) {
    /* The last one is past `bad`: EIO. */
    uint64_t off = i == HALF_READS - 1 ? SIZE - 4096 : i * 65536 + i * 512;
    nbd_put32 (req[i], NBD_REQUEST_MAGIC);
    nbd_put16 (req[i] + 4, 0);
    nbd_put16 (req[i] + 6, NBD_CMD_READ);
    nbd_put64 (req[i] + 8, 0xc0ffee00 + i);
    nbd_put64 (req[i] + 16, off);
    nbd_put32 (req[i] + 24, 4096);
  }
  assert_int_equal (write (sv[0], req, sizeof req), sizeof req);
  shutdown (sv[0], SHUT_WR);
  adev_wait (d, false, HALF_READS);
  if (happens_within (&s.lock, &s.cond, &s.gone, 300))
    fail_msg ("the server returned with %d reads outstanding", HALF_READS);
  adev_open_gate (d);
  while (replies < HALF_READS) {
    uint64_t cookie;
    get_all (sv[0], h, sizeof h);
    assert_true (nbd_get32 (h) == NBD_SIMPLE_REPLY_MAGIC);
    cookie = nbd_get64 (h + 8);
    i = cookie - 0xc0ffee00;
    if (cookie < 0xc0ffee00 || i >= HALF_READS || seen[i])
      fail_msg ("reply with cookie %" PRIx64, cookie);
    seen[i] = true;
    replies++;
    if (i == HALF_READS - 1) {
      assert_int_equal (nbd_get32 (h + 4), NBD_EIO);
      continue;
    }
    assert_int_equal (nbd_get32 (h + 4), 0);
    get_all (sv[0], buf, sizeof buf);
    assert_memory_equal (buf, data + nbd_get64 (req[i] + 16), sizeof buf);
  }
  pthread_join (t, NULL);
  adev_wait (d, true, HALF_READS);
  assert_int_equal (d->late_dones, 0);
  close (sv[1]);                /* the serial server leaves it open */
  assert_int_equal (read (sv[0], h, 1), 0);     /* and nothing more */
  close (sv[0]);
  df_bdev_close (&d->bdev);
  free (data);
}

/* A client that sends flushes and reads no replies: the server queues
 * a bounded number of replies (OQ_RECS), then stops reading requests
 * until the client reads; then every reply comes, in order.
 */
static void
test_reply_queue_bound (void **state)
{
  enum { MAX = 200000 };
  uint8_t *data, req[NBD_REQUEST_SIZE], h[NBD_SIMPLE_REPLY_SIZE];
  struct adev *d = adev_new (&data);
  struct df_nbd_export e = {
    .bdev = &d->bdev, .name = "a", .log = log_message,
  };
  struct serial s = {
    .e = &e, .lock = PTHREAD_MUTEX_INITIALIZER,
    .cond = PTHREAD_COND_INITIALIZER,
  };
  unsigned sent = 0, i;
  pthread_t t;
  int sv[2];

  (void) state;
  adev_start (d);
  assert_int_equal (socketpair (AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv), 0);
  s.fd = sv[1];
  assert_int_equal (pthread_create (&t, NULL, serial_main, &s), 0);
  raw_handshake (sv[0]);
  nbd_put32 (req, NBD_REQUEST_MAGIC);
  nbd_put16 (req + 4, 0);
  nbd_put16 (req + 6, NBD_CMD_FLUSH);
  nbd_put64 (req + 16, 0);
  nbd_put32 (req + 24, 0);
  /* Until the server, past the bound, takes no more for 300 ms (or
   * MAX: no bound).  Short of the bound it may only be slow.
   */
  while (sent < MAX) {
    struct pollfd p = { .fd = sv[0], .events = POLLOUT };
    ssize_t r;

    nbd_put64 (req + 8, sent);
    r = send (sv[0], req, sizeof req, MSG_DONTWAIT | MSG_NOSIGNAL);
    if (r == sizeof req) {
      sent++;
      continue;
    }
    assert_int_equal (r, -1);   /* whole requests: 28 bytes or none */
    assert_true (errno == EAGAIN || errno == EWOULDBLOCK);
    if (poll (&p, 1, sent > OQ_RECS ? 300 : 10000) == 0) {
      if (sent <= OQ_RECS)
        fail_msg ("the server stopped after %u flushes", sent);
      break;
    }
  }
  if (sent == MAX)
    fail_msg ("the server took %u flushes with no reply read", sent);
  assert_int_equal (setsockopt (sv[0], SOL_SOCKET, SO_RCVTIMEO,
                                &(struct timeval) { .tv_sec = 10 },
                                sizeof (struct timeval)), 0);
  for (i = 0; i < sent; i++) {
    get_all (sv[0], h, sizeof h);
    assert_true (nbd_get32 (h) == NBD_SIMPLE_REPLY_MAGIC);
    assert_int_equal (nbd_get32 (h + 4), 0);
    if (nbd_get64 (h + 8) != i)
      fail_msg ("reply %u has cookie %" PRIu64, i, nbd_get64 (h + 8));
  }
  shutdown (sv[0], SHUT_WR);
  pthread_join (t, NULL);
  close (sv[1]);
  close (sv[0]);
  df_bdev_close (&d->bdev);
  free (data);
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
    cmocka_unit_test (test_async_reads),
    cmocka_unit_test (test_async_bound),
    cmocka_unit_test (test_async_disconnect),
    cmocka_unit_test (test_async_half_close),
    cmocka_unit_test (test_reply_queue_bound),
  };

  return cmocka_run_group_tests (tests, NULL, NULL);
}
