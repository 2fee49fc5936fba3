/* Unit tests: replicator/delta (our signature and patch against
 * librsync's own delta generation: the result is the new file exactly,
 * fed in odd pieces; corrupt, truncated and oversized deltas fail;
 * holes stay holes).
 */
#include <config.h>

#include <fcntl.h>
#include <sys/stat.h>

#include <librsync.h>

#include "test-helpers.h"
#include "delta.h"

#define SIZE (8 * 1024 * 1024 + 1234)

static char *basis_path, *out_path;
static char *basis, *target;

/* librsync's delta of target against a signature (the source's side). */
static char *
make_delta (const char *sig, size_t sig_len, const char *data, size_t len,
            size_t *delta_len)
{
  rs_signature_t *sums = NULL;
  rs_job_t *job = rs_loadsig_begin (&sums);
  rs_buffers_t b = { .next_in = (char *) sig, .avail_in = sig_len, .eof_in = 1 };
  size_t cap = len + 1024 * 1024, used = 0;
  char *out = malloc (cap);

  assert_int_equal (rs_job_iter (job, &b), RS_DONE);
  rs_job_free (job);
  assert_int_equal (rs_build_hash_table (sums), RS_DONE);
  job = rs_delta_begin (sums);
  b = (rs_buffers_t) { .next_in = (char *) data, .avail_in = len, .eof_in = 1 };
  for (;;) {
    rs_result r;
    b.next_out = out + used;
    b.avail_out = cap - used;
    r = rs_job_iter (job, &b);
    used = cap - b.avail_out;
    if (r == RS_DONE)
      break;
    assert_int_equal (r, RS_BLOCKED);
  }
  rs_job_free (job);
  rs_free_sumset (sums);
  *delta_len = used;
  return out;
}

static int
setup (void **state)
{
  uint64_t seed = 7;
  size_t i;
  int fd;

  tmpdir_setup (state);
  basis_path = test_path (tmpdir, "basis");
  out_path = test_path (tmpdir, "out");
  basis = malloc (SIZE);
  target = malloc (SIZE);
  test_fill (basis, SIZE, &seed);
  memset (basis + SIZE / 2, 0, 1024 * 1024);           /* a zero run */
  memcpy (target, basis, SIZE);
  /* 1% of 64 KiB blocks changed, and a shifted tail. */
  for (i = 0; i < SIZE / 65536 / 100 + 1; i++)
    test_fill (target + (test_rand (&seed) % (SIZE / 65536)) * 65536, 65536,
               &seed);
  memmove (target + SIZE - 100000, target + SIZE - 100017, 100000);
  fd = open (basis_path, O_RDWR | O_CREAT | O_TRUNC, 0644);
  if (fd < 0 || pwrite (fd, basis, SIZE, 0) != SIZE)
    abort ();
  close (fd);
  return 0;
}

static int
teardown (void **state)
{
  free (basis);
  free (target);
  free (basis_path);
  free (out_path);
  return tmpdir_teardown (state);
}

/* Applies delta in pieces of step bytes; returns the patch's result. */
static int
apply (const char *delta, size_t len, size_t step, uint64_t max, int *out_fd)
{
  int bfd = open (basis_path, O_RDONLY);
  int ofd = open (out_path, O_RDWR | O_CREAT | O_TRUNC, 0644);
  struct repl_patch *p = repl_patch_new (bfd, SIZE, ofd, max);
  size_t off;
  int r = 0;

  assert_non_null (p);
  for (off = 0; off < len && r == 0; off += step)
    r = repl_patch_feed (p, delta + off, len - off < step ? len - off : step);
  if (r == 0)
    r = repl_patch_finish (p);
  repl_patch_free (p);
  close (bfd);
  *out_fd = ofd;
  return r;
}

static void
assert_out_is_target (int fd)
{
  char *got = malloc (SIZE + 1);
  struct stat sb;

  assert_int_equal (fstat (fd, &sb), 0);
  assert_int_equal (sb.st_size, SIZE);
  assert_int_equal (pread (fd, got, SIZE + 1, 0), SIZE);
  if (memcmp (got, target, SIZE) != 0)
    fail_msg ("the patched file differs from the target");
  free (got);
}

static void
test_roundtrip (void **state)
{
  static const size_t steps[] = { 1, 7, 4096, 65537, 1 << 22 };
  char *sig, *delta;
  size_t sig_len, delta_len, i;
  uint32_t block_len, strong_len;
  struct stat sb;
  int fd = open (basis_path, O_RDONLY), out;

  (void) state;
  assert_int_equal (repl_signature (fd, SIZE, &sig, &sig_len), 0);
  close (fd);
  /* rs_sig_args' block size for 8 MiB, not the 2 KiB default. */
  assert_int_equal (repl_signature_params (sig, sig_len, &block_len,
                                           &strong_len), 0);
  assert_true (block_len > RS_DEFAULT_BLOCK_LEN);
  assert_true (strong_len >= 6 && strong_len <= 32);
  assert_true (sig_len < SIZE / block_len * (4 + strong_len) + 64);

  delta = make_delta (sig, sig_len, target, SIZE, &delta_len);
  assert_true (delta_len < SIZE / 10);          /* it is a delta */
  for (i = 0; i < sizeof steps / sizeof steps[0]; i++) {
    if (steps[i] == 1 && delta_len > 4 * 1024 * 1024)
      continue;
    if (apply (delta, delta_len, steps[i], SIZE, &out) == -1)
      fail_msg ("step %zu: %s", steps[i], df_error_get ());
    assert_out_is_target (out);
    /* The zero MiB of the target is a hole in the output. */
    assert_int_equal (fstat (out, &sb), 0);
    assert_true ((uint64_t) sb.st_blocks * 512 <= SIZE - 1024 * 1024 + 65536);
    close (out);
  }

  /* Truncated: every cut fails in finish, never silently. */
  assert_int_equal (apply (delta, delta_len - 1, 65536, SIZE, &out), -1);
  assert_error_contains ("truncated");
  close (out);
  assert_int_equal (apply (delta, delta_len / 2, 65536, SIZE, &out), -1);
  close (out);
  /* More output than the manifest's size. */
  assert_int_equal (apply (delta, delta_len, 65536, SIZE - 1, &out), -1);
  assert_error_contains ("more than");
  close (out);
  /* Garbage after the end. */
  delta = realloc (delta, delta_len + 10);
  memset (delta + delta_len, 'x', 10);
  assert_int_equal (apply (delta, delta_len + 10, 4096, SIZE, &out), -1);
  assert_error_contains ("after the end");
  close (out);
  /* A wrong magic. */
  delta[0] ^= 0x55;
  assert_int_equal (apply (delta, delta_len, 4096, SIZE, &out), -1);
  assert_error_contains ("corrupt");
  close (out);
  free (delta);
  free (sig);
}

/* Signed in parts by threads: the very bytes of one librsync job over
 * the whole file, for any number of parts (also a short last block).
 */
static void
test_signature_threads (void **state)
{
  static const unsigned threads[] = { 2, 3, 4 };
  static const uint64_t sizes[] = { SIZE, SIZE - 12345 };
  char *one, *parts;
  size_t one_len, parts_len, i, k;
  int fd = open (basis_path, O_RDONLY);

  (void) state;
  for (k = 0; k < sizeof sizes / sizeof sizes[0]; k++) {
    assert_int_equal (repl_signature_threads (fd, sizes[k], 1, &one, &one_len),
                      0);
    for (i = 0; i < sizeof threads / sizeof threads[0]; i++) {
      assert_int_equal (repl_signature_threads (fd, sizes[k], threads[i],
                                                &parts, &parts_len), 0);
      assert_int_equal (parts_len, one_len);
      assert_memory_equal (parts, one, one_len);
      free (parts);
    }
    free (one);
  }
  close (fd);
}

/* A delta made for another, longer basis copies past our end. */
static void
test_other_basis (void **state)
{
  char *big = malloc (2 * SIZE), *sig, *delta;
  size_t sig_len, delta_len;
  int fd, out;
  char *p = test_path (tmpdir, "big");

  (void) state;
  {
  uint64_t seed = 99;

  test_fill (big, SIZE, &seed);
  memcpy (big + SIZE, basis, SIZE);
  fd = open (p, O_RDWR | O_CREAT | O_TRUNC, 0644);
  assert_int_equal (pwrite (fd, big, 2 * SIZE, 0), 2 * SIZE);
  assert_int_equal (repl_signature (fd, 2 * SIZE, &sig, &sig_len), 0);
  close (fd);
  }
  /* The target made of the big file's second half: copies beyond SIZE. */
  delta = make_delta (sig, sig_len, big + SIZE + 4096, SIZE - 4096, &delta_len);
  assert_int_equal (apply (delta, delta_len, 65536, SIZE, &out), -1);
  assert_error_contains ("corrupt");
  close (out);
  free (delta);
  free (sig);
  free (big);
  free (p);
}

int
main (void)
{
  const struct CMUnitTest tests[] = {
    cmocka_unit_test (test_roundtrip),
    cmocka_unit_test (test_other_basis),
    cmocka_unit_test (test_signature_threads),
  };

  return cmocka_run_group_tests (tests, setup, teardown);
}
