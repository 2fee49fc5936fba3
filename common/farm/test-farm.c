/* Unit tests: common/farm (farm.conf, devices.d, edits, checks). */
#include <config.h>

#include <errno.h>
#include <sys/stat.h>

#include "test-helpers.h"
#include "farm/farm.h"

static char *dir;

static int
setup (void **state)
{
  struct df_farm_init in = { .server = "alpha", .address = "10.0.0.1" };

  (void) state;
  dir = test_tmpdir ();
  return df_farm_create (dir, &in);
}

static int
teardown (void **state)
{
  (void) state;
  test_tmpdir_free (dir);
  return 0;
}

static void
test_created (void **state)
{
  struct df_farm *farm = df_farm_open (dir);
  struct df_server srv;
  const char **names;
  char *store;

  (void) state;
  assert_non_null (farm);
  assert_int_equal (df_farm_check (farm), 0);
  names = df_farm_names (farm, DF_KIND_SERVER);
  assert_string_equal (names[0], "alpha");
  assert_null (names[1]);
  free (names);
  assert_int_equal (df_farm_server (farm, "alpha", &srv), 0);
  assert_string_equal (srv.address, "10.0.0.1");
  assert_int_equal (srv.power, 1);
  assert_string_equal (df_farm_local_server (farm, NULL), "alpha");
  store = df_farm_store_path (farm, "store", "alpha");
  assert_non_null (store);
  assert_true (strncmp (store, dir, strlen (dir)) == 0);
  free (store);
  df_farm_free (farm);
  assert_int_equal (df_farm_create (dir, &(struct df_farm_init) { 0 }), -1);
  assert_error_contains ("already a farm");
}

static void
test_edits_keep_hand_edits (void **state)
{
  char *conf = test_path (dir, "farm.conf"), *text = NULL;
  struct df_farm *farm;
  FILE *fp;
  size_t len;

  (void) state;
  fp = fopen (conf, "a");
  fputs ("\n# the lab upstairs\n[site upstairs]\nsubnets = 10.1.0.0/24\n"
         "colour = green\n", fp);
  fclose (fp);

  farm = df_farm_open (dir);
  assert_non_null (farm);
  assert_int_equal (df_farm_add (farm, DF_KIND_SERVER, "beta"), 0);
  assert_int_equal (df_farm_set (farm, DF_KIND_SERVER, "beta", "address",
                                 "10.1.0.2"), 0);
  assert_int_equal (df_farm_set (farm, DF_KIND_SERVER, "beta", "site",
                                 "upstairs"), 0);
  assert_int_equal (df_farm_set (farm, DF_KIND_SERVER, "beta", "store-paths",
                                 "store:/srv/store"), 0);
  assert_int_equal (df_farm_set (farm, DF_KIND_SERVER, "beta", "power", "x"), -1);
  assert_error_contains ("power");
  assert_int_equal (df_farm_check (farm), 0);
  assert_int_equal (df_farm_save (farm), 0);
  df_farm_free (farm);

  assert_int_equal (df_read_file (conf, 1 << 20, &text, &len), 0);
  assert_non_null (strstr (text, "# the lab upstairs\n[site upstairs]\n"));
  assert_non_null (strstr (text, "colour = green"));
  free (text);
  farm = df_farm_open (dir);
  assert_non_null (farm);
  {
    char *p = df_farm_store_path (farm, "store", "beta");
    assert_string_equal (p, "/srv/store");
    free (p);
  }
  /* The site is in use: removing it breaks the check. */
  assert_int_equal (df_farm_remove (farm, DF_KIND_SITE, "upstairs"), 0);
  assert_int_equal (df_farm_check (farm), -1);
  assert_error_contains ("site \"upstairs\" does not exist");
  df_farm_free (farm);
  free (conf);
}

static void
test_devices (void **state)
{
  struct df_farm *farm = df_farm_open (dir);
  struct df_device dev;
  uint8_t mac[6] = { 0x52, 0x54, 0, 0, 0, 1 };

  (void) state;
  assert_non_null (farm);
  assert_int_equal (df_farm_add (farm, DF_KIND_DEVICE, "pc1"), 0);
  assert_int_equal (df_farm_check (farm), -1);
  assert_error_contains ("has no mac");
  assert_int_equal (df_farm_set (farm, DF_KIND_DEVICE, "pc1", "mac",
                                 "52:54:00:00:00:01"), 0);
  assert_int_equal (df_farm_set (farm, DF_KIND_DEVICE, "pc1", "vdisk", "win"), 0);
  assert_int_equal (df_farm_set (farm, DF_KIND_DEVICE, "pc1", "cache",
                                 "ram+disk:2G"), 0);
  assert_int_equal (df_farm_set (farm, DF_KIND_DEVICE, "pc1", "cache",
                                 "floppy"), -1);
  assert_int_equal (df_farm_set (farm, DF_KIND_DEVICE, "pc1", "type", "gold"), -1);
  assert_int_equal (df_farm_set_personality (farm, "pc1", "room", "101"), 0);
  assert_int_equal (df_farm_add (farm, DF_KIND_DEVICE, "pc2"), 0);
  assert_int_equal (df_farm_set (farm, DF_KIND_DEVICE, "pc2", "mac",
                                 "52-54-00-00-00-01"), 0);
  assert_int_equal (df_farm_set (farm, DF_KIND_DEVICE, "pc2", "vdisk", "win"), 0);
  assert_int_equal (df_farm_check (farm), -1);
  assert_error_contains ("same MAC");
  assert_int_equal (df_farm_remove (farm, DF_KIND_DEVICE, "pc2"), 0);
  assert_int_equal (df_farm_add (farm, DF_KIND_DEVICE, "../x"), -1);
  assert_int_equal (df_farm_check (farm), 0);
  assert_int_equal (df_farm_save (farm), 0);
  df_farm_free (farm);

  farm = df_farm_open (dir);
  assert_non_null (farm);
  assert_int_equal (df_farm_device_by_mac (farm, mac, &dev), 0);
  assert_string_equal (dev.name, "pc1");
  assert_string_equal (dev.vdisk, "win");
  assert_int_equal (dev.type, DF_TYPE_PRODUCTION);
  mac[5] = 2;
  assert_int_equal (df_farm_device_by_mac (farm, mac, &dev), -1);
  df_farm_free (farm);
}

static void
test_bad_files (void **state)
{
  char *d2 = test_tmpdir ();
  char *devs = test_path (d2, "devices.d");

  (void) state;
  assert_null (df_farm_open (d2));
  assert_error_contains ("not a farm");
  test_write (d2, "farm.conf", "[farm]\nname = x\n[server a]\naddress = 1.2.3.4\n"
              "power = many\n");
  assert_null (df_farm_open (d2));
  assert_error_contains ("power");
  test_write (d2, "farm.conf", "[farm]\n[server bad/name]\naddress = x\n");
  assert_null (df_farm_open (d2));
  assert_error_contains ("invalid server name");
  test_write (d2, "farm.conf", "[farm]\n[site s]\nsubnets = 10.0.0.0/33\n");
  assert_null (df_farm_open (d2));
  assert_error_contains ("subnets");
  test_write (d2, "farm.conf", "[farm]\nname = x\n");
  mkdir (devs, 0755);
  test_write (devs, "pc.conf", "[device]\nmac = nonsense\n");
  assert_null (df_farm_open (d2));
  assert_error_contains ("mac");
  test_write (devs, "pc.conf", "[device\n");
  assert_null (df_farm_open (d2));
  assert_error_contains ("line 1");
  free (devs);
  test_tmpdir_free (d2);
}

/* [gateway] and [farm] config-server (the gateway's keys), server
 * gateway addresses, which stores a server carries.
 */
static void
test_gateway_settings (void **state)
{
  char *d2 = test_tmpdir ();
  struct df_farm *farm;
  char host[64];
  unsigned port;

  (void) state;
  test_write (d2, "farm.conf", "[farm]\nconfig-server = a\n[gateway]\n"
              "port = 10900\ntoken-file = t\n[server a]\naddress = 1.2.3.4\n"
              "gateway = 1.2.3.4:99\nstore-paths = s:/x\n[server b]\n"
              "address = 1.2.3.5\n[store s]\npath = s\n[store u]\n"
              "path = u\n");
  farm = df_farm_open (d2);
  assert_non_null (farm);
  assert_int_equal (df_farm_check (farm), 0);
  assert_true (df_farm_server_holds (farm, "a", "s"));
  assert_false (df_farm_server_holds (farm, "a", "u"));
  assert_true (df_farm_server_holds (farm, "b", "u"));
  assert_false (df_farm_store_shared (farm, "u"));
  assert_int_equal (df_farm_set (farm, DF_KIND_STORE, "u", "shared", "yes"), 0);
  assert_true (df_farm_store_shared (farm, "u"));
  assert_true (df_farm_server_holds (farm, "a", "u"));
  assert_int_equal (df_farm_set (farm, DF_KIND_STORE, "u", "shared", "no"), 0);
  assert_false (df_farm_server_holds (farm, "a", "u"));
  assert_int_equal (df_farm_set_setting (farm, "farm", "config-server", "c"), 0);
  assert_int_equal (df_farm_check (farm), -1);
  assert_error_contains ("config-server: server \"c\" does not exist");
  df_farm_free (farm);
  test_write (d2, "farm.conf", "[gateway]\nport = high\n");
  assert_null (df_farm_open (d2));
  assert_error_contains ("[gateway]");
  test_write (d2, "farm.conf", "[server a]\naddress = a\ngateway = a b\n");
  assert_null (df_farm_open (d2));
  assert_error_contains ("gateway");
  assert_int_equal (df_address_split ("h:5", 7, host, sizeof host, &port), 0);
  assert_string_equal (host, "h");
  assert_int_equal (port, 5);
  assert_int_equal (df_address_split ("fd00::1", 7, host, sizeof host, &port), 0);
  assert_string_equal (host, "[fd00::1]");
  assert_int_equal (port, 7);
  assert_int_equal (df_address_split ("h:0", 7, host, sizeof host, &port), -1);
  test_tmpdir_free (d2);
}

/* Makes dir/vdisks/name/vdisk.conf (only its presence counts here). */
static void
fake_vdisk (const char *store, const char *name)
{
  char *d;

  assert_true (asprintf (&d, "%s/vdisks/%s", store, name) > 0);
  assert_int_equal (df_mkdir_p (d, 0755), 0);
  test_write (d, "vdisk.conf", "");
  free (d);
}

/* Which store holds a vDisk, the names of them all, and a store that
 * cannot be looked in.
 */
static void
test_find_vdisk (void **state)
{
  char *other = test_path (dir, "tail"), *first, *p, **names;
  struct df_farm *farm = df_farm_open (dir);
  const char *store = NULL;

  (void) state;
  assert_non_null (farm);
  assert_int_equal (df_farm_add (farm, DF_KIND_STORE, "tail"), 0);
  assert_int_equal (df_farm_set (farm, DF_KIND_STORE, "tail", "path",
                                 other), 0);
  first = df_farm_store_path (farm, "store", "alpha");
  assert_non_null (first);
  fake_vdisk (first, "a");
  fake_vdisk (first, "b");
  fake_vdisk (other, "b");
  fake_vdisk (other, "c");

  p = df_farm_find_vdisk (farm, "alpha", "b", &store);
  assert_string_equal (p, first);       /* the first store that has it */
  assert_string_equal (store, "store");
  free (p);
  p = df_farm_find_vdisk (farm, "alpha", "c", &store);
  assert_string_equal (p, other);
  assert_string_equal (store, "tail");
  free (p);
  assert_null (df_farm_find_vdisk (farm, "alpha", "d", NULL));
  assert_int_equal (errno, ENOENT);
  assert_error_contains ("not in any store");
  assert_null (df_farm_find_vdisk (farm, "alpha", "../b", NULL));
  assert_int_equal (errno, EINVAL);

  names = df_farm_vdisk_names (farm, "alpha");
  assert_non_null (names);
  assert_string_equal (names[0], "a");
  assert_string_equal (names[1], "b");    /* once, though in two stores */
  assert_string_equal (names[2], "c");
  assert_null (names[3]);
  df_strv_free (names);

  /* A store that cannot be looked in is not "not there" (root reads
   * anything: a file where the store's directory should be does it).
   */
  assert_int_equal (df_remove_tree (other), 0);
  test_write (dir, "tail", "not a directory");
  assert_null (df_farm_find_vdisk (farm, "alpha", "c", NULL));
  assert_int_equal (errno, ENOENT);      /* ENOTDIR: nothing there */
  assert_int_equal (unlink (other), 0);
  assert_int_equal (symlink ("tail", other), 0);   /* a loop: ELOOP */
  assert_null (df_farm_find_vdisk (farm, "alpha", "c", NULL));
  assert_int_equal (errno, ELOOP);
  assert_error_contains ("cannot look in");
  p = df_farm_find_vdisk (farm, "alpha", "a", NULL);    /* others still do */
  assert_string_equal (p, first);
  free (p);
  names = df_farm_vdisk_names (farm, "alpha");
  assert_non_null (names);
  assert_string_equal (names[0], "a");
  assert_string_equal (names[1], "b");
  assert_null (names[2]);
  df_strv_free (names);
  unlink (other);
  df_farm_free (farm);
  free (first);
  free (other);
}

int
main (void)
{
  const struct CMUnitTest tests[] = {
    cmocka_unit_test (test_created),
    cmocka_unit_test (test_edits_keep_hand_edits),
    cmocka_unit_test (test_devices),
    cmocka_unit_test (test_bad_files),
    cmocka_unit_test (test_gateway_settings),
    cmocka_unit_test (test_find_vdisk),
  };

  return cmocka_run_group_tests (tests, setup, teardown);
}
