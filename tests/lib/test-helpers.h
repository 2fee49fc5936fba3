/* diskfarm — helpers for cmocka unit tests. */
#ifndef DISKFARM_TEST_HELPERS_H
#define DISKFARM_TEST_HELPERS_H

#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "error.h"
#include "util.h"

/* A fresh directory under $TMPDIR, removed by test_tmpdir_free. */
static inline char *
test_tmpdir (void)
{
  const char *base = getenv ("TMPDIR");
  char *d;

  if (asprintf (&d, "%s/diskfarm-test.XXXXXX", base ? base : "/tmp") == -1)
    abort ();
  if (mkdtemp (d) == NULL)
    abort ();
  return d;
}

static inline void
test_tmpdir_free (char *d)
{
  df_remove_tree (d);
  free (d);
}

/* A group fixture: a fresh tmpdir for the whole group, removed after.
 *   return cmocka_run_group_tests (tests, tmpdir_setup, tmpdir_teardown);
 */
static char *tmpdir;

static inline int
tmpdir_setup (void **state)
{
  (void) state;
  tmpdir = test_tmpdir ();
  return 0;
}

static inline int
tmpdir_teardown (void **state)
{
  (void) state;
  test_tmpdir_free (tmpdir);
  return 0;
}

static inline char *
test_path (const char *dir, const char *name)
{
  char *p = df_path_join (dir, name);

  assert_non_null (p);
  return p;
}

/* Writes text to dir/name. */
static inline void
test_write (const char *dir, const char *name, const char *text)
{
  char *p = test_path (dir, name);

  assert_int_equal (df_write_file_atomic (p, text, strlen (text), 0644), 0);
  free (p);
}

/* Asserts that a call failed and its message contains needle. */
#define assert_error_contains(needle)                                   \
  do {                                                                  \
    const char *msg_ = df_error_get ();                                 \
    if (strstr (msg_, (needle)) == NULL)                                \
      fail_msg ("error \"%s\" does not mention \"%s\"", msg_, (needle)); \
  } while (0)

/* Deterministic pseudo-random numbers (xorshift64*). */
static inline uint64_t
test_rand (uint64_t *state)
{
  uint64_t x = *state;

  x ^= x >> 12;
  x ^= x << 25;
  x ^= x >> 27;
  *state = x;
  return x * 0x2545F4914F6CDD1DULL;
}

static inline void
test_fill (void *buf, size_t len, uint64_t *state)
{
  unsigned char *p = buf;
  size_t i;

  for (i = 0; i < len; i += 8) {
    uint64_t v = test_rand (state);
    memcpy (p + i, &v, len - i < 8 ? len - i : 8);
  }
}

#endif
