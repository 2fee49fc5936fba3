/* Unit tests: what the names of the gateway's mount are, as the farm's
 * manifests change (catalog.c and tree.c, no FUSE involved).
 */
#include <config.h>

#include <fcntl.h>

#include "test-helpers.h"
#include "farm/farm.h"
#include "mount.h"

#define SIZE (1024 * 1024)

static struct gw_mount m;
static struct node root, img, edit;
static char *store;

static int
setup (void **state)
{
  struct df_farm_init init = { .server = "srv1" };
  char *farm, *raw, *buf = calloc (1, SIZE);
  int fd;

  (void) state;
  tmpdir_setup (state);
  farm = test_path (tmpdir, "farm");
  assert_int_equal (df_farm_create (farm, &init), 0);
  store = test_path (tmpdir, "farm/store");
  raw = test_path (tmpdir, "src.raw");
  fd = open (raw, O_WRONLY | O_CREAT | O_TRUNC, 0644);
  assert_true (fd >= 0);
  memset (buf, 0x5a, SIZE / 2);
  assert_int_equal (pwrite (fd, buf, SIZE, 0), SIZE);
  close (fd);
  assert_int_equal (df_vdisk_import (store, "v", raw, NULL), 0);
  m.catalog = catalog_new (farm, NULL);
  assert_non_null (m.catalog);
  assert_string_equal (catalog_server (m.catalog), "srv1");
  root.kind = NODE_ROOT;
  img.kind = NODE_IMG;
  img.parent = &root;
  edit.kind = NODE_EDIT;
  edit.parent = &root;
  free (farm);
  free (raw);
  free (buf);
  return 0;
}

static int
teardown (void **state)
{
  catalog_free (m.catalog);
  free (store);
  return tmpdir_teardown (state);
}

/* The node a name resolves to, or fails with ENOENT. */
static struct node
resolve (const struct node *parent, const char *name, int want)
{
  struct node n;
  int r = tree_resolve (&m, parent, name, &n);

  if (want == 0)
    assert_int_equal (r, 0);
  else {
    assert_int_equal (r, -1);
    assert_int_equal (errno, want);
  }
  return n;
}

static void
test_names (void **state)
{
  struct node vdir, v1, prod, v1b;
  char target[16];
  char **list;

  (void) state;
  resolve (&root, "img", 0);
  resolve (&root, "other", ENOENT);
  vdir = resolve (&img, "v", 0);
  assert_int_equal (vdir.kind, NODE_VDISK);
  resolve (&img, "w", ENOENT);
  resolve (&img, "..", ENOENT);
  resolve (&img, "a/b", ENOENT);
  v1 = resolve (&vdir, "1", 0);
  assert_int_equal (v1.kind, NODE_VERSION);
  assert_int_equal (v1.size, SIZE);
  assert_true (v1.sealed);
  /* One spelling per version. */
  resolve (&vdir, "01", ENOENT);
  resolve (&vdir, "+1", ENOENT);
  resolve (&vdir, "0", ENOENT);
  resolve (&vdir, "2", ENOENT);
  resolve (&vdir, "99999", ENOENT);
  prod = resolve (&vdir, "production", 0);
  assert_int_equal (prod.kind, NODE_PRODUCTION);
  assert_int_equal (tree_readlink (&m, &prod, target), 0);
  assert_string_equal (target, "1");
  resolve (&edit, "v", ENOENT);
  resolve (&v1, "x", ENOTDIR);
  list = tree_list (&m, &vdir);
  assert_non_null (list);
  assert_string_equal (list[0], "1");
  assert_string_equal (list[1], "production");
  assert_null (list[2]);
  df_strv_free (list);
  /* The same version resolves to the same identity. */
  v1b = resolve (&vdir, "1", 0);
  assert_true (node_same (&v1, &v1b));
}

static void
test_versions_change (void **state)
{
  struct node vdir, e2, e2b, v2, prod;
  unsigned num;
  char target[16];
  char **list;

  (void) state;
  vdir = resolve (&img, "v", 0);
  assert_int_equal (df_version_new (store, "v", &num), 0);
  assert_int_equal (num, 2);
  /* The maintenance version is an edit file, not an img/ file. */
  e2 = resolve (&edit, "v", 0);
  assert_int_equal (e2.kind, NODE_EDITFILE);
  assert_int_equal (e2.version, 2);
  resolve (&vdir, "2", ENOENT);
  list = tree_list (&m, &edit);
  assert_string_equal (list[0], "v");
  assert_null (list[1]);
  df_strv_free (list);
  e2.parent = &edit;
  assert_true (tree_current (&m, &e2));

  assert_int_equal (df_version_promote (store, "v", 2, DF_STATE_TEST), 0);
  resolve (&edit, "v", ENOENT);
  assert_false (tree_current (&m, &e2));   /* stale: ESTALE for the kernel */
  v2 = resolve (&vdir, "2", 0);
  assert_int_equal (v2.kind, NODE_VERSION);
  prod = resolve (&vdir, "production", 0);
  assert_int_equal (tree_readlink (&m, &prod, target), 0);
  assert_string_equal (target, "1");      /* test is not production */
  assert_int_equal (df_version_promote (store, "v", 2, DF_STATE_PRODUCTION), 0);
  assert_int_equal (tree_readlink (&m, &prod, target), 0);
  assert_string_equal (target, "2");

  /* A new maintenance version is another file under the same name. */
  assert_int_equal (df_version_new (store, "v", &num), 0);
  e2b = resolve (&edit, "v", 0);
  e2b.parent = &edit;
  assert_false (node_same (&e2, &e2b));
  assert_int_equal (df_version_delete (store, "v", num), 0);
  resolve (&edit, "v", ENOENT);
}

/* Trouble with the farm is not the vDisks going away: a farm.conf that
 * does not load keeps the last good farm, and a store that cannot be
 * looked in answers its error, not ENOENT (the watcher makes the kernel
 * forget only names that are gone).
 */
static void
test_farm_trouble (void **state)
{
  char *farm = test_path (tmpdir, "farm"), *conf = test_path (farm, "farm.conf");
  char *away = test_path (tmpdir, "store-away"), *text;
  struct node vdir, v1;
  size_t len;

  (void) state;
  vdir = resolve (&img, "v", 0);
  v1 = resolve (&vdir, "1", 0);
  v1.parent = &vdir;

  assert_int_equal (df_read_file (conf, 1 << 20, &text, &len), 0);
  test_write (farm, "farm.conf", "[server broken\n");
  resolve (&img, "v", 0);
  assert_true (tree_current (&m, &v1));
  test_write (farm, "farm.conf", text);

  assert_int_equal (rename (store, away), 0);
  assert_int_equal (symlink ("store", store), 0);   /* a loop: ELOOP */
  resolve (&img, "v", ELOOP);
  assert_true (tree_current (&m, &v1));
  assert_int_equal (unlink (store), 0);
  resolve (&img, "v", ENOENT);                      /* now it is gone */
  assert_false (tree_current (&m, &v1));
  assert_int_equal (rename (away, store), 0);
  resolve (&img, "v", 0);
  assert_true (tree_current (&m, &v1));
  free (text);
  free (away);
  free (conf);
  free (farm);
}

int
main (void)
{
  const struct CMUnitTest tests[] = {
    cmocka_unit_test (test_names),
    cmocka_unit_test (test_versions_change),
    cmocka_unit_test (test_farm_trouble),
  };

  return cmocka_run_group_tests (tests, setup, teardown);
}
