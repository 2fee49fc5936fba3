/* Unit tests of the read cache: hits, keys, LRU bound, persistence,
 * a directory shared by processes.
 */
#include <config.h>

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <sys/wait.h>

#include "test-helpers.h"
#include "bdev/bdev.h"
#include "rcache/rcache-int.h"
#include "rcache/rcache.h"

#define SIZE (4 * 1024 * 1024 + 1000)       /* a short last block */
#define CH DF_RCACHE_CHUNK

/* A RAM device that counts the reads reaching it. */
struct counting {
  struct df_bdev bdev;
  struct df_bdev *mem;
  uint64_t reads;
};

static int
cnt_pread (struct df_bdev *b, void *buf, uint32_t count, uint64_t offset)
{
  struct counting *c = (struct counting *) b;

  __atomic_add_fetch (&c->reads, 1, __ATOMIC_RELAXED);
  return df_bdev_pread (c->mem, buf, count, offset);
}

static int
cnt_extents (struct df_bdev *b, uint32_t count, uint64_t offset,
             df_extent_fn fn, void *opaque)
{
  (void) b;
  return fn (opaque, offset, count, 0);
}

static void
cnt_close (struct df_bdev *b)
{
  struct counting *c = (struct counting *) b;

  df_bdev_close (c->mem);
  free (c);
}

static const struct df_bdev_ops cnt_ops = {
  .name = "counting", .pread = cnt_pread, .extents = cnt_extents,
  .close = cnt_close,
};

static uint8_t *
make_version (struct counting **out, uint64_t seed)
{
  struct counting *c = calloc (1, sizeof *c);
  uint8_t *data = malloc (SIZE);

  assert_non_null (c);
  assert_non_null (data);
  test_fill (data, SIZE, &seed);
  c->mem = df_mem_bdev_new (SIZE);
  assert_non_null (c->mem);
  assert_int_equal (df_bdev_pwrite (c->mem, data, SIZE, 0, 0), 0);
  c->bdev.ops = &cnt_ops;
  c->bdev.size = SIZE;
  c->bdev.flags = DF_BDEV_RDONLY;
  *out = c;
  return data;
}

static struct df_bdev *
open_cache (struct df_bdev *lower, const char *dir, uint64_t size,
            uint8_t key)
{
  uint8_t hash[DF_HASH_LEN];
  struct df_rcache_params p = { .dir = dir, .size = size, .version_hash = hash };
  struct df_bdev *b;

  memset (hash, key, sizeof hash);
  b = df_rcache_open (lower, &p);
  if (b == NULL)
    fail_msg ("%s", df_error_get ());
  return b;
}

/* Reads [off, off+len) through b and compares with data. */
static void
check (struct df_bdev *b, const uint8_t *data, uint64_t off, uint32_t len)
{
  uint8_t *buf = malloc (len);

  assert_non_null (buf);
  assert_int_equal (df_bdev_pread (b, buf, len, off), 0);
  if (memcmp (buf, data + off, len) != 0)
    fail_msg ("wrong data at %ju+%u", (uintmax_t) off, len);
  free (buf);
}

static void
test_hits (void **state)
{
  char *dir = test_tmpdir ();
  struct counting *v1;
  uint8_t *d1 = make_version (&v1, 1);
  struct df_bdev *rc = open_cache (&v1->bdev, dir, 128 * CH, 1);
  uint64_t seed = 2, before;
  struct df_rcache_stats st;
  int i;

  (void) state;
  for (i = 0; i < 200; i++) {
    uint64_t off = test_rand (&seed) % SIZE;
    uint32_t len = 1 + test_rand (&seed) % 200000;
    if (len > SIZE - off)
      len = SIZE - off;
    check (rc, d1, off, len);
  }
  check (rc, d1, SIZE - 1000, 1000);
  check (rc, d1, 0, SIZE);      /* everything is kept now */
  before = v1->reads;
  check (rc, d1, 0, SIZE);
  check (rc, d1, 12345, 4096);
  assert_int_equal (v1->reads, before);
  df_rcache_stats (rc, &st);
  assert_true (st.hits > 0);
  assert_int_equal (st.used, (uint64_t) ((SIZE + CH - 1) / CH) * CH);
  assert_int_equal (df_bdev_pwrite (rc, d1, 10, 0, 0), -1);
  assert_int_equal (errno, EROFS);
  df_bdev_close (rc);

  /* Kept across a restart. */
  rc = open_cache (&v1->bdev, dir, 128 * CH, 1);
  before = v1->reads;
  check (rc, d1, 0, SIZE);
  assert_int_equal (v1->reads, before);
  df_bdev_close (rc);
  df_bdev_close (&v1->bdev);
  free (d1);
  test_tmpdir_free (dir);
}

/* Batches of reads (df_bdev_pread_many): hits and misses mixed, some
 * unaligned, some across chunks.
 */
static void
test_many (void **state)
{
  char *dir = test_tmpdir ();
  struct counting *v1;
  uint8_t *d1 = make_version (&v1, 6);
  struct df_bdev *rc = open_cache (&v1->bdev, dir, 128 * CH, 1);
  uint64_t seed = 8;
  int round, i;

  (void) state;
  check (rc, d1, 0, SIZE / 2);          /* half of it is there */
  for (round = 0; round < 50; round++) {
    struct df_bdev_read r[40];
    uint8_t *bufs[40];
    int n = 1 + test_rand (&seed) % 40;
    for (i = 0; i < n; i++) {
      uint64_t off = test_rand (&seed) % SIZE;
      uint32_t len = 1 + test_rand (&seed) % (i % 5 == 0 ? 3 * CH : 9000);
      if (len > SIZE - off)
        len = SIZE - off;
      bufs[i] = malloc (len);
      assert_non_null (bufs[i]);
      r[i] = (struct df_bdev_read) { .buf = bufs[i], .count = len, .offset = off };
    }
    assert_int_equal (df_bdev_pread_many (rc, r, n), 0);
    for (i = 0; i < n; i++) {
      assert_int_equal (r[i].error, 0);
      if (memcmp (bufs[i], d1 + r[i].offset, r[i].count) != 0)
        fail_msg ("round %d read %d at %ju+%u is wrong", round, i,
                  (uintmax_t) r[i].offset, r[i].count);
      free (bufs[i]);
    }
  }
  /* What the batches read is kept like single reads. */
  v1->reads = 0;
  check (rc, d1, 0, SIZE / 2);
  assert_int_equal (v1->reads, 0);
  df_bdev_close (rc);
  df_bdev_close (&v1->bdev);
  free (d1);
  test_tmpdir_free (dir);
}

/* Another version in the same directory never sees the first one's
 * blocks, and both share it.
 */
static void
test_versions (void **state)
{
  char *dir = test_tmpdir ();
  struct counting *v1, *v2;
  uint8_t *d1 = make_version (&v1, 1), *d2 = make_version (&v2, 2);
  struct df_bdev *a = open_cache (&v1->bdev, dir, 256 * CH, 1);
  struct df_bdev *b = open_cache (&v2->bdev, dir, 256 * CH, 2);
  struct df_bdev *a2;

  (void) state;
  check (a, d1, 0, SIZE);
  check (b, d2, 0, SIZE);
  check (a, d1, 0, SIZE);
  /* A second process-like user of version 1 finds its blocks. */
  a2 = open_cache (&v1->bdev, dir, 256 * CH, 1);
  v1->reads = 0;
  check (a2, d1, 100, SIZE - 100);
  assert_int_equal (v1->reads, 0);
  df_bdev_close (a2);
  df_bdev_close (a);
  df_bdev_close (b);
  df_bdev_close (&v1->bdev);
  df_bdev_close (&v2->bdev);
  free (d1);
  free (d2);
  test_tmpdir_free (dir);
}

static void
test_lru (void **state)
{
  char *dir = test_tmpdir ();
  struct counting *v1;
  uint8_t *d1 = make_version (&v1, 3);
  struct df_bdev *rc = open_cache (&v1->bdev, dir, 8 * CH, 1);
  struct df_rcache_stats st;
  uint64_t c;

  (void) state;
  for (c = 0; c < 32; c++)
    check (rc, d1, c * CH, CH);
  df_rcache_stats (rc, &st);
  assert_int_equal (st.size, 8 * CH);
  assert_int_equal (st.used, 8 * CH);
  assert_true (st.evictions >= 24);
  v1->reads = 0;
  check (rc, d1, 31 * CH, CH);  /* recent: kept */
  assert_int_equal (v1->reads, 0);
  check (rc, d1, 0, CH);        /* oldest: gone */
  assert_int_equal (v1->reads, 1);
  /* The first user set the size; a later one asking more gets it. */
  {
    struct df_bdev *other = open_cache (&v1->bdev, dir, 128 * CH, 1);
    df_rcache_stats (other, &st);
    assert_int_equal (st.size, 8 * CH);
    df_bdev_close (other);
  }
  df_bdev_close (rc);
  df_bdev_close (&v1->bdev);
  free (d1);
  test_tmpdir_free (dir);
}

/* After a reboot the last user did not see through, the index starts
 * empty; after a clean one it is kept.
 */
static void
test_reboot (void **state)
{
  char *dir = test_tmpdir ();
  char *index = test_path (dir, "index");
  struct counting *v1;
  uint8_t *d1 = make_version (&v1, 4);
  struct df_bdev *rc = open_cache (&v1->bdev, dir, 128 * CH, 1);
  struct rc_header h;
  int fd;

  (void) state;
  check (rc, d1, 0, SIZE);
  df_bdev_close (rc);
  fd = open (index, O_RDWR);
  assert_true (fd >= 0);
  assert_int_equal (pread (fd, &h, sizeof h, 0), sizeof h);
  assert_int_equal (h.clean, 1);
  strcpy (h.boot_id, "another boot");
  assert_int_equal (pwrite (fd, &h, sizeof h, 0), sizeof h);
  rc = open_cache (&v1->bdev, dir, 128 * CH, 1);
  v1->reads = 0;
  check (rc, d1, 0, CH);
  assert_int_equal (v1->reads, 0);          /* clean: kept */
  df_bdev_close (rc);
  h.clean = 0;
  assert_int_equal (pwrite (fd, &h, sizeof h, 0), sizeof h);
  close (fd);
  rc = open_cache (&v1->bdev, dir, 128 * CH, 1);
  check (rc, d1, 0, CH);
  assert_int_equal (v1->reads, 1);          /* not clean: emptied */
  df_bdev_close (rc);
  df_bdev_close (&v1->bdev);
  free (d1);
  free (index);
  test_tmpdir_free (dir);
}

/* Processes sharing a small cache, reading at random; one is killed on
 * the way.  Every read is right.
 */
static void
test_processes (void **state)
{
  char *dir = test_tmpdir ();
  struct counting *v1;
  uint8_t *d1 = make_version (&v1, 5);
  pid_t pids[4];
  int i, status;

  (void) state;
  for (i = 0; i < 4; i++) {
    pids[i] = fork ();
    assert_true (pids[i] >= 0);
    if (pids[i] == 0) {
      struct df_bdev *rc = open_cache (&v1->bdev, dir, 16 * CH, 1);
      uint64_t seed = 100 + i;
      uint8_t buf[20000];
      int k;
      for (k = 0; k < 3000; k++) {
        uint64_t off = test_rand (&seed) % (SIZE - sizeof buf);
        uint32_t len = 1 + test_rand (&seed) % sizeof buf;
        if (df_bdev_pread (rc, buf, len, off) == -1 ||
            memcmp (buf, d1 + off, len) != 0)
          _exit (1);
      }
      df_bdev_close (rc);
      _exit (0);
    }
  }
  usleep (50000);
  kill (pids[3], SIGKILL);
  for (i = 0; i < 4; i++) {
    assert_int_equal (waitpid (pids[i], &status, 0), pids[i]);
    if (i < 3)
      assert_true (WIFEXITED (status) && WEXITSTATUS (status) == 0);
  }
  {
    struct df_bdev *rc = open_cache (&v1->bdev, dir, 16 * CH, 1);
    check (rc, d1, 0, SIZE);
    df_bdev_close (rc);
  }
  df_bdev_close (&v1->bdev);
  free (d1);
  test_tmpdir_free (dir);
}

int
main (void)
{
  const struct CMUnitTest tests[] = {
    cmocka_unit_test (test_hits),
    cmocka_unit_test (test_many),
    cmocka_unit_test (test_versions),
    cmocka_unit_test (test_lru),
    cmocka_unit_test (test_reboot),
    cmocka_unit_test (test_processes),
  };

  return cmocka_run_group_tests (tests, NULL, NULL);
}
