/* Unit tests: common/util (names, sizes, MACs, files, CRC-32C). */
#include <config.h>

#include "test-helpers.h"
#include "crc32c.h"

static void
test_names (void **state)
{
  char longname[80];

  (void) state;
  assert_true (df_name_valid ("win10-lab_2.1"));
  assert_true (df_name_valid ("a"));
  assert_false (df_name_valid (""));
  assert_false (df_name_valid (NULL));
  assert_false (df_name_valid ("."));
  assert_false (df_name_valid (".."));
  assert_true (df_name_valid ("..."));
  assert_false (df_name_valid ("../etc"));
  assert_false (df_name_valid ("a/b"));
  assert_false (df_name_valid ("a b"));
  assert_false (df_name_valid ("caf\xc3\xa9"));
  assert_false (df_name_valid ("x\ty"));
  memset (longname, 'a', 64);
  longname[64] = '\0';
  assert_true (df_name_valid (longname));
  longname[64] = 'a';
  longname[65] = '\0';
  assert_false (df_name_valid (longname));
  assert_int_equal (df_name_check ("vdisk", "../x"), -1);
  assert_error_contains ("invalid vdisk name \"../x\"");
  assert_int_equal (df_name_check ("device", "a\x01"), -1);
  assert_error_contains ("a\\x01");
}

static void
test_sizes (void **state)
{
  uint64_t v;
  char buf[32];

  (void) state;
  assert_int_equal (df_parse_size ("4096", &v), 0);
  assert_int_equal (v, 4096);
  assert_int_equal (df_parse_size ("64K", &v), 0);
  assert_int_equal (v, 65536);
  assert_int_equal (df_parse_size ("2GiB", &v), 0);
  assert_int_equal (v, 2ULL << 30);
  assert_int_equal (df_parse_size ("1t", &v), 0);
  assert_int_equal (v, 1ULL << 40);
  assert_int_equal (df_parse_size ("", &v), -1);
  assert_int_equal (df_parse_size ("-1", &v), -1);
  assert_int_equal (df_parse_size ("12Q", &v), -1);
  assert_int_equal (df_parse_size ("99999999999T", &v), -1);
  assert_int_equal (df_parse_size ("18446744073709551616", &v), -1);
  assert_string_equal (df_format_size (1536, buf, sizeof buf), "1.5 KiB");
  assert_string_equal (df_format_size (10, buf, sizeof buf), "10 B");
}

static void
test_mac (void **state)
{
  uint8_t mac[6];
  char buf[18];

  (void) state;
  assert_int_equal (df_parse_mac ("52:54:00:AB:cd:01", mac), 0);
  assert_string_equal (df_format_mac (mac, buf), "52:54:00:ab:cd:01");
  assert_int_equal (df_parse_mac ("52-54-00-ab-cd-01", mac), 0);
  assert_int_equal (df_parse_mac ("52:54:00:ab:cd", mac), -1);
  assert_int_equal (df_parse_mac ("52:54:00:ab:cd:0g", mac), -1);
  assert_int_equal (df_parse_mac ("525400abcd01xxxxx", mac), -1);
}

static void
test_files (void **state)
{
  char *dir = test_tmpdir ();
  char *p = test_path (dir, "f");
  char *data = NULL;
  size_t len;

  (void) state;
  assert_int_equal (df_write_file_atomic (p, "hello", 5, 0600), 0);
  assert_int_equal (df_read_file (p, 100, &data, &len), 0);
  assert_int_equal (len, 5);
  assert_string_equal (data, "hello");
  free (data);
  assert_int_equal (df_read_file (p, 3, &data, &len), -1);
  assert_error_contains ("larger than");
  assert_int_equal (df_read_file (dir, 100, &data, &len), -1);

  /* A rewrite (atomic rename) changes the stamp; nothing else does. */
  {
    struct df_file_stamp a, b;

    assert_int_equal (df_file_stamp_get (p, &a), 0);
    assert_int_equal (df_file_stamp_get (p, &b), 0);
    assert_true (df_file_stamp_equal (&a, &b));
    assert_int_equal (df_write_file_atomic (p, "hello", 5, 0600), 0);
    assert_int_equal (df_file_stamp_get (p, &b), 0);
    assert_false (df_file_stamp_equal (&a, &b));
    free (p);
    p = test_path (dir, "absent");
    assert_int_equal (df_file_stamp_get (p, &b), -1);
    assert_int_equal (errno, ENOENT);
    assert_error_contains ("absent");
  }
  free (p);
  p = test_path (dir, "a/b/c");
  assert_int_equal (df_mkdir_p (p, 0755), 0);
  assert_int_equal (df_mkdir_p (p, 0755), 0);
  free (p);
  test_tmpdir_free (dir);
}

static void
test_misc (void **state)
{
  char buf[64];
  uint8_t bytes[4], big[8192] = { 0 };

  (void) state;
  assert_int_equal (df_crc32c (0, "123456789", 9), 0xe3069283);
  {
    /* RFC 3720's vectors (8 bytes at a time, then 1), and chaining at
     * odd places.
     */
    uint8_t v[32];
    unsigned i;
    for (i = 0; i < 32; i++)
      v[i] = i;
    assert_int_equal (df_crc32c (0, v, 32), 0x46dd794e);
    for (i = 0; i < 32; i++)
      assert_int_equal (df_crc32c (df_crc32c (0, v, i), v + i, 32 - i),
                        0x46dd794e);
    memset (v, 0xff, 32);
    assert_int_equal (df_crc32c (0, v, 32), 0x62a8ab43);
    memset (v, 0, 32);
    assert_int_equal (df_crc32c (0, v, 32), 0x8a9136aa);
  }
  assert_string_equal (df_hex ("\x01\xab", 2, buf), "01ab");
  assert_int_equal (df_unhex ("01ab02ff", bytes, 4), 0);
  assert_int_equal (bytes[3], 0xff);
  assert_int_equal (df_unhex ("01ab02f", bytes, 4), -1);
  assert_int_equal (df_unhex ("01ab02fz", bytes, 4), -1);
  assert_true (df_is_zero (big, sizeof big));
  big[8191] = 1;
  assert_false (df_is_zero (big, sizeof big));
  assert_true (df_is_zero (big, 8191));
  big[3] = 1;
  assert_false (df_is_zero (big, 4));
  assert_string_equal (df_quote ("a\"b\n", buf, sizeof buf), "a\\x22b\\x0a");
}

/* A message never outlives its failure: an error handled and swallowed
 * by its caller must not be reported for a later failure.
 */
static void
test_error_stale (void **state)
{
  struct df_error_saved saved;

  (void) state;
  /* A failure some caller handled (an ENOENT meaning "create it")... */
  assert_int_equal (df_error (ENOENT, "cache.layer: stale text"), -1);
  /* ...then a failure that set errno alone reports its own text. */
  errno = EIO;
  assert_string_equal (df_error_get (), strerror (EIO));
  /* Context added on the way up goes on that text, not the old one. */
  df_error_prefix ("read %s", "x.layer");
  assert_int_equal (errno, EIO);
  assert_string_equal (df_error_get (), "read x.layer: Input/output error");

  /* Cleared where handled: gone even if the next errno is the same. */
  df_error (ENOENT, "handled text");
  df_error_clear ();
  errno = ENOENT;
  assert_null (strstr (df_error_get (), "handled text"));

  /* A message holds while errno is the one it came with. */
  df_error_errno ("open %s", "y");
  assert_string_equal (df_error_get (), "open y: No such file or directory");

  /* Cleanup in a failure path keeps the failure's message. */
  df_error (EINVAL, "the real failure");
  df_error_save (&saved);
  df_error (EACCES, "cleanup failed too");
  df_error_restore (&saved);
  assert_int_equal (errno, EINVAL);
  assert_string_equal (df_error_get (), "the real failure");

  /* Helpers that allocate name their failure. */
  {
    char *p = df_path_join ("a", "b");
    assert_string_equal (p, "a/b");
    free (p);
  }
  df_error_clear ();
}

int
main (void)
{
  const struct CMUnitTest tests[] = {
    cmocka_unit_test (test_names),
    cmocka_unit_test (test_sizes),
    cmocka_unit_test (test_mac),
    cmocka_unit_test (test_files),
    cmocka_unit_test (test_misc),
    cmocka_unit_test (test_error_stale),
  };

  return cmocka_run_group_tests (tests, NULL, NULL);
}
