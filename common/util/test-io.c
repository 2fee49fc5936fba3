/* Unit tests: common/util io.c (full reads and writes, atomic files). */
#include <config.h>

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <sys/stat.h>
#include <time.h>

#include "test-helpers.h"

#define PIPE_BYTES (1024 * 1024)

static volatile sig_atomic_t signals;

static void
on_signal (int sig)
{
  (void) sig;
  signals++;
}

/* Signals interrupt the blocked call (no SA_RESTART): read and write
 * return EINTR or a partial count, which the loops must absorb.
 */
static void
install_handler (void)
{
  struct sigaction sa = { .sa_handler = on_signal };

  sigemptyset (&sa.sa_mask);
  assert_int_equal (sigaction (SIGUSR1, &sa, NULL), 0);
}

static void
pause_ms (long ms)
{
  struct timespec ts = { 0, ms * 1000000 };

  nanosleep (&ts, NULL);
}

struct peer {
  int fd;
  pthread_t target;             /* the thread in the blocking call */
  unsigned char *buf;
  size_t len;
};

/* Writes buf in uneven pieces, signalling the reader between them. */
static void *
slow_writer (void *arg)
{
  struct peer *p = arg;
  size_t off = 0, piece = 1;

  while (off < p->len) {
    size_t n = piece < p->len - off ? piece : p->len - off;
    pause_ms (2);
    pthread_kill (p->target, SIGUSR1);
    if (df_write_full (p->fd, p->buf + off, n) == -1)
      break;
    off += n;
    piece = piece * 7 + 3;
  }
  close (p->fd);
  return NULL;
}

/* Reads everything in small pieces, signalling the writer. */
static void *
slow_reader (void *arg)
{
  struct peer *p = arg;
  ssize_t r;

  for (;;) {
    pause_ms (1);
    pthread_kill (p->target, SIGUSR1);
    r = df_read_full (p->fd, p->buf + p->len, 64 * 1024);
    if (r <= 0)
      break;
    p->len += r;
  }
  return NULL;
}

static void
test_read_full_pieces (void **state)
{
  static unsigned char want[200000], got[sizeof want + 10];
  uint64_t seed = 1;
  struct peer p;
  pthread_t t;
  int fds[2];

  (void) state;
  install_handler ();
  test_fill (want, sizeof want, &seed);
  assert_int_equal (pipe (fds), 0);
  p = (struct peer) { fds[1], pthread_self (), want, sizeof want };
  signals = 0;
  assert_int_equal (pthread_create (&t, NULL, slow_writer, &p), 0);
  /* Asks for more than will come: the writer's close ends it short. */
  assert_int_equal (df_read_full (fds[0], got, sizeof got), sizeof want);
  pthread_join (t, NULL);
  assert_memory_equal (got, want, sizeof want);
  assert_true (signals > 0);
  close (fds[0]);
}

static void
test_write_full_pieces (void **state)
{
  unsigned char *want = malloc (PIPE_BYTES), *got = malloc (PIPE_BYTES + 65536);
  uint64_t seed = 2;
  struct peer p;
  pthread_t t;
  int fds[2];

  (void) state;
  assert_non_null (want);
  assert_non_null (got);
  install_handler ();
  test_fill (want, PIPE_BYTES, &seed);
  assert_int_equal (pipe (fds), 0);
  /* A small pipe: the write goes through in many partial steps. */
  fcntl (fds[1], F_SETPIPE_SZ, 4096);
  p = (struct peer) { fds[0], pthread_self (), got, 0 };
  signals = 0;
  assert_int_equal (pthread_create (&t, NULL, slow_reader, &p), 0);
  assert_int_equal (df_write_full (fds[1], want, PIPE_BYTES), 0);
  close (fds[1]);
  pthread_join (t, NULL);
  assert_int_equal (p.len, PIPE_BYTES);
  assert_memory_equal (got, want, PIPE_BYTES);
  assert_true (signals > 0);
  close (fds[0]);
  free (want);
  free (got);
}

static void
test_positional (void **state)
{
  char *dir = test_tmpdir (), *path = test_path (dir, "f");
  char buf[32];
  int fd;

  (void) state;
  fd = open (path, O_RDWR | O_CREAT | O_CLOEXEC, 0600);
  assert_true (fd >= 0);
  assert_int_equal (df_pwrite_full (fd, "0123456789", 10, 100), 0);
  assert_int_equal (df_pread_full (fd, buf, 4, 103), 4);
  assert_memory_equal (buf, "3456", 4);
  /* Short only at the end of the file. */
  assert_int_equal (df_pread_full (fd, buf, sizeof buf, 105), 5);
  assert_memory_equal (buf, "56789", 5);
  assert_int_equal (df_pread_full (fd, buf, sizeof buf, 500), 0);
  close (fd);
  /* Errors come back as -1 and errno, like the system calls. */
  assert_int_equal (df_pread_full (fd, buf, 1, 0), -1);
  assert_int_equal (errno, EBADF);
  assert_int_equal (df_pwrite_full (fd, buf, 1, 0), -1);
  assert_int_equal (errno, EBADF);
  free (path);
  test_tmpdir_free (dir);
}

static void
test_copy_atomic (void **state)
{
  char *dir = test_tmpdir ();
  char *src = test_path (dir, "src"), *dst = test_path (dir, "dst");
  size_t len = 3 * 1024 * 1024 + 123, got_len;
  char *want = malloc (len), *got = NULL;
  uint64_t seed = 3;
  struct stat st;

  (void) state;
  test_fill (want, len, &seed);
  assert_int_equal (df_write_file_atomic (src, want, len, 0600), 0);
  test_write (dir, "dst", "old content");
  /* Larger than the copy buffer: several rounds. */
  assert_int_equal (df_copy_file_atomic (src, dst, 0644), 0);
  assert_int_equal (df_read_file (dst, len, &got, &got_len), 0);
  assert_int_equal (got_len, len);
  assert_memory_equal (got, want, len);
  assert_int_equal (stat (dst, &st), 0);
  assert_int_equal (st.st_mode & 0777, 0644);
  free (got);

  /* Bad sources fail with their name and leave dst as it was. */
  assert_int_equal (df_copy_file_atomic (dir, dst, 0644), -1);
  assert_error_contains ("not a regular file");
  free (src);
  src = test_path (dir, "missing");
  assert_int_equal (df_copy_file_atomic (src, dst, 0644), -1);
  assert_int_equal (errno, ENOENT);
  assert_error_contains ("missing");
  assert_int_equal (stat (dst, &st), 0);
  assert_int_equal (st.st_size, len);
  /* A destination directory that does not exist. */
  free (dst);
  dst = test_path (dir, "no/such/dir");
  free (src);
  src = test_path (dir, "src");
  assert_int_equal (df_copy_file_atomic (src, dst, 0644), -1);
  assert_error_contains ("temporary file");
  free (want);
  free (src);
  free (dst);
  test_tmpdir_free (dir);
}

int
main (void)
{
  const struct CMUnitTest tests[] = {
    cmocka_unit_test (test_read_full_pieces),
    cmocka_unit_test (test_write_full_pieces),
    cmocka_unit_test (test_positional),
    cmocka_unit_test (test_copy_atomic),
  };

  return cmocka_run_group_tests (tests, NULL, NULL);
}
