/* diskfarm-replicator — store and farm manifests (see manifest.h). */
#include <config.h>

#include <ctype.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "cleanup.h"
#include "error.h"
#include "manifest.h"

const char *
repl_kind_name (enum repl_kind k)
{
  switch (k) {
  case REPL_KIND_MANIFEST: return "manifest";
  case REPL_KIND_LAYER: return "layer";
  case REPL_KIND_BOOT: return "boot";
  case REPL_KIND_FARM: return "farm";
  }
  return "?";
}

static int
kind_parse (const char *s, enum repl_kind *out)
{
  enum repl_kind k;

  for (k = REPL_KIND_MANIFEST; k <= REPL_KIND_FARM; k++)
    if (strcmp (s, repl_kind_name (k)) == 0) {
      *out = k;
      return 0;
    }
  return -1;
}

/* Splits path at '/' into at most max components (in buf, n bytes);
 * every component must be a plain name.  Returns the count or -1.
 */
static int
split_path (const char *path, char *buf, size_t n, char **comp, int max)
{
  size_t len = strlen (path);
  int count = 0;
  char *save = NULL, *c;

  if (len == 0 || len >= n || path[0] == '/' || strstr (path, "//") ||
      path[len - 1] == '/')
    return -1;
  strcpy (buf, path);
  for (c = strtok_r (buf, "/", &save); c; c = strtok_r (NULL, "/", &save)) {
    if (count == max || !df_name_valid (c))
      return -1;
    comp[count++] = c;
  }
  return count;
}

/* "0001.layer" .. "9999.layer" */
static bool
layer_name (const char *s, unsigned *version)
{
  unsigned v = 0;
  int i;

  if (strlen (s) != 10 || strcmp (s + 4, ".layer") != 0)
    return false;
  for (i = 0; i < 4; i++) {
    if (!isdigit ((unsigned char) s[i]))
      return false;
    v = v * 10 + (s[i] - '0');
  }
  *version = v;
  return v > 0;
}

static bool
conf_name (const char *s)
{
  size_t n = strlen (s);

  return n > 5 && strcmp (s + n - 5, ".conf") == 0;
}

int
repl_path_classify (const char *path, bool farm, enum repl_kind *kind,
                    char *vdisk, unsigned *version)
{
  char buf[512], q[80];
  char *comp[REPL_BOOT_DEPTH + 2];
  unsigned v = 0;
  int n = split_path (path, buf, sizeof buf, comp, REPL_BOOT_DEPTH + 2);

  if (n == -1)
    goto bad;
  if (farm) {
    if ((n == 1 && strcmp (comp[0], "farm.conf") == 0) ||
        (n == 2 && strcmp (comp[0], "devices.d") == 0 && conf_name (comp[1]))) {
      *kind = REPL_KIND_FARM;
      return 0;
    }
    goto bad;
  }
  if (n < 3 || strcmp (comp[0], "vdisks") != 0)
    goto bad;
  if (n == 3 && strcmp (comp[2], "vdisk.conf") == 0)
    *kind = REPL_KIND_MANIFEST;
  else if (n == 3 && layer_name (comp[2], &v))
    *kind = REPL_KIND_LAYER;
  else if (n == 3 && (strcmp (comp[2], ".lock") == 0 || strstr (comp[2], ".layer")))
    goto bad;                   /* never a lock, never a layer of odd name */
  else
    *kind = REPL_KIND_BOOT;
  if (vdisk)
    strcpy (vdisk, comp[1]);
  if (version)
    *version = v;
  return 0;
 bad:
  return df_error (EINVAL, "\"%s\" is not a path that %s replication carries",
                   df_quote (path, q, sizeof q), farm ? "farm" : "store");
}

int
repl_hash_parse (const char *text, uint8_t hash[DF_HASH_LEN])
{
  const char *hex = text;
  size_t i;

  if (strncmp (hex, "sha256:", 7) == 0)
    hex += 7;
  if (strlen (hex) != 2 * DF_HASH_LEN)
    goto bad;
  for (i = 0; i < 2 * DF_HASH_LEN; i++)
    if (!isxdigit ((unsigned char) hex[i]))
      goto bad;
  if (df_unhex (hex, hash, DF_HASH_LEN) == 0)
    return 0;
 bad:
  return df_error (EINVAL, "hash \"%.80s\" is not 64 hex digits", text);
}

/* A non-negative JSON integer member, or -1. */
static int
get_u64 (json_t *o, const char *key, bool required, uint64_t *out)
{
  json_t *v = json_object_get (o, key);

  if (v == NULL && !required) {
    *out = 0;
    return 0;
  }
  if (!json_is_integer (v) || json_integer_value (v) < 0)
    return df_error (EINVAL, "\"%s\" is missing or not a non-negative integer",
                     key);
  *out = json_integer_value (v);
  return 0;
}

static int
parse_file (json_t *o, bool farm, struct repl_file *f)
{
  const char *path = json_string_value (json_object_get (o, "path"));
  const char *kind = json_string_value (json_object_get (o, "kind"));
  const char *hash = json_string_value (json_object_get (o, "hash"));
  const char *vdisk = json_string_value (json_object_get (o, "vdisk"));
  enum repl_kind k;
  uint64_t version;

  if (!json_is_object (o) || path == NULL || kind == NULL || hash == NULL)
    return df_error (EINVAL, "a file entry lacks path, kind or hash");
  if (repl_path_classify (path, farm, &f->kind, f->vdisk, &f->version) == -1)
    return -1;
  if ((f->path = strdup (path)) == NULL)
    return df_error_errno ("manifest");
  if (kind_parse (kind, &k) == -1 || k != f->kind)
    return df_error (EINVAL, "%s: kind \"%.20s\" does not fit the path", path,
                     kind);
  if (get_u64 (o, "size", true, &f->size) == -1 ||
      get_u64 (o, "mtime_ns", true, &f->mtime_ns) == -1 ||
      get_u64 (o, "version", false, &version) == -1 ||
      repl_hash_parse (hash, f->hash) == -1) {
    df_error_prefix ("%s", path);
    return -1;
  }
  if (f->kind == REPL_KIND_LAYER && version != 0 && version != f->version)
    return df_error (EINVAL, "%s: version %llu does not fit the path", path,
                     (unsigned long long) version);
  if (vdisk && strcmp (vdisk, f->vdisk) != 0)
    return df_error (EINVAL, "%s: vdisk \"%.70s\" does not fit the path", path,
                     vdisk);
  return 0;
}

static int
cmp_files (const void *a, const void *b)
{
  return strcmp (((const struct repl_file *) a)->path,
                 ((const struct repl_file *) b)->path);
}

static struct repl_manifest *
parse_root (json_t *root, bool farm)
{
  json_t *files = json_object_get (root, "files"), *v;
  const char *server = json_string_value (json_object_get (root, "server"));
  struct repl_manifest *m;
  size_t i;

  if (!json_is_object (root) || !json_is_array (files)) {
    df_error (EINVAL, "not a manifest (no \"files\" list)");
    return NULL;
  }
  if (json_array_size (files) > REPL_FILES_MAX) {
    df_error (E2BIG, "more than %d files", REPL_FILES_MAX);
    return NULL;
  }
  m = calloc (1, sizeof *m);
  if (m == NULL || (m->server = strdup (server ? server : "")) == NULL ||
      (m->files = calloc (json_array_size (files) + 1, sizeof *m->files)) == NULL) {
    df_error_errno ("manifest");
    repl_manifest_free (m);
    return NULL;
  }
  m->farm = farm;
  json_array_foreach (files, i, v) {
    m->nfiles = i + 1;
    if (parse_file (v, farm, &m->files[i]) == -1) {
      repl_manifest_free (m);
      return NULL;
    }
  }
  /* Sorted, as the API says; sorting here costs nothing and finds the
   * duplicates, which are refused.
   */
  qsort (m->files, m->nfiles, sizeof *m->files, cmp_files);
  for (i = 1; i < m->nfiles; i++)
    if (strcmp (m->files[i - 1].path, m->files[i].path) == 0) {
      df_error (EINVAL, "%s: listed twice", m->files[i].path);
      repl_manifest_free (m);
      return NULL;
    }
  return m;
}

struct repl_manifest *
repl_manifest_parse (const char *json, size_t len, bool farm,
                     const char *origin)
{
  json_error_t jerr;
  json_t *root = json_loadb (json, len, JSON_REJECT_DUPLICATES, &jerr);
  struct repl_manifest *m;

  if (root == NULL) {
    df_error (EINVAL, "%s: not JSON: %s (line %d)", origin, jerr.text,
              jerr.line);
    return NULL;
  }
  m = parse_root (root, farm);
  json_decref (root);
  if (m == NULL)
    df_error_prefix ("%s", origin);
  return m;
}

void
repl_manifest_free (struct repl_manifest *m)
{
  size_t i;

  if (m == NULL)
    return;
  for (i = 0; i < m->nfiles; i++)
    free (m->files[i].path);
  free (m->files);
  free (m->server);
  free (m);
}

const struct repl_file *
repl_manifest_find (const struct repl_manifest *m, const char *path)
{
  size_t lo = 0, hi = m ? m->nfiles : 0;

  while (lo < hi) {
    size_t mid = lo + (hi - lo) / 2;
    int c = strcmp (m->files[mid].path, path);
    if (c == 0)
      return &m->files[mid];
    if (c < 0)
      lo = mid + 1;
    else
      hi = mid;
  }
  return NULL;
}

bool
repl_file_identical (const struct repl_file *a, const struct repl_file *b)
{
  return a && b && a->size == b->size && a->mtime_ns == b->mtime_ns &&
    memcmp (a->hash, b->hash, DF_HASH_LEN) == 0;
}
