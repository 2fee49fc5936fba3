/* diskfarm-bootsvc — the farm as the daemon sees it: reloaded when its
 * files change, devices by MAC, and devices added automatically
 * ([farm] auto-add = yes, auto-add-collection = NAME).
 */
#include <config.h>

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "bootsvc.h"
#include "cleanup.h"
#include "error.h"
#include "log.h"
#include "util.h"

#define UNKNOWN_SLOTS 64
#define MINUTE_NS (60 * 1000000000ULL)
/* Devices added a minute at most: a flood of made-up MACs must not
 * fill devices.d.
 */
#define AUTO_ADD_PER_MINUTE 120

struct farm_cache {
  char *dir;
  const char *server;           /* --server, or NULL */
  struct df_farm *farm;
  enum affinity affinity;
  struct df_farm_stamp stamp;   /* taken before the farm was read */
  bool load_failed;             /* the last reload failed (logged) */
  struct {
    uint8_t mac[6];
    uint64_t when;
  } unknown[UNKNOWN_SLOTS];
  size_t next_unknown;
  uint64_t add_window_ns;       /* auto-add rate limit */
  unsigned added_in_window;
};

/* The [farm] keys the boot service reads, checked before use. */
static int
check_settings (struct df_farm *farm, const char *server, enum affinity *aff)
{
  const char *v = df_farm_setting (farm, "farm", "auto-add");
  const char *coll = df_farm_setting (farm, "farm", "auto-add-collection");
  bool add = false;

  if (affinity_parse (df_farm_setting (farm, "farm", "affinity"), aff) == -1) {
    df_error_prefix ("[farm] affinity");
    return -1;
  }
  if (v && df_parse_bool (v, &add) == -1) {
    df_error_prefix ("[farm] auto-add");
    return -1;
  }
  if (add && (coll == NULL || !df_farm_exists (farm, DF_KIND_COLLECTION, coll)))
    return df_error (EINVAL, "[farm] auto-add is on, but auto-add-collection "
                     "does not name a collection of the farm");
  if (add && df_farm_get (farm, DF_KIND_COLLECTION, coll, "vdisk") == NULL)
    return df_error (EINVAL, "collection \"%s\" (auto-add-collection) has no "
                     "vdisk for the devices it gets", coll);
  if (df_farm_local_server (farm, server) == NULL)
    return -1;
  return 0;
}

static int
load (struct farm_cache *fc)
{
  struct df_farm *farm;
  struct df_farm_stamp stamp;
  enum affinity aff;

  df_farm_stamp_take (fc->dir, &stamp);
  farm = df_farm_open (fc->dir);
  if (farm == NULL)
    return -1;
  if (check_settings (farm, fc->server, &aff) == -1) {
    df_error_prefix ("%s", fc->dir);
    df_farm_free (farm);
    return -1;
  }
  df_farm_free (fc->farm);
  fc->farm = farm;
  fc->affinity = aff;
  fc->stamp = stamp;
  return 0;
}

struct farm_cache *
farm_cache_new (const char *dir, const char *server)
{
  struct farm_cache *fc = calloc (1, sizeof *fc);

  if (fc == NULL || (fc->dir = strdup (dir)) == NULL) {
    free (fc);
    df_error_errno ("%s", dir);
    return NULL;
  }
  fc->server = server;
  if (load (fc) == -1) {
    farm_cache_free (fc);
    return NULL;
  }
  return fc;
}

void
farm_cache_free (struct farm_cache *fc)
{
  if (fc == NULL)
    return;
  df_farm_free (fc->farm);
  free (fc->dir);
  free (fc);
}

static void
refresh (struct farm_cache *fc)
{
  struct df_farm_stamp now;

  df_farm_stamp_take (fc->dir, &now);
  if (!df_farm_stamp_changed (&fc->stamp, &now))
    return;
  if (load (fc) == 0) {
    if (fc->load_failed)
      df_log_info ("farm: %s loads again", fc->dir);
    fc->load_failed = false;
    df_debug ("farm", "reloaded %s", fc->dir);
    return;
  }
  /* Keep serving the farm we have; say so once per change. */
  if (!fc->load_failed || now.digest != fc->stamp.digest ||
      now.files != fc->stamp.files)
    df_log_error ("farm: keeping the previous configuration: %s",
                  df_error_get ());
  fc->load_failed = true;
  fc->stamp = now;
}

struct df_farm *
bootsvc_farm (struct bootsvc *svc)
{
  refresh (svc->farm);
  return svc->farm->farm;
}

void
bootsvc_farm_reload (struct bootsvc *svc)
{
  if (load (svc->farm) == 0)
    df_log_info ("farm: reloaded %s", svc->farm->dir);
  else
    df_log_error ("farm: keeping the previous configuration: %s",
                  df_error_get ());
}

struct df_farm *
bootsvc_farm_loaded (struct bootsvc *svc)
{
  return svc->farm->farm;
}

const char *
bootsvc_server_name (struct bootsvc *svc)
{
  return df_farm_local_server (svc->farm->farm, svc->farm->server);
}

enum affinity
bootsvc_affinity (struct bootsvc *svc)
{
  return svc->farm->affinity;
}

/* "COLLECTION-525400123456", or "auto-525400123456" if that is too long. */
static void
auto_name (const char *coll, const uint8_t mac[6], char *buf, size_t len)
{
  char hex[13];

  df_hex (mac, 6, hex);
  if (strlen (coll) + 1 + 12 <= DF_NAME_MAX)
    snprintf (buf, len, "%s-%s", coll, hex);
  else
    snprintf (buf, len, "auto-%s", hex);
}

static int
add_to (struct df_farm *farm, const char *name, const uint8_t mac[6],
        const char *coll)
{
  const char *vdisk = df_farm_get (farm, DF_KIND_COLLECTION, coll, "vdisk");
  const char *type = df_farm_get (farm, DF_KIND_COLLECTION, coll, "type");
  char macs[18], desc[96];
  time_t now = time (NULL);
  struct tm tm;

  localtime_r (&now, &tm);
  strftime (desc, sizeof desc, "added by diskfarm-bootsvc on %Y-%m-%d %H:%M:%S",
            &tm);
  if (vdisk == NULL)
    return df_error (EINVAL, "collection \"%s\" has no vdisk", coll);
  if (df_farm_add (farm, DF_KIND_DEVICE, name) == -1 ||
      df_farm_set (farm, DF_KIND_DEVICE, name, "mac", df_format_mac (mac, macs)) == -1 ||
      df_farm_set (farm, DF_KIND_DEVICE, name, "vdisk", vdisk) == -1 ||
      (type && df_farm_set (farm, DF_KIND_DEVICE, name, "type", type) == -1) ||
      df_farm_set (farm, DF_KIND_DEVICE, name, "collection", coll) == -1 ||
      df_farm_set (farm, DF_KIND_DEVICE, name, "description", desc) == -1)
    return -1;
  return df_farm_save (farm);
}

/* Adds the device under the farm lock, on a fresh copy of the farm (the
 * CLI or another server may have changed it).  Returns 1 if added, 0 if
 * someone else had added the MAC meanwhile, -1 on error.
 */
static int
auto_add (struct farm_cache *fc, const uint8_t mac[6], const char *coll,
          char *name, size_t len)
{
  CLEANUP_CLOSE int lock = df_farm_lock (fc->dir);
  struct df_farm *fresh;
  struct df_device dev;
  int r;

  if (lock == -1)
    return -1;
  fresh = df_farm_open (fc->dir);
  if (fresh == NULL)
    return -1;
  auto_name (coll, mac, name, len);
  if (df_farm_device_by_mac (fresh, mac, &dev) == 0)
    r = 0;
  else if (df_farm_exists (fresh, DF_KIND_DEVICE, name))
    r = df_error (EEXIST, "device \"%s\" exists with another MAC address", name);
  else
    r = add_to (fresh, name, mac, coll) == -1 ? -1 : 1;
  df_farm_free (fresh);
  return r;
}

static bool
auto_add_enabled (struct df_farm *farm, const char **coll)
{
  const char *v = df_farm_setting (farm, "farm", "auto-add");
  bool on = false;

  *coll = df_farm_setting (farm, "farm", "auto-add-collection");
  return v && df_parse_bool (v, &on) == 0 && on && *coll;
}

static bool
auto_add_allowed (struct farm_cache *fc)
{
  uint64_t now = df_now_mono_ns ();

  if (now - fc->add_window_ns > MINUTE_NS) {
    fc->add_window_ns = now;
    fc->added_in_window = 0;
  }
  if (fc->added_in_window >= AUTO_ADD_PER_MINUTE) {
    if (fc->added_in_window++ == AUTO_ADD_PER_MINUTE)
      df_log_warning ("farm: more than %d devices to add in a minute; adding "
                      "the others later", AUTO_ADD_PER_MINUTE);
    return false;
  }
  fc->added_in_window++;
  return true;
}

int
bootsvc_device (struct bootsvc *svc, const uint8_t mac[6], bool may_add,
                struct df_device *out)
{
  struct df_farm *farm = bootsvc_farm (svc);
  char macs[18], name[DF_NAME_MAX + 1];
  const char *coll;
  int r;

  if (df_farm_device_by_mac (farm, mac, out) == 0)
    return 0;
  if (errno != ENOENT) {
    /* The MAC is the farm's, but its device file is unusable. */
    df_log_warning ("farm: %s: %s", df_format_mac (mac, macs), df_error_get ());
    return df_error (EINVAL, "the device of MAC %s is not usable", macs);
  }
  if (!may_add || !auto_add_enabled (farm, &coll) ||
      !auto_add_allowed (svc->farm))
    return df_error (ENOENT, "no device has MAC %s", df_format_mac (mac, macs));
  r = auto_add (svc->farm, mac, coll, name, sizeof name);
  if (r == -1) {
    df_log_error ("farm: cannot add %s to collection \"%s\": %s",
                  df_format_mac (mac, macs), coll, df_error_get ());
    return df_error (ENOENT, "no device has MAC %s", macs);
  }
  if (r == 1) {
    svc->stats.devices_added++;
    df_log_info ("farm: added device %s (%s) to collection \"%s\"", name,
                 df_format_mac (mac, macs), coll);
  }
  /* Reload now rather than at the next look: the device is wanted now. */
  if (load (svc->farm) == -1)
    df_log_error ("farm: %s", df_error_get ());
  return df_farm_device_by_mac (svc->farm->farm, mac, out);
}

void
bootsvc_log_unknown (struct bootsvc *svc, const uint8_t mac[6],
                     const char *what)
{
  struct farm_cache *fc = svc->farm;
  uint64_t now = df_now_mono_ns ();
  char macs[18];
  size_t i;

  svc->stats.unknown_macs++;
  for (i = 0; i < UNKNOWN_SLOTS; i++)
    if (memcmp (fc->unknown[i].mac, mac, 6) == 0 && fc->unknown[i].when &&
        now - fc->unknown[i].when < MINUTE_NS)
      return;
  i = fc->next_unknown++ % UNKNOWN_SLOTS;
  memcpy (fc->unknown[i].mac, mac, 6);
  fc->unknown[i].when = now;
  df_log_info ("%s: ignoring unknown MAC %s (not a device of the farm; add it "
               "with \"diskfarm device add\" or enable auto-add)", what,
               df_format_mac (mac, macs));
}
