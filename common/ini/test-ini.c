/* Unit tests: common/ini (parsing with inih, line-preserving edits). */
#include <config.h>

#include "test-helpers.h"
#include "ini/ini.h"

static const char sample[] =
  "# a comment at the top\n"
  "[farm]\n"
  "name = lab\n"
  "; keep me\n"
  "colour = blue\n"
  "\n"
  "[server alpha-with-a-rather-long-name-that-inih-would-truncate-xx]\n"
  "address = 10.0.0.1\n"
  "\n"
  "[site x]\n"
  "subnets = 10.0.0.0/24\n";

static struct df_ini *
parse (const char *text)
{
  return df_ini_parse (text, strlen (text), "test.conf");
}

static void
test_parse (void **state)
{
  struct df_ini *ini = parse (sample);
  const char **secs;

  (void) state;
  assert_non_null (ini);
  assert_string_equal (df_ini_get (ini, "farm", "name"), "lab");
  assert_string_equal (df_ini_get (ini, "farm", "colour"), "blue");
  assert_null (df_ini_get (ini, "farm", "missing"));
  assert_string_equal (df_ini_get (ini, "server alpha-with-a-rather-long-name-"
                                   "that-inih-would-truncate-xx", "address"),
                       "10.0.0.1");
  secs = df_ini_sections (ini);
  assert_string_equal (secs[0], "farm");
  assert_string_equal (secs[2], "site x");
  assert_null (secs[3]);
  free (secs);
  df_ini_free (ini);
}

static void
test_bad (void **state)
{
  char *huge;

  (void) state;
  assert_null (parse ("[farm]\nname = a\nname = b\n"));
  assert_error_contains ("line 3: key \"name\" repeats line 2");
  assert_null (parse ("[farm]\njust words\n"));
  assert_error_contains ("line 2");
  assert_null (parse ("[farm\nname = a\n"));
  assert_error_contains ("line 1");
  assert_null (df_ini_parse ("[a]\nx = 1\0y", 10, "nul.conf"));
  assert_error_contains ("NUL");
  huge = malloc (DF_INI_LINE_MAX + 100);
  memset (huge, 'x', DF_INI_LINE_MAX + 99);
  memcpy (huge, "k = ", 4);
  huge[DF_INI_LINE_MAX + 99] = '\0';
  assert_null (parse (huge));
  assert_error_contains ("longer than");
  free (huge);
}

/* The syntax of ini.h whatever inih's build options (this file is also
 * built as ini-upstream-inih, with inih's upstream defaults in force:
 * continuation lines, inline comments, a 200-byte line buffer).
 */
static void
test_syntax_any_inih (void **state)
{
  char *text, *value;
  struct df_ini *ini;

  (void) state;
  ini = parse ("[a]\n"
               "cmd = quiet ;not a comment # nor this\n"
               "  indented = still a key\n"
               "colon : value\n"
               "empty =\n");
  assert_non_null (ini);
  assert_string_equal (df_ini_get (ini, "a", "cmd"),
                       "quiet ;not a comment # nor this");
  assert_string_equal (df_ini_get (ini, "a", "indented"), "still a key");
  assert_string_equal (df_ini_get (ini, "a", "colon"), "value");
  assert_string_equal (df_ini_get (ini, "a", "empty"), "");
  df_ini_free (ini);

  /* Never a continuation of the previous value. */
  assert_null (parse ("[a]\nk = v\n   more words\n"));
  assert_error_contains ("line 3");

  /* A value far longer than inih's default line buffer, kept whole. */
  value = malloc (5001);
  memset (value, 'v', 5000);
  value[4999] = 'Z';
  value[5000] = '\0';
  assert_true (asprintf (&text, "[a]\nk = %s\nnext = 1\n", value) > 0);
  ini = parse (text);
  assert_non_null (ini);
  assert_string_equal (df_ini_get (ini, "a", "k"), value);
  assert_string_equal (df_ini_get (ini, "a", "next"), "1");
  df_ini_free (ini);
  free (text);
  free (value);

  /* The first error is the one reported. */
  assert_null (parse ("[a]\nwords\nk = 1\nk = 2\n"));
  assert_error_contains ("line 2: syntax error");
  assert_null (parse ("[a]\nk = 1\nk = 2\nwords\n"));
  assert_error_contains ("line 3: key \"k\" repeats line 2");
}

static void
test_edit_keeps_comments (void **state)
{
  struct df_ini *ini = parse (sample);
  char *text;

  (void) state;
  assert_int_equal (df_ini_set (ini, "farm", "name", "  school  "), 0);
  assert_int_equal (df_ini_set (ini, "farm", "new", "1"), 0);
  assert_int_equal (df_ini_set (ini, "store main", "path", "/srv/main"), 0);
  assert_int_equal (df_ini_unset (ini, "farm", "colour"), 0);
  text = df_ini_format (ini, NULL);
  assert_string_equal (text,
    "# a comment at the top\n"
    "[farm]\n"
    "name = school\n"
    "; keep me\n"
    "new = 1\n"
    "\n"
    "[server alpha-with-a-rather-long-name-that-inih-would-truncate-xx]\n"
    "address = 10.0.0.1\n"
    "\n"
    "[site x]\n"
    "subnets = 10.0.0.0/24\n"
    "\n"
    "[store main]\n"
    "path = /srv/main\n");
  free (text);
  assert_int_equal (df_ini_remove_section (ini, "site x"), 0);
  assert_false (df_ini_has_section (ini, "site x"));
  assert_true (df_ini_has_section (ini, "store main"));
  text = df_ini_format (ini, NULL);
  assert_null (strstr (text, "10.0.0.0/24"));
  assert_null (strstr (text, "\n\n\n"));
  free (text);
  df_ini_free (ini);
}

static void
test_edit_refused (void **state)
{
  struct df_ini *ini = parse (sample);

  (void) state;
  assert_int_equal (df_ini_set (ini, "farm", "a=b", "1"), -1);
  assert_int_equal (df_ini_set (ini, "farm", "k", "two\nlines"), -1);
  assert_error_contains ("newline");
  assert_int_equal (df_ini_set (ini, "bad]section", "k", "v"), -1);
  assert_int_equal (df_ini_set (ini, "farm", "", "v"), -1);
  /* Nothing changed. */
  assert_string_equal (df_ini_get (ini, "farm", "name"), "lab");
  df_ini_free (ini);
}

static void
test_save_load (void **state)
{
  char *dir = test_tmpdir ();
  char *p = test_path (dir, "x.conf");
  struct df_ini *ini = df_ini_new (p), *back;

  (void) state;
  assert_int_equal (df_ini_set (ini, "a", "k", "v;with # things"), 0);
  assert_int_equal (df_ini_save (ini, p), 0);
  back = df_ini_load (p);
  assert_non_null (back);
  assert_string_equal (df_ini_get (back, "a", "k"), "v;with # things");
  df_ini_free (back);
  df_ini_free (ini);
  assert_null (df_ini_load ("/nonexistent/x.conf"));
  free (p);
  test_tmpdir_free (dir);
}

int
main (void)
{
  const struct CMUnitTest tests[] = {
    cmocka_unit_test (test_parse),
    cmocka_unit_test (test_bad),
    cmocka_unit_test (test_syntax_any_inih),
    cmocka_unit_test (test_edit_keeps_comments),
    cmocka_unit_test (test_edit_refused),
    cmocka_unit_test (test_save_load),
  };

  return cmocka_run_group_tests (tests, NULL, NULL);
}
