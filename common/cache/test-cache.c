/* Unit tests: common/cache (every mode against a reference, limits,
 * spill and resume, injected failures, exact accounting under races).
 */
#include <config.h>

#include <fcntl.h>
#include <inttypes.h>
#include <pthread.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "test-helpers.h"
#include "test-faults.h"
#include "cache/cache.h"

#define SIZE (2 * 1024 * 1024 + 512)    /* a short last block */
#define BS 4096

static const uint8_t parent_id[DF_LAYER_ID_LEN] = { 7, 7, 7 };
static const uint8_t parent_hash[DF_HASH_LEN] = { 8, 8, 8 };

/* The kernel's boot id as the library sees it: a test that simulates a
 * crash of the host sets another one (the host booted again).
 */
static const char *boot_id_override;
int __real_df_boot_id (char *buf);
int __wrap_df_boot_id (char *buf);

int
__wrap_df_boot_id (char *buf)
{
  if (boot_id_override && *boot_id_override == '\0')
    return df_error (ENOENT, "no boot id here");
  if (boot_id_override == NULL)
    return __real_df_boot_id (buf);
  strcpy (buf, boot_id_override);
  return 0;
}

/* random_ops without FUA: what it writes stays unflushed. */
static bool no_fua;

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
      assert_int_equal (df_bdev_pwrite (c, buf, len, off,
                                       i % 20 || no_fua ? 0 : DF_FUA), 0);
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

/* RAM of a closed cache is recycled without being cleared: a later
 * cache, of another device, must read nothing of it, whatever it writes
 * (whole blocks, parts of blocks, the short last block) and after
 * spilling it to its file.
 */
static void
test_recycled_ram (void **state)
{
  char *ref = calloc (1, SIZE), *buf = malloc (SIZE);
  struct df_bdev *lower, *c;
  static const enum df_cache_mode modes[] = { DF_CACHE_RAM, DF_CACHE_RAM_DISK };
  size_t m;

  (void) state;
  for (m = 0; m < 2; m++) {
    /* Every slot of a 2 MiB arena (a recycled unit) full of a pattern. */
    lower = df_mem_bdev_new (SIZE);
    assert_non_null (lower);
    c = open_cache (lower, DF_CACHE_RAM, NULL, 0, 0, NULL);
    assert_non_null (c);
    memset (buf, 0xa5, SIZE);
    assert_int_equal (df_bdev_pwrite (c, buf, SIZE, 0, 0), 0);
    df_bdev_close (c);
    df_bdev_close (lower);

    lower = df_mem_bdev_new (SIZE);     /* zeros */
    assert_non_null (lower);
    c = open_cache (lower, modes[m], m ? "recycled.layer" : NULL, 0,
                    SIZE, NULL);
    assert_non_null (c);
    memset (ref, 0, SIZE);
    memset (buf, 0x3c, 3 * BS);
    assert_int_equal (df_bdev_pwrite (c, buf, BS, 5 * BS, 0), 0);
    assert_int_equal (df_bdev_pwrite (c, buf, 100, 9 * BS + 7, 0), 0);
    assert_int_equal (df_bdev_pwrite (c, buf, 300, SIZE - 400, 0), 0);
    memset (ref + 5 * BS, 0x3c, BS);
    memset (ref + 9 * BS + 7, 0x3c, 100);
    memset (ref + SIZE - 400, 0x3c, 300);
    check_same (c, ref);
    if (modes[m] == DF_CACHE_RAM_DISK) {
      assert_int_equal (df_cache_spill (c), 0);
      check_same (c, ref);
    }
    df_bdev_close (c);
    df_bdev_close (lower);
  }
  free (ref);
  free (buf);
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

/* A server stop saves a ram+disk cache to its file without waiting for
 * the disk (every fsync fails here, unseen): a reopen finds it all.
 */
static void
test_save (void **state)
{
  char *ref = malloc (SIZE);
  uint64_t seed = 6;
  struct df_bdev *lower = make_lower (ref, &seed), *c;
  struct df_cache_stats st;

  (void) state;
  c = open_cache (lower, DF_CACHE_RAM_DISK, "save.layer", 0, 64 * BS, NULL);
  assert_non_null (c);
  random_ops (c, ref, &seed, 200);
  df_cache_stats (c, &st);
  assert_true (st.ram_blocks > 0);
  fault_arm (&fault_sync, 0, -1, EIO, false);
  assert_int_equal (df_cache_save (c), 0);
  df_bdev_close (c);
  fault_disarm_all ();

  c = open_cache (lower, DF_CACHE_DISK, "save.layer", 0, 0, NULL);
  assert_non_null (c);
  check_same (c, ref);
  df_bdev_close (c);
  df_bdev_close (lower);
  free (ref);
}

/* The data part of a layer file (data_offset from its header), as a
 * crash test's image of what the disk held at the last flush.
 */
static char *
data_read (const char *file, uint64_t *data_offset)
{
  char *path = test_path (tmpdir, file), *data = malloc (SIZE);
  int fd = open (path, O_RDONLY);
  uint8_t h[8];

  assert_true (fd >= 0);
  assert_int_equal (pread (fd, h, 8, 112), 8);
  *data_offset = le64toh (*(uint64_t *) h);
  assert_int_equal (pread (fd, data, SIZE, *data_offset), SIZE);
  close (fd);
  free (path);
  return data;
}

/* A crash of the host, the worst case for a cache: none of the data
 * written since the last flush reached the disk (the file's data part is
 * put back as it was then), everything else did (the map in place, the
 * park record).  Copies file to crashed and does that to the copy
 * (durable NULL: a plain copy).
 */
static void
crash_copy (const char *file, const char *crashed, const char *durable,
            uint64_t data_offset)
{
  char *from = test_path (tmpdir, file), *to = test_path (tmpdir, crashed);
  char *buf = malloc (1 << 20);
  int in = open (from, O_RDONLY), out = open (to, O_WRONLY | O_CREAT | O_TRUNC, 0644);
  ssize_t n;
  off_t off = 0;

  assert_true (in >= 0 && out >= 0);
  while ((n = pread (in, buf, 1 << 20, off)) > 0) {
    assert_int_equal (pwrite (out, buf, n, off), n);
    off += n;
  }
  assert_int_equal (n, 0);
  if (durable)
    assert_int_equal (pwrite (out, durable, SIZE, data_offset), SIZE);
  close (in);
  close (out);
  free (buf);
  free (from);
  free (to);
}

/* Each 4 KiB block of the cache reads as of the flush or as written
 * since, never anything else (zeros it never held).
 */
static void
check_old_or_new (struct df_bdev *c, const char *old, const char *new)
{
  char *buf = malloc (SIZE);
  size_t i, len, olds = 0;

  assert_int_equal (df_bdev_pread (c, buf, SIZE, 0), 0);
  for (i = 0; i < SIZE; i += BS) {
    len = SIZE - i < BS ? SIZE - i : BS;
    if (memcmp (buf + i, old + i, len) == 0)
      olds += memcmp (buf + i, new + i, len) != 0;
    else if (memcmp (buf + i, new + i, len) != 0)
      fail_msg ("block %zu is neither as flushed nor as written", i / BS);
  }
  /* The crash lost data written since the flush: some blocks are old. */
  assert_true (olds > 0);
  free (buf);
}

/* A stop parks a disk cache without syncing (no fdatasync at all), and
 * keeps "a crash brings a cache back as of its last flush": a host crash
 * right after the stop, with the data written since the flush lost and
 * the rest on the disk, resumes each block as of that flush or newer,
 * never zeros for blocks it did not hold; a resume after a clean stop
 * has every write, in the same boot and on another server (another boot
 * id) sharing the file.
 */
static void
test_save_crash (void **state)
{
  char *ref = malloc (SIZE), *flushed = malloc (SIZE), *durable;
  uint64_t seed = 16, data_offset;
  struct df_bdev *lower = make_lower (ref, &seed), *c;

  (void) state;
  c = open_cache (lower, DF_CACHE_DISK, "crash.layer", 0, 0, NULL);
  assert_non_null (c);
  random_ops (c, ref, &seed, 150);
  assert_int_equal (df_bdev_flush (c), 0);
  memcpy (flushed, ref, SIZE);
  durable = data_read ("crash.layer", &data_offset);

  no_fua = true;
  random_ops (c, ref, &seed, 300);
  no_fua = false;
  assert_true (memcmp (ref, flushed, SIZE) != 0);
  fault_arm (&fault_sync, 0, -1, EIO, false);
  assert_int_equal (df_cache_save (c), 0);
  df_bdev_close (c);
  assert_int_equal (fault_hits (&fault_sync), 0);
  fault_disarm_all ();

  /* The host crashed and booted again. */
  crash_copy ("crash.layer", "crashed.layer", durable, data_offset);
  boot_id_override = "00000000-0000-4000-8000-000000000000";
  c = open_cache (lower, DF_CACHE_DISK, "crashed.layer", 0, 0, NULL);
  assert_non_null (c);
  check_old_or_new (c, flushed, ref);
  df_bdev_close (c);

  /* Another server sharing the cache directory: no crash, every write. */
  crash_copy ("crash.layer", "other.layer", NULL, data_offset);
  c = open_cache (lower, DF_CACHE_DISK, "other.layer", 0, 0, NULL);
  assert_non_null (c);
  check_same (c, ref);
  df_bdev_close (c);
  boot_id_override = NULL;

  /* The same boot: every write is back; a flush then puts the map in
   * place, and a crash after it keeps them all.
   */
  c = open_cache (lower, DF_CACHE_DISK, "crash.layer", 0, 0, NULL);
  assert_non_null (c);
  check_same (c, ref);
  assert_int_equal (df_bdev_flush (c), 0);
  df_bdev_close (c);
  free (durable);
  durable = data_read ("crash.layer", &data_offset);
  crash_copy ("crash.layer", "crashed.layer", durable, data_offset);
  boot_id_override = "00000000-0000-4000-8000-000000000000";
  c = open_cache (lower, DF_CACHE_DISK, "crashed.layer", 0, 0, NULL);
  assert_non_null (c);
  check_same (c, ref);
  df_bdev_close (c);
  boot_id_override = NULL;

  df_bdev_close (lower);
  free (durable);
  free (flushed);
  free (ref);
}

/* The file as a host crash finds it at most: what the last fsync or
 * fdatasync that worked made durable, copied at each one.
 */
static const char *synced_file, *synced_copy;

static void
copy_at_sync (int fd)
{
  (void) fd;
  crash_copy (synced_file, synced_copy, NULL, 0);
}

static void
read_block (struct df_bdev *c, uint64_t off, const char *want, const char *what)
{
  char buf[BS];

  assert_int_equal (df_bdev_pread (c, buf, BS, off), 0);
  if (memcmp (buf, want, BS) != 0)
    fail_msg ("%s: block at %" PRIu64 " is not as written", what, off);
}

/* A disk cache NAME whose block at y holds data (flushed), then is
 * zeroed and parked: its park record says ZERO over a flushed block.
 */
static void
park_zeroed_after_flush (struct df_bdev *lower, const char *name,
                         const char *data, uint64_t y)
{
  struct df_bdev *c = open_cache (lower, DF_CACHE_DISK, name, 0, 0, NULL);

  assert_non_null (c);
  assert_int_equal (df_bdev_pwrite (c, data, BS, y, 0), 0);
  assert_int_equal (df_bdev_flush (c), 0);
  assert_int_equal (df_bdev_zero (c, BS, y, 0), 0);
  assert_int_equal (df_cache_save (c), 0);
  df_bdev_close (c);
}

/* A flush after a resume from a park record: the record it took must not
 * outlive the flush, or a crash would undo the flush with it.  Y was
 * written and flushed, then zeroed and parked (the record says zero);
 * the restarted server took the record, wrote Y again and flushed.  A
 * crash right after that flush finds Y as flushed.
 */
static void
test_park_flush_crash (void **state)
{
  char *ref = malloc (SIZE), a[BS], b[BS], zeros[BS] = { 0 };
  uint64_t seed = 19, y = 5 * BS;
  struct df_bdev *lower = make_lower (ref, &seed), *c;

  (void) state;
  memset (a, 'A', BS);
  memset (b, 'B', BS);
  park_zeroed_after_flush (lower, "undo.layer", a, y);

  c = open_cache (lower, DF_CACHE_DISK, "undo.layer", 0, 0, NULL);
  assert_non_null (c);
  read_block (c, y, zeros, "resumed");
  assert_int_equal (df_bdev_pwrite (c, b, BS, y, 0), 0);
  synced_file = "undo.layer";
  synced_copy = "undo-crashed.layer";
  fault_synced = copy_at_sync;
  assert_int_equal (df_bdev_flush (c), 0);
  fault_synced = NULL;
  df_bdev_close (c);

  boot_id_override = "00000000-0000-4000-8000-000000000002";
  c = open_cache (lower, DF_CACHE_DISK, "undo-crashed.layer", 0, 0, NULL);
  assert_non_null (c);
  read_block (c, y, b, "after the crash");
  df_bdev_close (c);
  boot_id_override = NULL;
  df_bdev_close (lower);
  free (ref);
}

/* A park record left over past a flush that changed the map in place (a
 * truncate a crash lost, or one that failed) is not based on that map,
 * and is ignored by every open: the flush stands.
 */
static void
test_park_stale_record (void **state)
{
  char *ref = malloc (SIZE), *path = test_path (tmpdir, "stale-park.layer");
  char *record, a[BS], b[BS], *data;
  uint64_t seed = 20, y = 5 * BS, z = 13 * BS, data_offset, park;
  struct df_bdev *lower = make_lower (ref, &seed), *c;
  struct stat st;
  int fd;

  (void) state;
  memset (a, 'A', BS);
  memset (b, 'B', BS);
  park_zeroed_after_flush (lower, "stale-park.layer", a, y);

  /* The record, kept to be put back after the next flush. */
  data = data_read ("stale-park.layer", &data_offset);
  park = (data_offset + SIZE + 4095) / 4096 * 4096;
  assert_int_equal (stat (path, &st), 0);
  assert_true ((uint64_t) st.st_size > park);
  record = malloc (st.st_size - park);
  fd = open (path, O_RDONLY);
  assert_true (fd >= 0);
  assert_int_equal (pread (fd, record, st.st_size - park, park),
                    st.st_size - park);
  close (fd);

  c = open_cache (lower, DF_CACHE_DISK, "stale-park.layer", 0, 0, NULL);
  assert_non_null (c);
  assert_int_equal (df_bdev_pwrite (c, b, BS, y, 0), 0);
  assert_int_equal (df_bdev_pwrite (c, a, BS, z, 0), 0);
  assert_int_equal (df_bdev_flush (c), 0);
  df_bdev_close (c);

  fd = open (path, O_WRONLY);
  assert_true (fd >= 0);
  assert_int_equal (pwrite (fd, record, st.st_size - park, park),
                    st.st_size - park);
  close (fd);
  boot_id_override = "00000000-0000-4000-8000-000000000003";
  c = open_cache (lower, DF_CACHE_DISK, "stale-park.layer", 0, 0, NULL);
  assert_non_null (c);
  read_block (c, y, b, "another boot");
  read_block (c, z, a, "another boot");
  df_bdev_close (c);
  boot_id_override = NULL;

  fd = open (path, O_WRONLY);
  assert_true (fd >= 0);
  assert_int_equal (pwrite (fd, record, st.st_size - park, park),
                    st.st_size - park);
  close (fd);
  c = open_cache (lower, DF_CACHE_DISK, "stale-park.layer", 0, 0, NULL);
  assert_non_null (c);
  read_block (c, y, b, "the same boot");
  read_block (c, z, a, "the same boot");
  df_bdev_close (c);
  df_bdev_close (lower);
  free (record);
  free (data);
  free (path);
  free (ref);
}

/* A park that runs while a flush waits for its last fdatasync (here:
 * from inside it) keeps its record: the flush dropped the old one before
 * writing the map, not after, so the writes made since are resumed.
 */
static struct df_bdev *race_cache;
static unsigned race_syncs;

static void
park_at_second_sync (int fd)
{
  char w[BS];

  (void) fd;
  if (++race_syncs != 2)
    return;
  memset (w, 'W', BS);
  assert_int_equal (df_bdev_pwrite (race_cache, w, BS, 7 * BS, 0), 0);
  assert_int_equal (df_cache_save (race_cache), 0);
}

static void
test_park_during_flush (void **state)
{
  char *ref = malloc (SIZE), a[BS], w[BS];
  uint64_t seed = 21;
  struct df_bdev *lower = make_lower (ref, &seed), *c;

  (void) state;
  memset (a, 'A', BS);
  memset (w, 'W', BS);
  c = open_cache (lower, DF_CACHE_DISK, "race-park.layer", 0, 0, NULL);
  assert_non_null (c);
  assert_int_equal (df_bdev_pwrite (c, a, BS, 3 * BS, 0), 0);
  race_cache = c;
  race_syncs = 0;
  fault_synced = park_at_second_sync;
  assert_int_equal (df_bdev_flush (c), 0);
  fault_synced = NULL;
  assert_int_equal (race_syncs, 2);
  df_bdev_close (c);

  crash_copy ("race-park.layer", "race-park-other.layer", NULL, 0);
  c = open_cache (lower, DF_CACHE_DISK, "race-park.layer", 0, 0, NULL);
  assert_non_null (c);
  read_block (c, 3 * BS, a, "the same boot");
  read_block (c, 7 * BS, w, "the same boot");
  df_bdev_close (c);
  boot_id_override = "00000000-0000-4000-8000-000000000004";
  c = open_cache (lower, DF_CACHE_DISK, "race-park-other.layer", 0, 0, NULL);
  assert_non_null (c);
  read_block (c, 3 * BS, a, "another boot");
  read_block (c, 7 * BS, w, "another boot");
  df_bdev_close (c);
  boot_id_override = NULL;
  df_bdev_close (lower);
  free (ref);
}

/* A park record that cannot be written (a full disk) falls back to a
 * flush; when that fails too, the message says both.  A record that
 * cannot be read at open is ignored (and dropped), the cache opens as
 * of its last flush.
 */
static void
test_park_errors (void **state)
{
  char *ref = malloc (SIZE), a[BS], b[BS];
  char *path = test_path (tmpdir, "perr.layer");
  uint64_t seed = 22, data_offset;
  struct df_bdev *lower = make_lower (ref, &seed), *c;
  struct stat st;
  char *data;

  (void) state;
  memset (a, 'A', BS);
  memset (b, 'B', BS);
  c = open_cache (lower, DF_CACHE_DISK, "perr.layer", 0, 0, NULL);
  assert_non_null (c);
  assert_int_equal (df_bdev_pwrite (c, a, BS, 2 * BS, 0), 0);
  assert_int_equal (df_bdev_flush (c), 0);
  assert_int_equal (df_bdev_pwrite (c, b, BS, 2 * BS, 0), 0);
  assert_int_equal (df_bdev_pwrite (c, b, BS, 6 * BS, 0), 0);
  fault_arm (&fault_pwrite, 0, 1, ENOSPC, false);
  fault_arm (&fault_sync, 0, -1, EIO, false);
  assert_int_equal (df_cache_save (c), -1);
  assert_non_null (strstr (df_error_get (), "No space left"));
  assert_non_null (strstr (df_error_get (), "flushing failed"));
  fault_disarm_all ();
  assert_int_equal (df_cache_save (c), 0);
  df_bdev_close (c);

  /* The record cannot be read: the header, the map, then the record. */
  data = data_read ("perr.layer", &data_offset);
  assert_int_equal (stat (path, &st), 0);
  assert_true ((uint64_t) st.st_size > data_offset + SIZE);
  fault_arm (&fault_pread, 2, 1, EIO, false);
  c = open_cache (lower, DF_CACHE_DISK, "perr.layer", 0, 0, NULL);
  assert_int_equal (fault_hits (&fault_pread), 1);
  fault_disarm_all ();
  assert_non_null (c);
  /* Block 6, added since the flush, is not (block 2 was overwritten in
   * place, as any unflushed overwrite).
   */
  read_block (c, 6 * BS, ref + 6 * BS, "record unread");
  df_bdev_close (c);
  assert_int_equal (stat (path, &st), 0);
  assert_int_equal (st.st_size, data_offset + SIZE);
  df_bdev_close (lower);
  free (data);
  free (path);
  free (ref);
}

/* Without a boot id to tag a park record with, a save flushes: at the
 * save (not at the close after it), the map in place has everything, for
 * any open, and no message of the park's failure is left behind.
 */
static void
test_save_no_boot_id (void **state)
{
  char *ref = malloc (SIZE), *durable;
  uint64_t seed = 17, data_offset;
  struct df_bdev *lower = make_lower (ref, &seed), *c;
  struct stat st;
  char *path = test_path (tmpdir, "noboot-crashed.layer");
  unsigned syncs;

  (void) state;
  c = open_cache (lower, DF_CACHE_DISK, "noboot.layer", 0, 0, NULL);
  assert_non_null (c);
  no_fua = true;
  random_ops (c, ref, &seed, 200);
  no_fua = false;
  boot_id_override = "";
  syncs = fault_syncs;
  df_error_clear ();
  assert_int_equal (df_cache_save (c), 0);
  assert_true (fault_syncs > syncs);
  assert_null (strstr (df_error_get (), "boot"));
  assert_null (strstr (df_error_get (), "noboot.layer"));
  /* A crash right after the save. */
  durable = data_read ("noboot.layer", &data_offset);
  crash_copy ("noboot.layer", "noboot-crashed.layer", durable, data_offset);
  df_bdev_close (c);
  assert_int_equal (stat (path, &st), 0);
  assert_int_equal (st.st_size, data_offset + SIZE);     /* no record */
  boot_id_override = "00000000-0000-4000-8000-000000000001";
  c = open_cache (lower, DF_CACHE_DISK, "noboot-crashed.layer", 0, 0, NULL);
  assert_non_null (c);
  check_same (c, ref);
  df_bdev_close (c);
  boot_id_override = NULL;
  df_bdev_close (lower);
  free (durable);
  free (path);
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

/* ---- failures: each reaches the caller, the accounting stays exact ---- */

static void
check_stats (struct df_bdev *c, struct df_cache_budget *budget,
             uint64_t used_blocks, uint64_t enospc)
{
  struct df_cache_stats st;

  df_cache_stats (c, &st);
  assert_int_equal (st.used_bytes, used_blocks * BS);
  assert_int_equal (st.enospc, enospc);
  if (budget)
    assert_int_equal (budget->used, used_blocks * BS);
}

/* Blocks that read as anything but zeros (writes here never write a zero
 * block, and the device below is all zeros): what the cache must count.
 */
static uint64_t
data_blocks (struct df_bdev *c, uint64_t first, uint64_t n)
{
  char buf[BS];
  uint64_t i, count = 0;

  for (i = first; i < first + n; i++) {
    assert_int_equal (df_bdev_pread (c, buf, BS, i * BS), 0);
    count += !df_is_zero (buf, BS);
  }
  return count;
}

/* Every allocation on the write path fails in turn: each failed write
 * says ENOMEM, changes nothing and counts nothing.
 */
static void
alloc_sweep (enum df_cache_mode mode, const char *file, uint64_t ram_limit)
{
  char *ref = malloc (SIZE), *buf = malloc (8 * BS), *back = malloc (8 * BS);
  uint64_t seed = 31, used = 0, off;
  struct df_bdev *lower = make_lower (ref, &seed), *c;
  struct df_cache_budget budget = { .limit = 0 };
  int k, failed = 0;

  c = open_cache (lower, mode, file, 0, ram_limit, &budget);
  assert_non_null (c);
  for (k = 0, off = 0; k < 40; k++, off += 12 * BS) {
    test_fill (buf, 8 * BS, &seed);
    fault_arm (&fault_alloc, k % 4, 1, ENOMEM, false);
    if (df_bdev_pwrite (c, buf, 8 * BS, off, 0) == -1) {
      assert_int_equal (errno, ENOMEM);
      failed++;
      fault_disarm_all ();
      assert_int_equal (df_bdev_pread (c, back, 8 * BS, off), 0);
      assert_memory_equal (back, ref + off, 8 * BS);
    }
    else {
      fault_disarm_all ();
      memcpy (ref + off, buf, 8 * BS);
      used += 8;
    }
    check_stats (c, &budget, used, 0);
  }
  assert_true (failed > 0);
  check_same (c, ref);
  df_bdev_close (c);
  assert_int_equal (budget.used, 0);
  df_bdev_close (lower);
  free (ref);
  free (buf);
  free (back);
}

static void
test_fail_alloc_ram (void **state)
{
  (void) state;
  alloc_sweep (DF_CACHE_RAM, NULL, 0);
}

static void
test_fail_alloc_ram_disk (void **state)
{
  (void) state;
  alloc_sweep (DF_CACHE_RAM_DISK, "sweep.layer", 64 * BS);
}

/* WRITE_ZEROES in ram mode needs table room for its marks: without it
 * the zero fails, it is not acknowledged undone.
 */
static void
test_fail_zero_alloc (void **state)
{
  char *ref = malloc (SIZE), *back = malloc (4 * BS);
  uint64_t seed = 32, off = SIZE / 4;
  struct df_bdev *lower = make_lower (ref, &seed), *c;
  struct df_cache_budget budget = { 0 };

  (void) state;
  c = open_cache (lower, DF_CACHE_RAM, NULL, 0, 0, &budget);
  assert_non_null (c);
  fault_arm (&fault_alloc, 0, -1, ENOMEM, false);
  assert_int_equal (df_bdev_zero (c, 4 * BS, off, 0), -1);
  assert_int_equal (errno, ENOMEM);
  assert_error_contains ("write cache");
  fault_disarm_all ();
  assert_int_equal (df_bdev_pread (c, back, 4 * BS, off), 0);
  assert_memory_equal (back, ref + off, 4 * BS);
  check_stats (c, &budget, 0, 0);
  assert_int_equal (df_bdev_zero (c, 4 * BS, off, 0), 0);
  memset (ref + off, 0, 4 * BS);
  check_same (c, ref);
  df_bdev_close (c);
  df_bdev_close (lower);
  free (ref);
  free (back);
}

/* A new persistent cache whose directory cannot be synced is refused
 * and left nowhere.
 */
static void
test_fail_persistent_fsync (void **state)
{
  char *ref = malloc (SIZE), *path = test_path (tmpdir, "persistent.layer");
  uint64_t seed = 33;
  struct df_bdev *lower = make_lower (ref, &seed), *c;
  struct df_cache_budget budget = { 0 };
  struct stat st;

  (void) state;
  fault_arm (&fault_sync, 0, 1, EIO, false);
  c = open_cache (lower, DF_CACHE_PERSISTENT, "persistent.layer", 0, 0, &budget);
  fault_disarm_all ();
  assert_null (c);
  assert_int_equal (errno, EIO);
  assert_error_contains ("fsync");
  assert_int_equal (stat (path, &st), -1);
  assert_int_equal (budget.used, 0);
  c = open_cache (lower, DF_CACHE_PERSISTENT, "persistent.layer", 0, 0, &budget);
  assert_non_null (c);
  df_bdev_close (c);
  df_bdev_close (lower);
  free (path);
  free (ref);
}

/* disk mode: a failed write of new blocks counts nothing; a failed
 * FLUSH or FUA says so.
 */
static void
test_fail_disk_write (void **state)
{
  char *ref = malloc (SIZE), *buf = malloc (4 * BS), *back = malloc (4 * BS);
  uint64_t seed = 34;
  struct df_bdev *lower = make_lower (ref, &seed), *c;
  struct df_cache_budget budget = { 0 };

  (void) state;
  c = open_cache (lower, DF_CACHE_DISK, "fail-disk.layer", 0, 0, &budget);
  assert_non_null (c);
  test_fill (buf, 4 * BS, &seed);
  fault_arm (&fault_pwrite, 0, 1, EIO, false);
  assert_int_equal (df_bdev_pwrite (c, buf, 4 * BS, 8 * BS, 0), -1);
  assert_int_equal (errno, EIO);
  assert_error_contains ("fail-disk.layer");
  check_stats (c, &budget, 0, 0);
  assert_int_equal (df_bdev_pread (c, back, 4 * BS, 8 * BS), 0);
  assert_memory_equal (back, ref + 8 * BS, 4 * BS);
  assert_int_equal (df_bdev_pwrite (c, buf, 4 * BS, 8 * BS, 0), 0);
  check_stats (c, &budget, 4, 0);
  /* Rewriting present blocks: the failure changes no count. */
  fault_arm (&fault_pwrite, 0, 1, ENOSPC, false);
  assert_int_equal (df_bdev_pwrite (c, ref, 4 * BS, 8 * BS, 0), -1);
  assert_int_equal (errno, ENOSPC);
  check_stats (c, &budget, 4, 0);
  fault_arm (&fault_sync, 0, 1, EIO, false);
  assert_int_equal (df_bdev_flush (c), -1);
  assert_int_equal (errno, EIO);
  assert_error_contains ("fdatasync");
  fault_arm (&fault_sync, 0, 1, EIO, false);
  assert_int_equal (df_bdev_pwrite (c, buf, BS, 0, DF_FUA), -1);
  fault_disarm_all ();
  check_stats (c, &budget, 5, 0);
  df_bdev_close (c);
  assert_int_equal (budget.used, 0);
  df_bdev_close (lower);
  free (ref);
  free (buf);
  free (back);
}

/* Reads of the layer file fail: a read says so, and a write of part of
 * a block (which reads the rest of it first) fails without changing the
 * block or any count.  An interrupted call is retried, not failed.
 */
static void
fail_read_mode (enum df_cache_mode mode, const char *file)
{
  char *ref = malloc (SIZE), *buf = malloc (64 * BS), *back = malloc (64 * BS);
  uint64_t seed = 38, used;
  struct df_bdev *lower = make_lower (ref, &seed), *c;
  struct df_cache_budget budget = { 0 };
  struct df_cache_stats st;

  /* ram+disk with 16 blocks of RAM: a 64-block write goes to the file. */
  c = open_cache (lower, mode, file, 0, 16 * BS, &budget);
  assert_non_null (c);
  test_fill (buf, 64 * BS, &seed);
  assert_int_equal (df_bdev_pwrite (c, buf, 64 * BS, 8 * BS, 0), 0);
  memcpy (ref + 8 * BS, buf, 64 * BS);
  df_cache_stats (c, &st);
  used = st.used_bytes / BS;
  assert_int_equal (used, 64);

  fault_arm (&fault_pread, 0, 1, EIO, false);
  assert_int_equal (df_bdev_pread (c, back, 4 * BS, 60 * BS), -1);
  assert_int_equal (errno, EIO);
  assert_error_contains (file);
  fault_arm (&fault_pread, 0, 1, EIO, false);
  assert_int_equal (df_bdev_pwrite (c, "partial", 7, 60 * BS + 100, 0), -1);
  assert_int_equal (errno, EIO);
  assert_error_contains (file);
  fault_arm (&fault_pread, 0, 1, EIO, false);
  assert_int_equal (df_bdev_zero (c, 100, 61 * BS + 100, 0), -1);
  assert_int_equal (errno, EIO);
  fault_disarm_all ();
  check_stats (c, &budget, used, 0);
  check_same (c, ref);

  /* EINTR is retried by the full-I/O loops: both calls succeed. */
  fault_arm (&fault_pread, 0, 1, EINTR, false);
  assert_int_equal (df_bdev_pread (c, back, 4 * BS, 60 * BS), 0);
  assert_memory_equal (back, ref + 60 * BS, 4 * BS);
  fault_arm (&fault_pwrite, 0, 1, EINTR, false);
  assert_int_equal (df_bdev_pwrite (c, buf, 64 * BS, 200 * BS, 0), 0);
  memcpy (ref + 200 * BS, buf, 64 * BS);
  assert_int_equal (fault_hits (&fault_pread) + fault_hits (&fault_pwrite), 2);
  fault_disarm_all ();
  check_stats (c, &budget, used + 64, 0);
  check_same (c, ref);
  df_bdev_close (c);
  assert_int_equal (budget.used, 0);
  df_bdev_close (lower);
  free (ref);
  free (buf);
  free (back);
}

static void
test_fail_read (void **state)
{
  (void) state;
  fail_read_mode (DF_CACHE_DISK, "fail-read-disk.layer");
  fail_read_mode (DF_CACHE_RAM_DISK, "fail-read-ramdisk.layer");
}

/* The spiller's own writes fail: every acknowledged write stays readable
 * (in RAM), the next FLUSH reports the failure, writes that went to the
 * file themselves fail at once, and once the file works again a spill
 * puts everything there.
 */
static void
test_fail_spill (void **state)
{
  char *ref = calloc (1, SIZE), *buf = malloc (BS);
  uint64_t seed = 35, i, acked = 0;
  struct df_bdev *lower = df_mem_bdev_new (SIZE), *c;
  struct df_cache_budget budget = { 0 };
  struct df_cache_stats st;
  int tries;

  (void) state;
  c = open_cache (lower, DF_CACHE_RAM_DISK, "fail-spill.layer", 0, 16 * BS,
                  &budget);
  assert_non_null (c);
  /* Until RAM is in use: the first writes go to the file while the
   * spiller maps RAM.
   */
  for (tries = 0, st.ram_blocks = 0; st.ram_blocks == 0; tries++) {
    assert_true (tries < 10000);
    if (tries)
      usleep (1000);
    test_fill (buf, BS, &seed);
    assert_int_equal (df_bdev_pwrite (c, buf, BS, 0, 0), 0);
    memcpy (ref, buf, BS);
    df_cache_stats (c, &st);
  }
  acked = i = 1;
  fault_arm (&fault_pwrite, 0, -1, EIO, true);
  for (; i < 64; i++) {
    test_fill (buf, BS, &seed);
    if (df_bdev_pwrite (c, buf, BS, i * BS, 0) == 0) {
      memcpy (ref + i * BS, buf, BS);
      acked++;
    }
    else
      assert_int_equal (errno, EIO);
  }
  for (tries = 0; fault_hits (&fault_pwrite) == 0 || st.spill_errors == 0; tries++) {
    if (tries >= 10000)
      fail_msg ("no background failure: hits %u, ram %lu, spilled %lu, bypassed %lu, errors %lu",
                fault_hits (&fault_pwrite), (unsigned long) st.ram_blocks, (unsigned long) st.spilled,
                (unsigned long) st.bypassed, (unsigned long) st.spill_errors);
    usleep (1000);
    df_cache_stats (c, &st);
  }
  check_stats (c, &budget, acked, 0);
  assert_int_equal (data_blocks (c, 0, 64), acked);
  check_same (c, ref);
  fault_arm (&fault_pwrite, 0, -1, EIO, false);
  assert_int_equal (df_cache_spill (c), -1);
  assert_int_equal (errno, EIO);
  fault_disarm_all ();
  check_same (c, ref);
  /* The file works again; the failure is still reported, once. */
  assert_int_equal (df_bdev_flush (c), -1);
  assert_int_equal (errno, EIO);
  assert_error_contains ("in the background");
  assert_int_equal (df_cache_spill (c), 0);
  assert_int_equal (df_bdev_flush (c), 0);
  df_cache_stats (c, &st);
  assert_int_equal (st.ram_blocks, 0);
  check_stats (c, &budget, acked, 0);
  df_bdev_close (c);
  c = open_cache (lower, DF_CACHE_DISK, "fail-spill.layer", 0, 0, NULL);
  assert_non_null (c);
  check_same (c, ref);
  check_stats (c, NULL, acked, 0);
  df_bdev_close (c);
  df_bdev_close (lower);
  free (ref);
  free (buf);
}

/* Opening a new cache handles the ENOENT of the file it then creates:
 * that message must not be left to describe a later failure.
 */
static void
test_no_stale_message (void **state)
{
  char *ref = malloc (SIZE);
  uint64_t seed = 36;
  struct df_bdev *lower = make_lower (ref, &seed), *c;

  (void) state;
  df_error_clear ();
  c = open_cache (lower, DF_CACHE_DISK, "stale.layer", 0, 0, NULL);
  assert_non_null (c);
  errno = ENOENT;
  assert_null (strstr (df_error_get (), "stale.layer"));
  df_bdev_close (c);
  df_bdev_close (lower);
  free (ref);
}

/* ---- FAST_ZERO: whole blocks are marked, a part of one is refused ---- */

static void
fast_zero_mode (enum df_cache_mode mode, const char *file)
{
  char *ref = malloc (SIZE);
  uint64_t seed = 40 + mode;
  struct df_bdev *lower = make_lower (ref, &seed), *c;

  c = open_cache (lower, mode, file, 0, 16 * BS, NULL);
  assert_non_null (c);
  assert_int_equal (df_bdev_zero (c, BS + 512, 8 * BS, DF_FAST_ZERO), -1);
  assert_int_equal (errno, ENOTSUP);
  assert_int_equal (df_bdev_zero (c, BS, 8 * BS + 512, DF_FAST_ZERO), -1);
  assert_int_equal (errno, ENOTSUP);
  check_same (c, ref);
  assert_int_equal (df_bdev_zero (c, 3 * BS, 8 * BS, DF_FAST_ZERO), 0);
  memset (ref + 8 * BS, 0, 3 * BS);
  /* The short last block counts as whole. */
  assert_int_equal (df_bdev_zero (c, 512, SIZE - 512, DF_FAST_ZERO), 0);
  memset (ref + SIZE - 512, 0, 512);
  /* Without the flag a part is written as zeros. */
  assert_int_equal (df_bdev_zero (c, 100, 20 * BS + 7, 0), 0);
  memset (ref + 20 * BS + 7, 0, 100);
  check_same (c, ref);
  df_bdev_close (c);
  df_bdev_close (lower);
  free (ref);
}

static void
test_fast_zero (void **state)
{
  (void) state;
  fast_zero_mode (DF_CACHE_RAM, NULL);
  fast_zero_mode (DF_CACHE_DISK, "fz-disk.layer");
  fast_zero_mode (DF_CACHE_RAM_DISK, "fz-ramdisk.layer");
}

/* ---- races: the count stays exact when writes and zeroes of the same
 * blocks cross ----
 */

struct racer {
  struct df_bdev *c;
  uint64_t seed;
  char msg[256];
};

static void *
racer_main (void *opaque)
{
  struct racer *r = opaque;
  char buf[2 * BS];
  int i;

  for (i = 0; i < 4000; i++) {
    uint64_t b = test_rand (&r->seed) % 24;
    uint32_t n = 1 + test_rand (&r->seed) % 2;
    int op = test_rand (&r->seed) % 4;

    if (op == 0) {
      if (df_bdev_zero (r->c, n * BS, b * BS, 0) == -1)
        return "zero";
    }
    else if (op == 1) {
      if (df_bdev_trim (r->c, n * BS, b * BS, 0) == -1)
        return "trim";
    }
    else {
      test_fill (buf, n * BS, &r->seed);
      buf[0] |= 1;                      /* never a zero block */
      buf[BS] |= 1;
      if (df_bdev_pwrite (r->c, buf, n * BS, b * BS, 0) == -1) {
        snprintf (r->msg, sizeof r->msg, "write: %s", df_error_get ());
        return r->msg;
      }
    }
  }
  return NULL;
}

static void
race_mode (enum df_cache_mode mode, const char *file, uint64_t ram_limit)
{
  struct df_bdev *lower = df_mem_bdev_new (SIZE), *c;
  struct df_cache_budget budget = { 0 };
  struct racer r[4];
  pthread_t t[4];
  int i;

  c = open_cache (lower, mode, file, 0, ram_limit, &budget);
  assert_non_null (c);
  for (i = 0; i < 4; i++) {
    r[i] = (struct racer) { c, 500 + i, "" };
    assert_int_equal (pthread_create (&t[i], NULL, racer_main, &r[i]), 0);
  }
  for (i = 0; i < 4; i++) {
    void *res;
    pthread_join (t[i], &res);
    if (res)
      fail_msg ("racer %d: %s", i, (char *) res);
  }
  check_stats (c, &budget, data_blocks (c, 0, 26), 0);
  df_bdev_close (c);
  assert_int_equal (budget.used, 0);
  df_bdev_close (lower);
}

static void
test_accounting_races (void **state)
{
  (void) state;
  race_mode (DF_CACHE_DISK, "race-disk.layer", 0);
  race_mode (DF_CACHE_RAM_DISK, "race-ramdisk.layer", 8 * BS);
  race_mode (DF_CACHE_RAM, NULL, 0);
}

/* A write larger than all of RAM goes to the file; nothing waits. */
struct spill_arg {
  struct df_bdev *c;
  const char *buf;
  int r;
  bool done;
};

static void *
spill_thread (void *opaque)
{
  struct spill_arg *a = opaque;

  a->r = df_cache_spill (a->c);
  __atomic_store_n (&a->done, true, __ATOMIC_RELEASE);
  return NULL;
}

static void *
write_thread (void *opaque)
{
  struct spill_arg *a = opaque;

  a->r = df_bdev_pwrite (a->c, a->buf, BS, 12 * BS, 0);
  __atomic_store_n (&a->done, true, __ATOMIC_RELEASE);
  return NULL;
}

/* Blocks are written out straight from their RAM slots, without the
 * lock: a writer of one of them waits until that write is done, and
 * what it wrote is what reads see, in RAM and once spilled.
 */
static void
test_write_while_evicting (void **state)
{
  char *ref = malloc (SIZE), *buf = malloc (8 * BS);
  uint64_t seed = 41;
  struct df_bdev *lower = make_lower (ref, &seed), *c;
  struct spill_arg sp = { 0 }, wr = { 0 };
  pthread_t ts, tw;
  int i;

  (void) state;
  c = open_cache (lower, DF_CACHE_RAM_DISK, "evicting.layer", 0, 64 * BS, NULL);
  assert_non_null (c);
  test_fill (buf, 8 * BS, &seed);
  memcpy (ref + 10 * BS, buf, 8 * BS);
  /* Until the spiller has mapped RAM, writes go to the file. */
  for (i = 0; i < 500; i++) {
    struct df_cache_stats st;
    assert_int_equal (df_bdev_pwrite (c, buf, 8 * BS, 10 * BS, 0), 0);
    df_cache_stats (c, &st);
    if (st.ram_blocks == 8)
      break;
    nanosleep (&(struct timespec) { 0, 10 * 1000 * 1000 }, NULL);
  }
  assert_true (i < 500);

  /* The spill's write of the 8 blocks is held at the gate. */
  fault_gate_close ();
  sp.c = c;
  assert_int_equal (pthread_create (&ts, NULL, spill_thread, &sp), 0);
  fault_gate_wait (1);
  test_fill (buf, BS, &seed);
  memcpy (ref + 12 * BS, buf, BS);
  wr.c = c;
  wr.buf = buf;
  assert_int_equal (pthread_create (&tw, NULL, write_thread, &wr), 0);
  /* A writer that did not wait would be done in microseconds. */
  for (i = 0; i < 20 && !__atomic_load_n (&wr.done, __ATOMIC_ACQUIRE); i++)
    nanosleep (&(struct timespec) { 0, 10 * 1000 * 1000 }, NULL);
  assert_false (__atomic_load_n (&wr.done, __ATOMIC_ACQUIRE));
  fault_gate_open ();
  pthread_join (ts, NULL);
  pthread_join (tw, NULL);
  assert_int_equal (sp.r, 0);
  assert_int_equal (wr.r, 0);
  check_same (c, ref);
  assert_int_equal (df_cache_spill (c), 0);
  check_same (c, ref);
  df_bdev_close (c);
  df_bdev_close (lower);
  free (ref);
  free (buf);
}

static void
test_bypass (void **state)
{
  char *ref = malloc (SIZE), *buf = malloc (64 * BS);
  uint64_t seed = 37;
  struct df_bdev *lower = make_lower (ref, &seed), *c;
  struct df_cache_stats st;

  (void) state;
  c = open_cache (lower, DF_CACHE_RAM_DISK, "bypass.layer", 0, 16 * BS, NULL);
  assert_non_null (c);
  test_fill (buf, 64 * BS, &seed);
  assert_int_equal (df_bdev_pwrite (c, buf, 64 * BS, 100 * BS, 0), 0);
  memcpy (ref + 100 * BS, buf, 64 * BS);
  df_cache_stats (c, &st);
  assert_int_equal (st.bypassed, 64);
  check_stats (c, NULL, 64, 0);
  check_same (c, ref);
  df_bdev_close (c);
  df_bdev_close (lower);
  free (ref);
  free (buf);
}

static int
reset_faults (void **state)
{
  (void) state;
  fault_disarm_all ();
  return 0;
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

/* A lower device with asynchronous reads: it keeps what it is given
 * until the test runs the reads and tells them.
 */
struct alow {
  struct df_bdev bdev;
  struct df_bdev *mem;
  struct df_bdev_aread *q[128];
  size_t nq;
  unsigned calls, sync_reads;
};

static int
alow_pread (struct df_bdev *b, void *buf, uint32_t count, uint64_t offset)
{
  struct alow *k = (struct alow *) b;

  k->sync_reads++;
  return df_bdev_pread (k->mem, buf, count, offset);
}

static void
alow_pread_async (struct df_bdev *b, struct df_bdev_aread **a, size_t n)
{
  struct alow *k = (struct alow *) b;
  size_t i;

  k->calls++;
  for (i = 0; i < n; i++) {
    assert_true (k->nq < sizeof k->q / sizeof k->q[0]);
    k->q[k->nq++] = a[i];
  }
}

static int
alow_extents (struct df_bdev *b, uint32_t count, uint64_t offset,
              df_extent_fn fn, void *opaque)
{
  return df_bdev_extents (((struct alow *) b)->mem, count, offset, fn,
                          opaque);
}

static const struct df_bdev_ops alow_ops = {
  .name = "async lower", .pread = alow_pread,
  .pread_async = alow_pread_async, .extents = alow_extents,
};

#define AREADS 100

/* The caller's side: how often each read was told done. */
struct told {
  struct df_bdev_aio aio;
  struct df_bdev_aread rd[AREADS];
  unsigned count[AREADS];
};

static void
told_done (struct df_bdev_aio *aio, struct df_bdev_aread **a, size_t n)
{
  struct told *t = (struct told *) aio;
  size_t i;

  for (i = 0; i < n; i++)
    t->count[a[i] - t->rd]++;
}

/* Pairs of blocks as in test_pread_many: the first of every fourth
 * pair written, the second of some zeroed; the reads each cover most of
 * a pair.  Is read i wholly below the cache?
 */
static bool
pair_lower (unsigned i)
{
  return i % 4 != 0 && i % 6 != 1;
}

static void
async_mode (enum df_cache_mode mode, const char *file)
{
  char *ref = malloc (SIZE), *buf = malloc (AREADS * 2 * BS);
  uint64_t seed = 13;
  struct alow k = {
    .bdev = { .ops = &alow_ops, .size = SIZE,
              .flags = DF_BDEV_RDONLY | DF_BDEV_ASYNC },
  };
  struct told *t = calloc (1, sizeof *t);
  struct df_bdev_aread *a[AREADS];
  struct df_bdev *c;
  unsigned i, j, lower = 0, bad = AREADS;

  assert_non_null (t);
  k.mem = make_lower (ref, &seed);
  c = open_cache (&k.bdev, mode, file, 0, 0, NULL);
  assert_non_null (c);
  assert_true (c->flags & DF_BDEV_ASYNC);
  for (i = 0; i < AREADS; i++) {
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
  t->aio.done = told_done;
  memset (buf, 0xa5, AREADS * 2 * BS);
  for (i = 0; i < AREADS; i++) {
    t->rd[i] = (struct df_bdev_aread) {
      .buf = buf + (size_t) i * 2 * BS, .count = 2 * BS - 100,
      .offset = (uint64_t) i * 2 * BS + 50, .error = -1, .aio = &t->aio,
    };
    a[i] = &t->rd[i];
  }
  df_bdev_pread_async (c, a, AREADS);

  /* Those touching the cache are done, with the cache's data; the
   * others went down, once each, and wait there.
   */
  assert_int_equal (k.nq, lower);
  /* In place: each of those reads its other block from below. */
  assert_int_equal (k.sync_reads, AREADS - lower);
  for (i = 0; i < AREADS; i++) {
    unsigned down = 0;
    for (j = 0; j < k.nq; j++)
      down += k.q[j] == &t->rd[i];
    assert_int_equal (down, pair_lower (i));
    assert_int_equal (t->count[i], !pair_lower (i));
    if (!pair_lower (i)) {
      assert_int_equal (t->rd[i].error, 0);
      assert_memory_equal (t->rd[i].buf, ref + t->rd[i].offset,
                           t->rd[i].count);
    }
  }
  /* The lower device answers, one read with an error. */
  for (j = 0; j < k.nq; j++) {
    struct df_bdev_aread *r = k.q[j];
    if (j == 3) {
      r->error = EIO;
      bad = r - t->rd;
      continue;
    }
    r->error = df_bdev_pread (k.mem, r->buf, r->count, r->offset) == -1
      ? errno : 0;
  }
  df_bdev_aio_complete (k.q, k.nq);
  for (i = 0; i < AREADS; i++) {
    assert_int_equal (t->count[i], 1);
    if (i == bad) {
      assert_int_equal (t->rd[i].error, EIO);
      continue;
    }
    assert_int_equal (t->rd[i].error, 0);
    if (memcmp (t->rd[i].buf, ref + t->rd[i].offset, t->rd[i].count) != 0)
      fail_msg ("read %u has wrong data", i);
  }
  df_bdev_close (c);

  /* Over a device without asynchronous reads: not asynchronous, and
   * every read runs before the call returns.
   */
  c = open_cache (k.mem, DF_CACHE_RAM, NULL, 0, 0, NULL);
  assert_non_null (c);
  assert_false (c->flags & DF_BDEV_ASYNC);
  memset (t->count, 0, sizeof t->count);
  memset (buf, 0xa5, AREADS * 2 * BS);
  df_bdev_pread_async (c, a, AREADS);
  for (i = 0; i < AREADS; i++) {
    assert_int_equal (t->count[i], 1);
    assert_int_equal (t->rd[i].error, 0);
  }
  df_bdev_close (c);
  df_bdev_close (k.mem);
  free (t);
  free (buf);
  free (ref);
}

/* Asynchronous reads: those wholly below the cache go down to the lower
 * device's pread_async; the others run in place with the cache's data.
 */
static void
test_pread_async (void **state)
{
  (void) state;
  async_mode (DF_CACHE_RAM, NULL);
  async_mode (DF_CACHE_DISK, "async.layer");
}

int
main (void)
{
#define T(fn) cmocka_unit_test_setup (fn, reset_faults)
  const struct CMUnitTest tests[] = {
    T (test_ram),
    T (test_disk),
    T (test_ram_disk),
    T (test_recycled_ram),
    T (test_resume),
    T (test_save),
    T (test_save_crash),
    T (test_save_no_boot_id),
    T (test_park_flush_crash),
    T (test_park_stale_record),
    T (test_park_during_flush),
    T (test_park_errors),
    T (test_limits),
    T (test_threads),
    T (test_fail_alloc_ram),
    T (test_fail_alloc_ram_disk),
    T (test_fail_zero_alloc),
    T (test_fail_persistent_fsync),
    T (test_fail_disk_write),
    T (test_fail_spill),
    T (test_fail_read),
    T (test_no_stale_message),
    T (test_fast_zero),
    T (test_accounting_races),
    T (test_bypass),
    T (test_write_while_evicting),
    T (test_pread_many),
    T (test_pread_async),
  };

  return cmocka_run_group_tests (tests, tmpdir_setup, tmpdir_teardown);
}
