/* Unit tests: the plugin's img/ and edit/ exports and its export list,
 * on a real farm (exports.c has no nbdkit calls).
 */
#include <config.h>

#include <errno.h>

#include "test-farm.h"
#include "plugin.h"

struct df_farmstate *farmstate;

static char *dir, *farm;

static int
setup (void **state)
{
  struct df_farmstate_params p = { 0 };

  (void) state;
  dir = test_tmpdir ();
  farm = test_farm_make (dir, 1024 * 1024, 3);
  test_farm_device (farm, "pc1", "base", "ram", "test");
  p.dir = farm;
  farmstate = df_farmstate_new (&p);
  assert_non_null (farmstate);
  return 0;
}

static int
teardown (void **state)
{
  (void) state;
  df_farmstate_free (farmstate);
  free (farm);
  test_tmpdir_free (dir);
  return 0;
}

static struct df_export_name
name (const char *s)
{
  struct df_export_name en;

  assert_int_equal (df_export_parse (s, &en), 0);
  return en;
}

/* The version's content hash as the manifest has it, in hex. */
static const char *
hash_of (unsigned num, char *buf)
{
  struct df_farm_ref *r = df_farmstate_get (farmstate);
  struct df_vdisk *vd = df_farm_load_vdisk (r->farm, r->server, "base", NULL,
                                            NULL);

  assert_non_null (vd);
  df_hex (df_vdisk_version (vd, num)->hash, DF_HASH_LEN, buf);
  df_vdisk_free (vd);
  df_farm_ref_put (r);
  return buf;
}

static void
test_image (void **state)
{
  struct df_export_name en = name ("img/base");
  struct df_chain_ref *c, *c2;
  char *desc = NULL, want[256], hex[2 * DF_HASH_LEN + 1];

  (void) state;
  c = image_open (&en, &desc);
  assert_non_null (c);
  snprintf (want, sizeof want, "vdisk base version 1 (production), read-only "
            "vdisk=base version=1 hash=%s", hash_of (1, hex));
  assert_string_equal (desc, want);
  free (desc);
  en = name ("img/base@1");
  c2 = image_open (&en, &desc);
  assert_ptr_equal (c, c2);                     /* one shared chain */
  free (desc);
  df_farmstate_chain_put (farmstate, c);
  df_farmstate_chain_put (farmstate, c2);
  en = name ("img/base@7");
  assert_null (image_open (&en, &desc));
  assert_int_equal (errno, ENOENT);
  assert_error_contains ("has no version 7");
  en = name ("img/nosuch");
  assert_null (image_open (&en, &desc));
  assert_error_contains ("not in any store");
}

static void
test_editor (void **state)
{
  struct df_export_name en;
  struct editor *e;
  char *desc = NULL, *store = test_path (farm, "store");
  unsigned num;

  (void) state;
  assert_null (editor_open ("base", &desc));
  assert_int_equal (errno, ENOENT);
  assert_error_contains ("has no maintenance version");
  assert_int_equal (df_version_new (store, "base", &num), 0);
  e = editor_open ("base", &desc);
  assert_non_null (e);
  assert_string_equal (desc, "vdisk base version 2 (maintenance), writable "
                       "vdisk=base version=2");
  free (desc);
  assert_null (editor_open ("base", &desc));
  assert_int_equal (errno, EBUSY);
  assert_error_contains ("already being edited");
  /* Only its editor sees a maintenance version. */
  en = name ("img/base@2");
  assert_null (image_open (&en, &desc));
  assert_int_equal (errno, EACCES);
  assert_int_equal (df_bdev_pwrite (editor_bdev (e), "E", 1, 0, 0), 0);
  assert_int_equal (editor_close (e), 0);
  e = editor_open ("base", &desc);
  assert_non_null (e);
  free (desc);
  assert_int_equal (editor_close (e), 0);
  free (store);
}

static char listed[4096];

static int
add (void *opaque, const char *n, const char *desc)
{
  (void) opaque;
  snprintf (listed + strlen (listed), sizeof listed - strlen (listed),
            "%s: %s\n", n, desc);
  return 0;
}

static int
add_fails (void *opaque, const char *n, const char *desc)
{
  (void) opaque;
  (void) n;
  (void) desc;
  return df_error (ENOMEM, "list full");
}

static void
test_list (void **state)
{
  char want[512], hex[2 * DF_HASH_LEN + 1];
  char *store = test_path (farm, "store");
  unsigned num;

  (void) state;
  assert_int_equal (df_version_new (store, "base", &num), 0);
  listed[0] = '\0';
  assert_int_equal (exports_list (add, NULL), 0);
  snprintf (want, sizeof want,
            "img/base: vdisk base, production version 1 vdisk=base version=1 "
            "hash=%s\n"
            "edit/base: vdisk base, maintenance version 2 vdisk=base "
            "version=2\n"
            "dev/pc1: device pc1 (test): vdisk base\n", hash_of (1, hex));
  assert_string_equal (listed, want);
  /* A vDisk in two stores is one export: the one an open finds. */
  {
    char *other = test_path (dir, "other"), *cmd;
    struct df_farm *f = df_farm_open (farm);

    assert_non_null (f);
    assert_int_equal (df_farm_add (f, DF_KIND_STORE, "zother"), 0);
    assert_int_equal (df_farm_set (f, DF_KIND_STORE, "zother", "path", other),
                      0);
    assert_int_equal (df_farm_save (f), 0);
    df_farm_free (f);
    assert_int_equal (df_mkdir_p (other, 0755), 0);
    assert_true (asprintf (&cmd, "cp -a '%s/vdisks' '%s/'", store, other) > 0);
    assert_int_equal (system (cmd), 0);
    listed[0] = '\0';
    assert_int_equal (exports_list (add, NULL), 0);
    assert_string_equal (listed, want);
    free (cmd);
    free (other);
  }
  assert_int_equal (exports_list (add_fails, NULL), -1);
  assert_error_contains ("list full");
  free (store);
}

int
main (void)
{
  const struct CMUnitTest tests[] = {
    cmocka_unit_test_setup_teardown (test_image, setup, teardown),
    cmocka_unit_test_setup_teardown (test_editor, setup, teardown),
    cmocka_unit_test_setup_teardown (test_list, setup, teardown),
  };

  return cmocka_run_group_tests (tests, NULL, NULL);
}
