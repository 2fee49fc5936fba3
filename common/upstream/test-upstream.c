/* Unit tests of the NBD upstream: identity and addresses, then real
 * NBD servers (common/nbd) on unix sockets that die, hang, go away
 * (ESHUTDOWN), serve another version, or lose unflushed writes.
 */
#include <config.h>

#include <errno.h>
#include <poll.h>
#include <pthread.h>
#include <stdatomic.h>
#include <time.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <sys/un.h>

#include "test-helpers.h"
#include "bdev/bdev.h"
#include "nbd/proto.h"
#include "nbd/server.h"
#include "upstream/upstream.h"

#define SIZE (1024 * 1024)
#define NBD_REPLY_HEADER 16
#define HASH1 "1111111111111111111111111111111111111111111111111111111111111111"
#define HASH2 "2222222222222222222222222222222222222222222222222222222222222222"
#define DESC1 "device pc1 session s: vdisk base version 3, write cache disk " \
  "vdisk=base version=3 hash=" HASH1

static void
test_identity (void **state)
{
  struct df_upstream_info i = { 0 };
  static const char *const bad[] = {
    "", "vdisk=base version=3", "vdisk=base version=3 hash=11",
    "vdisk=base version=0 hash=" HASH1, "vdisk=base version=03 hash=" HASH1,
    "vdisk=../x version=3 hash=" HASH1, "version=3 hash=" HASH1,
    "vdisk=base version=3 hash=" HASH1 " more",
    "vdisk=base version=99999999999 hash=" HASH1,
  };
  size_t k;

  (void) state;
  assert_int_equal (df_upstream_parse_identity (DESC1, &i), 0);
  assert_string_equal (i.vdisk, "base");
  assert_int_equal (i.version, 3);
  assert_int_equal (i.hash[0], 0x11);
  assert_true (i.has_identity);
  assert_int_equal (df_upstream_parse_identity (NULL, &i), -1);
  for (k = 0; k < sizeof bad / sizeof bad[0]; k++) {
    struct df_upstream_info j = { 0 };
    if (df_upstream_parse_identity (bad[k], &j) != -1)
      fail_msg ("accepted \"%s\"", bad[k]);
  }
}

static void
test_addr (void **state)
{
  struct df_upstream_addr a;

  (void) state;
  assert_int_equal (df_upstream_parse_addr ("10.0.0.1", &a), 0);
  assert_string_equal (a.host, "10.0.0.1");
  assert_int_equal (a.port, 10809);
  assert_int_equal (df_upstream_parse_addr ("srv1.lab:2000", &a), 0);
  assert_string_equal (a.host, "srv1.lab");
  assert_int_equal (a.port, 2000);
  assert_int_equal (df_upstream_parse_addr ("[fd00::1]:10", &a), 0);
  assert_string_equal (a.host, "fd00::1");
  assert_int_equal (a.port, 10);
  assert_int_equal (df_upstream_parse_addr ("unix:/run/x.sock", &a), 0);
  assert_string_equal (a.path, "/run/x.sock");
  assert_int_equal (df_upstream_parse_addr ("fd00::1", &a), 0);
  assert_string_equal (a.host, "fd00::1");
  assert_int_equal (df_upstream_parse_addr ("fd00::zz", &a), -1);
  assert_int_equal (df_upstream_parse_addr ("h:0", &a), -1);
  assert_int_equal (df_upstream_parse_addr ("h:70000", &a), -1);
  assert_int_equal (df_upstream_parse_addr (":1", &a), -1);
  assert_int_equal (df_upstream_parse_addr ("[::1]x", &a), -1);
  assert_int_equal (df_upstream_parse_addr ("unix:", &a), -1);
}

/* A device a test steers: reads hang, requests fail with ESHUTDOWN, or
 * writes stay in RAM until a flush (lost when the server "crashes").
 */
struct ctl {
  struct df_bdev bdev;
  struct df_bdev *lower;        /* the shared "disk" */
  uint8_t *ram;                 /* volatile: the disk as this server sees it */
  atomic_bool hang, shutdown, dirty;
  pthread_mutex_t lock;
  pthread_cond_t released;
};

static int
ctl_pread (struct df_bdev *b, void *buf, uint32_t count, uint64_t offset)
{
  struct ctl *c = (struct ctl *) b;

  pthread_mutex_lock (&c->lock);
  while (c->hang)
    pthread_cond_wait (&c->released, &c->lock);
  pthread_mutex_unlock (&c->lock);
  if (c->shutdown)
    return df_error (ESHUTDOWN, "shutting down");
  if (c->ram) {
    memcpy (buf, c->ram + offset, count);
    return 0;
  }
  return df_bdev_pread (c->lower, buf, count, offset);
}

static int
ctl_pwrite (struct df_bdev *b, const void *buf, uint32_t count,
            uint64_t offset, uint32_t flags)
{
  struct ctl *c = (struct ctl *) b;

  if (c->shutdown)
    return df_error (ESHUTDOWN, "shutting down");
  if (c->ram) {
    memcpy (c->ram + offset, buf, count);
    c->dirty = true;
    return (flags & DF_FUA) ? df_bdev_flush (b) : 0;
  }
  return df_bdev_pwrite (c->lower, buf, count, offset, flags);
}

static int
ctl_flush (struct df_bdev *b)
{
  struct ctl *c = (struct ctl *) b;

  if (c->ram && c->dirty) {
    c->dirty = false;
    return df_bdev_pwrite (c->lower, c->ram, SIZE, 0, 0);
  }
  return 0;
}

static int
ctl_zero (struct df_bdev *b, uint32_t count, uint64_t offset, uint32_t flags)
{
  static const char z[SIZE];

  return ctl_pwrite (b, z, count, offset, flags);
}

static int
ctl_extents (struct df_bdev *b, uint32_t count, uint64_t offset,
             df_extent_fn fn, void *opaque)
{
  (void) b;
  return fn (opaque, offset, count, 0);
}

static void
ctl_close (struct df_bdev *b)
{
  struct ctl *c = (struct ctl *) b;

  free (c->ram);
  pthread_mutex_destroy (&c->lock);
  pthread_cond_destroy (&c->released);
  free (c);
}

static const struct df_bdev_ops ctl_ops = {
  .name = "ctl", .pread = ctl_pread, .pwrite = ctl_pwrite,
  .flush = ctl_flush, .zero = ctl_zero, .trim = ctl_zero,
  .extents = ctl_extents, .close = ctl_close,
};

static struct ctl *
ctl_new (struct df_bdev *lower, bool volatile_writes)
{
  struct ctl *c = calloc (1, sizeof *c);

  assert_non_null (c);
  c->bdev.ops = &ctl_ops;
  c->bdev.size = lower->size;
  c->lower = lower;
  if (volatile_writes) {
    c->ram = malloc (SIZE);
    assert_non_null (c->ram);
    assert_int_equal (df_bdev_pread (lower, c->ram, SIZE, 0), 0);
  }
  pthread_mutex_init (&c->lock, NULL);
  pthread_cond_init (&c->released, NULL);
  return c;
}

static void
ctl_release (struct ctl *c)
{
  pthread_mutex_lock (&c->lock);
  c->hang = false;
  pthread_cond_broadcast (&c->released);
  pthread_mutex_unlock (&c->lock);
}

/* A farm server: an NBD server on a unix socket over a ctl device. */
struct srv {
  bool single;                  /* the export forbids multi-conn */
  char *path, *spec;
  struct ctl *ctl;
  struct df_nbd_server *nbd;
};

static void
srv_start (struct srv *s, const char *name, struct df_bdev *disk,
           const char *desc, bool volatile_writes)
{
  struct df_nbd_export e = {
    .name = "dev/pc1@s", .description = desc, .multi_conn = !s->single,
  };

  if (s->path == NULL) {
    s->path = test_path (tmpdir, name);
    assert_int_not_equal (asprintf (&s->spec, "unix:%s", s->path), -1);
  }
  s->ctl = ctl_new (disk, volatile_writes);
  e.bdev = &s->ctl->bdev;
  s->nbd = df_nbd_server_new (&e, 8);
  assert_non_null (s->nbd);
  assert_int_equal (df_nbd_server_listen_unix (s->nbd, s->path, 0600), 0);
}

/* The server goes away: its connections end. */
static void
srv_stop (struct srv *s)
{
  ctl_release (s->ctl);
  df_nbd_server_free (s->nbd);
  df_bdev_close (&s->ctl->bdev);
  s->nbd = NULL;
  s->ctl = NULL;
}

static void
srv_free (struct srv *s)
{
  if (s->nbd)
    srv_stop (s);
  free (s->path);
  free (s->spec);
}

static char last_log[1024], all_log[16384];
static unsigned failovers_logged;
static pthread_mutex_t log_lock = PTHREAD_MUTEX_INITIALIZER;

static void
log_message (void *opaque, enum df_upstream_log level, const char *msg)
{
  (void) opaque;
  (void) level;
  pthread_mutex_lock (&log_lock);
  snprintf (last_log, sizeof last_log, "%s", msg);
  if (strlen (all_log) + strlen (msg) + 2 < sizeof all_log) {
    strcat (all_log, msg);
    strcat (all_log, "\n");
  }
  if (strstr (msg, "now served by"))
    failovers_logged++;
  pthread_mutex_unlock (&log_lock);
}

static struct df_bdev *
open_up (struct srv *a, struct srv *b, unsigned io_timeout,
         unsigned dead_timeout, uint64_t replay_limit)
{
  const char *servers[2] = { a->spec, b ? b->spec : NULL };
  struct df_upstream_params p = {
    .export_name = "dev/pc1@s", .servers = servers, .nservers = b ? 2 : 1,
    .connections = 2, .connect_timeout = 2, .io_timeout = io_timeout,
    .dead_timeout = dead_timeout, .replay_limit = replay_limit,
    .log = log_message,
  };
  struct df_bdev *up = df_upstream_open (&p);

  if (up == NULL)
    fail_msg ("open: %s", df_error_get ());
  return up;
}

static void
test_read_write (void **state)
{
  struct df_bdev *disk = df_mem_bdev_new (SIZE), *up;
  struct srv a = { 0 };
  struct df_upstream_stats st;
  char buf[8192], back[8192];
  uint64_t seed = 3;

  (void) state;
  srv_start (&a, "rw.sock", disk, DESC1, false);
  up = open_up (&a, NULL, 5, 0, 1 << 20);
  assert_int_equal (up->size, SIZE);
  assert_true (df_upstream_info (up)->has_identity);
  assert_int_equal (df_upstream_info (up)->version, 3);
  df_upstream_stats (up, &st);
  assert_int_equal (st.connections, 2);

  test_fill (buf, sizeof buf, &seed);
  assert_int_equal (df_bdev_pwrite (up, buf, sizeof buf, 4096, DF_FUA), 0);
  assert_int_equal (df_bdev_pread (up, back, sizeof back, 4096), 0);
  assert_memory_equal (buf, back, sizeof buf);
  df_upstream_stats (up, &st);
  assert_true (st.unflushed_bytes >= sizeof buf);
  assert_int_equal (df_bdev_flush (up), 0);
  df_upstream_stats (up, &st);
  assert_int_equal (st.unflushed_bytes, 0);
  assert_int_equal (df_bdev_zero (up, 4096, 4096, DF_MAY_TRIM), 0);
  assert_int_equal (df_bdev_trim (up, 4096, 8192, 0), 0);
  assert_int_equal (df_bdev_pread (up, back, 4096, 4096), 0);
  assert_true (df_is_zero (back, 4096));
  /* A server's refusal reaches the caller. */
  assert_int_equal (df_bdev_pread (up, back, 4096, SIZE), -1);
  assert_int_equal (errno, EINVAL);

  df_bdev_close (up);
  srv_free (&a);
  df_bdev_close (disk);
}

/* Reads of every size in one batch: payloads split across the reply
 * buffer, big ones read straight into place, and a refused read (an
 * error reply has no payload) among them.
 */
static void
test_batch_sizes (void **state)
{
  static const uint32_t sizes[] = { 4096, 300000, 1, 65543, 131072, 17 };
  struct df_bdev *disk = df_mem_bdev_new (SIZE), *up;
  struct df_bdev_read rd[40];
  uint8_t *expect = malloc (SIZE), *bufs[40];
  struct srv a = { 0 };
  uint64_t seed = 11;
  size_t i;

  (void) state;
  assert_non_null (expect);
  test_fill (expect, SIZE, &seed);
  assert_int_equal (df_bdev_pwrite (disk, expect, SIZE, 0, 0), 0);
  srv_start (&a, "sizes.sock", disk, DESC1, false);
  up = open_up (&a, NULL, 5, 0, 1 << 20);
  for (i = 0; i < 40; i++) {
    uint32_t n = sizes[i % 6];
    bufs[i] = malloc (n);
    assert_non_null (bufs[i]);
    rd[i] = (struct df_bdev_read) {
      .buf = bufs[i], .count = n,
      .offset = i == 20 ? SIZE : (i * 7919 * 13) % (SIZE - n),
    };
  }
  assert_int_equal (df_bdev_pread_many (up, rd, 40), -1);
  for (i = 0; i < 40; i++) {
    if (i == 20) {
      assert_int_equal (rd[i].error, EINVAL);
      continue;
    }
    assert_int_equal (rd[i].error, 0);
    if (memcmp (bufs[i], expect + rd[i].offset, rd[i].count) != 0)
      fail_msg ("read %zu (%u bytes at %ju) is wrong", i, rd[i].count,
                (uintmax_t) rd[i].offset);
  }
  /* The connection still serves after the refusal. */
  assert_int_equal (df_bdev_pread (up, bufs[1], 300000, 4096), 0);
  assert_memory_equal (bufs[1], expect + 4096, 300000);
  for (i = 0; i < 40; i++)
    free (bufs[i]);
  df_bdev_close (up);
  srv_free (&a);
  df_bdev_close (disk);
  free (expect);
}

/* Readers that run while the servers change under them. */
struct reader {
  struct df_bdev *up;
  const uint8_t *expect;
  atomic_bool stop;
  atomic_uint errors, reads;
};

/* Single reads and batches of 16 (df_bdev_pread_many) in turn. */
static void *
reader_main (void *arg)
{
  struct reader *r = arg;
  static __thread uint8_t buf[16][4096];
  uint64_t seed = 11;

  while (!r->stop) {
    struct df_bdev_read rd[16];
    unsigned n = r->reads % 2 ? 16 : 1, i;
    for (i = 0; i < n; i++)
      rd[i] = (struct df_bdev_read) {
        .buf = buf[i], .count = 4096,
        .offset = test_rand (&seed) % (SIZE / 4096) * 4096,
      };
    if (df_bdev_pread_many (r->up, rd, n) == -1)
      r->errors++;
    for (i = 0; i < n; i++)
      if (memcmp (buf[i], r->expect + rd[i].offset, 4096) != 0)
        r->errors++;
    r->reads++;
  }
  return NULL;
}

static uint8_t *
fill_disk (struct df_bdev *disk)
{
  uint8_t *data = malloc (SIZE);
  uint64_t seed = 5;

  assert_non_null (data);
  test_fill (data, SIZE, &seed);
  assert_int_equal (df_bdev_pwrite (disk, data, SIZE, 0, 0), 0);
  return data;
}

static void
wait_failovers (unsigned n)
{
  for (int i = 0; i < 1000; i++) {
    pthread_mutex_lock (&log_lock);
    unsigned got = failovers_logged;
    pthread_mutex_unlock (&log_lock);
    if (got >= n)
      return;
    usleep (10000);
  }
  fail_msg ("no failover within 10 s: %s", last_log);
}

/* A proxy in front of a server that cuts the first connection to send
 * a request (the request magic) after `cut` bytes of the server's
 * answers: a reply cut short in its payload.
 */
struct proxy {
  struct srv front;             /* path and spec only */
  const char *target;
  size_t cut;
  int lfd;
  atomic_bool cut_done;
  pthread_t acceptor, conns[8];
  atomic_uint nconns;
};

static int
connect_unix (const char *path)
{
  struct sockaddr_un sa = { .sun_family = AF_UNIX };
  int fd = socket (AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);

  snprintf (sa.sun_path, sizeof sa.sun_path, "%s", path);
  if (fd >= 0 && connect (fd, (struct sockaddr *) &sa, sizeof sa) == -1) {
    close (fd);
    fd = -1;
  }
  return fd;
}

static bool
put_all (int fd, const char *p, size_t n)
{
  while (n > 0) {
    ssize_t w = write (fd, p, n);
    if (w <= 0)
      return false;
    p += w;
    n -= w;
  }
  return true;
}

struct pconn {
  struct proxy *px;
  int c, s;
};

static void *
pconn_main (void *arg)
{
  struct pconn *pc = arg;
  static const char magic[] = { 0x25, 0x60, (char) 0x95, 0x13 };
  bool started = false, cutting = false;
  size_t after = 0;
  char buf[65536];

  for (;;) {
    struct pollfd pfd[2] = { { pc->c, POLLIN, 0 }, { pc->s, POLLIN, 0 } };
    ssize_t n;

    if (poll (pfd, 2, -1) <= 0)
      break;
    if (pfd[0].revents) {
      if ((n = read (pc->c, buf, sizeof buf)) <= 0)
        break;
      if (!started && memmem (buf, n, magic, 4)) {
        started = true;
        cutting = !atomic_exchange (&pc->px->cut_done, true);
      }
      if (!put_all (pc->s, buf, n))
        break;
    }
    if (pfd[1].revents) {
      if ((n = read (pc->s, buf, sizeof buf)) <= 0)
        break;
      if (cutting && after + n >= pc->px->cut) {
        put_all (pc->c, buf, pc->px->cut - after);
        break;
      }
      if (cutting)
        after += n;
      if (!put_all (pc->c, buf, n))
        break;
    }
  }
  close (pc->c);
  close (pc->s);
  free (pc);
  return NULL;
}

static void *
proxy_main (void *arg)
{
  struct proxy *px = arg;
  int fd;

  while ((fd = accept4 (px->lfd, NULL, NULL, SOCK_CLOEXEC)) >= 0) {
    struct pconn *pc = malloc (sizeof *pc);
    unsigned k = px->nconns;
    assert_non_null (pc);
    *pc = (struct pconn) { .px = px, .c = fd, .s = connect_unix (px->target) };
    if (pc->s == -1 || k == 8 ||
        pthread_create (&px->conns[k], NULL, pconn_main, pc) != 0) {
      close (fd);
      if (pc->s >= 0)
        close (pc->s);
      free (pc);
      continue;
    }
    px->nconns = k + 1;
  }
  return NULL;
}

static void
proxy_start (struct proxy *px, const char *name, const struct srv *to,
             size_t cut)
{
  struct sockaddr_un sa = { .sun_family = AF_UNIX };

  px->front.path = test_path (tmpdir, name);
  assert_int_not_equal (asprintf (&px->front.spec, "unix:%s",
                                  px->front.path), -1);
  px->target = to->path;
  px->cut = cut;
  px->lfd = socket (AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  assert_true (px->lfd >= 0);
  snprintf (sa.sun_path, sizeof sa.sun_path, "%s", px->front.path);
  assert_int_equal (bind (px->lfd, (struct sockaddr *) &sa, sizeof sa), 0);
  assert_int_equal (listen (px->lfd, 8), 0);
  assert_int_equal (pthread_create (&px->acceptor, NULL, proxy_main, px), 0);
}

/* After the upstream is closed: its connections are gone. */
static void
proxy_stop (struct proxy *px)
{
  shutdown (px->lfd, SHUT_RDWR);
  pthread_join (px->acceptor, NULL);
  close (px->lfd);
  for (unsigned i = 0; i < px->nconns; i++)
    pthread_join (px->conns[i], NULL);
  srv_free (&px->front);
}

/* A read whose reply is cut in its payload is read again from the next
 * server, not taken half filled.
 */
static void
test_cut_payload (void **state)
{
  struct df_bdev *disk = df_mem_bdev_new (SIZE), *up;
  struct srv a = { 0 }, b = { 0 };
  struct proxy px = { 0 };
  struct df_upstream_stats st;
  const uint8_t *expect;
  char buf[8192];

  (void) state;
  expect = fill_disk (disk);
  srv_start (&a, "cut-a.sock", disk, DESC1, false);
  srv_start (&b, "cut-b.sock", disk, DESC1, false);
  proxy_start (&px, "cut-px.sock", &a, NBD_REPLY_HEADER + 1000);
  up = open_up (&px.front, &b, 5, 0, 1 << 20);
  df_upstream_allow_failover (up, true);
  failovers_logged = 0;
  memset (buf, 0, sizeof buf);
  assert_int_equal (df_bdev_pread (up, buf, sizeof buf, 65536), 0);
  assert_memory_equal (buf, expect + 65536, sizeof buf);
  assert_true (atomic_load (&px.cut_done));
  df_upstream_stats (up, &st);
  assert_int_equal (st.failovers, 1);
  df_bdev_close (up);
  proxy_stop (&px);
  srv_free (&a);
  srv_free (&b);
  df_bdev_close (disk);
  free ((void *) expect);
}

static void
test_failover (void **state)
{
  struct df_bdev *disk = df_mem_bdev_new (SIZE), *up;
  struct srv a = { 0 }, b = { 0 };
  struct reader rd = { 0 };
  struct df_upstream_stats st;
  char name[80];
  pthread_t t[3];
  int i;

  (void) state;
  rd.expect = fill_disk (disk);
  srv_start (&a, "fa.sock", disk, DESC1, false);
  srv_start (&b, "fb.sock", disk, DESC1, false);
  up = open_up (&a, &b, 5, 0, 1 << 20);
  df_upstream_allow_failover (up, true);
  rd.up = up;
  failovers_logged = 0;
  for (i = 0; i < 3; i++)
    assert_int_equal (pthread_create (&t[i], NULL, reader_main, &rd), 0);
  usleep (100000);
  srv_stop (&a);                /* the server dies under the readers */
  wait_failovers (1);
  assert_string_equal (df_upstream_server (up, name, sizeof name), b.spec);
  usleep (100000);
  srv_start (&a, NULL, disk, DESC1, false);
  srv_stop (&b);                /* and back */
  wait_failovers (2);
  usleep (100000);
  rd.stop = true;
  for (i = 0; i < 3; i++)
    pthread_join (t[i], NULL);
  assert_int_equal (rd.errors, 0);
  assert_true (rd.reads > 0);
  df_upstream_stats (up, &st);
  assert_int_equal (st.failovers, 2);
  assert_string_equal (df_upstream_server (up, name, sizeof name), a.spec);
  df_bdev_close (up);
  srv_free (&a);
  srv_free (&b);
  df_bdev_close (disk);
  free ((void *) rd.expect);
}

/* A server that hangs is dropped after io_timeout; one that answers
 * ESHUTDOWN at once.
 */
static void
test_hang_and_shutdown (void **state)
{
  struct df_bdev *disk = df_mem_bdev_new (SIZE), *up;
  struct srv a = { 0 }, b = { 0 };
  uint8_t *data = fill_disk (disk), buf[4096];
  uint64_t t0;

  (void) state;
  srv_start (&a, "ha.sock", disk, DESC1, false);
  srv_start (&b, "hb.sock", disk, DESC1, false);
  up = open_up (&a, &b, 1, 0, 1 << 20);
  df_upstream_allow_failover (up, true);
  failovers_logged = 0;
  a.ctl->hang = true;
  t0 = df_now_mono_ns ();
  assert_int_equal (df_bdev_pread (up, buf, sizeof buf, 8192), 0);
  assert_memory_equal (buf, data + 8192, sizeof buf);
  assert_true (df_now_mono_ns () - t0 >= 900000000);
  wait_failovers (1);
  assert_non_null (strstr (last_log, "to notice"));
  ctl_release (a.ctl);

  b.ctl->shutdown = true;       /* the server on duty is going away */
  assert_int_equal (df_bdev_pread (up, buf, sizeof buf, 12288), 0);
  assert_memory_equal (buf, data + 12288, sizeof buf);
  wait_failovers (2);
  df_bdev_close (up);
  srv_free (&a);
  srv_free (&b);
  df_bdev_close (disk);
  free (data);
}

/* Another version is no replica; without failover allowed, the device
 * waits for its own server.
 */
static void
test_refusals (void **state)
{
  struct df_bdev *disk = df_mem_bdev_new (SIZE), *up;
  struct srv a = { 0 }, b = { 0 };
  uint8_t buf[4096];

  (void) state;
  srv_start (&a, "ra.sock", disk, DESC1, false);
  srv_start (&b, "rb.sock", disk, "vdisk=base version=4 hash=" HASH2, false);
  all_log[0] = '\0';
  up = open_up (&a, &b, 5, 2, 1 << 20);
  df_upstream_allow_failover (up, true);
  srv_stop (&a);
  assert_int_equal (df_bdev_pread (up, buf, sizeof buf, 0), -1);
  assert_int_equal (errno, EIO);
  assert_non_null (strstr (df_error_get (), "no server has served"));
  pthread_mutex_lock (&log_lock);
  assert_non_null (strstr (all_log, "not an identical replica"));
  pthread_mutex_unlock (&log_lock);
  /* Its server is back: the device carries on. */
  srv_start (&a, NULL, disk, DESC1, false);
  failovers_logged = 0;
  wait_failovers (1);
  assert_int_equal (df_bdev_pread (up, buf, sizeof buf, 0), 0);
  df_bdev_close (up);
  srv_stop (&b);

  /* Only the server in use, when failover is not allowed. */
  srv_start (&b, NULL, disk, DESC1, false);
  up = open_up (&a, &b, 5, 1, 1 << 20);
  srv_stop (&a);
  assert_int_equal (df_bdev_pread (up, buf, sizeof buf, 0), -1);
  srv_start (&a, NULL, disk, DESC1, false);
  failovers_logged = 0;
  wait_failovers (1);
  assert_int_equal (df_bdev_pread (up, buf, sizeof buf, 0), 0);
  df_bdev_close (up);
  srv_free (&a);
  srv_free (&b);
  df_bdev_close (disk);
}

/* The server loses what was not flushed; the replay puts it back. */
static void
test_replay (void **state)
{
  struct df_bdev *disk = df_mem_bdev_new (SIZE), *up;
  struct srv a = { 0 }, b = { 0 };
  uint8_t *expect = fill_disk (disk), buf[4096];
  struct df_upstream_stats st;
  uint64_t seed = 9;
  int i;

  (void) state;
  srv_start (&a, "pa.sock", disk, DESC1, true);
  srv_start (&b, "pb.sock", disk, DESC1, false);
  up = open_up (&a, &b, 5, 0, 64 * 1024);
  df_upstream_allow_failover (up, true);
  /* 100 writes, overlapping, some zeroes; more than the log keeps, so
   * the upstream flushes by itself on the way.
   */
  for (i = 0; i < 100; i++) {
    uint64_t off = test_rand (&seed) % (SIZE - 8192);
    uint32_t len = 1 + test_rand (&seed) % 8192;
    if (i % 10 == 9) {
      assert_int_equal (df_bdev_zero (up, len, off, 0), 0);
      memset (expect + off, 0, len);
      continue;
    }
    test_fill (expect + off, len, &seed);
    assert_int_equal (df_bdev_pwrite (up, expect + off, len, off, 0), 0);
  }
  df_upstream_stats (up, &st);
  assert_true (st.unflushed_bytes > 0);
  assert_true (st.unflushed_bytes <= 2 * 64 * 1024 + 8192 + 64);
  failovers_logged = 0;
  srv_stop (&a);                /* its RAM is gone */
  for (i = 0; i < SIZE; i += sizeof buf) {
    assert_int_equal (df_bdev_pread (up, buf, sizeof buf, i), 0);
    if (memcmp (buf, expect + i, sizeof buf) != 0)
      fail_msg ("block at %d lost after the failover", i);
  }
  df_upstream_stats (up, &st);
  assert_true (st.replayed > 0);
  df_bdev_close (up);
  srv_free (&a);
  srv_free (&b);
  df_bdev_close (disk);
  free (expect);
}

/* ---- asynchronous reads (df_bdev_pread_async, the pump) ---- */

#define POOL 100                /* reads out at once per submitter */

/* A thread that keeps up to POOL reads of 4 KiB at random offsets out,
 * submitted in batches of 1 to 24, and checks each one's error and data
 * as it is told done.
 */
struct submitter {
  struct df_bdev_aio aio;       /* first: the done callback's */
  struct df_bdev *up;
  const uint8_t *expect;
  unsigned limit;               /* reads to submit; 0: until stop */
  int want;                     /* the error every read must end with */
  uint64_t seed;
  pthread_t thread, self;
  struct df_bdev_aread rd[POOL];
  uint8_t *bufs;
  /* Under sub_lock: */
  unsigned freel[POOL], nfree;
  unsigned submitted, done, errors, bad, inline_dones;
  int last_error;
  bool stop, waiting, timed_out;
};

static pthread_mutex_t sub_lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t sub_cond = PTHREAD_COND_INITIALIZER;

static void
sub_done (struct df_bdev_aio *aio, struct df_bdev_aread **a, size_t n)
{
  struct submitter *s = (struct submitter *) aio;
  size_t i;

  pthread_mutex_lock (&sub_lock);
  for (i = 0; i < n; i++) {
    if (a[i]->error != s->want) {
      s->errors++;
      s->last_error = a[i]->error;
    }
    s->bad += a[i]->error == 0 &&
      memcmp (a[i]->buf, s->expect + a[i]->offset, a[i]->count) != 0;
    s->inline_dones += pthread_equal (pthread_self (), s->self);
    s->freel[s->nfree++] = a[i] - s->rd;
    s->done++;
  }
  pthread_cond_broadcast (&sub_cond);
  pthread_mutex_unlock (&sub_lock);
}

static void
sub_init (struct submitter *s, struct df_bdev *up, const uint8_t *expect,
          unsigned limit, uint64_t seed)
{
  unsigned i;

  memset (s, 0, sizeof *s);
  s->aio.done = sub_done;
  s->up = up;
  s->expect = expect;
  s->limit = limit;
  s->seed = seed;
  s->bufs = malloc (POOL * 4096);
  assert_non_null (s->bufs);
  for (i = 0; i < POOL; i++)
    s->freel[s->nfree++] = i;
  s->self = pthread_self ();
}

/* Submits one batch of up to want reads (sub_lock held; 0 if the pool
 * is too short).
 */
static unsigned
sub_batch (struct submitter *s, unsigned want)
{
  struct df_bdev_aread *a[24];
  unsigned i;

  if (s->nfree < want)
    return 0;
  for (i = 0; i < want; i++) {
    a[i] = &s->rd[s->freel[--s->nfree]];
    *a[i] = (struct df_bdev_aread) {
      .buf = s->bufs + (a[i] - s->rd) * 4096, .count = 4096,
      .offset = test_rand (&s->seed) % (SIZE / 4096) * 4096,
      .error = -1, .aio = &s->aio,
    };
  }
  s->submitted += want;
  pthread_mutex_unlock (&sub_lock);
  df_bdev_pread_async (s->up, a, want);
  pthread_mutex_lock (&sub_lock);
  return want;
}

static void *
sub_main (void *arg)
{
  struct submitter *s = arg;
  struct timespec deadline;

  s->self = pthread_self ();
  pthread_mutex_lock (&sub_lock);
  while (!s->stop && (s->limit == 0 || s->submitted < s->limit)) {
    unsigned b = 1 + test_rand (&s->seed) % 24;
    if (s->limit && b > s->limit - s->submitted)
      b = s->limit - s->submitted;
    while (!s->stop && s->nfree < b) {
      s->waiting = true;
      pthread_cond_broadcast (&sub_cond);
      pthread_cond_wait (&sub_cond, &sub_lock);
    }
    s->waiting = false;
    if (!s->stop)
      sub_batch (s, b);
  }
  /* Every read it sent is told, within a bound. */
  clock_gettime (CLOCK_REALTIME, &deadline);
  deadline.tv_sec += 30;
  while (s->done < s->submitted && !s->timed_out)
    if (pthread_cond_timedwait (&sub_cond, &sub_lock, &deadline)
        == ETIMEDOUT)
      s->timed_out = true;
  pthread_mutex_unlock (&sub_lock);
  return NULL;
}

static void
sub_start (struct submitter *s)
{
  assert_int_equal (pthread_create (&s->thread, NULL, sub_main, s), 0);
}

static void
sub_stop (struct submitter *s, size_t n)
{
  size_t i;

  pthread_mutex_lock (&sub_lock);
  for (i = 0; i < n; i++)
    s[i].stop = true;
  pthread_cond_broadcast (&sub_cond);
  pthread_mutex_unlock (&sub_lock);
  for (i = 0; i < n; i++)
    pthread_join (s[i].thread, NULL);
}

/* Every read told once, as expected. */
static void
sub_check (struct submitter *s)
{
  pthread_mutex_lock (&sub_lock);
  if (s->timed_out || s->done != s->submitted)
    fail_msg ("%u of %u reads told done", s->done, s->submitted);
  if (s->errors)
    fail_msg ("%u reads ended with error %d, not %d", s->errors,
              s->last_error, s->want);
  if (s->bad)
    fail_msg ("%u reads have wrong data", s->bad);
  assert_int_equal (s->nfree, POOL);
  pthread_mutex_unlock (&sub_lock);
  free (s->bufs);
}

enum sub_until { ALL_WAITING, DONE_AT_LEAST };

/* Waits (20 s at most) until every submitter waits for a free read (all
 * its reads are out), or until the reads told reach n.
 */
static void
sub_wait (struct submitter *s, size_t ns, enum sub_until until, unsigned n)
{
  struct timespec deadline;
  unsigned total = 0;
  bool waiting = false;
  size_t i;

  clock_gettime (CLOCK_REALTIME, &deadline);
  deadline.tv_sec += 20;
  pthread_mutex_lock (&sub_lock);
  for (;;) {
    total = 0;
    waiting = true;
    for (i = 0; i < ns; i++) {
      total += s[i].done;
      waiting &= s[i].waiting;
    }
    if (until == ALL_WAITING ? waiting : total >= n)
      break;
    if (pthread_cond_timedwait (&sub_cond, &sub_lock, &deadline)
        == ETIMEDOUT)
      fail_msg ("%u reads told; submitters %s", total,
                waiting ? "waiting" : "not all waiting");
  }
  pthread_mutex_unlock (&sub_lock);
}

static unsigned
sub_done_total (struct submitter *s, size_t n)
{
  unsigned total = 0;
  size_t i;

  pthread_mutex_lock (&sub_lock);
  for (i = 0; i < n; i++)
    total += s[i].done;
  pthread_mutex_unlock (&sub_lock);
  return total;
}

/* Reads stream: 2000 reads from 2 threads in batches of every size, up
 * to 200 out at once; each told once, from the device's own thread,
 * with its data.
 */
static void
test_async_stream (void **state)
{
  struct df_bdev *disk = df_mem_bdev_new (SIZE), *up;
  const uint8_t *expect = fill_disk (disk);
  struct submitter s[2];
  struct srv a = { 0 };
  int i;

  (void) state;
  srv_start (&a, "as.sock", disk, DESC1, false);
  up = open_up (&a, NULL, 5, 0, 1 << 20);
  assert_true (up->flags & DF_BDEV_ASYNC);
  for (i = 0; i < 2; i++) {
    sub_init (&s[i], up, expect, 1000, 17 + i);
    sub_start (&s[i]);
  }
  for (i = 0; i < 2; i++)        /* they stop at their limit */
    pthread_join (s[i].thread, NULL);
  for (i = 0; i < 2; i++) {
    assert_int_equal (s[i].submitted, 1000);
    assert_int_equal (s[i].inline_dones, 0);
    sub_check (&s[i]);
  }
  /* The synchronous path still works beside it. */
  {
    uint8_t buf[4096];
    assert_int_equal (df_bdev_pread (up, buf, sizeof buf, 4096), 0);
    assert_memory_equal (buf, expect + 4096, sizeof buf);
  }
  df_bdev_close (up);
  srv_free (&a);
  df_bdev_close (disk);
  free ((void *) expect);
}

/* Reads out on a server that dies (held first, so that 200 are in
 * flight), then on one killed under load: every read is sent again
 * after the failover and ends with its data, no error.
 */
static void
test_async_failover (void **state)
{
  struct df_bdev *disk = df_mem_bdev_new (SIZE), *up;
  const uint8_t *expect = fill_disk (disk);
  struct df_upstream_stats st;
  struct srv a = { 0 }, b = { 0 };
  struct submitter s[2];
  char name[80];
  int i;

  (void) state;
  srv_start (&a, "afa.sock", disk, DESC1, false);
  srv_start (&b, "afb.sock", disk, DESC1, false);
  /* No io_timeout: only the server's going away ends a connection. */
  up = open_up (&a, &b, 0, 0, 1 << 20);
  df_upstream_allow_failover (up, true);
  failovers_logged = 0;
  for (i = 0; i < 2; i++) {
    sub_init (&s[i], up, expect, 0, 31 + i);
    sub_start (&s[i]);
  }
  sub_wait (s, 2, DONE_AT_LEAST, 300);
  a.ctl->hang = true;           /* replies stop: the reads pile up */
  sub_wait (s, 2, ALL_WAITING, 0);
  srv_stop (&a);                /* answers what it read, drops the rest */
  wait_failovers (1);
  assert_string_equal (df_upstream_server (up, name, sizeof name), b.spec);
  sub_wait (s, 2, DONE_AT_LEAST, sub_done_total (s, 2) + 500);
  srv_start (&a, NULL, disk, DESC1, false);
  srv_stop (&b);                /* and back, under load */
  wait_failovers (2);
  sub_wait (s, 2, DONE_AT_LEAST, sub_done_total (s, 2) + 500);
  sub_stop (s, 2);
  for (i = 0; i < 2; i++)
    sub_check (&s[i]);
  df_upstream_stats (up, &st);
  assert_int_equal (st.failovers, 2);
  assert_string_equal (df_upstream_server (up, name, sizeof name), a.spec);
  df_bdev_close (up);
  srv_free (&a);
  srv_free (&b);
  df_bdev_close (disk);
  free ((void *) expect);
}

/* A hung server: after io_timeout the reads go to the other one; one
 * that answers ESHUTDOWN (going away) at once.
 */
static void
test_async_hang (void **state)
{
  struct df_bdev *disk = df_mem_bdev_new (SIZE), *up;
  const uint8_t *expect = fill_disk (disk);
  struct srv a = { 0 }, b = { 0 };
  struct submitter s;
  uint64_t t0;

  (void) state;
  srv_start (&a, "aha.sock", disk, DESC1, false);
  srv_start (&b, "ahb.sock", disk, DESC1, false);
  up = open_up (&a, &b, 1, 0, 1 << 20);
  df_upstream_allow_failover (up, true);
  failovers_logged = 0;
  a.ctl->hang = true;
  t0 = df_now_mono_ns ();
  sub_init (&s, up, expect, 300, 41);
  sub_start (&s);
  pthread_join (s.thread, NULL);
  sub_check (&s);
  assert_true (df_now_mono_ns () - t0 >= 900000000);
  wait_failovers (1);
  assert_non_null (strstr (last_log, "to notice"));
  ctl_release (a.ctl);

  b.ctl->shutdown = true;       /* the server on duty is going away */
  sub_init (&s, up, expect, 300, 43);
  sub_start (&s);
  pthread_join (s.thread, NULL);
  sub_check (&s);
  wait_failovers (2);
  df_bdev_close (up);
  srv_free (&a);
  srv_free (&b);
  df_bdev_close (disk);
  free ((void *) expect);
}

/* Submits n reads from this thread (n <= 24). */
static void
sub_here (struct submitter *s, unsigned n)
{
  pthread_mutex_lock (&sub_lock);
  assert_int_equal (sub_batch (s, n), n);
  pthread_mutex_unlock (&sub_lock);
}

/* Waits (20 s at most) until every read submitted here is told. */
static void
sub_wait_here (struct submitter *s)
{
  struct timespec deadline;

  clock_gettime (CLOCK_REALTIME, &deadline);
  deadline.tv_sec += 20;
  pthread_mutex_lock (&sub_lock);
  while (s->done < s->submitted)
    if (pthread_cond_timedwait (&sub_cond, &sub_lock, &deadline)
        == ETIMEDOUT)
      fail_msg ("%u of %u reads told", s->done, s->submitted);
  pthread_mutex_unlock (&sub_lock);
}

/* No server serves: reads wait, and fail when the caller detaches
 * (ESHUTDOWN) or after dead_timeout (EIO); then the server is back.
 */
static void
test_async_no_server (void **state)
{
  struct df_bdev *disk = df_mem_bdev_new (SIZE), *up;
  const uint8_t *expect = fill_disk (disk);
  struct srv a = { 0 };
  struct submitter s;

  (void) state;
  srv_start (&a, "ani.sock", disk, DESC1, false);
  up = open_up (&a, NULL, 5, 0, 1 << 20);
  srv_stop (&a);
  sub_init (&s, up, expect, 0, 43);
  s.want = ESHUTDOWN;
  sub_here (&s, 20);
  sub_here (&s, 20);
  df_upstream_interrupt (up);
  sub_wait_here (&s);
  sub_check (&s);
  df_bdev_close (up);

  srv_start (&a, NULL, disk, DESC1, false);
  up = open_up (&a, NULL, 5, 1, 1 << 20);
  srv_stop (&a);
  sub_init (&s, up, expect, 0, 47);
  s.want = EIO;
  sub_here (&s, 24);
  sub_wait_here (&s);
  sub_check (&s);
  /* Its server is back: the device carries on. */
  srv_start (&a, NULL, disk, DESC1, false);
  failovers_logged = 0;
  wait_failovers (1);
  sub_init (&s, up, expect, 0, 53);
  sub_here (&s, 24);
  sub_wait_here (&s);
  sub_check (&s);
  df_bdev_close (up);
  srv_free (&a);
  df_bdev_close (disk);
  free ((void *) expect);
}

/* Closing: with nothing out it is clean; reads waiting for a server
 * are told (ESHUTDOWN) before close returns.
 */
static void
test_async_close (void **state)
{
  struct df_bdev *disk = df_mem_bdev_new (SIZE), *up;
  const uint8_t *expect = fill_disk (disk);
  struct srv a = { 0 };
  struct submitter s;

  (void) state;
  srv_start (&a, "acl.sock", disk, DESC1, false);
  up = open_up (&a, NULL, 5, 0, 1 << 20);
  sub_init (&s, up, expect, 0, 59);
  sub_here (&s, 24);
  sub_wait_here (&s);
  sub_check (&s);
  df_bdev_close (up);

  up = open_up (&a, NULL, 5, 0, 1 << 20);
  srv_stop (&a);
  sub_init (&s, up, expect, 0, 61);
  s.want = ESHUTDOWN;
  sub_here (&s, 24);
  df_bdev_close (up);
  pthread_mutex_lock (&sub_lock);
  assert_int_equal (s.done, 24);
  pthread_mutex_unlock (&sub_lock);
  sub_check (&s);
  srv_free (&a);
  df_bdev_close (disk);
  free ((void *) expect);
}

/* One connection (the export forbids more): the pump, which keeps it
 * while reads stream, gives it to writers and synchronous readers in
 * turn, and the reads go on.
 */
static void
test_async_one_connection (void **state)
{
  struct df_bdev *disk = df_mem_bdev_new (SIZE), *up;
  const uint8_t *expect = fill_disk (disk);
  struct df_upstream_stats st;
  struct srv a = { .single = true };
  struct submitter s;
  uint8_t buf[4096];
  uint64_t seed = 67;
  int i;

  (void) state;
  srv_start (&a, "a1.sock", disk, DESC1, false);
  up = open_up (&a, NULL, 5, 0, 1 << 20);
  df_upstream_stats (up, &st);
  assert_int_equal (st.connections, 1);
  sub_init (&s, up, expect, 0, 71);
  sub_start (&s);
  sub_wait (&s, 1, DONE_AT_LEAST, 200);
  for (i = 0; i < 50; i++) {
    uint64_t off = test_rand (&seed) % (SIZE / 4096) * 4096;
    /* The same bytes again: the readers' reference holds. */
    assert_int_equal (df_bdev_pwrite (up, expect + off, 4096, off, 0), 0);
    assert_int_equal (df_bdev_pread (up, buf, sizeof buf, off), 0);
    assert_memory_equal (buf, expect + off, sizeof buf);
    if (i % 10 == 9)
      assert_int_equal (df_bdev_flush (up), 0);
  }
  sub_wait (&s, 1, DONE_AT_LEAST, sub_done_total (&s, 1) + 200);
  sub_stop (&s, 1);
  sub_check (&s);
  df_bdev_close (up);
  srv_free (&a);
  df_bdev_close (disk);
  free ((void *) expect);
}

/* The server in use goes away while no read is out: the next reads go
 * to the new one.
 */
static void
test_async_idle_loss (void **state)
{
  struct df_bdev *disk = df_mem_bdev_new (SIZE), *up;
  const uint8_t *expect = fill_disk (disk);
  struct srv a = { 0 }, b = { 0 };
  struct submitter s;
  char name[80];

  (void) state;
  srv_start (&a, "ila.sock", disk, DESC1, false);
  srv_start (&b, "ilb.sock", disk, DESC1, false);
  up = open_up (&a, &b, 5, 0, 1 << 20);
  df_upstream_allow_failover (up, true);
  failovers_logged = 0;
  sub_init (&s, up, expect, 0, 73);
  sub_here (&s, 24);
  sub_wait_here (&s);
  srv_stop (&a);
  sub_here (&s, 24);
  sub_here (&s, 7);
  sub_wait_here (&s);
  sub_check (&s);
  wait_failovers (1);
  assert_string_equal (df_upstream_server (up, name, sizeof name), b.spec);
  df_bdev_close (up);
  srv_free (&a);
  srv_free (&b);
  df_bdev_close (disk);
  free ((void *) expect);
}

/* The server in use hangs while the pump idles on its connection: the
 * reads sent then (by the submitting thread, without waking the pump)
 * go to the other server after io_timeout, and the pause counts from
 * them, not from the reads before the idle time.
 */
static void
test_async_idle_hang (void **state)
{
  struct df_bdev *disk = df_mem_bdev_new (SIZE), *up;
  const uint8_t *expect = fill_disk (disk);
  struct srv a = { 0 }, b = { 0 };
  struct df_upstream_stats st;
  struct submitter s;
  uint64_t t0, waited;
  char name[80];

  (void) state;
  srv_start (&a, "iha.sock", disk, DESC1, false);
  srv_start (&b, "ihb.sock", disk, DESC1, false);
  up = open_up (&a, &b, 1, 0, 1 << 20);
  df_upstream_allow_failover (up, true);
  failovers_logged = 0;
  sub_init (&s, up, expect, 0, 79);
  sub_here (&s, 24);
  sub_wait_here (&s);
  /* Idle for longer than io_timeout: a pump that only looked at the
   * time of reads in flight when it woke would call the server silent
   * at once, or (not woken) never.
   */
  t0 = df_now_mono_ns ();
  while (df_now_mono_ns () - t0 < 1500000000)
    usleep (100000);
  a.ctl->hang = true;
  t0 = df_now_mono_ns ();
  sub_here (&s, 24);
  sub_wait_here (&s);
  waited = df_now_mono_ns () - t0;
  sub_check (&s);
  wait_failovers (1);
  assert_string_equal (df_upstream_server (up, name, sizeof name), b.spec);
  if (waited < 900000000 || waited > 5000000000)
    fail_msg ("the reads waited %.3f s for a failover (io_timeout 1 s)",
              waited / 1e9);
  df_upstream_stats (up, &st);
  if (st.last_pause_ns < 900000000 || st.last_pause_ns > waited)
    fail_msg ("pause of %.3f s for reads that waited %.3f s",
              st.last_pause_ns / 1e9, waited / 1e9);
  ctl_release (a.ctl);
  df_bdev_close (up);
  srv_free (&a);
  srv_free (&b);
  df_bdev_close (disk);
  free ((void *) expect);
}

/* Reads of any size at once, told to one aio. */
struct abatch {
  struct df_bdev_aio aio;
  unsigned n, done, twice;
  struct df_bdev_aread rd[40];
  unsigned told[40];
};

static void
abatch_done (struct df_bdev_aio *aio, struct df_bdev_aread **a, size_t n)
{
  struct abatch *b = (struct abatch *) aio;
  size_t i;

  pthread_mutex_lock (&sub_lock);
  for (i = 0; i < n; i++) {
    b->twice += b->told[a[i] - b->rd]++ > 0;
    b->done++;
  }
  pthread_cond_broadcast (&sub_cond);
  pthread_mutex_unlock (&sub_lock);
}

/* Submits b's reads in one call and waits (20 s at most) for them. */
static void
abatch_run (struct df_bdev *up, struct abatch *b)
{
  struct df_bdev_aread *a[40];
  struct timespec deadline;
  unsigned i;

  b->aio.done = abatch_done;
  b->done = b->twice = 0;
  for (i = 0; i < b->n; i++) {
    b->told[i] = 0;
    b->rd[i].error = -1;
    b->rd[i].aio = &b->aio;
    a[i] = &b->rd[i];
  }
  df_bdev_pread_async (up, a, b->n);
  clock_gettime (CLOCK_REALTIME, &deadline);
  deadline.tv_sec += 20;
  pthread_mutex_lock (&sub_lock);
  while (b->done < b->n)
    if (pthread_cond_timedwait (&sub_cond, &sub_lock, &deadline)
        == ETIMEDOUT)
      fail_msg ("%u of %u reads told", b->done, b->n);
  pthread_mutex_unlock (&sub_lock);
  assert_int_equal (b->twice, 0);
}

/* Asynchronous reads of every size in one call, as test_batch_sizes:
 * payloads split across the reply buffer, big ones read straight into
 * place, a refused read among them; the connection serves on.
 */
static void
test_async_sizes (void **state)
{
  static const uint32_t sizes[] = { 4096, 300000, 1, 65543, 131072, 17 };
  struct df_bdev *disk = df_mem_bdev_new (SIZE), *up;
  const uint8_t *expect = fill_disk (disk);
  struct abatch *b = calloc (1, sizeof *b);
  struct srv a = { 0 };
  unsigned i;

  (void) state;
  assert_non_null (b);
  srv_start (&a, "asz.sock", disk, DESC1, false);
  up = open_up (&a, NULL, 5, 0, 1 << 20);
  b->n = 40;
  for (i = 0; i < 40; i++) {
    uint32_t n = sizes[i % 6];
    b->rd[i] = (struct df_bdev_aread) {
      .buf = malloc (n), .count = n,
      .offset = i == 20 ? SIZE : (i * 7919 * 13) % (SIZE - n),
    };
    assert_non_null (b->rd[i].buf);
  }
  abatch_run (up, b);
  for (i = 0; i < 40; i++) {
    if (i == 20) {
      assert_int_equal (b->rd[i].error, EINVAL);
      continue;
    }
    assert_int_equal (b->rd[i].error, 0);
    if (memcmp (b->rd[i].buf, expect + b->rd[i].offset, b->rd[i].count))
      fail_msg ("read %u (%u bytes at %ju) is wrong", i, b->rd[i].count,
                (uintmax_t) b->rd[i].offset);
  }
  b->n = 19;                    /* again, on the same connection */
  for (i = 0; i < 19; i++)
    memset (b->rd[i].buf, 0, b->rd[i].count);
  abatch_run (up, b);
  for (i = 0; i < 19; i++) {
    assert_int_equal (b->rd[i].error, 0);
    assert_memory_equal (b->rd[i].buf, expect + b->rd[i].offset,
                         b->rd[i].count);
  }
  for (i = 0; i < 40; i++)
    free (b->rd[i].buf);
  free (b);
  df_bdev_close (up);
  srv_free (&a);
  df_bdev_close (disk);
  free ((void *) expect);
}

/* An asynchronous read whose reply is cut in its payload is read again
 * from the next server, not taken half filled.
 */
static void
test_async_cut_payload (void **state)
{
  struct df_bdev *disk = df_mem_bdev_new (SIZE), *up;
  const uint8_t *expect = fill_disk (disk);
  struct abatch *b = calloc (1, sizeof *b);
  struct srv a = { 0 }, c = { 0 };
  struct proxy px = { 0 };
  struct df_upstream_stats st;
  unsigned i;

  (void) state;
  assert_non_null (b);
  srv_start (&a, "acut-a.sock", disk, DESC1, false);
  srv_start (&c, "acut-c.sock", disk, DESC1, false);
  proxy_start (&px, "acut-px.sock", &a, NBD_REPLY_HEADER + 1000);
  up = open_up (&px.front, &c, 5, 0, 1 << 20);
  df_upstream_allow_failover (up, true);
  b->n = 8;
  for (i = 0; i < 8; i++) {
    b->rd[i] = (struct df_bdev_aread) {
      .buf = calloc (1, 8192), .count = 8192, .offset = 65536 * (i + 1),
    };
    assert_non_null (b->rd[i].buf);
  }
  abatch_run (up, b);
  assert_true (atomic_load (&px.cut_done));
  for (i = 0; i < 8; i++) {
    assert_int_equal (b->rd[i].error, 0);
    assert_memory_equal (b->rd[i].buf, expect + b->rd[i].offset, 8192);
    free (b->rd[i].buf);
  }
  df_upstream_stats (up, &st);
  assert_int_equal (st.failovers, 1);
  free (b);
  df_bdev_close (up);
  proxy_stop (&px);
  srv_free (&a);
  srv_free (&c);
  df_bdev_close (disk);
  free ((void *) expect);
}

/* The server loses what was not flushed: asynchronous reads after the
 * failover see the writes, replayed before any read goes there.
 */
static void
test_async_replay (void **state)
{
  struct df_bdev *disk = df_mem_bdev_new (SIZE), *up;
  uint8_t *expect = fill_disk (disk);
  struct df_upstream_stats st;
  struct srv a = { 0 }, b = { 0 };
  struct submitter s[2];
  uint64_t seed = 79;
  int i;

  (void) state;
  srv_start (&a, "apa.sock", disk, DESC1, true);
  srv_start (&b, "apb.sock", disk, DESC1, false);
  up = open_up (&a, &b, 5, 0, 1 << 20);
  df_upstream_allow_failover (up, true);
  for (i = 0; i < 64; i++) {
    uint64_t off = test_rand (&seed) % (SIZE / 4096) * 4096;
    test_fill (expect + off, 4096, &seed);
    assert_int_equal (df_bdev_pwrite (up, expect + off, 4096, off, 0), 0);
  }
  srv_stop (&a);                /* its RAM is gone */
  for (i = 0; i < 2; i++) {
    sub_init (&s[i], up, expect, 1000, 83 + i);
    sub_start (&s[i]);
  }
  for (i = 0; i < 2; i++)
    pthread_join (s[i].thread, NULL);
  for (i = 0; i < 2; i++)
    sub_check (&s[i]);
  df_upstream_stats (up, &st);
  assert_true (st.replayed > 0);
  df_bdev_close (up);
  srv_free (&a);
  srv_free (&b);
  df_bdev_close (disk);
  free (expect);
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

/* A raw client of an NBD server, in transmission (the export "").
 * Returns its socket.
 */
static int
front_client (struct df_nbd_server *front)
{
  uint8_t hs[20], in[18 + 10];
  int sv[2];

  assert_int_equal (socketpair (AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv), 0);
  assert_int_equal (df_nbd_server_add_fd (front, sv[1]), 0);
  nbd_put32 (hs, NBD_FLAG_C_FIXED_NEWSTYLE | NBD_FLAG_C_NO_ZEROES);
  nbd_put64 (hs + 4, NBD_IHAVEOPT);
  nbd_put32 (hs + 12, NBD_OPT_EXPORT_NAME);
  nbd_put32 (hs + 16, 0);
  assert_int_equal (write (sv[0], hs, sizeof hs), sizeof hs);
  get_all (sv[0], in, sizeof in);
  assert_true (nbd_get64 (in + 18) == SIZE);
  return sv[0];
}

static void
send_read (int fd, uint64_t cookie, uint64_t offset, uint32_t count)
{
  uint8_t req[NBD_REQUEST_SIZE];

  nbd_put32 (req, NBD_REQUEST_MAGIC);
  nbd_put16 (req + 4, 0);
  nbd_put16 (req + 6, NBD_CMD_READ);
  nbd_put64 (req + 8, cookie);
  nbd_put64 (req + 16, offset);
  nbd_put32 (req + 24, count);
  assert_int_equal (write (fd, req, sizeof req), sizeof req);
}

#define SLOW_READS 64
#define SLOW_COUNT (128 * 1024)

/* The attach's stack: an NBD server over the upstream, and a client
 * that stops reading its replies for longer than io_timeout (a guest
 * that stalls).  Its replies wait; the server the upstream uses
 * answered in time all along, so it is not dropped.
 */
static void
test_async_slow_client (void **state)
{
  struct df_bdev *disk = df_mem_bdev_new (SIZE), *up;
  const uint8_t *expect = fill_disk (disk);
  uint8_t h[16], *buf = malloc (SLOW_COUNT);
  struct df_upstream_stats st;
  struct df_nbd_export e = { .name = "front" };
  struct df_nbd_server *front;
  struct srv a = { 0 };
  struct timespec stall = { .tv_sec = 2, .tv_nsec = 500000000 };
  unsigned i;
  int fd;

  (void) state;
  assert_non_null (buf);
  all_log[0] = '\0';
  srv_start (&a, "slow.sock", disk, DESC1, false);
  up = open_up (&a, NULL, 1, 0, 1 << 20);
  e.bdev = up;
  front = df_nbd_server_new (&e, 4);
  assert_non_null (front);
  fd = front_client (front);
  for (i = 0; i < SLOW_READS; i++)
    send_read (fd, i, (uint64_t) i * 4096 % (SIZE - SLOW_COUNT), SLOW_COUNT);
  /* The stall itself (the client reads nothing meanwhile), not a wait
   * for something to happen.
   */
  nanosleep (&stall, NULL);
  for (i = 0; i < SLOW_READS; i++) {
    uint64_t k;
    get_all (fd, h, sizeof h);
    assert_true (nbd_get32 (h) == NBD_SIMPLE_REPLY_MAGIC);
    assert_int_equal (nbd_get32 (h + 4), 0);
    k = nbd_get64 (h + 8);
    assert_true (k < SLOW_READS);
    get_all (fd, buf, SLOW_COUNT);
    if (memcmp (buf, expect + k * 4096 % (SIZE - SLOW_COUNT), SLOW_COUNT))
      fail_msg ("reply %ju has wrong data", (uintmax_t) k);
  }
  df_upstream_stats (up, &st);
  pthread_mutex_lock (&log_lock);
  if (st.failovers != 0)
    fail_msg ("%ju failovers:\n%s", (uintmax_t) st.failovers, all_log);
  pthread_mutex_unlock (&log_lock);
  close (fd);
  df_nbd_server_free (front);
  df_bdev_close (up);
  srv_free (&a);
  df_bdev_close (disk);
  free ((void *) expect);
  free (buf);
}

static int
queued_bytes (int fd)
{
  int n = 0;

  assert_int_equal (ioctl (fd, FIONREAD, &n), 0);
  return n;
}

/* Two clients of the attach's NBD server: one stops reading its
 * replies; the other's reads are still answered (within 5 s).
 */
static void
test_async_stalled_neighbour (void **state)
{
  struct df_bdev *disk = df_mem_bdev_new (SIZE), *up;
  const uint8_t *expect = fill_disk (disk);
  uint8_t h[16], *buf = malloc (SLOW_COUNT);
  struct df_nbd_export e = { .name = "front" };
  struct df_nbd_server *front;
  struct srv a = { 0 };
  struct pollfd pfd;
  unsigned i;
  int stalled, other;

  (void) state;
  assert_non_null (buf);
  srv_start (&a, "nb.sock", disk, DESC1, false);
  up = open_up (&a, NULL, 0, 0, 1 << 20);
  e.bdev = up;
  front = df_nbd_server_new (&e, 4);
  assert_non_null (front);
  stalled = front_client (front);
  other = front_client (front);
  for (i = 0; i < SLOW_READS; i++)
    send_read (stalled, i, (uint64_t) i * 4096 % (SIZE - SLOW_COUNT),
               SLOW_COUNT);
  /* Its replies fill its socket: the rest (8 MiB) cannot go out. */
  for (i = 0; i < 1000 && queued_bytes (stalled) < 150000; i++)
    usleep (10000);
  if (i == 1000)
    fail_msg ("the stalled client's replies do not come");
  send_read (other, 7, 8192, 4096);
  pfd = (struct pollfd) { .fd = other, .events = POLLIN };
  if (poll (&pfd, 1, 5000) != 1)
    fail_msg ("a client's read waits for another client to read");
  get_all (other, h, sizeof h);
  assert_int_equal (nbd_get32 (h + 4), 0);
  get_all (other, buf, 4096);
  assert_memory_equal (buf, expect + 8192, 4096);
  for (i = 0; i < SLOW_READS; i++) {
    get_all (stalled, h, sizeof h);
    assert_int_equal (nbd_get32 (h + 4), 0);
    get_all (stalled, buf, SLOW_COUNT);
  }
  close (stalled);
  close (other);
  df_nbd_server_free (front);
  df_bdev_close (up);
  srv_free (&a);
  df_bdev_close (disk);
  free ((void *) expect);
  free (buf);
}

int
main (void)
{
  const struct CMUnitTest tests[] = {
    cmocka_unit_test (test_identity),
    cmocka_unit_test (test_addr),
    cmocka_unit_test (test_read_write),
    cmocka_unit_test (test_batch_sizes),
    cmocka_unit_test (test_failover),
    cmocka_unit_test (test_cut_payload),
    cmocka_unit_test (test_hang_and_shutdown),
    cmocka_unit_test (test_refusals),
    cmocka_unit_test (test_replay),
    cmocka_unit_test (test_async_stream),
    cmocka_unit_test (test_async_failover),
    cmocka_unit_test (test_async_hang),
    cmocka_unit_test (test_async_no_server),
    cmocka_unit_test (test_async_close),
    cmocka_unit_test (test_async_one_connection),
    cmocka_unit_test (test_async_idle_loss),
    cmocka_unit_test (test_async_idle_hang),
    cmocka_unit_test (test_async_sizes),
    cmocka_unit_test (test_async_cut_payload),
    cmocka_unit_test (test_async_replay),
    cmocka_unit_test (test_async_slow_client),
    cmocka_unit_test (test_async_stalled_neighbour),
  };

  return cmocka_run_group_tests (tests, tmpdir_setup, tmpdir_teardown);
}
