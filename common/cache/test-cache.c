/* Unit tests: common/cache (every mode against a reference, limits,
 * spill and resume).
 */
#include <config.h>

#include <pthread.h>

#include "test-helpers.h"
#include "cache/cache.h"

#define SIZE (2 * 1024 * 1024 + 512)    /* a short last block */
#define BS 4096

static const uint8_t parent_id[DF_LAYER_ID_LEN] = { 7, 7, 7 };
static const uint8_t parent_hash[DF_HASH_LEN] = { 8, 8, 8 };

/* A lower device with random content; ref receives a copy. */
static struct df_bdev *
make_lower (char *ref, uint64_t *seed)
{
  struct df_bdev *m = df_mem_bdev_new (SIZE);

  assert_non_null (m);
  test_fill (ref, SIZE, seed);
  memset (ref + SIZE / 2, 0, 64 * 1024);       /* a zero stretch */
  assert_int_equal (df_bdev_pwrite (m, ref, SIZE, 0, 0), 0);
  return m;
}

static struct df_bdev *
open_cache (struct df_bdev *lower, enum df_cache_mode mode, const char *file,
            uint64_t limit, uint64_t ram_limit, struct df_cache_budget *budget)
{
  char *path = file ? test_path (tmpdir, file) : NULL;
  struct df_cache_params p = {
    .mode = mode, .limit = limit, .ram_limit = ram_limit, .path = path,
    .parent_id = parent_id, .parent_hash = parent_hash, .budget = budget,
  };
  struct df_bdev *c = df_cache_open (lower, &p);

  free (path);
  return c;
}

static void
check_same (struct df_bdev *c, const char *ref)
{
  char *buf = malloc (SIZE);

  assert_int_equal (df_bdev_pread (c, buf, SIZE, 0), 0);
  if (memcmp (buf, ref, SIZE) != 0) {
    size_t i = 0;
    while (buf[i] == ref[i])
      i++;
    fail_msg ("differs from the reference at byte %zu", i);
  }
  free (buf);
}

/* Random writes, zeroes and trims of every alignment, mirrored in ref. */
static void
random_ops (struct df_bdev *c, char *ref, uint64_t *seed, int n)
{
  char *buf = malloc (5 * BS);
  int i;

  for (i = 0; i < n; i++) {
    uint64_t off = test_rand (seed) % SIZE;
    uint32_t len = 1 + test_rand (seed) % (5 * BS);
    int op = test_rand (seed) % 10;

    if (op < 4) {                       /* aligned */
      off &= ~(uint64_t) (BS - 1);
      len = (len + BS - 1) & ~(BS - 1);
    }
    if (off + len > SIZE)
      len = SIZE - off;
    if (op == 9) {
      assert_int_equal (df_bdev_zero (c, len, off, 0), 0);
      memset (ref + off, 0, len);
    }
    else if (op == 8) {
      /* Trim drops whole blocks: they read as zeros afterwards. */
      uint64_t first = (off + BS - 1) / BS * BS, end = (off + len) / BS * BS;
      if (off + len == SIZE)
        end = SIZE;
      assert_int_equal (df_bdev_trim (c, len, off, 0), 0);
      if (end > first)
        memset (ref + first, 0, end - first);
    }
    else {
      test_fill (buf, len, seed);
      assert_int_equal (df_bdev_pwrite (c, buf, len, off, i % 20 ? 0 : DF_FUA), 0);
      memcpy (ref + off, buf, len);
    }
  }
  free (buf);
}

struct extent_check {
  const char *ref;
  uint64_t next;
};

static int
extent_cb (void *opaque, uint64_t off, uint64_t len, uint32_t type)
{
  struct extent_check *ec = opaque;

  assert_int_equal (off, ec->next);
  if (type & DF_EXTENT_ZERO)
    assert_true (df_is_zero (ec->ref + off, len));
  ec->next = off + len;
  return 0;
}

static void
check_extents (struct df_bdev *c, const char *ref)
{
  struct extent_check ec = { ref, 0 };

  while (ec.next < SIZE) {
    uint64_t before = ec.next;
    assert_int_equal (df_bdev_extents (c, SIZE - ec.next, ec.next, extent_cb, &ec), 0);
    assert_true (ec.next > before);
  }
}

static void
run_mode (enum df_cache_mode mode, const char *file, uint64_t ram_limit)
{
  char *ref = malloc (SIZE), *orig = malloc (SIZE);
  uint64_t seed = 1000 + mode;
  struct df_bdev *lower = make_lower (ref, &seed), *c;

  memcpy (orig, ref, SIZE);
  c = open_cache (lower, mode, file, 0, ram_limit, NULL);
  assert_non_null (c);
  check_same (c, ref);
  random_ops (c, ref, &seed, 400);
  check_same (c, ref);
  check_extents (c, ref);
  assert_int_equal (df_bdev_flush (c), 0);
  df_bdev_close (c);
  /* The device below was never written. */
  check_same (lower, orig);
  df_bdev_close (lower);
  free (ref);
  free (orig);
}

static void
test_ram (void **state)
{
  (void) state;
  run_mode (DF_CACHE_RAM, NULL, 0);
}

static void
test_disk (void **state)
{
  (void) state;
  run_mode (DF_CACHE_DISK, "disk.layer", 0);
}

static void
test_ram_disk (void **state)
{
  (void) state;
  /* 16 blocks of RAM: most writes spill. */
  run_mode (DF_CACHE_RAM_DISK, "ramdisk.layer", 16 * BS);
}

static void
test_resume (void **state)
{
  char *ref = malloc (SIZE);
  uint64_t seed = 5;
  struct df_bdev *lower = make_lower (ref, &seed), *c;
  struct df_cache_stats st;
  static const uint8_t other[DF_LAYER_ID_LEN] = { 1 };

  (void) state;
  c = open_cache (lower, DF_CACHE_RAM_DISK, "resume.layer", 0, 64 * BS, NULL);
  assert_non_null (c);
  random_ops (c, ref, &seed, 200);
  df_cache_stats (c, &st);
  assert_true (st.ram_blocks > 0);
  assert_int_equal (df_cache_spill (c), 0);
  df_bdev_close (c);

  /* The file alone holds everything: reopen in disk mode and compare. */
  c = open_cache (lower, DF_CACHE_DISK, "resume.layer", 0, 0, NULL);
  assert_non_null (c);
  check_same (c, ref);
  df_cache_stats (c, &st);
  assert_true (st.used_bytes > 0);
  df_bdev_close (c);

  /* A cache made on another version is refused. */
  {
    char *path = test_path (tmpdir, "resume.layer");
    struct df_cache_params p = {
      .mode = DF_CACHE_DISK, .path = path, .parent_id = other,
      .parent_hash = parent_hash,
    };
    assert_null (df_cache_open (lower, &p));
    assert_error_contains ("another version");
    free (path);
  }
  df_bdev_close (lower);
  free (ref);
}

static void
test_limits (void **state)
{
  char *ref = malloc (SIZE), *buf = malloc (8 * BS), *back = malloc (8 * BS);
  uint64_t seed = 9;
  struct df_bdev *lower = make_lower (ref, &seed), *c, *c2;
  struct df_cache_budget budget = { .limit = 12 * BS };
  struct df_cache_stats st;

  (void) state;
  /* Per device: 8 blocks. */
  c = open_cache (lower, DF_CACHE_RAM, NULL, 8 * BS, 0, &budget);
  assert_non_null (c);
  test_fill (buf, 8 * BS, &seed);
  assert_int_equal (df_bdev_pwrite (c, buf, 6 * BS, 0, 0), 0);
  /* Rewriting cached blocks needs no space. */
  assert_int_equal (df_bdev_pwrite (c, buf, 6 * BS, 0, 0), 0);
  /* 3 more blocks do not fit: nothing of the write happens. */
  assert_int_equal (df_bdev_pwrite (c, buf, 3 * BS, 100 * BS, 0), -1);
  assert_int_equal (errno, ENOSPC);
  assert_int_equal (df_bdev_pread (c, back, 3 * BS, 100 * BS), 0);
  assert_memory_equal (back, ref + 100 * BS, 3 * BS);
  assert_int_equal (df_bdev_pread (c, back, 6 * BS, 0), 0);
  assert_memory_equal (back, buf, 6 * BS);
  df_cache_stats (c, &st);
  assert_int_equal (st.enospc, 1);
  /* Zeroing frees space. */
  assert_int_equal (df_bdev_zero (c, 4 * BS, 0, 0), 0);
  assert_int_equal (df_bdev_pwrite (c, buf, 3 * BS, 100 * BS, 0), 0);

  /* The server budget (12 blocks) is shared: 5 are used by c. */
  assert_int_equal (budget.used, 5 * BS);
  c2 = open_cache (lower, DF_CACHE_DISK, "budget.layer", 0, 0, &budget);
  assert_non_null (c2);
  assert_int_equal (df_bdev_pwrite (c2, buf, 8 * BS, 0, 0), -1);
  assert_int_equal (df_bdev_pwrite (c2, buf, 7 * BS, 0, 0), 0);
  assert_int_equal (budget.used, 12 * BS);
  df_bdev_close (c);
  assert_int_equal (budget.used, 7 * BS);
  df_bdev_close (c2);
  assert_int_equal (budget.used, 0);
  df_bdev_close (lower);
  free (ref);
  free (buf);
  free (back);
}

struct worker {
  struct df_bdev *c;
  char *ref;
  uint64_t base, len, seed;
};

/* Random writes, zeroes and reads inside the worker's own range. */
static void *
worker_main (void *opaque)
{
  struct worker *w = opaque;
  char buf[2 * BS], back[2 * BS];
  int i;

  for (i = 0; i < 3000; i++) {
    uint64_t off = w->base + test_rand (&w->seed) % (w->len - 2 * BS);
    uint32_t len = 1 + test_rand (&w->seed) % (2 * BS);

    if (i % 3 == 0)
      off &= ~(uint64_t) (BS - 1);
    if (i % 11 == 0) {
      if (df_bdev_zero (w->c, len, off, 0) == -1)
        return "zero";
      memset (w->ref + off, 0, len);
    }
    else {
      test_fill (buf, len, &w->seed);
      if (df_bdev_pwrite (w->c, buf, len, off, 0) == -1)
        return "write";
      memcpy (w->ref + off, buf, len);
    }
    if (df_bdev_pread (w->c, back, len, off) == -1 ||
        memcmp (back, w->ref + off, len) != 0)
      return "read back";
  }
  return NULL;
}

/* Four threads against one ram+disk cache with 8 blocks of RAM: blocks
 * are evicted while others are written, zeroed and read.
 */
static void
test_threads (void **state)
{
  char *ref = malloc (SIZE);
  uint64_t seed = 77;
  struct df_bdev *lower = make_lower (ref, &seed), *c;
  struct worker w[4];
  pthread_t t[4];
  int i;

  (void) state;
  c = open_cache (lower, DF_CACHE_RAM_DISK, "threads.layer", 0, 8 * BS, NULL);
  assert_non_null (c);
  for (i = 0; i < 4; i++) {
    w[i] = (struct worker) { c, ref, (uint64_t) i * (SIZE / 4 / BS) * BS,
                             (SIZE / 4 / BS) * BS, 1000 + i };
    assert_int_equal (pthread_create (&t[i], NULL, worker_main, &w[i]), 0);
  }
  for (i = 0; i < 4; i++) {
    void *r;
    pthread_join (t[i], &r);
    if (r)
      fail_msg ("worker %d: %s", i, (char *) r);
  }
  check_same (c, ref);
  assert_int_equal (df_cache_spill (c), 0);
  df_bdev_close (c);
  c = open_cache (lower, DF_CACHE_DISK, "threads.layer", 0, 0, NULL);
  assert_non_null (c);
  check_same (c, ref);
  df_bdev_close (c);
  df_bdev_close (lower);
  free (ref);
}

/* A lower device that counts the batches it is given (the NBD upstream
 * sends a batch to its server at once).
 */
struct counting {
  struct df_bdev bdev;
  struct df_bdev *mem;
  unsigned batches, batched;
};

static int
counting_pread (struct df_bdev *b, void *buf, uint32_t count, uint64_t offset)
{
  return df_bdev_pread (((struct counting *) b)->mem, buf, count, offset);
}

static int
counting_pread_many (struct df_bdev *b, struct df_bdev_read *r, size_t n)
{
  struct counting *k = (struct counting *) b;

  k->batches++;
  k->batched += n;
  return df_bdev_pread_many (k->mem, r, n);
}

static int
counting_extents (struct df_bdev *b, uint32_t count, uint64_t offset,
                  df_extent_fn fn, void *opaque)
{
  return df_bdev_extents (((struct counting *) b)->mem, count, offset, fn,
                          opaque);
}

static const struct df_bdev_ops counting_ops = {
  .name = "counting", .pread = counting_pread,
  .pread_many = counting_pread_many, .extents = counting_extents,
};

/* A batch of reads: those wholly below the cache go down as one batch,
 * the others are answered from the cache; every read gets its data.
 */
static void
test_pread_many (void **state)
{
  char *ref = malloc (SIZE), *buf = malloc (24 * 2 * BS);
  uint64_t seed = 11;
  struct counting k = {
    .bdev = { .ops = &counting_ops, .size = SIZE, .flags = DF_BDEV_RDONLY },
  };
  struct df_bdev_read r[24];
  struct df_bdev *c;
  unsigned i, lower = 0;

  (void) state;
  k.mem = make_lower (ref, &seed);
  c = open_cache (&k.bdev, DF_CACHE_DISK, "many.layer", 0, 0, NULL);
  assert_non_null (c);
  /* Every fourth pair of blocks written (the first of the pair), every
   * sixth zeroed.
   */
  for (i = 0; i < 24; i++) {
    uint64_t off = (uint64_t) i * 2 * BS;
    if (i % 4 == 0) {
      test_fill (ref + off, BS, &seed);
      assert_int_equal (df_bdev_pwrite (c, ref + off, BS, off, 0), 0);
    }
    else if (i % 6 == 1) {
      memset (ref + off + BS, 0, BS);
      assert_int_equal (df_bdev_zero (c, BS, off + BS, 0), 0);
    }
    else
      lower++;
  }
  for (i = 0; i < 24; i++)
    r[i] = (struct df_bdev_read) {
      .buf = buf + (size_t) i * 2 * BS, .count = 2 * BS - 100,
      .offset = (uint64_t) i * 2 * BS + 50, .error = -1,
    };
  assert_int_equal (df_bdev_pread_many (c, r, 24), 0);
  for (i = 0; i < 24; i++) {
    assert_int_equal (r[i].error, 0);
    assert_memory_equal (r[i].buf, ref + r[i].offset, r[i].count);
  }
  assert_int_equal (k.batches, 1);
  assert_int_equal (k.batched, lower);
  df_bdev_close (c);
  df_bdev_close (k.mem);
  free (buf);
  free (ref);
}

int
main (void)
{
  const struct CMUnitTest tests[] = {
    cmocka_unit_test (test_ram),
    cmocka_unit_test (test_disk),
    cmocka_unit_test (test_ram_disk),
    cmocka_unit_test (test_resume),
    cmocka_unit_test (test_limits),
    cmocka_unit_test (test_threads),
    cmocka_unit_test (test_pread_many),
  };

  return cmocka_run_group_tests (tests, tmpdir_setup, tmpdir_teardown);
}
