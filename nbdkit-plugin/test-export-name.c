/* Unit tests: NBD export name parsing, including hostile names. */
#include <config.h>

#include "test-helpers.h"
#include "export-name.h"

static void
test_good (void **state)
{
  struct df_export_name en;

  (void) state;
  assert_int_equal (df_export_parse ("img/win10", &en), 0);
  assert_int_equal (en.kind, DF_EXPORT_IMG);
  assert_string_equal (en.name, "win10");
  assert_int_equal (en.version, 0);
  assert_int_equal (df_export_parse ("img/win10@12", &en), 0);
  assert_int_equal (en.version, 12);
  assert_int_equal (df_export_parse ("dev/pc-01", &en), 0);
  assert_int_equal (en.kind, DF_EXPORT_DEV);
  assert_string_equal (en.session, "0");
  assert_int_equal (df_export_parse ("dev/pc-01@a1b2.C_3", &en), 0);
  assert_string_equal (en.session, "a1b2.C_3");
  assert_int_equal (df_export_parse ("edit/win10", &en), 0);
  assert_int_equal (en.kind, DF_EXPORT_EDIT);
}

static void
test_hostile (void **state)
{
  static const char *const bad[] = {
    "", "img/", "img", "dev/", "dev/../etc", "dev/..", "dev/.", "img/a/b",
    "img/../../etc/passwd", "/etc/passwd", "IMG/x", "img/x@", "img/x@0",
    "img/x@07", "img/x@10000", "img/x@1x", "img/x@-1", "dev/x@", "dev/x@a/b",
    "dev/x@..", "edit/x@1", "dev/a b", "dev/\xff", "dev/x\n", "img/x@1@2",
  };
  struct df_export_name en;
  char longname[5000];
  size_t i;

  (void) state;
  for (i = 0; i < sizeof bad / sizeof bad[0]; i++)
    if (df_export_parse (bad[i], &en) != -1)
      fail_msg ("\"%s\" was accepted", bad[i]);
  assert_int_equal (df_export_parse (NULL, &en), -1);
  memset (longname, 'a', sizeof longname - 1);
  longname[sizeof longname - 1] = '\0';
  memcpy (longname, "dev/", 4);
  assert_int_equal (df_export_parse (longname, &en), -1);
  assert_error_contains ("too long");
  longname[4 + 65] = '\0';
  assert_int_equal (df_export_parse (longname, &en), -1);
  assert_error_contains ("longer than 64");
  assert_int_equal (df_export_parse ("dev/../x", &en), -1);
  assert_int_equal (errno, EINVAL);
  assert_error_contains ("invalid device name");
}

int
main (void)
{
  const struct CMUnitTest tests[] = {
    cmocka_unit_test (test_good),
    cmocka_unit_test (test_hostile),
  };

  return cmocka_run_group_tests (tests, NULL, NULL);
}
