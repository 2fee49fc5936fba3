/* diskfarm-gateway serve — the farm directory for replication:
 *
 *   GET /v1/farm/manifest      farm.conf and devices.d/NAME.conf
 *   GET /v1/farm/files/PATH    one of them
 *
 * Only those: never the token file, keys, certificates or anything else
 * an operator keeps in the farm directory.
 */
#include <config.h>

#include <dirent.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cleanup.h"
#include "error.h"
#include "gw.h"
#include "storepath.h"
#include "util.h"

/* One file's entry, from the bytes read once. */
static json_t *
farm_entry (const char *dir, const char *rel)
{
  CLEANUP_FREE char *data = NULL;
  char hex[DF_HASH_LEN * 2 + 1];
  uint8_t hash[DF_HASH_LEN];
  struct df_hash *h;
  struct stat st;
  size_t len;

  if (gw_read_beneath (dir, rel, &data, &len, &st) == -1)
    return NULL;
  h = df_hash_new ();
  if (h == NULL || df_hash_update (h, data, len) == -1 ||
      df_hash_final (h, hash) == -1)
    return NULL;
  return json_pack ("{s:s, s:s, s:I, s:I, s:s}", "path", rel, "kind", "farm",
                    "size", (json_int_t) len,
                    "mtime_ns", (json_int_t) gw_mtime_ns (&st),
                    "hash", gw_hex_hash (hash, hex));
}

static int
cmp_str (const void *a, const void *b)
{
  return strcmp (*(char *const *) a, *(char *const *) b);
}

/* "devices.d/NAME.conf" of every device file, sorted (caller frees). */
static char **
device_files (const char *dir, size_t *n)
{
  CLEANUP_FREE char *ddir = df_path_join (dir, "devices.d");
  char dev[DF_NAME_MAX + 1], rel[300], **v = NULL, **nv;
  struct dirent *de;
  DIR *d = ddir ? opendir (ddir) : NULL;

  *n = 0;
  while (d && (de = readdir (d)) != NULL) {
    if (strlen (de->d_name) > DF_NAME_MAX)
      continue;
    snprintf (rel, sizeof rel, "devices.d/%s", de->d_name);
    if (gw_farm_path_parse (rel, dev) == -1)
      continue;
    nv = realloc (v, (*n + 1) * sizeof *v);
    if (nv == NULL)
      break;
    v = nv;
    if ((v[*n] = strdup (rel)) != NULL)
      (*n)++;
  }
  if (d)
    closedir (d);
  df_error_clear ();
  if (*n)
    qsort (v, *n, sizeof *v, cmp_str);
  return v;
}

int
gw_h_farm_manifest (struct df_http_request *req, void *opaque)
{
  struct gw *gw = opaque;
  struct gw_farm *f = gw_farm_get (gw);
  const char *dir = df_farm_dir (f->farm);
  json_t *files = json_array (), *e;
  size_t n, i;
  char **devs = device_files (dir, &n);
  int r;

  for (i = 0; i < n; i++) {
    e = farm_entry (dir, devs[i]);
    if (e)
      json_array_append_new (files, e);
    free (devs[i]);
  }
  free (devs);
  /* Sorted by path: "devices.d/" comes before "farm.conf". */
  e = farm_entry (dir, "farm.conf");
  if (e)
    json_array_append_new (files, e);
  r = df_http_respond_json (req, 200, json_pack ("{s:s, s:o}", "server",
                                                 f->server, "files", files));
  gw_farm_put (gw, f);
  return r;
}

int
gw_h_farm_file (struct df_http_request *req, void *opaque)
{
  struct gw *gw = opaque;
  const char *rel = df_http_subpath (req);
  CLEANUP_FREE char *data = NULL;
  char dev[DF_NAME_MAX + 1];
  uint8_t hash[DF_HASH_LEN];
  struct gw_farm *f;
  struct df_hash *h;
  struct stat st;
  size_t len;
  int r;

  if (gw_farm_path_parse (rel, dev) == -1)
    return gw_refuse (req, 403, "forbidden", "%s", df_error_get ());
  f = gw_farm_get (gw);
  r = gw_read_beneath (df_farm_dir (f->farm), rel, &data, &len, &st);
  gw_farm_put (gw, f);
  if (r == -1)
    return gw_respond_open_error (req);
  h = df_hash_new ();
  if (h == NULL || df_hash_update (h, data, len) == -1 ||
      df_hash_final (h, hash) == -1)
    return df_error (ENOMEM, "hash");
  return gw_respond_bytes (req, data, len, &st, hash);
}
