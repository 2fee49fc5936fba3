/* diskfarm — the keys of farm objects and their syntax (see farm.h). */
#include <config.h>

#include <arpa/inet.h>
#include <ctype.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "cleanup.h"
#include "error.h"
#include "farm/farm.h"
#include "util.h"

static const struct df_field site_fields[] = {
  { "subnets", DF_F_SUBNETS, 0, false, "subnets of the site (CIDR list)" },
  { "description", DF_F_TEXT, 0, false, "free text" },
  { NULL }
};

static const struct df_field server_fields[] = {
  { "address", DF_F_ADDRESS, 0, true, "address devices and peers use" },
  { "site", DF_F_REF, DF_KIND_SITE, false, "site the server belongs to" },
  { "subnets", DF_F_SUBNETS, 0, false, "subnets the server is close to" },
  { "power", DF_F_UINT, 0, false, "relative capacity for load balancing" },
  { "store-paths", DF_F_STORE_PATHS, 0, false,
    "where stores live on this server: STORE:PATH, ..." },
  { "gateway", DF_F_ADDRESS, 0, false, "its gateway's HOST:PORT (default: "
    "the address's host and [gateway] port)" },
  { "description", DF_F_TEXT, 0, false, "free text" },
  { NULL }
};

static const struct df_field store_fields[] = {
  { "path", DF_F_PATH, 0, true, "default path (relative: inside the farm)" },
  { "site", DF_F_REF, DF_KIND_SITE, false, "site the store belongs to" },
  { "shared", DF_F_BOOL, 0, false, "on shared storage all servers mount" },
  { "description", DF_F_TEXT, 0, false, "free text" },
  { NULL }
};

static const struct df_field collection_fields[] = {
  { "site", DF_F_REF, DF_KIND_SITE, false, "site of the collection" },
  { "vdisk", DF_F_VDISK, 0, false, "vDisk for devices added automatically" },
  { "type", DF_F_TYPE, 0, false, "type for devices added automatically" },
  { "cache", DF_F_CACHE, 0, false, "write cache for its devices" },
  { "description", DF_F_TEXT, 0, false, "free text" },
  { NULL }
};

static const struct df_field device_fields[] = {
  { "mac", DF_F_MAC, 0, true, "MAC address of the boot NIC" },
  { "vdisk", DF_F_VDISK, 0, true, "the vDisk it boots" },
  { "type", DF_F_TYPE, 0, false, "production (default), test or maintenance" },
  { "cache", DF_F_CACHE, 0, false, "write cache MODE[:SIZE], overrides the "
    "vDisk's" },
  { "collection", DF_F_REF, DF_KIND_COLLECTION, false, "collection" },
  { "description", DF_F_TEXT, 0, false, "free text" },
  { NULL }
};

/* Farm-wide sections.  [farm] has more keys, which the boot service
 * checks itself; these are the ones df_farm_open checks.
 */
static const struct df_field farm_settings[] = {
  { "config-server", DF_F_REF, DF_KIND_SERVER, false,
    "the server the farm directory replicates from" },
  { NULL }
};

static const struct df_field gateway_settings[] = {
  { "port", DF_F_UINT, 0, false, "TCP port of every gateway (default 10811)" },
  { "token-file", DF_F_PATH, 0, false, "the bearer token (relative: inside "
    "the farm); not readable by others" },
  { "public", DF_F_TEXT, 0, false, "status (default: /metrics and /v1/status "
    "need no token) or none" },
  { "ca-file", DF_F_PATH, 0, false, "set: clients use HTTPS and verify the "
    "gateways against this CA" },
  { NULL }
};

static const struct {
  const char *section;
  const struct df_field *fields;
} settings[] = {
  { "farm", farm_settings },
  { "gateway", gateway_settings },
};

const struct df_field *
df_settings_fields (const char *section)
{
  size_t i;

  for (i = 0; i < sizeof settings / sizeof settings[0]; i++)
    if (strcmp (settings[i].section, section) == 0)
      return settings[i].fields;
  return NULL;
}

static const char *const kind_names[DF_KIND_COUNT] = {
  "site", "server", "store", "collection", "device",
};

static const struct df_field *const kind_fields[DF_KIND_COUNT] = {
  site_fields, server_fields, store_fields, collection_fields, device_fields,
};

const char *
df_kind_name (enum df_kind k)
{
  return kind_names[k];
}

const struct df_field *
df_kind_fields (enum df_kind k)
{
  return kind_fields[k];
}

const struct df_field *
df_kind_field (enum df_kind k, const char *key)
{
  const struct df_field *f;

  for (f = kind_fields[k]; f->key; f++)
    if (strcmp (f->key, key) == 0)
      return f;
  return NULL;
}

static const char *const cache_modes[] = {
  [DF_CACHE_RAM] = "ram",
  [DF_CACHE_DISK] = "disk",
  [DF_CACHE_RAM_DISK] = "ram+disk",
  [DF_CACHE_PERSISTENT] = "persistent",
  [DF_CACHE_NONE] = "none",
  [DF_CACHE_DEVICE] = "device",
};

const char *
df_cache_mode_name (enum df_cache_mode m)
{
  return cache_modes[m];
}

int
df_cache_parse (const char *s, struct df_cache_spec *out)
{
  const char *colon = strchr (s, ':');
  size_t n = colon ? (size_t) (colon - s) : strlen (s);
  char q[64];
  size_t i;

  for (i = 0; i < sizeof cache_modes / sizeof cache_modes[0]; i++)
    if (strlen (cache_modes[i]) == n && strncmp (s, cache_modes[i], n) == 0) {
      out->mode = i;
      out->limit = 0;
      if (colon && df_parse_size (colon + 1, &out->limit) == -1)
        return -1;
      return 0;
    }
  return df_error (EINVAL, "\"%s\" is not a write cache (MODE[:SIZE] with MODE "
                   "ram, disk, ram+disk, persistent, none or device)",
                   df_quote (s, q, sizeof q));
}

static int
check_cidr (const char *item)
{
  char addr[64];
  const char *slash = strchr (item, '/');
  unsigned char buf[16];
  uint64_t bits;
  size_t n;
  int family;

  if (slash == NULL || (n = slash - item) >= sizeof addr)
    return -1;
  memcpy (addr, item, n);
  addr[n] = '\0';
  family = strchr (addr, ':') ? AF_INET6 : AF_INET;
  if (inet_pton (family, addr, buf) != 1 || df_parse_u64 (slash + 1, &bits) == -1)
    return -1;
  return bits <= (family == AF_INET ? 32u : 128u) ? 0 : -1;
}

static int
check_subnets (const char *v)
{
  CLEANUP_FREE char *copy = strdup (v);
  char *save = NULL, *item;

  if (copy == NULL)
    return -1;
  for (item = strtok_r (copy, ", ", &save); item;
       item = strtok_r (NULL, ", ", &save))
    if (check_cidr (item) == -1)
      return -1;
  return 0;
}

static int
check_store_paths (const char *v)
{
  CLEANUP_FREE char *copy = strdup (v);
  char *save = NULL, *item;

  if (copy == NULL)
    return -1;
  for (item = strtok_r (copy, ",", &save); item;
       item = strtok_r (NULL, ",", &save)) {
    char *colon;
    while (isspace ((unsigned char) *item))
      item++;
    colon = strchr (item, ':');
    if (colon == NULL || colon[1] == '\0')
      return -1;
    *colon = '\0';
    if (!df_name_valid (item))
      return -1;
  }
  return 0;
}

static int
check_address (const char *v)
{
  size_t i, n = strlen (v);

  if (n == 0 || n > 255)
    return -1;
  for (i = 0; i < n; i++)
    if (!isalnum ((unsigned char) v[i]) && !strchr (".-:[]_", v[i]))
      return -1;
  return 0;
}

int
df_field_check (const struct df_field *f, const char *value)
{
  uint8_t mac[6];
  uint64_t u;
  bool b;
  enum df_device_type t;
  struct df_cache_spec c;
  const char *what = NULL;
  char q[80];

  switch (f->type) {
  case DF_F_TEXT:
    return 0;
  case DF_F_REF:
    if (df_name_check (df_kind_name (f->ref), value) == -1)
      goto prefixed;
    return 0;
  case DF_F_VDISK:
    if (df_name_check ("vdisk", value) == -1)
      goto prefixed;
    return 0;
  case DF_F_ADDRESS:
    if (check_address (value) == 0)
      return 0;
    what = "a host name or IP address";
    break;
  case DF_F_SUBNETS:
    if (check_subnets (value) == 0)
      return 0;
    what = "a list of subnets like 10.0.0.0/24";
    break;
  case DF_F_UINT:
    if (df_parse_u64 (value, &u) == -1)
      goto prefixed;
    return 0;
  case DF_F_BOOL:
    if (df_parse_bool (value, &b) == -1)
      goto prefixed;
    return 0;
  case DF_F_MAC:
    if (df_parse_mac (value, mac) == -1)
      goto prefixed;
    return 0;
  case DF_F_TYPE:
    if (df_type_parse (value, &t) == -1)
      goto prefixed;
    return 0;
  case DF_F_CACHE:
    if (df_cache_parse (value, &c) == -1)
      goto prefixed;
    return 0;
  case DF_F_PATH:
    if (value[0] != '\0')
      return 0;
    what = "a path";
    break;
  case DF_F_STORE_PATHS:
    if (check_store_paths (value) == 0)
      return 0;
    what = "a list like STORE:/PATH, STORE:/PATH";
    break;
  }
  return df_error (EINVAL, "%s = \"%s\" is not %s", f->key,
                   df_quote (value, q, sizeof q), what);
 prefixed:
  df_error_prefix ("%s", f->key);
  return -1;
}
