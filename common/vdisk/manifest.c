/* diskfarm — vDisk manifests, vdisk.conf (see vdisk.h). */
#include <config.h>

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include "cleanup.h"
#include "error.h"
#include "ini/ini.h"
#include "util.h"
#include "vdisk/vdisk.h"

#define MANIFEST "vdisk.conf"

static const char *const state_names[] = {
  [DF_STATE_MAINTENANCE] = "maintenance",
  [DF_STATE_TEST] = "test",
  [DF_STATE_PRODUCTION] = "production",
  [DF_STATE_RETIRED] = "retired",
};
static const char *const type_names[] = {
  [DF_TYPE_PRODUCTION] = "production",
  [DF_TYPE_TEST] = "test",
  [DF_TYPE_MAINTENANCE] = "maintenance",
};
static const char *const access_names[] = {
  [DF_ACCESS_STANDARD] = "standard",
  [DF_ACCESS_PRIVATE] = "private",
};

static int
parse_enum (const char *s, const char *const *names, size_t n,
            const char *what, int *out)
{
  char q[64];
  size_t i;

  for (i = 0; s && i < n; i++)
    if (strcmp (s, names[i]) == 0) {
      *out = i;
      return 0;
    }
  return df_error (EINVAL, "\"%s\" is not a %s", df_quote (s ? s : "", q, sizeof q),
                   what);
}

const char *df_state_name (enum df_version_state s) { return state_names[s]; }
const char *df_type_name (enum df_device_type t) { return type_names[t]; }
const char *df_access_name (enum df_access a) { return access_names[a]; }

int
df_state_parse (const char *s, enum df_version_state *out)
{
  int v;

  if (parse_enum (s, state_names, 4, "version state (maintenance, test, "
                  "production, retired)", &v) == -1)
    return -1;
  *out = v;
  return 0;
}

int
df_type_parse (const char *s, enum df_device_type *out)
{
  int v;

  if (parse_enum (s, type_names, 3, "device type (production, test, "
                  "maintenance)", &v) == -1)
    return -1;
  *out = v;
  return 0;
}

int
df_access_parse (const char *s, enum df_access *out)
{
  int v;

  if (parse_enum (s, access_names, 2, "access mode (standard, private)", &v) == -1)
    return -1;
  *out = v;
  return 0;
}

void
df_vdisk_free (struct df_vdisk *vd)
{
  if (vd == NULL)
    return;
  free (vd->name);
  free (vd->store);
  free (vd->dir);
  free (vd->cache);
  free (vd->boot_kernel);
  free (vd->boot_initrd);
  free (vd->boot_cmdline);
  free (vd->versions);
  df_ini_free (vd->ini);
  free (vd);
}

static int
get_u64 (const struct df_ini *ini, const char *sec, const char *key,
         bool required, uint64_t *out)
{
  const char *v = df_ini_get (ini, sec, key);

  if (v == NULL) {
    if (required)
      return df_error (EINVAL, "%s: [%s] has no \"%s\"", df_ini_origin (ini),
                       sec, key);
    return 0;
  }
  if (df_parse_u64 (v, out) == -1) {
    df_error_prefix ("%s: [%s] %s", df_ini_origin (ini), sec, key);
    return -1;
  }
  return 0;
}

static int
dup_opt (const struct df_ini *ini, const char *sec, const char *key, char **out)
{
  const char *v = df_ini_get (ini, sec, key);

  *out = NULL;
  if (v && (*out = strdup (v)) == NULL)
    return df_error_errno ("%s", df_ini_origin (ini));
  return 0;
}

/* A path inside the vDisk directory: relative, no "..", no oddities. */
static int
check_rel_path (const struct df_ini *ini, const char *key, const char *p)
{
  char q[80];
  const char *s;

  if (p == NULL)
    return 0;
  if (p[0] == '\0' || p[0] == '/' || strstr (p, "//"))
    goto bad;
  for (s = p; *s; ) {
    size_t n = strcspn (s, "/");
    CLEANUP_FREE char *comp = strndup (s, n);
    if (comp == NULL || !df_name_valid (comp))
      goto bad;
    s += n;
    if (*s == '/')
      s++;
  }
  return 0;
 bad:
  return df_error (EINVAL, "%s: [boot] %s \"%s\" must be a relative path of "
                   "plain names inside the vDisk directory",
                   df_ini_origin (ini), key, df_quote (p, q, sizeof q));
}

int
df_boot_cmdline_check (const char *cmdline)
{
  const unsigned char *s;
  char q[80];

  for (s = (const unsigned char *) (cmdline ? cmdline : ""); *s; s++)
    if (*s < 0x20 || *s == 0x7f || strchr ("$\"'\\#;|&", *s))
      return df_error (EINVAL, "kernel parameters \"%s\" hold %s, which "
                       "iPXE scripts give a meaning to (avoid $ \" ' \\ # ; "
                       "| & and control characters)",
                       df_quote (cmdline, q, sizeof q),
                       *s < 0x20 || *s == 0x7f ? "a control character"
                       : (const char *) (char[]) { '\'', *s, '\'', 0 });
  return 0;
}

static int
parse_version (const struct df_ini *ini, const char *sec, unsigned num,
               struct df_version *v)
{
  const char *origin = df_ini_origin (ini);
  const char *s;
  uint64_t parent = 0;
  char expect[16];

  v->num = num;
  snprintf (expect, sizeof expect, "%04u.layer", num);
  s = df_ini_get (ini, sec, "file");
  if (s == NULL || strcmp (s, expect) != 0)
    return df_error (EINVAL, "%s: [%s] file must be \"%s\"", origin, sec, expect);
  memcpy (v->file, expect, sizeof v->file);
  if (get_u64 (ini, sec, "parent", true, &parent) == -1)
    return -1;
  if (parent >= num)
    return df_error (EINVAL, "%s: [%s] parent %" PRIu64 " is not an older "
                     "version", origin, sec, parent);
  v->parent = parent;
  if (df_state_parse (df_ini_get (ini, sec, "state"), &v->state) == -1) {
    df_error_prefix ("%s: [%s] state", origin, sec);
    return -1;
  }
  if (df_unhex (df_ini_get (ini, sec, "id"), v->id, DF_LAYER_ID_LEN) == -1) {
    df_error_prefix ("%s: [%s] id", origin, sec);
    return -1;
  }
  if (get_u64 (ini, sec, "created-ns", false, &v->created_ns) == -1)
    return -1;
  s = df_ini_get (ini, sec, "hash");
  v->sealed = s != NULL;
  if (v->sealed) {
    if (df_hash_parse (s, v->hash) == -1) {
      df_error_prefix ("%s: [%s] hash", origin, sec);
      return -1;
    }
    if (get_u64 (ini, sec, "size", true, &v->size) == -1 ||
        get_u64 (ini, sec, "mtime-ns", true, &v->mtime_ns) == -1)
      return -1;
  }
  if (v->state != DF_STATE_MAINTENANCE && !v->sealed)
    return df_error (EINVAL, "%s: [%s] is %s but not sealed (no hash)",
                     origin, sec, df_state_name (v->state));
  if (v->state == DF_STATE_MAINTENANCE && v->sealed)
    return df_error (EINVAL, "%s: [%s] is in maintenance but has a hash",
                     origin, sec);
  return 0;
}

static int
parse_versions (struct df_vdisk *vd)
{
  const struct df_ini *ini = vd->ini;
  CLEANUP_FREE const char **secs = df_ini_sections (ini);
  size_t i, j, n = 0;

  if (secs == NULL)
    return -1;
  for (i = 0; secs[i]; i++)
    n += strncmp (secs[i], "version ", 8) == 0;
  vd->versions = calloc (n ? n : 1, sizeof *vd->versions);
  if (vd->versions == NULL)
    return df_error_errno ("%s", df_ini_origin (ini));
  for (i = 0; secs[i]; i++) {
    uint64_t num;
    struct df_version *v;

    if (strncmp (secs[i], "version ", 8) != 0)
      continue;
    if (df_parse_u64 (secs[i] + 8, &num) == -1 || num == 0 ||
        num > DF_VERSION_MAX)
      return df_error (EINVAL, "%s: [%s]: a version number is 1 to %d",
                       df_ini_origin (ini), secs[i], DF_VERSION_MAX);
    /* Keep the array sorted by number. */
    for (j = vd->nversions; j > 0 && vd->versions[j - 1].num > num; j--)
      vd->versions[j] = vd->versions[j - 1];
    if (j > 0 && vd->versions[j - 1].num == num)
      return df_error (EINVAL, "%s: version %" PRIu64 " is listed twice",
                       df_ini_origin (ini), num);
    v = &vd->versions[j];
    memset (v, 0, sizeof *v);
    vd->nversions++;
    if (parse_version (ini, secs[i], num, v) == -1)
      return -1;
  }
  for (i = 0; i < vd->nversions; i++) {
    unsigned p = vd->versions[i].parent;
    if (p && df_vdisk_version (vd, p) == NULL)
      return df_error (EINVAL, "%s: version %u has parent %u, which is not "
                       "listed", df_ini_origin (ini), vd->versions[i].num, p);
  }
  return 0;
}

static int
parse_manifest (struct df_vdisk *vd)
{
  const struct df_ini *ini = vd->ini;
  const char *origin = df_ini_origin (ini);
  uint64_t bs = DF_LAYER_DEFAULT_BLOCK;
  const char *s;

  if (get_u64 (ini, "vdisk", "size", true, &vd->size) == -1 ||
      get_u64 (ini, "vdisk", "block-size", false, &bs) == -1)
    return -1;
  if (vd->size == 0 || vd->size % 512 || vd->size > DF_LAYER_MAX_SIZE)
    return df_error (EINVAL, "%s: [vdisk] size %" PRIu64 " is not a non-zero "
                     "multiple of 512", origin, vd->size);
  if (bs < DF_LAYER_MIN_BLOCK || bs > DF_LAYER_MAX_BLOCK || !df_is_power_of_2 (bs))
    return df_error (EINVAL, "%s: [vdisk] block-size %" PRIu64 " is not a power "
                     "of two from %d to %d", origin, bs, DF_LAYER_MIN_BLOCK,
                     DF_LAYER_MAX_BLOCK);
  vd->block_size = bs;
  s = df_ini_get (ini, "vdisk", "access");
  vd->access = DF_ACCESS_STANDARD;
  if (s && df_access_parse (s, &vd->access) == -1) {
    df_error_prefix ("%s: [vdisk] access", origin);
    return -1;
  }
  if (dup_opt (ini, "vdisk", "cache", &vd->cache) == -1 ||
      dup_opt (ini, "boot", "kernel", &vd->boot_kernel) == -1 ||
      dup_opt (ini, "boot", "initrd", &vd->boot_initrd) == -1 ||
      dup_opt (ini, "boot", "cmdline", &vd->boot_cmdline) == -1)
    return -1;
  if (check_rel_path (ini, "kernel", vd->boot_kernel) == -1 ||
      check_rel_path (ini, "initrd", vd->boot_initrd) == -1)
    return -1;
  if (df_boot_cmdline_check (vd->boot_cmdline) == -1) {
    df_error_prefix ("%s: [boot] cmdline", origin);
    return -1;
  }
  return parse_versions (vd);
}

struct df_vdisk *
df_vdisk_parse (const char *text, size_t len, const char *origin)
{
  struct df_vdisk *vd = calloc (1, sizeof *vd);

  if (vd == NULL) {
    df_error_errno ("%s", origin);
    return NULL;
  }
  vd->ini = df_ini_parse (text, len, origin);
  if (vd->ini == NULL || parse_manifest (vd) == -1) {
    df_vdisk_free (vd);
    return NULL;
  }
  return vd;
}

struct df_vdisk *
df_vdisk_load (const char *store, const char *name)
{
  CLEANUP_FREE char *path = NULL;
  CLEANUP_FREE char *text = NULL;
  struct df_vdisk *vd;
  size_t len;

  if (df_name_check ("vdisk", name) == -1)
    return NULL;
  if (asprintf (&path, "%s/vdisks/%s/" MANIFEST, store, name) == -1) {
    path = NULL;
    df_error_errno ("%s", name);
    return NULL;
  }
  if (df_read_file (path, 4 * 1024 * 1024, &text, &len) == -1) {
    if (errno == ENOENT)
      df_error (ENOENT, "vdisk \"%s\" does not exist in store %s", name, store);
    return NULL;
  }
  vd = df_vdisk_parse (text, len, path);
  if (vd == NULL)
    return NULL;
  vd->name = strdup (name);
  vd->store = strdup (store);
  if (asprintf (&vd->dir, "%s/vdisks/%s", store, name) == -1)
    vd->dir = NULL;
  if (!vd->name || !vd->store || !vd->dir) {
    df_error_errno ("%s", name);
    df_vdisk_free (vd);
    return NULL;
  }
  return vd;
}

static int
set_u64 (struct df_ini *ini, const char *sec, const char *key, uint64_t v)
{
  char buf[32];

  snprintf (buf, sizeof buf, "%" PRIu64, v);
  return df_ini_set (ini, sec, key, buf);
}

static int
set_opt (struct df_ini *ini, const char *sec, const char *key, const char *v)
{
  return v ? df_ini_set (ini, sec, key, v) : df_ini_unset (ini, sec, key);
}

static int
save_version (struct df_ini *ini, const struct df_version *v)
{
  char sec[32], buf[DF_HASH_TEXT_LEN + 1];

  snprintf (sec, sizeof sec, "version %u", v->num);
  if (df_ini_set (ini, sec, "file", v->file) == -1 ||
      set_u64 (ini, sec, "parent", v->parent) == -1 ||
      df_ini_set (ini, sec, "state", df_state_name (v->state)) == -1 ||
      df_ini_set (ini, sec, "id", df_hex (v->id, DF_LAYER_ID_LEN, buf)) == -1 ||
      set_u64 (ini, sec, "created-ns", v->created_ns) == -1)
    return -1;
  if (!v->sealed)
    return df_ini_unset (ini, sec, "hash");
  if (set_u64 (ini, sec, "size", v->size) == -1 ||
      set_u64 (ini, sec, "mtime-ns", v->mtime_ns) == -1 ||
      df_ini_set (ini, sec, "hash", df_hash_format (v->hash, buf)) == -1)
    return -1;
  return 0;
}

int
df_vdisk_save (struct df_vdisk *vd)
{
  CLEANUP_FREE char *path = NULL;
  CLEANUP_FREE const char **secs = NULL;
  size_t i;

  /* Never write a manifest that would not load. */
  if (df_boot_cmdline_check (vd->boot_cmdline) == -1) {
    df_error_prefix ("vdisk \"%s\"", vd->name);
    return -1;
  }
  if (set_u64 (vd->ini, "vdisk", "size", vd->size) == -1 ||
      set_u64 (vd->ini, "vdisk", "block-size", vd->block_size) == -1 ||
      df_ini_set (vd->ini, "vdisk", "access", df_access_name (vd->access)) == -1 ||
      set_opt (vd->ini, "vdisk", "cache", vd->cache) == -1 ||
      set_opt (vd->ini, "boot", "kernel", vd->boot_kernel) == -1 ||
      set_opt (vd->ini, "boot", "initrd", vd->boot_initrd) == -1 ||
      set_opt (vd->ini, "boot", "cmdline", vd->boot_cmdline) == -1)
    return -1;
  /* Drop sections of versions that are gone, then write the others. */
  secs = df_ini_sections (vd->ini);
  if (secs == NULL)
    return -1;
  for (i = 0; secs[i]; i++) {
    uint64_t num;
    if (strncmp (secs[i], "version ", 8) == 0 &&
        df_parse_u64 (secs[i] + 8, &num) == 0 &&
        df_vdisk_version (vd, num) == NULL) {
      CLEANUP_FREE char *sec = strdup (secs[i]);
      if (sec == NULL || df_ini_remove_section (vd->ini, sec) == -1)
        return -1;
      free (secs);
      secs = df_ini_sections (vd->ini);
      if (secs == NULL)
        return -1;
      i = -1;
    }
  }
  for (i = 0; i < vd->nversions; i++)
    if (save_version (vd->ini, &vd->versions[i]) == -1)
      return -1;
  path = df_path_join (vd->dir, MANIFEST);
  if (path == NULL)
    return df_error_errno ("%s", vd->dir);
  return df_ini_save (vd->ini, path);
}

struct df_version *
df_vdisk_version (const struct df_vdisk *vd, unsigned num)
{
  size_t i;

  for (i = 0; i < vd->nversions; i++)
    if (vd->versions[i].num == num)
      return &vd->versions[i];
  return NULL;
}

static bool
type_sees (enum df_device_type t, enum df_version_state s)
{
  switch (s) {
  case DF_STATE_PRODUCTION: return true;
  case DF_STATE_TEST: return t == DF_TYPE_TEST || t == DF_TYPE_MAINTENANCE;
  case DF_STATE_MAINTENANCE: return t == DF_TYPE_MAINTENANCE;
  case DF_STATE_RETIRED: return false;
  }
  return false;
}

struct df_version *
df_vdisk_pick (const struct df_vdisk *vd, enum df_device_type type)
{
  size_t i;

  for (i = vd->nversions; i > 0; i--)
    if (type_sees (type, vd->versions[i - 1].state))
      return &vd->versions[i - 1];
  return NULL;
}

struct df_version *
df_vdisk_newest (const struct df_vdisk *vd)
{
  size_t i;

  for (i = vd->nversions; i > 0; i--)
    if (vd->versions[i - 1].state != DF_STATE_RETIRED)
      return &vd->versions[i - 1];
  return NULL;
}

struct df_version *
df_vdisk_maintenance (const struct df_vdisk *vd)
{
  size_t i;

  for (i = vd->nversions; i > 0; i--)
    if (vd->versions[i - 1].state == DF_STATE_MAINTENANCE)
      return &vd->versions[i - 1];
  return NULL;
}

char *
df_vdisk_layer_path (const struct df_vdisk *vd, const struct df_version *v)
{
  char *p = df_path_join (vd->dir, v->file);

  if (p == NULL)
    df_error_errno ("%s", vd->dir);
  return p;
}

static int
cmp_str (const void *a, const void *b)
{
  return strcmp (*(char *const *) a, *(char *const *) b);
}

void
df_strv_free (char **v)
{
  size_t i;

  for (i = 0; v && v[i]; i++)
    free (v[i]);
  free (v);
}

char **
df_store_vdisks (const char *store)
{
  CLEANUP_FREE char *dir = NULL;
  DIR *d;
  struct dirent *de;
  char **v = NULL;
  size_t n = 0;

  dir = df_path_join (store, "vdisks");
  if (dir == NULL) {
    df_error_errno ("%s", store);
    return NULL;
  }
  d = opendir (dir);
  if (d == NULL) {
    if (errno == ENOENT)
      return calloc (1, sizeof (char *));
    df_error_errno ("%s", dir);
    return NULL;
  }
  while ((de = readdir (d)) != NULL) {
    char **nv;
    /* Dot names are work in progress (imports) or ours. */
    if (de->d_name[0] == '.' || !df_name_valid (de->d_name))
      continue;
    nv = realloc (v, (n + 2) * sizeof *v);
    if (nv == NULL || (nv[n] = strdup (de->d_name)) == NULL) {
      if (nv)
        v = nv;
      goto nomem;
    }
    v = nv;
    v[++n] = NULL;
  }
  closedir (d);
  if (v == NULL)
    return calloc (1, sizeof (char *));
  qsort (v, n, sizeof *v, cmp_str);
  return v;

 nomem:
  closedir (d);
  if (v)
    v[n] = NULL;
  df_strv_free (v);
  df_error_errno ("%s", dir);
  return NULL;
}

int
df_vdisk_lock (const char *store, const char *name)
{
  CLEANUP_FREE char *path = NULL;
  int fd;

  if (df_name_check ("vdisk", name) == -1)
    return -1;
  if (asprintf (&path, "%s/vdisks/%s/.lock", store, name) == -1) {
    path = NULL;
    return df_error_errno ("%s", name);
  }
  fd = open (path, O_RDWR | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0644);
  if (fd == -1) {
    if (errno == ENOENT)
      return df_error (ENOENT, "vdisk \"%s\" does not exist in store %s",
                       name, store);
    return df_error_errno ("%s", path);
  }
  while (flock (fd, LOCK_EX) == -1) {
    if (errno != EINTR) {
      df_error_errno ("lock %s", path);
      close (fd);
      return -1;
    }
  }
  return fd;
}
