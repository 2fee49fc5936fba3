/* Unit tests: common/vdisk (manifests, version life cycle, merge). */
#include <config.h>

#include <fcntl.h>

#include "test-helpers.h"
#include "vdisk/vdisk.h"

#define SIZE (4 * 1024 * 1024)

static const char good[] =
  "# hand comment\n"
  "[vdisk]\n"
  "size = 1048576\n"
  "block-size = 65536\n"
  "access = private\n"
  "cache = ram:1G\n"
  "future-key = kept\n"
  "[boot]\n"
  "kernel = boot/vmlinuz\n"
  "[version 2]\n"
  "file = 0002.layer\n"
  "parent = 1\n"
  "state = maintenance\n"
  "id = 00112233445566778899aabbccddeeff\n"
  "[version 1]\n"
  "file = 0001.layer\n"
  "parent = 0\n"
  "state = production\n"
  "id = 0102030405060708090a0b0c0d0e0f10\n"
  "size = 4096\n"
  "mtime-ns = 1\n"
  "hash = sha256:" "00000000000000000000000000000000"
                   "00000000000000000000000000000001" "\n";

static struct df_vdisk *
parse (const char *text)
{
  return df_vdisk_parse (text, strlen (text), "vdisk.conf");
}

static void
test_manifest (void **state)
{
  struct df_vdisk *vd = parse (good);

  (void) state;
  assert_non_null (vd);
  assert_int_equal (vd->size, 1048576);
  assert_int_equal (vd->block_size, 65536);
  assert_int_equal (vd->access, DF_ACCESS_PRIVATE);
  assert_string_equal (vd->cache, "ram:1G");
  assert_string_equal (vd->boot_kernel, "boot/vmlinuz");
  assert_int_equal (vd->nversions, 2);
  assert_int_equal (vd->versions[0].num, 1);       /* sorted */
  assert_true (vd->versions[0].sealed);
  assert_false (vd->versions[1].sealed);
  assert_int_equal (df_vdisk_pick (vd, DF_TYPE_PRODUCTION)->num, 1);
  assert_int_equal (df_vdisk_pick (vd, DF_TYPE_TEST)->num, 1);
  assert_int_equal (df_vdisk_pick (vd, DF_TYPE_MAINTENANCE)->num, 2);
  df_vdisk_free (vd);
}

/* Replaces the first occurrence of from in good with to and parses. */
static struct df_vdisk *
parse_edited (const char *from, const char *to)
{
  char text[4096];
  const char *at = strstr (good, from);

  assert_non_null (at);
  snprintf (text, sizeof text, "%.*s%s%s", (int) (at - good), good, to,
            at + strlen (from));
  return parse (text);
}

static void
test_manifest_bad (void **state)
{
  static const struct { const char *from, *to, *msg; } cases[] = {
    { "size = 1048576", "size = 1000", "multiple of 512" },
    { "size = 1048576", "size = lots", "not a number" },
    { "block-size = 65536", "block-size = 3000", "power" },
    { "access = private", "access = public", "access mode" },
    { "kernel = boot/vmlinuz", "kernel = ../../etc/passwd", "relative path" },
    { "kernel = boot/vmlinuz", "kernel = /boot/vmlinuz", "relative path" },
    { "file = 0002.layer", "file = ../x.layer", "file must be" },
    { "parent = 1\n", "parent = 2\n", "not an older version" },
    { "state = maintenance", "state = gold", "version state" },
    { "id = 0011", "id = zz11", "id" },
    { "[version 1]", "[version 0]", "version number" },
    { "[version 2]", "[version 1]", "repeats" },
    { "hash = sha256:", "hash = md5:", "content hash" },
    { "state = production", "state = maintenance", "has a hash" },
    { "kernel = boot/vmlinuz", "cmdline = root=/dev/nbd0 ${evil}",
      "[boot] cmdline: kernel parameters" },
    { "kernel = boot/vmlinuz", "cmdline = quiet || shell", "iPXE" },
    { "kernel = boot/vmlinuz", "cmdline = a\x01b", "control character" },
  };
  size_t i;

  (void) state;
  for (i = 0; i < sizeof cases / sizeof cases[0]; i++) {
    struct df_vdisk *vd = parse_edited (cases[i].from, cases[i].to);
    if (vd != NULL)
      fail_msg ("case %zu (%s) was accepted", i, cases[i].to);
    assert_error_contains (cases[i].msg);
  }
  assert_null (parse ("[vdisk]\n"));
  assert_error_contains ("no \"size\"");
}

/* Imports a random raw image of SIZE bytes as vdisk "v"; ref receives it. */
static char *
import_random (char *ref, uint64_t *seed)
{
  char *img = test_path (tmpdir, "src.raw");
  int fd = open (img, O_WRONLY | O_CREAT | O_TRUNC, 0644);

  df_vdisk_remove (tmpdir, "v");        /* an earlier test's */
  assert_true (fd >= 0);
  memset (ref, 0, SIZE);
  test_fill (ref + SIZE / 4, SIZE / 2, seed);   /* zeros stay unstored */
  assert_int_equal (pwrite (fd, ref, SIZE, 0), SIZE);
  close (fd);
  assert_int_equal (df_vdisk_import (tmpdir, "v", img, NULL), 0);
  free (img);
  return tmpdir;
}

static void
assert_version_is (const char *store, unsigned num, const char *ref)
{
  struct df_vdisk *vd = df_vdisk_load (store, "v");
  struct df_bdev *c;
  char *buf = malloc (SIZE);

  assert_non_null (vd);
  c = df_vdisk_open (vd, num, false);
  assert_non_null (c);
  assert_int_equal (df_bdev_pread (c, buf, SIZE, 0), 0);
  if (memcmp (buf, ref, SIZE) != 0)
    fail_msg ("version %u differs from the reference", num);
  df_bdev_close (c);
  df_vdisk_free (vd);
  free (buf);
}

static void
print_problem (void *opaque, unsigned num, const char *problem)
{
  (void) opaque;
  print_error ("version %u: %s\n", num, problem);
}

static void
test_versions_and_merge (void **state)
{
  char *ref = malloc (SIZE), *buf = malloc (3 * 4096);
  const char *store;
  uint64_t seed = 99;
  unsigned v, num, merged, retired;
  struct df_vdisk *vd;
  char *exported = test_path (tmpdir, "merged.raw"), *back = NULL;
  size_t len;

  (void) state;
  store = import_random (ref, &seed);
  assert_int_equal (df_vdisk_import (store, "v", "/dev/null", NULL), -1);
  assert_error_contains ("already exists");

  for (v = 2; v <= 5; v++) {
    struct df_bdev *c;
    int i;

    assert_int_equal (df_version_new (store, "v", &num), 0);
    assert_int_equal (num, v);
    assert_int_equal (df_version_new (store, "v", &num), -1);
    assert_error_contains ("already in maintenance");
    vd = df_vdisk_load (store, "v");
    assert_non_null (vd);
    assert_null (df_vdisk_open (vd, v - 1, true));
    c = df_vdisk_open (vd, v, true);
    assert_non_null (c);
    for (i = 0; i < 40; i++) {
      uint64_t off = test_rand (&seed) % SIZE;
      uint32_t n = 1 + test_rand (&seed) % (3 * 4096);
      if (off + n > SIZE)
        n = SIZE - off;
      if (i % 7 == 0) {
        assert_int_equal (df_bdev_zero (c, n, off, 0), 0);
        memset (ref + off, 0, n);
      }
      else {
        test_fill (buf, n, &seed);
        assert_int_equal (df_bdev_pwrite (c, buf, n, off, 0), 0);
        memcpy (ref + off, buf, n);
      }
    }
    assert_int_equal (df_bdev_flush (c), 0);
    df_bdev_close (c);
    df_vdisk_free (vd);
    assert_int_equal (df_version_promote (store, "v", v, DF_STATE_TEST), 0);
    assert_int_equal (df_version_promote (store, "v", v, DF_STATE_PRODUCTION), 0);
    assert_int_equal (df_version_promote (store, "v", v, DF_STATE_PRODUCTION), -1);
  }
  assert_version_is (store, 5, ref);

  assert_int_equal (df_version_delete (store, "v", 3), -1);
  assert_error_contains ("depends on version 3");
  assert_int_equal (df_version_merge (store, "v", 0, &merged, NULL, NULL), 0);
  assert_int_equal (merged, 6);
  assert_version_is (store, 6, ref);
  vd = df_vdisk_load (store, "v");
  assert_int_equal (df_vdisk_pick (vd, DF_TYPE_PRODUCTION)->num, 6);
  assert_int_equal (df_vdisk_version (vd, 6)->parent, 0);
  assert_int_equal (df_vdisk_verify (vd, print_problem, NULL), 0);
  assert_int_equal (df_vdisk_export (vd, 6, exported, "raw", NULL, NULL), 0);
  df_vdisk_free (vd);
  assert_int_equal (df_read_file (exported, SIZE + 1, &back, &len), 0);
  assert_int_equal (len, SIZE);
  assert_memory_equal (back, ref, SIZE);

  /* Old versions can go now, newest first. */
  for (v = 5; v >= 1; v--)
    assert_int_equal (df_version_delete (store, "v", v), 0);
  assert_version_is (store, 6, ref);
  assert_int_equal (df_version_rollback (store, "v", &retired), -1);
  assert_error_contains ("only production version");
  free (back);
  free (exported);
  free (ref);
  free (buf);
}

/* The iPXE rule is part of the manifest: nothing that breaks it is
 * saved, and the boot settings go in atomically under the lock.
 */
static void
test_boot_files (void **state)
{
  uint64_t seed = 5;
  char *ref = malloc (SIZE), *store, *kernel, *initrd, *data;
  struct df_boot_files b = { NULL, NULL, NULL };
  struct df_vdisk *vd;
  size_t len;

  (void) state;
  store = import_random (ref, &seed);
  assert_int_equal (df_boot_cmdline_check ("console=ttyS0,115200 ro quiet"), 0);
  assert_int_equal (df_boot_cmdline_check (NULL), 0);
  assert_int_equal (df_boot_cmdline_check ("it's"), -1);
  assert_error_contains ("hold ''', which iPXE");

  test_write (tmpdir, "vmlinuz", "KERNEL-1");
  test_write (tmpdir, "initrd.img", "INITRD-1");
  test_write (tmpdir, "empty", "");
  kernel = test_path (tmpdir, "vmlinuz");
  initrd = test_path (tmpdir, "initrd.img");
  b = (struct df_boot_files) { kernel, initrd, "root=/dev/nbd0 ro" };
  assert_int_equal (df_vdisk_set_boot (store, "v", &b), 0);
  vd = df_vdisk_load (store, "v");
  assert_non_null (vd);
  assert_string_equal (vd->boot_kernel, "boot/vmlinuz");
  assert_string_equal (vd->boot_initrd, "boot/initrd.img");
  assert_string_equal (vd->boot_cmdline, "root=/dev/nbd0 ro");

  /* Refused before anything is copied or written. */
  test_write (tmpdir, "vmlinuz", "KERNEL-2");
  b = (struct df_boot_files) { kernel, NULL, "quiet; reboot" };
  assert_int_equal (df_vdisk_set_boot (store, "v", &b), -1);
  assert_error_contains ("iPXE");
  free (vd->boot_cmdline);
  vd->boot_cmdline = strdup ("a $b");
  assert_int_equal (df_vdisk_save (vd), -1);
  assert_error_contains ("vdisk \"v\": kernel parameters");
  df_vdisk_free (vd);
  b = (struct df_boot_files) { test_path (tmpdir, "empty"), NULL, NULL };
  assert_int_equal (df_vdisk_set_boot (store, "v", &b), -1);
  assert_error_contains ("not a non-empty regular file");
  free ((char *) b.kernel);
  b = (struct df_boot_files) { tmpdir, NULL, NULL };
  assert_int_equal (df_vdisk_set_boot (store, "v", &b), -1);
  free (kernel);
  kernel = test_path (store, "vdisks/v/boot/vmlinuz");
  assert_int_equal (df_read_file (kernel, 100, &data, &len), 0);
  assert_string_equal (data, "KERNEL-1");
  free (data);

  /* A new kernel under another name replaces the old file; "" clears
   * the parameters.
   */
  test_write (tmpdir, "vmlinuz-6.1", "KERNEL-3");
  b = (struct df_boot_files) { test_path (tmpdir, "vmlinuz-6.1"), NULL, "" };
  assert_int_equal (df_vdisk_set_boot (store, "v", &b), 0);
  free ((char *) b.kernel);
  vd = df_vdisk_load (store, "v");
  assert_null (vd->boot_cmdline);
  assert_string_equal (vd->boot_kernel, "boot/vmlinuz-6.1");
  assert_string_equal (vd->boot_initrd, "boot/initrd.img");
  df_vdisk_free (vd);
  assert_int_equal (access (kernel, F_OK), -1);
  assert_int_equal (df_vdisk_remove (store, "v"), 0);
  free (kernel);
  free (initrd);
  free (ref);
}

/* Removal takes every layer's lock: refused while one is open. */
static void
test_remove (void **state)
{
  uint64_t seed = 6;
  char *ref = malloc (SIZE), *store, *dir;
  struct df_bdev *chain, *edit;
  struct df_vdisk *vd;
  unsigned num;
  char **names;

  (void) state;
  store = import_random (ref, &seed);
  assert_int_equal (df_version_new (store, "v", &num), 0);
  vd = df_vdisk_load (store, "v");
  assert_non_null (vd);

  /* A reader of version 1 (a device streaming it). */
  chain = df_vdisk_open (vd, 1, false);
  assert_non_null (chain);
  assert_int_equal (df_vdisk_remove (store, "v"), -1);
  assert_int_equal (errno, EBUSY);
  assert_error_contains ("vdisk \"v\" is in use: its layer 0001.layer is open");
  df_bdev_close (chain);

  /* Its editor: the maintenance layer is held exclusive. */
  edit = df_vdisk_open (vd, num, true);
  assert_non_null (edit);
  assert_int_equal (df_vdisk_remove (store, "v"), -1);
  assert_error_contains ("0002.layer is open");
  /* Readers and the writer exclude each other. */
  assert_null (df_vdisk_open (vd, num, false));
  assert_error_contains ("open for writing elsewhere");
  df_bdev_close (edit);
  chain = df_vdisk_open (vd, num, false);
  assert_non_null (chain);
  assert_null (df_vdisk_open (vd, num, true));
  assert_int_equal (errno, EBUSY);
  assert_error_contains ("open for reading elsewhere");
  df_bdev_close (chain);

  /* Nobody: it goes, all of it. */
  assert_int_equal (df_vdisk_remove (store, "v"), 0);
  dir = test_path (store, "vdisks/v");
  assert_int_equal (access (dir, F_OK), -1);
  names = df_store_vdisks (store);
  assert_non_null (names);
  assert_null (names[0]);
  df_strv_free (names);
  assert_null (df_vdisk_open (vd, 1, false));
  assert_int_equal (df_vdisk_remove (store, "v"), -1);
  assert_error_contains ("does not exist");
  df_vdisk_free (vd);
  free (dir);
  free (ref);
}

int
main (void)
{
  const struct CMUnitTest tests[] = {
    cmocka_unit_test (test_manifest),
    cmocka_unit_test (test_manifest_bad),
    cmocka_unit_test (test_versions_and_merge),
    cmocka_unit_test (test_boot_files),
    cmocka_unit_test (test_remove),
  };

  return cmocka_run_group_tests (tests, tmpdir_setup, tmpdir_teardown);
}
