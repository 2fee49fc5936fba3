/* Unit tests: common/util pagecache.c (leaving the page cache as it was
 * found).  The file lives in the current directory (meson runs tests in
 * the build directory, on a disk: tmpfs pages cannot be dropped).
 */
#include <config.h>

#include <fcntl.h>
#include <sys/mman.h>
#include <unistd.h>

#include "pagecache.h"
#include "test-helpers.h"

#define PAGES 64

static long page;

/* A file of PAGES pages of data, written back, in no page cache. */
static int
new_file (void)
{
  char name[] = "test-pagecache.XXXXXX";
  char *buf = malloc (PAGES * page);
  int fd = mkstemp (name);

  assert_non_null (buf);
  assert_true (fd >= 0);
  unlink (name);
  memset (buf, 0x5a, PAGES * page);
  assert_int_equal (df_pwrite_full (fd, buf, PAGES * page, 0), 0);
  assert_int_equal (fsync (fd), 0);
  assert_int_equal (posix_fadvise (fd, 0, 0, POSIX_FADV_DONTNEED), 0);
  free (buf);
  return fd;
}

/* Which pages of fd are cached: v[i] 1 or 0. */
static void
residency (int fd, unsigned char v[PAGES])
{
  void *map = mmap (NULL, PAGES * page, PROT_READ, MAP_SHARED, fd, 0);
  size_t i;

  assert_true (map != MAP_FAILED);
  assert_int_equal (mincore (map, PAGES * page, v), 0);
  munmap (map, PAGES * page);
  for (i = 0; i < PAGES; i++)
    v[i] &= 1;
}

static void
read_pages (int fd, size_t first, size_t n)
{
  char *buf = malloc (n * page);

  assert_non_null (buf);
  assert_int_equal (df_pread_full (fd, buf, n * page, first * page),
                    (ssize_t) (n * page));
  free (buf);
}

static void
test_uncached_stays_uncached (void **state)
{
  unsigned char v[PAGES], zero[PAGES] = { 0 };
  int fd = new_file ();
  struct df_cache_snap *s;

  (void) state;
  residency (fd, v);
  if (memcmp (v, zero, PAGES) != 0)
    fail_msg ("the current directory's file system keeps every page in "
              "memory (tmpfs?): run the tests from a disk");
  s = df_cache_snapshot (fd, 0, PAGES * page);
  assert_non_null (s);
  read_pages (fd, 0, PAGES);
  df_cache_release (s);
  residency (fd, v);
  assert_memory_equal (v, zero, PAGES);
  close (fd);
}

/* The pages cached before keep their place; only the others go. */
static void
test_cached_pages_stay (void **state)
{
  unsigned char v[PAGES];
  int fd = new_file ();
  struct df_cache_snap *s;
  size_t i;

  (void) state;
  read_pages (fd, 8, 16);
  s = df_cache_snapshot (fd, 0, PAGES * page);
  read_pages (fd, 0, PAGES);
  {
    int other = dup (fd);       /* the snapshot has its own descriptor */
    close (fd);
    fd = other;
  }
  df_cache_release (s);
  residency (fd, v);
  for (i = 0; i < PAGES; i++)
    assert_int_equal (v[i], i >= 8 && i < 24);
  close (fd);
}

/* A range from an unaligned offset: the pages it touches, no others. */
static void
test_range (void **state)
{
  unsigned char v[PAGES];
  int fd = new_file ();
  struct df_cache_snap *s;
  size_t i;

  (void) state;
  s = df_cache_snapshot (fd, 10 * page + 100, 3 * page);     /* pages 10-13 */
  read_pages (fd, 0, PAGES);
  df_cache_restore (s);
  residency (fd, v);
  for (i = 0; i < PAGES; i++)
    assert_int_equal (v[i], i < 10 || i > 13);
  /* Again later (pages read since): restore may be repeated. */
  read_pages (fd, 0, PAGES);
  df_cache_release (s);
  residency (fd, v);
  for (i = 0; i < PAGES; i++)
    assert_int_equal (v[i], i < 10 || i > 13);
  df_cache_release (NULL);
  df_cache_restore (NULL);
  close (fd);
}

int
main (void)
{
  const struct CMUnitTest tests[] = {
    cmocka_unit_test (test_uncached_stays_uncached),
    cmocka_unit_test (test_cached_pages_stay),
    cmocka_unit_test (test_range),
  };

  page = sysconf (_SC_PAGESIZE);
  return cmocka_run_group_tests (tests, NULL, NULL);
}
