/* Unit tests: replicator/manifest (path shapes, hostile manifests). */
#include <config.h>

#include "test-helpers.h"
#include "manifest.h"

#define H64 "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"

static void
test_paths (void **state)
{
  static const struct {
    const char *path;
    bool farm;
    int kind;                   /* -1: refused */
    const char *vdisk;
    unsigned version;
  } rows[] = {
    { "vdisks/base/vdisk.conf", false, REPL_KIND_MANIFEST, "base", 0 },
    { "vdisks/base/0001.layer", false, REPL_KIND_LAYER, "base", 1 },
    { "vdisks/base/9999.layer", false, REPL_KIND_LAYER, "base", 9999 },
    { "vdisks/base/boot/vmlinuz", false, REPL_KIND_BOOT, "base", 0 },
    { "vdisks/base/vmlinuz-6.1", false, REPL_KIND_BOOT, "base", 0 },
    { "vdisks/base/a/b/c/d", false, REPL_KIND_BOOT, "base", 0 },
    { "vdisks/base/a/b/c/d/e", false, -1, NULL, 0 },
    { "vdisks/base/0000.layer", false, -1, NULL, 0 },
    { "vdisks/base/1.layer", false, -1, NULL, 0 },
    { "vdisks/base/0001.layer.part", false, -1, NULL, 0 },
    { "vdisks/base/.lock", false, -1, NULL, 0 },
    { "vdisks/base", false, -1, NULL, 0 },
    { "vdisks/../etc/passwd", false, -1, NULL, 0 },
    { "vdisks/base/../../x", false, -1, NULL, 0 },
    { "vdisks/base/./x", false, -1, NULL, 0 },
    { "/vdisks/base/vdisk.conf", false, -1, NULL, 0 },
    { "vdisks//base/vdisk.conf", false, -1, NULL, 0 },
    { "vdisks/base/vdisk.conf/", false, -1, NULL, 0 },
    { "caches/pc1/cache.layer", false, -1, NULL, 0 },
    { "vdisks/ba se/vdisk.conf", false, -1, NULL, 0 },
    { "vdisks/base/boot/vm\nlinuz", false, -1, NULL, 0 },
    { "", false, -1, NULL, 0 },
    { "farm.conf", true, REPL_KIND_FARM, "", 0 },
    { "devices.d/pc1.conf", true, REPL_KIND_FARM, "", 0 },
    { "devices.d/pc1.conf", false, -1, NULL, 0 },
    { "farm.conf", false, -1, NULL, 0 },
    { "gateway.token", true, -1, NULL, 0 },
    { "devices.d/pc1", true, -1, NULL, 0 },
    { "devices.d/x/pc1.conf", true, -1, NULL, 0 },
    { "../farm.conf", true, -1, NULL, 0 },
    { "ca.pem", true, -1, NULL, 0 },
  };
  size_t i;

  (void) state;
  for (i = 0; i < sizeof rows / sizeof rows[0]; i++) {
    enum repl_kind k;
    char vdisk[DF_NAME_MAX + 1] = "";
    unsigned v = 0;
    int r = repl_path_classify (rows[i].path, rows[i].farm, &k, vdisk, &v);

    if (rows[i].kind == -1) {
      if (r == 0)
        fail_msg ("\"%s\" accepted", rows[i].path);
      continue;
    }
    if (r == -1)
      fail_msg ("\"%s\": %s", rows[i].path, df_error_get ());
    assert_int_equal (k, rows[i].kind);
    if (!rows[i].farm) {
      assert_string_equal (vdisk, rows[i].vdisk);
      assert_int_equal (v, rows[i].version);
    }
  }
}

static void
test_parse (void **state)
{
  static const char good[] =
    "{\"store\": \"main\", \"server\": \"srv1\", \"files\": ["
    "{\"path\": \"vdisks/base/0001.layer\", \"kind\": \"layer\","
    " \"vdisk\": \"base\", \"version\": 1, \"size\": 1073750016,"
    " \"mtime_ns\": 1764581234123456789, \"hash\": \"sha256:" H64 "\"},"
    "{\"path\": \"vdisks/base/boot/vmlinuz\", \"kind\": \"boot\","
    " \"size\": 12, \"mtime_ns\": 5, \"hash\": \"" H64 "\"},"
    "{\"path\": \"vdisks/base/vdisk.conf\", \"kind\": \"manifest\","
    " \"size\": 812, \"mtime_ns\": 1, \"hash\": \"" H64 "\", \"extra\": 1}]}";
  struct repl_manifest *m = repl_manifest_parse (good, strlen (good), false,
                                                 "srv1");
  const struct repl_file *f;

  (void) state;
  if (m == NULL)
    fail_msg ("%s", df_error_get ());
  assert_int_equal (m->nfiles, 3);
  assert_string_equal (m->server, "srv1");
  f = repl_manifest_find (m, "vdisks/base/0001.layer");
  assert_non_null (f);
  assert_int_equal (f->kind, REPL_KIND_LAYER);
  assert_int_equal (f->version, 1);
  assert_true (f->size == 1073750016ULL);
  assert_true (f->mtime_ns == 1764581234123456789ULL);
  assert_int_equal (f->hash[0], 0x01);
  assert_int_equal (f->hash[31], 0xef);
  assert_true (repl_file_identical (f, f));
  assert_null (repl_manifest_find (m, "vdisks/base/0002.layer"));
  assert_non_null (repl_manifest_find (m, "vdisks/base/vdisk.conf"));
  repl_manifest_free (m);

  /* A manifest out of order is put in order. */
  {
    static const char farm[] =
      "{\"files\": [{\"path\": \"farm.conf\", \"kind\": \"farm\", \"size\": 1,"
      " \"mtime_ns\": 1, \"hash\": \"" H64 "\"},"
      "{\"path\": \"devices.d/pc1.conf\", \"kind\": \"farm\", \"size\": 1,"
      " \"mtime_ns\": 1, \"hash\": \"" H64 "\"}]}";
    m = repl_manifest_parse (farm, strlen (farm), true, "srv1");
    assert_non_null (m);
    assert_string_equal (m->files[0].path, "devices.d/pc1.conf");
    assert_non_null (repl_manifest_find (m, "farm.conf"));
    repl_manifest_free (m);
  }
}

static void
test_hostile (void **state)
{
  static const struct {
    const char *json, *error;
  } rows[] = {
    { "", "not JSON" },
    { "[]", "not a manifest" },
    { "{\"files\": {}}", "not a manifest" },
    { "{\"files\": [1]}", "lacks path" },
    { "{\"files\": [{\"path\": \"vdisks/../x\", \"kind\": \"boot\", \"size\": 1,"
      " \"mtime_ns\": 1, \"hash\": \"" H64 "\"}]}", "not a path" },
    { "{\"files\": [{\"path\": \"vdisks/v/0001.layer\", \"kind\": \"boot\","
      " \"size\": 1, \"mtime_ns\": 1, \"hash\": \"" H64 "\"}]}", "does not fit" },
    { "{\"files\": [{\"path\": \"vdisks/v/0001.layer\", \"kind\": \"layer\","
      " \"version\": 2, \"size\": 1, \"mtime_ns\": 1, \"hash\": \"" H64 "\"}]}",
      "version 2 does not fit" },
    { "{\"files\": [{\"path\": \"vdisks/v/0001.layer\", \"kind\": \"layer\","
      " \"vdisk\": \"w\", \"size\": 1, \"mtime_ns\": 1, \"hash\": \"" H64 "\"}]}",
      "does not fit" },
    { "{\"files\": [{\"path\": \"vdisks/v/0001.layer\", \"kind\": \"layer\","
      " \"size\": -1, \"mtime_ns\": 1, \"hash\": \"" H64 "\"}]}", "size" },
    { "{\"files\": [{\"path\": \"vdisks/v/0001.layer\", \"kind\": \"layer\","
      " \"size\": \"1\", \"mtime_ns\": 1, \"hash\": \"" H64 "\"}]}", "size" },
    { "{\"files\": [{\"path\": \"vdisks/v/0001.layer\", \"kind\": \"layer\","
      " \"size\": 1, \"hash\": \"" H64 "\"}]}", "mtime_ns" },
    { "{\"files\": [{\"path\": \"vdisks/v/0001.layer\", \"kind\": \"layer\","
      " \"size\": 1, \"mtime_ns\": 1, \"hash\": \"abc\"}]}", "64 hex" },
    { "{\"files\": [{\"path\": \"vdisks/v/0001.layer\", \"kind\": \"layer\","
      " \"size\": 1, \"mtime_ns\": 1, \"hash\": \"" H64 "00\"}]}", "64 hex" },
    { "{\"files\": [{\"path\": \"vdisks/v/0001.layer\", \"kind\": \"layer\","
      " \"size\": 1, \"mtime_ns\": 1, \"hash\": \"" H64 "\"},"
      "{\"path\": \"vdisks/v/0001.layer\", \"kind\": \"layer\","
      " \"size\": 1, \"mtime_ns\": 1, \"hash\": \"" H64 "\"}]}", "listed twice" },
    { "{\"files\": [], \"files\": []}", "not JSON" },
  };
  size_t i;

  (void) state;
  for (i = 0; i < sizeof rows / sizeof rows[0]; i++) {
    struct repl_manifest *m = repl_manifest_parse (rows[i].json,
                                                   strlen (rows[i].json),
                                                   false, "srv9");
    if (m) {
      repl_manifest_free (m);
      fail_msg ("row %zu accepted", i);
    }
    assert_error_contains (rows[i].error);
    assert_error_contains ("srv9");
  }
}

int
main (void)
{
  const struct CMUnitTest tests[] = {
    cmocka_unit_test (test_paths),
    cmocka_unit_test (test_parse),
    cmocka_unit_test (test_hostile),
  };

  return cmocka_run_group_tests (tests, NULL, NULL);
}
