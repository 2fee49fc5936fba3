/* Unit tests: common/session/farmstate.c (farm snapshots, shared chains)
 * and the farm change detection it relies on (common/farm/stamp.c).
 */
#include <config.h>

#include <errno.h>
#include <fcntl.h>
#include <sys/stat.h>

#include "test-farm.h"
#include "session/farmstate.h"

static char *dir, *farm;
static struct df_farmstate *fs;
static unsigned errors_logged;
static char last_warning[256];

static void
log_hook (void *opaque, enum df_log_level level, const char *msg)
{
  (void) opaque;
  if (level == DF_LOG_ERROR && strstr (msg, "keeping the last good one"))
    errors_logged++;
  if (level == DF_LOG_WARNING)
    snprintf (last_warning, sizeof last_warning, "%s", msg);
}

static int
setup (void **state)
{
  struct df_farmstate_params p = { .log = log_hook };

  (void) state;
  dir = test_tmpdir ();
  farm = test_farm_make (dir, 1024 * 1024, 7);
  test_farm_device (farm, "pc1", "base", "ram", "production");
  p.dir = farm;
  fs = df_farmstate_new (&p);
  assert_non_null (fs);
  errors_logged = 0;
  return 0;
}

static int
teardown (void **state)
{
  (void) state;
  df_farmstate_free (fs);
  free (farm);
  test_tmpdir_free (dir);
  return 0;
}

static const char *
cache_of (const struct df_farm_ref *r, const char *device)
{
  return df_farm_get (r->farm, DF_KIND_DEVICE, device, "cache");
}

static void
test_snapshots (void **state)
{
  struct df_farm_ref *a, *b, *c;

  (void) state;
  a = df_farmstate_get (fs);
  assert_non_null (a);
  assert_string_equal (a->server, "srv1");
  assert_string_equal (cache_of (a, "pc1"), "ram");
  /* An edit is seen at once; the held snapshot stays as it was. */
  test_farm_device (farm, "pc1", "base", "disk", "production");
  b = df_farmstate_get (fs);
  assert_string_equal (cache_of (b, "pc1"), "disk");
  assert_string_equal (cache_of (a, "pc1"), "ram");
  test_farm_device (farm, "pc2", "base", "ram", "production");
  c = df_farmstate_get (fs);
  assert_true (df_farm_exists (c->farm, DF_KIND_DEVICE, "pc2"));
  assert_false (df_farm_exists (a->farm, DF_KIND_DEVICE, "pc2"));
  df_farm_ref_put (a);
  df_farm_ref_put (b);
  df_farm_ref_put (c);
  df_farm_ref_put (NULL);
}

static void
test_broken_farm_keeps_last_good (void **state)
{
  struct df_farm_ref *a, *b;

  (void) state;
  test_write (farm, "devices.d/bad.conf", "[device]\nmac = nonsense\n");
  a = df_farmstate_get (fs);
  assert_non_null (a);
  assert_true (df_farm_exists (a->farm, DF_KIND_DEVICE, "pc1"));
  assert_false (df_farm_exists (a->farm, DF_KIND_DEVICE, "bad"));
  b = df_farmstate_get (fs);
  assert_ptr_equal (a, b);
  assert_int_equal (errors_logged, 1);         /* once per change */
  df_farm_ref_put (a);
  df_farm_ref_put (b);
  test_write (farm, "devices.d/bad.conf",
              "[device]\nmac = 52:54:00:00:00:77\nvdisk = base\n");
  a = df_farmstate_get (fs);
  assert_true (df_farm_exists (a->farm, DF_KIND_DEVICE, "bad"));
  df_farm_ref_put (a);
}

/* The farm's only server is renamed: this server is the new name (no
 * name was given), and the log says so.
 */
static void
test_server_renamed (void **state)
{
  char *conf = test_path (farm, "farm.conf"), *text, *at, *edited;
  struct df_farm_ref *r;
  size_t len;

  (void) state;
  r = df_farmstate_get (fs);
  assert_string_equal (r->server, "srv1");
  df_farm_ref_put (r);
  assert_int_equal (df_read_file (conf, 1 << 20, &text, &len), 0);
  at = strstr (text, "[server srv1]");
  assert_non_null (at);
  assert_true (asprintf (&edited, "%.*s[server srv2]%s", (int) (at - text),
                         text, at + strlen ("[server srv1]")) > 0);
  assert_int_equal (df_write_file_atomic (conf, edited, strlen (edited),
                                          0644), 0);
  last_warning[0] = '\0';
  r = df_farmstate_get (fs);
  assert_string_equal (r->server, "srv2");
  assert_non_null (strstr (last_warning, "this server is now \"srv2\" "
                           "(was \"srv1\")"));
  df_farm_ref_put (r);
  free (edited);
  free (text);
  free (conf);
}

static void
test_chains_shared (void **state)
{
  struct df_farm_ref *r = df_farmstate_get (fs);
  struct df_vdisk *vd = df_farm_load_vdisk (r->farm, r->server, "base", NULL,
                                            NULL);
  struct df_chain_ref *a, *b, *c;

  (void) state;
  assert_non_null (vd);
  a = df_farmstate_chain (fs, vd, 1);
  b = df_farmstate_chain (fs, vd, 1);
  assert_non_null (a);
  assert_ptr_equal (a, b);
  assert_true (a->sealed);
  assert_int_equal (a->version, 1);
  assert_memory_equal (a->hash, vd->versions[0].hash, DF_HASH_LEN);
  assert_null (df_farmstate_chain (fs, vd, 9));
  assert_int_equal (errno, ENOENT);
  assert_error_contains ("has no version 9");
  df_farmstate_chain_put (fs, a);
  c = df_farmstate_chain (fs, vd, 1);
  assert_ptr_equal (b, c);                      /* still held by b */
  df_farmstate_chain_put (fs, b);
  df_farmstate_chain_put (fs, c);
  df_farmstate_chain_put (fs, NULL);
  df_vdisk_free (vd);
  df_farm_ref_put (r);
}

/* Sets a file's mtime to the given second (a settled past). */
static void
set_mtime (const char *rel, time_t sec)
{
  struct timespec ts[2] = { { sec, 0 }, { sec, 0 } };
  char *p = test_path (farm, rel);

  assert_int_equal (utimensat (AT_FDCWD, p, ts, 0), 0);
  free (p);
}

static void
settle (void)
{
  set_mtime ("farm.conf", 1000000000);
  set_mtime ("devices.d/pc1.conf", 1000000000);
  set_mtime ("devices.d", 1000000000);
}

static void
test_stamp (void **state)
{
  struct df_farm_stamp s0, s1;

  (void) state;
  /* Just written: unsettled, so counted as changed even if equal. */
  df_farm_stamp_take (farm, &s0);
  df_farm_stamp_take (farm, &s1);
  assert_true (df_farm_stamp_changed (&s0, &s1));
  settle ();
  df_farm_stamp_take (farm, &s0);
  df_farm_stamp_take (farm, &s1);
  assert_false (df_farm_stamp_changed (&s0, &s1));

  /* Two device files replaced within one tick, same size and mtime as
   * before: their new inodes show.
   */
  test_farm_device (farm, "pc1", "base", "ram", "production");
  test_farm_device (farm, "pc2", "base", "ram", "production");
  settle ();
  set_mtime ("devices.d/pc2.conf", 1000000000);
  df_farm_stamp_take (farm, &s0);
  test_farm_device (farm, "pc1", "base", "ram", "production");
  test_farm_device (farm, "pc2", "base", "ram", "production");
  settle ();
  set_mtime ("devices.d/pc2.conf", 1000000000);
  df_farm_stamp_take (farm, &s1);
  assert_true (df_farm_stamp_changed (&s0, &s1));

  /* A file that goes, a hidden or temporary one that comes. */
  df_farm_stamp_take (farm, &s0);
  test_write (farm, "devices.d/.pc9.conf.tmp", "x");
  test_write (farm, "devices.d/notes.txt", "x");
  set_mtime ("devices.d", 1000000000);
  df_farm_stamp_take (farm, &s1);
  assert_false (df_farm_stamp_changed (&s0, &s1));
  {
    char *p = test_path (farm, "devices.d/pc2.conf");
    assert_int_equal (unlink (p), 0);
    free (p);
  }
  set_mtime ("devices.d", 1000000000);
  df_farm_stamp_take (farm, &s1);
  assert_true (df_farm_stamp_changed (&s0, &s1));

  /* No farm at all: always changed. */
  df_farm_stamp_take ("/nonexistent/farm", &s0);
  assert_false (s0.valid);
  assert_true (df_farm_stamp_changed (&s0, &s0));
  assert_true (df_farm_device_file ("pc1.conf"));
  assert_false (df_farm_device_file (".pc1.conf"));
  assert_false (df_farm_device_file ("pc1.conf.tmp.x"));
  assert_false (df_farm_device_file (".conf"));
}

int
main (void)
{
  const struct CMUnitTest tests[] = {
    cmocka_unit_test_setup_teardown (test_snapshots, setup, teardown),
    cmocka_unit_test_setup_teardown (test_broken_farm_keeps_last_good, setup,
                                     teardown),
    cmocka_unit_test_setup_teardown (test_server_renamed, setup, teardown),
    cmocka_unit_test_setup_teardown (test_chains_shared, setup, teardown),
    cmocka_unit_test_setup_teardown (test_stamp, setup, teardown),
  };

  return cmocka_run_group_tests (tests, NULL, NULL);
}
