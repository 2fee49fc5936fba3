/* diskfarm — a small farm for unit tests: server srv1, store "store"
 * (FARM/store) holding vDisk "base", version 1, sealed, in production.
 */
#ifndef DISKFARM_TEST_FARM_H
#define DISKFARM_TEST_FARM_H

#include "test-helpers.h"
#include "farm/farm.h"
#include "vdisk/vdisk.h"

/* Makes DIR/farm and returns its path (caller frees).  The vDisk holds
 * size bytes of data from seed (qemu-img imports it).
 */
static inline char *
test_farm_make (const char *dir, uint64_t size, uint64_t seed)
{
  struct df_farm_init in = { .server = "srv1" };
  char *farm = test_path (dir, "farm"), *store;
  char *img = test_path (dir, "base.raw");
  char *buf = malloc (size);
  FILE *fp;

  assert_non_null (buf);
  test_fill (buf, size, &seed);
  fp = fopen (img, "w");
  assert_non_null (fp);
  assert_int_equal (fwrite (buf, 1, size, fp), size);
  assert_int_equal (fclose (fp), 0);
  assert_int_equal (df_farm_create (farm, &in), 0);
  store = test_path (farm, "store");
  assert_int_equal (df_vdisk_import (store, "base", img, NULL), 0);
  free (store);
  free (img);
  free (buf);
  return farm;
}

/* Writes FARM/devices.d/NAME.conf: a device of vdisk with that cache. */
static inline void
test_farm_device (const char *farm, const char *name, const char *vdisk,
                  const char *cache, const char *type)
{
  char path[512], text[512];
  unsigned h = 0;
  const char *p;

  for (p = name; *p; p++)
    h = h * 31 + (unsigned char) *p;
  snprintf (path, sizeof path, "%s/devices.d", farm);
  assert_int_equal (df_mkdir_p (path, 0755), 0);
  snprintf (text, sizeof text, "[device]\nmac = 52:54:%02x:%02x:%02x:%02x\n"
            "vdisk = %s\ncache = %s\ntype = %s\n", (h >> 24) & 0xff,
            (h >> 16) & 0xff, (h >> 8) & 0xff, h & 0xff, vdisk, cache, type);
  snprintf (path, sizeof path, "devices.d/%s.conf", name);
  test_write (farm, path, text);
}

#endif
