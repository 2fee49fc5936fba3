/* diskfarm — the farm directory (see farm.h). */
#include <config.h>

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include "cleanup.h"
#include "error.h"
#include "farm/farm.h"
#include "ini/ini.h"
#include "util.h"

#define FARM_CONF "farm.conf"
#define DEVICES_DIR "devices.d"
#define DEVICE_SECTION "device"
#define PERSONALITY_SECTION "personality"

struct device_file {
  char *name;
  struct df_ini *ini;
  bool dirty, removed;
};

struct df_farm {
  char *dir;
  struct df_ini *conf;
  bool conf_dirty;
  struct device_file *devices;
  size_t ndevices;
};

const char *
df_farm_dir (const struct df_farm *farm)
{
  return farm->dir;
}

void
df_farm_free (struct df_farm *farm)
{
  size_t i;

  if (farm == NULL)
    return;
  for (i = 0; i < farm->ndevices; i++) {
    free (farm->devices[i].name);
    df_ini_free (farm->devices[i].ini);
  }
  free (farm->devices);
  df_ini_free (farm->conf);
  free (farm->dir);
  free (farm);
}

static struct device_file *
find_device (const struct df_farm *farm, const char *name)
{
  size_t i;

  for (i = 0; i < farm->ndevices; i++)
    if (!farm->devices[i].removed && strcmp (farm->devices[i].name, name) == 0)
      return &farm->devices[i];
  return NULL;
}

/* Where an object lives: its document and section. */
static struct df_ini *
locate (const struct df_farm *farm, enum df_kind k, const char *name,
        char *section, size_t len)
{
  if (k == DF_KIND_DEVICE) {
    struct device_file *d = find_device (farm, name);
    snprintf (section, len, DEVICE_SECTION);
    return d ? d->ini : NULL;
  }
  snprintf (section, len, "%s %s", df_kind_name (k), name);
  return df_ini_has_section (farm->conf, section) ? farm->conf : NULL;
}

struct check_keys {
  enum df_kind kind;
  const char *origin;
  const char *section;
};

static int
check_key (const char *key, const char *value, void *opaque)
{
  struct check_keys *ck = opaque;
  const struct df_field *f = df_kind_field (ck->kind, key);

  if (f && df_field_check (f, value) == -1) {
    df_error_prefix ("%s: [%s]", ck->origin, ck->section);
    return -1;
  }
  return 0;
}

/* Known keys of the farm-wide sections that have a table. */
static int
check_setting (const char *key, const char *value, void *opaque)
{
  const char *section = opaque;
  const struct df_field *f;

  for (f = df_settings_fields (section); f->key; f++)
    if (strcmp (f->key, key) == 0 && df_field_check (f, value) == -1) {
      df_error_prefix ("[%s]", section);
      return -1;
    }
  return 0;
}

static int
check_settings (const struct df_farm *farm)
{
  static const char *const sections[] = { "farm", "gateway" };
  size_t i;

  for (i = 0; i < sizeof sections / sizeof sections[0]; i++)
    if (df_ini_has_section (farm->conf, sections[i]) &&
        df_ini_foreach (farm->conf, sections[i], check_setting,
                        (void *) sections[i])) {
      df_error_prefix ("%s", df_ini_origin (farm->conf));
      return -1;
    }
  return 0;
}

static int
check_objects (const struct df_farm *farm)
{
  CLEANUP_FREE const char **secs = df_ini_sections (farm->conf);
  size_t i;
  int k;

  if (secs == NULL)
    return -1;
  for (i = 0; secs[i]; i++) {
    const char *sp = strchr (secs[i], ' ');
    if (sp == NULL)
      continue;
    for (k = 0; k < DF_KIND_DEVICE; k++) {
      struct check_keys ck = { k, df_ini_origin (farm->conf), secs[i] };
      size_t n = strlen (df_kind_name (k));
      if ((size_t) (sp - secs[i]) != n || strncmp (secs[i], df_kind_name (k), n))
        continue;
      if (df_name_check (df_kind_name (k), sp + 1) == -1) {
        df_error_prefix ("%s: [%s]", df_ini_origin (farm->conf), secs[i]);
        return -1;
      }
      if (df_ini_foreach (farm->conf, secs[i], check_key, &ck))
        return -1;
    }
  }
  for (i = 0; i < farm->ndevices; i++) {
    struct check_keys ck = { DF_KIND_DEVICE,
                             df_ini_origin (farm->devices[i].ini),
                             DEVICE_SECTION };
    if (df_ini_foreach (farm->devices[i].ini, DEVICE_SECTION, check_key, &ck))
      return -1;
  }
  return 0;
}

static int
load_devices (struct df_farm *farm)
{
  CLEANUP_FREE char *ddir = df_path_join (farm->dir, DEVICES_DIR);
  DIR *d;
  struct dirent *de;
  int r = 0;

  if (ddir == NULL)
    return df_error_errno ("%s", farm->dir);
  d = opendir (ddir);
  if (d == NULL)
    return errno == ENOENT ? 0 : df_error_errno ("%s", ddir);
  while (r == 0 && (de = readdir (d)) != NULL) {
    size_t n = strlen (de->d_name);
    CLEANUP_FREE char *name = NULL, *path = NULL;
    struct device_file *nd;

    if (!df_farm_device_file (de->d_name))
      continue;
    name = strndup (de->d_name, n - 5);
    path = df_path_join (ddir, de->d_name);
    if (name == NULL || path == NULL) {
      r = df_error_errno ("%s", ddir);
      break;
    }
    if (df_name_check ("device", name) == -1) {
      df_error_prefix ("%s", path);
      r = -1;
      break;
    }
    nd = realloc (farm->devices, (farm->ndevices + 1) * sizeof *nd);
    if (nd == NULL) {
      r = df_error_errno ("%s", ddir);
      break;
    }
    farm->devices = nd;
    nd = &nd[farm->ndevices];
    memset (nd, 0, sizeof *nd);
    nd->ini = df_ini_load (path);
    if (nd->ini == NULL) {
      r = -1;
      break;
    }
    nd->name = TAKE_PTR (name);
    farm->ndevices++;
  }
  closedir (d);
  return r;
}

struct df_farm *
df_farm_open (const char *dir)
{
  struct df_farm *farm = calloc (1, sizeof *farm);
  CLEANUP_FREE char *path = NULL;

  if (farm == NULL || (farm->dir = strdup (dir)) == NULL) {
    free (farm);
    df_error_errno ("%s", dir);
    return NULL;
  }
  path = df_path_join (dir, FARM_CONF);
  if (path == NULL)
    goto fail;
  farm->conf = df_ini_load (path);
  if (farm->conf == NULL) {
    if (errno == ENOENT)
      df_error (ENOENT, "%s is not a farm (no %s; create one with "
                "\"diskfarm init\")", dir, FARM_CONF);
    goto fail;
  }
  if (load_devices (farm) == -1 || check_objects (farm) == -1 ||
      check_settings (farm) == -1)
    goto fail;
  return farm;

 fail:
  df_farm_free (farm);
  return NULL;
}

int
df_farm_lock (const char *dir)
{
  CLEANUP_FREE char *path = df_path_join (dir, ".lock");
  int fd;

  if (path == NULL)
    return df_error_errno ("%s", dir);
  fd = open (path, O_RDWR | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0644);
  if (fd == -1)
    return df_error_errno ("%s", path);
  while (flock (fd, LOCK_EX) == -1)
    if (errno != EINTR) {
      df_error_errno ("lock %s", path);
      close (fd);
      return -1;
    }
  return fd;
}

const char *
df_farm_setting (const struct df_farm *farm, const char *section,
                 const char *key)
{
  return df_ini_get (farm->conf, section, key);
}

int
df_farm_set_setting (struct df_farm *farm, const char *section,
                     const char *key, const char *value)
{
  farm->conf_dirty = true;
  if (value == NULL)
    return df_ini_unset (farm->conf, section, key);
  return df_ini_set (farm->conf, section, key, value);
}

static int
cmp_str (const void *a, const void *b)
{
  return strcmp (*(const char *const *) a, *(const char *const *) b);
}

const char **
df_farm_names (const struct df_farm *farm, enum df_kind k)
{
  const char **r;
  size_t n = 0, i;

  if (k == DF_KIND_DEVICE) {
    r = calloc (farm->ndevices + 1, sizeof *r);
    if (r == NULL)
      goto nomem;
    for (i = 0; i < farm->ndevices; i++)
      if (!farm->devices[i].removed)
        r[n++] = farm->devices[i].name;
  }
  else {
    CLEANUP_FREE const char **secs = df_ini_sections (farm->conf);
    size_t plen = strlen (df_kind_name (k));

    if (secs == NULL)
      return NULL;
    for (i = 0; secs[i]; i++)
      ;
    r = calloc (i + 1, sizeof *r);
    if (r == NULL)
      goto nomem;
    for (i = 0; secs[i]; i++)
      if (strncmp (secs[i], df_kind_name (k), plen) == 0 &&
          secs[i][plen] == ' ' && df_name_valid (secs[i] + plen + 1))
        r[n++] = secs[i] + plen + 1;
  }
  qsort (r, n, sizeof *r, cmp_str);
  return r;
 nomem:
  df_error_errno ("%s", farm->dir);
  return NULL;
}

bool
df_farm_exists (const struct df_farm *farm, enum df_kind k, const char *name)
{
  char sec[128];

  return df_name_valid (name) && locate (farm, k, name, sec, sizeof sec) != NULL;
}

const char *
df_farm_get (const struct df_farm *farm, enum df_kind k, const char *name,
             const char *key)
{
  char sec[128];
  struct df_ini *ini = locate (farm, k, name, sec, sizeof sec);

  return ini ? df_ini_get (ini, sec, key) : NULL;
}

int
df_farm_foreach (const struct df_farm *farm, enum df_kind k, const char *name,
                 const char *section,
                 int (*fn) (const char *, const char *, void *), void *opaque)
{
  char sec[128];
  struct df_ini *ini = locate (farm, k, name, sec, sizeof sec);

  if (ini == NULL)
    return 0;
  return df_ini_foreach (ini, section ? section : sec, fn, opaque);
}

static void
mark_dirty (struct df_farm *farm, enum df_kind k, const char *name)
{
  if (k == DF_KIND_DEVICE) {
    struct device_file *d = find_device (farm, name);
    if (d)
      d->dirty = true;
  }
  else
    farm->conf_dirty = true;
}

int
df_farm_add (struct df_farm *farm, enum df_kind k, const char *name)
{
  char sec[128];

  if (df_name_check (df_kind_name (k), name) == -1)
    return -1;
  if (locate (farm, k, name, sec, sizeof sec))
    return df_error (EEXIST, "%s \"%s\" already exists", df_kind_name (k), name);
  if (k == DF_KIND_DEVICE) {
    CLEANUP_FREE char *path = NULL;
    struct device_file *nd;

    if (asprintf (&path, "%s/" DEVICES_DIR "/%s.conf", farm->dir, name) == -1) {
      path = NULL;
      return df_error_errno ("%s", name);
    }
    nd = realloc (farm->devices, (farm->ndevices + 1) * sizeof *nd);
    if (nd == NULL)
      return df_error_errno ("%s", name);
    farm->devices = nd;
    nd = &nd[farm->ndevices];
    memset (nd, 0, sizeof *nd);
    nd->name = strdup (name);
    nd->ini = df_ini_new (path);
    if (nd->name == NULL || nd->ini == NULL) {
      free (nd->name);
      df_ini_free (nd->ini);
      return df_error_errno ("%s", name);
    }
    nd->dirty = true;
    farm->ndevices++;
    return 0;
  }
  /* An empty section is written as a header alone. */
  farm->conf_dirty = true;
  if (df_ini_set (farm->conf, sec, "x", "") == -1)
    return -1;
  return df_ini_unset (farm->conf, sec, "x");
}

int
df_farm_set (struct df_farm *farm, enum df_kind k, const char *name,
             const char *key, const char *value)
{
  const struct df_field *f = df_kind_field (k, key);
  char sec[128];
  struct df_ini *ini = locate (farm, k, name, sec, sizeof sec);

  if (ini == NULL)
    return df_error (ENOENT, "%s \"%s\" does not exist", df_kind_name (k), name);
  if (value && f && df_field_check (f, value) == -1)
    return -1;
  mark_dirty (farm, k, name);
  if (value == NULL)
    return df_ini_unset (ini, sec, key);
  return df_ini_set (ini, sec, key, value);
}

int
df_farm_set_personality (struct df_farm *farm, const char *device,
                         const char *key, const char *value)
{
  struct device_file *d = find_device (farm, device);

  if (d == NULL)
    return df_error (ENOENT, "device \"%s\" does not exist", device);
  d->dirty = true;
  if (value == NULL)
    return df_ini_unset (d->ini, PERSONALITY_SECTION, key);
  return df_ini_set (d->ini, PERSONALITY_SECTION, key, value);
}

int
df_farm_remove (struct df_farm *farm, enum df_kind k, const char *name)
{
  char sec[128];

  if (locate (farm, k, name, sec, sizeof sec) == NULL)
    return df_error (ENOENT, "%s \"%s\" does not exist", df_kind_name (k), name);
  if (k == DF_KIND_DEVICE) {
    struct device_file *d = find_device (farm, name);
    d->removed = true;
    return 0;
  }
  farm->conf_dirty = true;
  return df_ini_remove_section (farm->conf, sec);
}

/* Every object naming kind `target` by `key` must name one that exists. */
static int
check_refs (const struct df_farm *farm, enum df_kind k)
{
  CLEANUP_FREE const char **names = df_farm_names (farm, k);
  const struct df_field *f;
  size_t i;

  if (names == NULL)
    return -1;
  for (i = 0; names[i]; i++)
    for (f = df_kind_fields (k); f->key; f++) {
      const char *v = df_farm_get (farm, k, names[i], f->key);
      if (v == NULL && f->required)
        return df_error (EINVAL, "%s \"%s\" has no %s", df_kind_name (k),
                         names[i], f->key);
      if (v && f->type == DF_F_REF && !df_farm_exists (farm, f->ref, v))
        return df_error (ENOENT, "%s \"%s\": %s \"%s\" does not exist",
                         df_kind_name (k), names[i], f->key, v);
    }
  return 0;
}

int
df_farm_check (const struct df_farm *farm)
{
  CLEANUP_FREE const char **devs = NULL;
  size_t i, j;
  int k;

  const char *cs = df_farm_setting (farm, "farm", "config-server");

  for (k = 0; k < DF_KIND_COUNT; k++)
    if (check_refs (farm, k) == -1)
      return -1;
  if (cs && !df_farm_exists (farm, DF_KIND_SERVER, cs))
    return df_error (ENOENT, "[farm] config-server: server \"%s\" does not "
                     "exist", cs);
  devs = df_farm_names (farm, DF_KIND_DEVICE);
  if (devs == NULL)
    return -1;
  for (i = 0; devs[i]; i++)
    for (j = i + 1; devs[j]; j++) {
      uint8_t a[6], b[6];
      if (df_parse_mac (df_farm_get (farm, DF_KIND_DEVICE, devs[i], "mac"), a) == 0 &&
          df_parse_mac (df_farm_get (farm, DF_KIND_DEVICE, devs[j], "mac"), b) == 0 &&
          memcmp (a, b, 6) == 0)
        return df_error (EEXIST, "devices \"%s\" and \"%s\" have the same MAC "
                         "address", devs[i], devs[j]);
    }
  return 0;
}

int
df_farm_save (struct df_farm *farm)
{
  CLEANUP_FREE char *ddir = df_path_join (farm->dir, DEVICES_DIR);
  size_t i;

  if (ddir == NULL)
    return df_error_errno ("%s", farm->dir);
  if (farm->conf_dirty) {
    if (df_ini_save (farm->conf, df_ini_origin (farm->conf)) == -1)
      return -1;
    farm->conf_dirty = false;
  }
  for (i = 0; i < farm->ndevices; i++) {
    struct device_file *d = &farm->devices[i];
    const char *path = df_ini_origin (d->ini);

    if (d->removed) {
      if (unlink (path) == -1 && errno != ENOENT)
        return df_error_errno ("remove %s", path);
      continue;
    }
    if (!d->dirty)
      continue;
    if (df_mkdir_p (ddir, 0755) == -1 || df_ini_save (d->ini, path) == -1)
      return -1;
    d->dirty = false;
  }
  return df_fsync_dir (ddir);
}

int
df_farm_create (const char *dir, const struct df_farm_init *in)
{
  char host[256] = "";
  const char *server = in->server;
  CLEANUP_FREE char *conf = NULL, *path = NULL, *ddir = NULL, *spath = NULL;
  struct stat st;
  int n;

  path = df_path_join (dir, FARM_CONF);
  ddir = df_path_join (dir, DEVICES_DIR);
  if (path == NULL || ddir == NULL)
    return df_error_errno ("%s", dir);
  if (stat (path, &st) == 0)
    return df_error (EEXIST, "%s is already a farm", dir);
  if (server == NULL) {
    gethostname (host, sizeof host - 1);
    host[strcspn (host, ".")] = '\0';
    server = df_name_valid (host) ? host : "server1";
  }
  if (df_name_check ("farm", in->name ? in->name : "diskfarm") == -1 ||
      df_name_check ("site", in->site ? in->site : "default") == -1 ||
      df_name_check ("server", server) == -1 ||
      df_name_check ("store", in->store ? in->store : "store") == -1)
    return -1;
  n = asprintf (&conf,
    "# diskfarm farm configuration.  Edit by hand or with the diskfarm\n"
    "# command; comments and unknown keys are kept when it rewrites this\n"
    "# file.  See diskfarm.conf(5).\n"
    "\n"
    "[farm]\n"
    "name = %s\n"
    "\n"
    "[vdisk-defaults]\n"
    "cache = ram+disk\n"
    "\n"
    "[site %s]\n"
    "\n"
    "[server %s]\n"
    "address = %s\n"
    "site = %s\n"
    "power = 1\n"
    "\n"
    "[store %s]\n"
    "path = %s\n",
    in->name ? in->name : "diskfarm",
    in->site ? in->site : "default",
    server, in->address ? in->address : "127.0.0.1",
    in->site ? in->site : "default",
    in->store ? in->store : "store",
    in->store_path ? in->store_path : "store");
  if (n == -1) {
    conf = NULL;
    return df_error_errno ("%s", dir);
  }
  {
    struct df_ini *check = df_ini_parse (conf, strlen (conf), path);
    if (check == NULL)
      return -1;
    df_ini_free (check);
  }
  spath = in->store_path && in->store_path[0] == '/'
    ? strdup (in->store_path)
    : df_path_join (dir, in->store_path ? in->store_path : "store");
  if (spath == NULL)
    return df_error_errno ("%s", dir);
  if (df_mkdir_p (dir, 0755) == -1 || df_mkdir_p (ddir, 0755) == -1 ||
      df_mkdir_p (spath, 0755) == -1)
    return -1;
  return df_write_file_atomic (path, conf, strlen (conf), 0644);
}

/* ---- typed views ---- */

int
df_farm_device (const struct df_farm *farm, const char *name,
                struct df_device *out)
{
  struct device_file *d = df_name_valid (name) ? find_device (farm, name) : NULL;
  const char *type;

  if (d == NULL)
    return df_error (ENOENT, "device \"%s\" does not exist", name);
  memset (out, 0, sizeof *out);
  out->name = d->name;
  if (df_parse_mac (df_ini_get (d->ini, DEVICE_SECTION, "mac"), out->mac) == -1) {
    df_error_prefix ("device \"%s\"", name);
    return -1;
  }
  out->vdisk = df_ini_get (d->ini, DEVICE_SECTION, "vdisk");
  if (out->vdisk == NULL || !df_name_valid (out->vdisk))
    return df_error (EINVAL, "device \"%s\" has no valid vdisk", name);
  out->collection = df_ini_get (d->ini, DEVICE_SECTION, "collection");
  out->cache = df_ini_get (d->ini, DEVICE_SECTION, "cache");
  type = df_ini_get (d->ini, DEVICE_SECTION, "type");
  out->type = DF_TYPE_PRODUCTION;
  if (type && df_type_parse (type, &out->type) == -1) {
    df_error_prefix ("device \"%s\"", name);
    return -1;
  }
  return 0;
}

int
df_farm_device_by_mac (const struct df_farm *farm, const uint8_t mac[6],
                       struct df_device *out)
{
  size_t i;
  char buf[18];

  for (i = 0; i < farm->ndevices; i++) {
    uint8_t m[6];
    const char *v;

    if (farm->devices[i].removed)
      continue;
    v = df_ini_get (farm->devices[i].ini, DEVICE_SECTION, "mac");
    if (v && df_parse_mac (v, m) == 0 && memcmp (m, mac, 6) == 0)
      return df_farm_device (farm, farm->devices[i].name, out);
  }
  return df_error (ENOENT, "no device has MAC %s", df_format_mac (mac, buf));
}

int
df_farm_server (const struct df_farm *farm, const char *name,
                struct df_server *out)
{
  char sec[128];
  const char *power;
  uint64_t p = 1;

  if (!df_name_valid (name) ||
      locate (farm, DF_KIND_SERVER, name, sec, sizeof sec) == NULL)
    return df_error (ENOENT, "server \"%s\" does not exist", name);
  memset (out, 0, sizeof *out);
  out->name = name;
  out->address = df_ini_get (farm->conf, sec, "address");
  out->site = df_ini_get (farm->conf, sec, "site");
  out->subnets = df_ini_get (farm->conf, sec, "subnets");
  power = df_ini_get (farm->conf, sec, "power");
  if (power && df_parse_u64 (power, &p) == -1)
    return -1;
  out->power = p ? p : 1;
  if (out->address == NULL)
    return df_error (EINVAL, "server \"%s\" has no address", name);
  return 0;
}

const char *
df_farm_local_server (const struct df_farm *farm, const char *name)
{
  CLEANUP_FREE const char **names = NULL;
  char host[256] = "";
  const char *env = getenv ("DISKFARM_SERVER");
  size_t i;

  if (name == NULL)
    name = env;
  names = df_farm_names (farm, DF_KIND_SERVER);
  if (names == NULL)
    return NULL;
  if (name) {
    for (i = 0; names[i]; i++)
      if (strcmp (names[i], name) == 0)
        return names[i];
    df_error (ENOENT, "server \"%s\" is not in the farm", name);
    return NULL;
  }
  gethostname (host, sizeof host - 1);
  host[strcspn (host, ".")] = '\0';
  for (i = 0; names[i]; i++)
    if (strcmp (names[i], host) == 0)
      return names[i];
  if (names[0] && !names[1])
    return names[0];
  df_error (ENOENT, "cannot tell which server this is (use --server or "
            "DISKFARM_SERVER)");
  return NULL;
}

/* The PATH of "STORE:PATH" for store in a store-paths list, malloc'd. */
static char *
store_paths_lookup (const char *list, const char *store)
{
  CLEANUP_FREE char *copy = strdup (list);
  char *save = NULL, *item;

  for (item = copy ? strtok_r (copy, ",", &save) : NULL; item;
       item = strtok_r (NULL, ",", &save)) {
    char *colon, *end;
    while (*item == ' ' || *item == '\t')
      item++;
    colon = strchr (item, ':');
    if (colon == NULL)
      continue;
    *colon = '\0';
    if (strcmp (item, store) != 0)
      continue;
    end = colon + 1 + strlen (colon + 1);
    while (end > colon + 1 && (end[-1] == ' ' || end[-1] == '\t'))
      *--end = '\0';
    return strdup (colon + 1);
  }
  return NULL;
}

char *
df_farm_store_path (const struct df_farm *farm, const char *store,
                    const char *server)
{
  CLEANUP_FREE char *found = NULL;
  const char *p = NULL;
  char *r;

  if (!df_farm_exists (farm, DF_KIND_STORE, store)) {
    df_error (ENOENT, "store \"%s\" does not exist", store);
    return NULL;
  }
  if (server) {
    const char *list = df_farm_get (farm, DF_KIND_SERVER, server, "store-paths");
    if (list)
      p = found = store_paths_lookup (list, store);
  }
  if (p == NULL)
    p = df_farm_get (farm, DF_KIND_STORE, store, "path");
  if (p == NULL) {
    df_error (EINVAL, "store \"%s\" has no path", store);
    return NULL;
  }
  r = p[0] == '/' ? strdup (p) : df_path_join (farm->dir, p);
  if (r == NULL)
    df_error_errno ("%s", store);
  return r;
}
