/* Unit tests: bootsvc boot content over a real farm directory: scripts
 * per MAC, unknown MACs, auto-add, kernel/initrd and TFTP root files,
 * the TFTP resolver, reloading the farm when it changes.
 */
#include <config.h>

#include <fcntl.h>
#include <sys/stat.h>

#include "test-helpers.h"
#include "bootsvc.h"
#include "vdisk/vdisk.h"

static char *dir, *farm_dir, *root;
static struct bootsvc svc;
static const uint8_t mac1[6] = { 0x52, 0x54, 0x00, 0x00, 0x00, 0x01 };
static const uint8_t mac9[6] = { 0x52, 0x54, 0x00, 0x00, 0x00, 0x09 };

static void
edit_farm (const char *kind_name, enum df_kind k, const char *name,
           const char *key, const char *value)
{
  struct df_farm *farm = df_farm_open (farm_dir);

  assert_non_null (farm);
  if (!df_farm_exists (farm, k, name))
    assert_int_equal (df_farm_add (farm, k, name), 0);
  if (df_farm_set (farm, k, name, key, value) == -1)
    fail_msg ("%s %s: %s", kind_name, name, df_error_get ());
  assert_int_equal (df_farm_save (farm), 0);
  df_farm_free (farm);
}

/* Sets farm.conf's [farm] KEY = VALUE. */
static void
set_farm_setting (const char *key, const char *value)
{
  struct df_farm *farm = df_farm_open (farm_dir);

  assert_non_null (farm);
  assert_int_equal (df_farm_set_setting (farm, "farm", key, value), 0);
  assert_int_equal (df_farm_save (farm), 0);
  df_farm_free (farm);
}

static void
set_boot (const char *kernel, const char *initrd, const char *cmdline)
{
  char *store = test_path (farm_dir, "store");
  struct df_vdisk *vd = df_vdisk_load (store, "v");

  assert_non_null (vd);
  free (vd->boot_kernel);
  free (vd->boot_initrd);
  free (vd->boot_cmdline);
  vd->boot_kernel = kernel ? strdup (kernel) : NULL;
  vd->boot_initrd = initrd ? strdup (initrd) : NULL;
  vd->boot_cmdline = cmdline ? strdup (cmdline) : NULL;
  assert_int_equal (df_vdisk_save (vd), 0);
  df_vdisk_free (vd);
  free (store);
}

/* Replaces text in v's vdisk.conf, as an operator's editor would. */
static void
edit_manifest (const char *from, const char *to)
{
  char *path = test_path (farm_dir, "store/vdisks/v/vdisk.conf");
  char *text, *at, *out;
  size_t len;

  assert_int_equal (df_read_file (path, 1 << 20, &text, &len), 0);
  at = strstr (text, from);
  assert_non_null (at);
  assert_true (asprintf (&out, "%.*s%s%s", (int) (at - text), text, to,
                         at + strlen (from)) > 0);
  assert_int_equal (df_write_file_atomic (path, out, strlen (out), 0644), 0);
  free (out);
  free (text);
  free (path);
}

static int
setup (void **state)
{
  struct df_farm_init in = { .server = "srv1", .address = "10.0.0.1" };
  char *img, *store, *bootdir;

  (void) state;
  dir = test_tmpdir ();
  farm_dir = test_path (dir, "farm");
  root = test_path (dir, "tftp");
  assert_int_equal (df_farm_create (farm_dir, &in), 0);
  store = test_path (farm_dir, "store");
  img = test_path (dir, "disk.raw");
  test_write (dir, "disk.raw", "");
  assert_int_equal (truncate (img, 1024 * 1024), 0);
  assert_int_equal (df_vdisk_import (store, "v", img, NULL), 0);
  bootdir = test_path (store, "vdisks/v/boot");
  assert_int_equal (df_mkdir_p (bootdir, 0755), 0);
  test_write (bootdir, "vmlinuz", "KERNEL");
  test_write (bootdir, "initrd.img", "INITRD");
  assert_int_equal (df_mkdir_p (root, 0755), 0);
  test_write (root, "undionly.kpxe", "PXE-BINARY");
  edit_farm ("device", DF_KIND_DEVICE, "pc01", "mac", "52:54:00:00:00:01");
  edit_farm ("device", DF_KIND_DEVICE, "pc01", "vdisk", "v");
  memset (&svc, 0, sizeof svc);
  svc.cfg.farm_dir = farm_dir;
  svc.cfg.tftp_root = root;
  svc.cfg.http_port = 10810;
  svc.cfg.boot_timeout = 30;
  svc.farm = farm_cache_new (farm_dir, NULL);
  assert_non_null (svc.farm);
  free (img);
  free (store);
  free (bootdir);
  return 0;
}

static int
teardown (void **state)
{
  (void) state;
  farm_cache_free (svc.farm);
  free (farm_dir);
  free (root);
  test_tmpdir_free (dir);
  return 0;
}

static void
test_script_names (void **state)
{
  uint8_t m[6];

  (void) state;
  assert_int_equal (boot_parse_script_name ("52-54-00-00-00-01.ipxe", m), 0);
  assert_memory_equal (m, mac1, 6);
  assert_int_equal (boot_parse_script_name ("52:54:00:00:00:01.ipxe", m), 0);
  assert_int_equal (boot_parse_script_name ("525400000001.ipxe", m), 0);
  assert_memory_equal (m, mac1, 6);
  assert_int_equal (boot_parse_script_name ("525400000001", m), -1);
  assert_int_equal (boot_parse_script_name ("../../etc/passwd.ipxe", m), -1);
  assert_int_equal (boot_parse_script_name (".ipxe", m), -1);
}

static void
test_scripts (void **state)
{
  unsigned status;
  char *text;

  (void) state;
  text = boot_script (&svc, mac9, 0, false, true, &status);
  assert_int_equal (status, 404);
  assert_non_null (strstr (text, "no device has MAC 52:54:00:00:00:09"));
  free (text);
  assert_int_equal (svc.stats.unknown_macs, 1);

  /* Known, but the vDisk has nothing to boot yet: a script saying so. */
  text = boot_script (&svc, mac1, 0, false, true, &status);
  assert_int_equal (status, 200);
  assert_non_null (strstr (text, "echo diskfarm: vdisk v has no kernel"));
  free (text);

  set_boot ("boot/vmlinuz", "boot/initrd.img", "root=/dev/nbd0p1");
  text = boot_script (&svc, mac1, htonl (0x0a000063), true, true, &status);
  assert_int_equal (status, 200);
  assert_non_null (strstr (text, "kernel http://10.0.0.1:10810/vdisks/v/kernel "));
  assert_non_null (strstr (text, "diskfarm.servers=10.0.0.1:10809 "));
  assert_non_null (strstr (text, "diskfarm.export=dev/pc01@"));
  assert_non_null (strstr (text, "diskfarm.timeout=30 root=/dev/nbd0p1 ||"));
  free (text);
  assert_int_equal (svc.stats.scripts, 1);

  /* A write cache of the client's own reaches the kernel. */
  edit_farm ("device", DF_KIND_DEVICE, "pc01", "cache", "device");
  text = boot_script (&svc, mac1, 0, false, true, &status);
  assert_non_null (strstr (text, "diskfarm.cache=device"));
  free (text);

  /* A hand-edited cmdline iPXE would mangle: the manifest does not
   * load, and the device is told why.
   */
  set_boot ("boot/vmlinuz", "boot/initrd.img", "quiet");
  edit_manifest ("cmdline = quiet", "cmdline = quiet ${x}");
  text = boot_script (&svc, mac1, 0, false, true, &status);
  assert_int_equal (status, 200);
  assert_non_null (strstr (text, "[boot] cmdline: kernel parameters"));
  assert_non_null (strstr (text, "iPXE scripts give a meaning to"));
  free (text);
  edit_manifest ("cmdline = quiet ${x}", "cmdline = quiet");
}

static void
test_affinity_fixed (void **state)
{
  unsigned status;
  char *text;

  (void) state;
  set_boot ("boot/vmlinuz", "boot/initrd.img", NULL);
  edit_farm ("server", DF_KIND_SERVER, "srv1", "subnets", "10.0.0.0/24");
  set_farm_setting ("affinity", "fixed");
  text = boot_script (&svc, mac1, htonl (0x0a000063), true, true, &status);
  assert_non_null (strstr (text, "kernel http://10.0.0.1"));
  free (text);
  text = boot_script (&svc, mac1, htonl (0x0a010063), true, true, &status);
  assert_non_null (strstr (text, "no server holds store store in the subnet of "
                           "10.1.0.99"));
  free (text);
}

static void
test_auto_add (void **state)
{
  struct df_device dev;
  char *conf;
  struct stat st;

  (void) state;
  assert_int_equal (bootsvc_device (&svc, mac9, true, &dev), -1);
  edit_farm ("collection", DF_KIND_COLLECTION, "lab", "vdisk", "v");
  edit_farm ("collection", DF_KIND_COLLECTION, "lab", "type", "test");
  set_farm_setting ("auto-add", "yes");
  set_farm_setting ("auto-add-collection", "lab");
  assert_int_equal (bootsvc_device (&svc, mac9, false, &dev), -1);
  assert_int_equal (bootsvc_device (&svc, mac9, true, &dev), 0);
  assert_string_equal (dev.name, "lab-525400000009");
  assert_string_equal (dev.vdisk, "v");
  assert_string_equal (dev.collection, "lab");
  assert_int_equal (dev.type, DF_TYPE_TEST);
  assert_int_equal (svc.stats.devices_added, 1);
  conf = test_path (farm_dir, "devices.d/lab-525400000009.conf");
  assert_int_equal (stat (conf, &st), 0);
  free (conf);
  /* Found from now on, not added twice. */
  assert_int_equal (bootsvc_device (&svc, mac9, true, &dev), 0);
  assert_int_equal (svc.stats.devices_added, 1);

  /* A broken setting is refused on reload; the old farm stays. */
  set_farm_setting ("affinity", "sideways");
  assert_int_equal (bootsvc_device (&svc, mac9, false, &dev), 0);
  assert_null (farm_cache_new (farm_dir, NULL));
  assert_error_contains ("sideways");
}

static void
test_auto_add_limit (void **state)
{
  struct df_device dev;
  uint8_t mac[6] = { 0x02, 0, 0, 0, 0, 0 };
  int i;

  (void) state;
  edit_farm ("collection", DF_KIND_COLLECTION, "lab", "vdisk", "v");
  set_farm_setting ("auto-add", "yes");
  set_farm_setting ("auto-add-collection", "lab");
  /* A flood of new MACs: 120 a minute are added, the rest wait. */
  for (i = 0; i < 125; i++) {
    mac[4] = i >> 8;
    mac[5] = i;
    assert_int_equal (bootsvc_device (&svc, mac, true, &dev), i < 120 ? 0 : -1);
  }
  assert_int_equal (svc.stats.devices_added, 120);
}

static void
test_broken_device (void **state)
{
  struct df_device dev;
  char *ddir = test_path (farm_dir, "devices.d");

  (void) state;
  /* A device file without a vdisk: the farm loads, the device is unusable. */
  test_write (ddir, "broken.conf", "[device]\nmac = 52:54:00:00:00:0b\n");
  assert_int_equal (bootsvc_device (&svc, (const uint8_t *) "\x52\x54\0\0\0\x0b",
                                    true, &dev), -1);
  assert_int_equal (errno, EINVAL);
  assert_int_equal (svc.stats.devices_added, 0);
  free (ddir);
}

static char *
read_fd (int fd)
{
  static char buf[256];
  ssize_t n;

  assert_true (fd >= 0);
  n = pread (fd, buf, sizeof buf - 1, 0);
  assert_true (n >= 0);
  buf[n] = '\0';
  close (fd);
  return buf;
}

static void
test_files (void **state)
{
  char *link;

  (void) state;
  set_boot ("boot/vmlinuz", "boot/initrd.img", NULL);
  assert_string_equal (read_fd (boot_file_open (&svc, "v", "kernel")), "KERNEL");
  assert_string_equal (read_fd (boot_file_open (&svc, "v", "initrd")), "INITRD");
  assert_int_equal (boot_file_open (&svc, "v", "vdisk.conf"), -1);
  assert_int_equal (errno, ENOENT);
  assert_int_equal (boot_file_open (&svc, "nope", "kernel"), -1);
  assert_int_equal (errno, ENOENT);
  assert_int_equal (boot_file_open (&svc, "..", "kernel"), -1);

  assert_string_equal (read_fd (boot_root_open (&svc, "undionly.kpxe")), "PXE-BINARY");
  assert_int_equal (boot_root_open (&svc, "../farm/farm.conf"), -1);
  assert_int_equal (errno, EACCES);
  assert_int_equal (boot_root_open (&svc, "/etc/passwd"), -1);
  assert_int_equal (boot_root_open (&svc, "missing.efi"), -1);
  assert_int_equal (errno, ENOENT);
  /* Debian's ipxe.efi is a symlink out of the root: followed. */
  link = test_path (root, "ipxe.efi");
  assert_int_equal (symlink ("../disk.raw", link), 0);
  assert_true (boot_root_open (&svc, "ipxe.efi") >= 0);
  free (link);

  /* The TFTP resolver: root files, vDisk files, scripts. */
  assert_string_equal (read_fd (boot_tftp_open (&svc, "/undionly.kpxe")),
                       "PXE-BINARY");
  assert_string_equal (read_fd (boot_tftp_open (&svc, "vdisks/v/kernel")), "KERNEL");
  assert_true (strncmp (read_fd (boot_tftp_open (&svc, "boot/52-54-00-00-00-01.ipxe")),
                        "#!ipxe\n", 7) == 0);
  assert_int_equal (boot_tftp_open (&svc, "boot/52-54-00-00-00-09.ipxe"), -1);
  assert_int_equal (errno, ENOENT);
  assert_int_equal (boot_tftp_open (&svc, "vdisks/v/../../farm.conf"), -1);
}

int
main (void)
{
  const struct CMUnitTest tests[] = {
    cmocka_unit_test (test_script_names),
    cmocka_unit_test_setup_teardown (test_scripts, setup, teardown),
    cmocka_unit_test_setup_teardown (test_affinity_fixed, setup, teardown),
    cmocka_unit_test_setup_teardown (test_auto_add, setup, teardown),
    cmocka_unit_test_setup_teardown (test_auto_add_limit, setup, teardown),
    cmocka_unit_test_setup_teardown (test_broken_device, setup, teardown),
    cmocka_unit_test_setup_teardown (test_files, setup, teardown),
  };

  return cmocka_run_group_tests (tests, NULL, NULL);
}
