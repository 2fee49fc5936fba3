/* diskfarm-gateway serve — what a store offers for replication:
 *
 *   GET /v1/stores/STORE/manifest      every file replication carries
 *   GET /v1/stores/STORE/files/PATH    one of them (Range, ETag)
 *
 * Replication carries each vDisk's vdisk.conf, the layers of its sealed
 * versions and its boot files; never write caches, unsealed layers or
 * anything else.  A layer is offered only while its file matches the
 * manifest (size and mtime_ns) and the background check has not found
 * its content hash different.
 */
#include <config.h>

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "cleanup.h"
#include "error.h"
#include "gw.h"
#include "log.h"
#include "storepath.h"
#include "util.h"
#include "vdisk/vdisk.h"

#define MANIFEST_MAX (4 * 1024 * 1024)

uint64_t
gw_mtime_ns (const struct stat *st)
{
  return st->st_mtim.tv_sec * 1000000000ULL + st->st_mtim.tv_nsec;
}

int
gw_read_beneath (const char *root, const char *rel, char **data, size_t *len,
                 struct stat *st)
{
  CLEANUP_CLOSE int fd = gw_open_beneath (root, rel);
  size_t cap;
  ssize_t r;

  *data = NULL;
  if (fd == -1)
    return -1;
  if (fstat (fd, st) == -1)
    return df_error_errno ("%s", rel);
  if (!S_ISREG (st->st_mode) || st->st_size > MANIFEST_MAX)
    return df_error (EINVAL, "%s is not a small regular file", rel);
  cap = st->st_size + 1;
  *data = malloc (cap);
  if (*data == NULL)
    return df_error_errno ("%s", rel);
  /* A file that grew since fstat is read as it was (cap - 1 bytes). */
  r = df_read_full (fd, *data, cap - 1);
  if (r == -1) {
    free (*data);
    *data = NULL;
    return df_error_errno ("read %s", rel);
  }
  *len = r;
  (*data)[*len] = '\0';
  return 0;
}

int
gw_respond_bytes (struct df_http_request *req, const char *data, size_t len,
                  const struct stat *st, const uint8_t hash[DF_HASH_LEN])
{
  int fd = memfd_create ("diskfarm-file", MFD_CLOEXEC);
  struct timespec times[2] = { st->st_atim, st->st_mtim };
  char etag[DF_HASH_LEN * 2 + 3], hex[DF_HASH_LEN * 2 + 1], mt[32];
  if (fd == -1)
    return df_error_errno ("memfd");
  if (df_write_full (fd, data, len) == -1) {
    df_error_errno ("memfd");
    close (fd);
    return -1;
  }
  /* Last-Modified (and If-Range by date) as of the file itself. */
  futimens (fd, times);
  snprintf (etag, sizeof etag, "\"%s\"", gw_hex_hash (hash, hex));
  snprintf (mt, sizeof mt, "%" PRIu64, gw_mtime_ns (st));
  if (df_http_add_header (req, "X-Diskfarm-Mtime-Ns", mt) == -1) {
    close (fd);
    return -1;
  }
  return df_http_respond_file (req, fd, "application/octet-stream", etag);
}

/* ---- the manifest ---- */

static json_t *
file_entry (const char *path, const char *kind, const struct stat *st,
            const uint8_t hash[DF_HASH_LEN])
{
  char hex[DF_HASH_LEN * 2 + 1];

  return json_pack ("{s:s, s:s, s:I, s:I, s:s}", "path", path, "kind", kind,
                    "size", (json_int_t) st->st_size,
                    "mtime_ns", (json_int_t) gw_mtime_ns (st),
                    "hash", gw_hex_hash (hash, hex));
}

enum gw_replica
gw_layer_replica (struct gw *gw, const char *store, const struct df_vdisk *vd,
                  const struct df_version *v, struct stat *st,
                  uint8_t hash[DF_HASH_LEN], enum gw_verify *verify)
{
  CLEANUP_FREE char *rel = NULL;
  CLEANUP_FREE char *path = NULL;
  int fd;

  *verify = GW_VERIFY_PENDING;
  memcpy (hash, v->hash, DF_HASH_LEN);
  if (asprintf (&rel, "vdisks/%s/%s", vd->name, v->file) == -1 ||
      asprintf (&path, "%s/%s", store, rel) == -1)
    return GW_REPLICA_MISSING;
  fd = gw_open_beneath (store, rel);
  if (fd == -1)
    return GW_REPLICA_MISSING;
  if (fstat (fd, st) == -1 || !S_ISREG (st->st_mode)) {
    close (fd);
    return GW_REPLICA_MISSING;
  }
  close (fd);
  if (!v->sealed || (uint64_t) st->st_size < v->size)
    return GW_REPLICA_INCOMPLETE;
  if ((uint64_t) st->st_size == v->size && gw_mtime_ns (st) == v->mtime_ns)
    *verify = gw_hash_layer (gw->hashes, path, st, hash);
  else
    *verify = GW_VERIFY_FAILED;         /* not the file the manifest names */
  if (*verify == GW_VERIFY_PENDING)
    memcpy (hash, v->hash, DF_HASH_LEN);
  /* Checked, and its content is not what the manifest says. */
  if (*verify == GW_VERIFY_OK && memcmp (hash, v->hash, DF_HASH_LEN) != 0)
    *verify = GW_VERIFY_FAILED;
  return GW_REPLICA_PRESENT;
}

/* The layers of vd that may be served, into files. */
static int
add_layers (struct gw *gw, const char *store, const struct df_vdisk *vd,
            json_t *files)
{
  size_t i;

  for (i = 0; i < vd->nversions; i++) {
    const struct df_version *v = &vd->versions[i];
    char rel[DF_NAME_MAX + 32], hex[DF_HASH_LEN * 2 + 1];
    uint8_t actual[DF_HASH_LEN];
    enum gw_verify verify;
    struct stat st;
    json_t *e;

    if (!v->sealed ||
        gw_layer_replica (gw, store, vd, v, &st, actual, &verify) !=
        GW_REPLICA_PRESENT || verify == GW_VERIFY_FAILED ||
        memcmp (actual, v->hash, DF_HASH_LEN) != 0)
      continue;
    snprintf (rel, sizeof rel, "vdisks/%s/%s", vd->name, v->file);
    e = json_pack ("{s:s, s:s, s:s, s:i, s:I, s:I, s:s}", "path", rel,
                   "kind", "layer", "vdisk", vd->name, "version", (int) v->num,
                   "size", (json_int_t) v->size,
                   "mtime_ns", (json_int_t) v->mtime_ns,
                   "hash", gw_hex_hash (v->hash, hex));
    if (json_array_append_new (files, e) == -1)
      return df_error (ENOMEM, "manifest");
  }
  return 0;
}

/* The regular files of vdisks/NAME/boot/. */
static int
add_boot_files (struct gw *gw, const char *store, const char *name,
                json_t *files)
{
  CLEANUP_FREE char *dir = NULL;
  struct dirent *de;
  DIR *d;

  if (asprintf (&dir, "%s/vdisks/%s/boot", store, name) == -1)
    return df_error_errno ("%s", name);
  d = opendir (dir);
  if (d == NULL)
    return 0;
  while ((de = readdir (d)) != NULL) {
    char rel[512];
    uint8_t hash[DF_HASH_LEN];
    struct stat st;
    int fd;

    if (de->d_name[0] == '.' || !df_name_valid (de->d_name))
      continue;
    snprintf (rel, sizeof rel, "vdisks/%s/boot/%s", name, de->d_name);
    fd = gw_open_beneath (store, rel);
    if (fd == -1)
      continue;
    if (fstat (fd, &st) == 0 && S_ISREG (st.st_mode) &&
        gw_hash_file (gw->hashes, fd, &st, hash) == 0)
      json_array_append_new (files, file_entry (rel, "boot", &st, hash));
    close (fd);
  }
  closedir (d);
  return 0;
}

/* vdisk.conf, read once: its entry, and the manifest parsed from the
 * very bytes hashed.  *vd is NULL if it cannot be parsed.
 */
static int
add_vdisk_conf (const char *store, const char *name, json_t *files,
                struct df_vdisk **vd)
{
  CLEANUP_FREE char *data = NULL;
  char rel[2 * DF_NAME_MAX + 32];
  uint8_t hash[DF_HASH_LEN];
  struct df_hash *h;
  struct stat st;
  size_t len;

  *vd = NULL;
  snprintf (rel, sizeof rel, "vdisks/%s/vdisk.conf", name);
  if (gw_read_beneath (store, rel, &data, &len, &st) == -1)
    return 0;                   /* an import under way, or gone */
  h = df_hash_new ();
  if (h == NULL || df_hash_update (h, data, len) == -1 ||
      df_hash_final (h, hash) == -1)
    return df_error (ENOMEM, "hash");
  json_array_append_new (files, file_entry (rel, "manifest", &st, hash));
  *vd = df_vdisk_parse (data, len, rel);
  if (*vd == NULL)
    df_log_warning ("store %s: %s", store, df_error_get ());
  else if (((*vd)->name = strdup (name)) == NULL) {
    df_vdisk_free (*vd);
    *vd = NULL;
    return df_error_errno ("%s", name);
  }
  return 0;
}

static int
cmp_path (const void *a, const void *b)
{
  const json_t *x = *(json_t *const *) a, *y = *(json_t *const *) b;

  return strcmp (json_string_value (json_object_get (x, "path")),
                 json_string_value (json_object_get (y, "path")));
}

static json_t *
sorted (json_t *files)
{
  size_t n = json_array_size (files), i;
  CLEANUP_FREE json_t **v = calloc (n + 1, sizeof *v);
  json_t *out = json_array ();

  if (v == NULL || out == NULL) {
    json_decref (out);
    return NULL;
  }
  for (i = 0; i < n; i++)
    v[i] = json_array_get (files, i);
  qsort (v, n, sizeof *v, cmp_path);
  for (i = 0; i < n; i++)
    json_array_append (out, v[i]);
  return out;
}

json_t *
gw_store_manifest (struct gw *gw, const char *store)
{
  char **names = df_store_vdisks (store);
  json_t *files = json_array (), *out;
  size_t i;
  int r = 0;

  if (names == NULL || files == NULL) {
    df_strv_free (names);
    json_decref (files);
    return NULL;
  }
  for (i = 0; r == 0 && names[i]; i++) {
    struct df_vdisk *vd;
    r = add_vdisk_conf (store, names[i], files, &vd);
    if (r == 0 && vd)
      r = add_layers (gw, store, vd, files);
    if (r == 0)
      r = add_boot_files (gw, store, names[i], files);
    df_vdisk_free (vd);
  }
  df_strv_free (names);
  out = r == 0 ? sorted (files) : NULL;
  json_decref (files);
  return out;
}

/* ---- files ---- */

static int
serve_manifest (struct df_http_request *req, const char *store,
                const char *rel)
{
  CLEANUP_FREE char *data = NULL;
  uint8_t hash[DF_HASH_LEN];
  struct df_hash *h;
  struct stat st;
  size_t len;

  if (gw_read_beneath (store, rel, &data, &len, &st) == -1)
    return gw_respond_open_error (req);
  h = df_hash_new ();
  if (h == NULL || df_hash_update (h, data, len) == -1 ||
      df_hash_final (h, hash) == -1)
    return df_error (ENOMEM, "hash");
  return gw_respond_bytes (req, data, len, &st, hash);
}

/* Sends fd (taken) with the ETag of hash. */
static int
send_fd (struct gw *gw, struct df_http_request *req, int fd, const struct stat *st,
         const uint8_t hash[DF_HASH_LEN])
{
  char etag[DF_HASH_LEN * 2 + 3], hex[DF_HASH_LEN * 2 + 1], mt[32];

  snprintf (etag, sizeof etag, "\"%s\"", gw_hex_hash (hash, hex));
  snprintf (mt, sizeof mt, "%" PRIu64, gw_mtime_ns (st));
  if (df_http_add_header (req, "X-Diskfarm-Mtime-Ns", mt) == -1) {
    close (fd);
    return -1;
  }
  /* Replication reads: the server's devices keep their page cache. */
  df_http_request_leave_cache (req);
  gw_throttle (gw, req);
  return df_http_respond_file (req, fd, "application/octet-stream", etag);
}

/* Answers for version v of a layer that may not be served; 0 if it may. */
static int
check_layer (struct gw *gw, struct df_http_request *req, const char *store,
             const struct gw_file_ref *ref, const struct df_vdisk *vd,
             const struct df_version *v)
{
  uint8_t actual[DF_HASH_LEN];
  enum gw_verify verify;
  struct stat st;

  if (v == NULL)
    return df_http_respond_error (req, 404, "not-found", "%s is no version "
                                  "of vdisk %s", ref->name, ref->vdisk), -1;
  if (!v->sealed)
    return gw_refuse (req, 403, "not-sealed", "version %u of vdisk %s is not "
                      "sealed: only sealed layers are served", v->num,
                      ref->vdisk), -1;
  if (gw_layer_replica (gw, store, vd, v, &st, actual, &verify) !=
      GW_REPLICA_PRESENT || verify == GW_VERIFY_FAILED ||
      memcmp (actual, v->hash, DF_HASH_LEN) != 0)
    return df_http_respond_error (req, 404, "not-available", "the replica of "
                                  "version %u of vdisk %s here does not match "
                                  "its manifest", v->num, ref->vdisk), -1;
  return 0;
}

int
gw_open_layer (struct gw *gw, struct df_http_request *req, const char *store,
               const struct gw_file_ref *ref, const char *rel, struct stat *st,
               uint8_t hash[DF_HASH_LEN])
{
  CLEANUP_FREE char *data = NULL, *mrel = NULL;
  const struct df_version *v = NULL;
  struct df_vdisk *vd;
  size_t len, i;
  int fd = -1;

  if (asprintf (&mrel, "vdisks/%s/vdisk.conf", ref->vdisk) == -1)
    return df_error_errno ("%s", rel);
  if (gw_read_beneath (store, mrel, &data, &len, st) == -1)
    return gw_respond_open_error (req), -1;
  vd = df_vdisk_parse (data, len, mrel);
  if (vd == NULL)
    return df_http_respond_error (req, 404, "not-available", "%s",
                                  df_error_get ()), -1;
  vd->name = strdup (ref->vdisk);
  for (i = 0; vd->name && i < vd->nversions; i++)
    if (strcmp (vd->versions[i].file, ref->name) == 0)
      v = &vd->versions[i];
  if (vd->name == NULL)
    df_error_errno ("%s", rel);
  else if (check_layer (gw, req, store, ref, vd, v) == 0) {
    fd = gw_open_beneath (store, rel);
    if (fd == -1)
      gw_respond_open_error (req);
    else if (fstat (fd, st) == -1 || (uint64_t) st->st_size != v->size ||
             gw_mtime_ns (st) != v->mtime_ns) {
      close (fd);
      fd = -1;
      df_http_respond_error (req, 404, "not-available", "the layer changed "
                             "while it was opened");
    }
    else
      memcpy (hash, v->hash, DF_HASH_LEN);
  }
  df_vdisk_free (vd);
  return fd;
}

static int
serve_layer (struct gw *gw, struct df_http_request *req, const char *store,
             const struct gw_file_ref *ref, const char *rel)
{
  uint8_t hash[DF_HASH_LEN];
  struct stat st;
  int fd = gw_open_layer (gw, req, store, ref, rel, &st, hash);

  return fd == -1 ? -1 : send_fd (gw, req, fd, &st, hash);
}

static int
serve_boot (struct gw *gw, struct df_http_request *req, const char *store,
            const char *rel)
{
  uint8_t hash[DF_HASH_LEN];
  struct stat st;
  int fd = gw_open_beneath (store, rel);

  if (fd == -1)
    return gw_respond_open_error (req);
  if (fstat (fd, &st) == -1 || !S_ISREG (st.st_mode) ||
      gw_hash_file (gw->hashes, fd, &st, hash) == -1) {
    close (fd);
    return df_http_respond_error (req, 404, "not-found", "%s is not a file",
                                  rel);
  }
  return send_fd (gw, req, fd, &st, hash);
}

int
gw_respond_open_error (struct df_http_request *req)
{
  if (errno == ENOENT)
    return df_http_respond_error (req, 404, "not-found", "%s",
                                  df_error_get ());
  if (errno == EPERM)
    return gw_refuse (req, 403, "forbidden", "%s", df_error_get ());
  return df_http_respond_error (req, 403, "unreadable", "%s",
                                df_error_get ());
}

int
gw_h_store_file (struct df_http_request *req, void *opaque)
{
  struct gw *gw = opaque;
  struct gw_farm *f;
  char store[DF_NAME_MAX + 1];
  struct gw_file_ref ref;
  enum gw_store_op op;
  const char *path, *dir;
  int r;

  if (gw_store_route_parse (df_http_subpath (req), store, &op, &path) == -1)
    return errno == ENOENT
      ? df_http_respond_error (req, 404, "not-found", "%s", df_error_get ())
      : gw_refuse (req, 403, "forbidden", "%s", df_error_get ());
  if (op == GW_OP_DELTA) {
    df_http_add_header (req, "Allow", "POST");
    return df_http_respond_error (req, 405, "method-not-allowed", "POST a "
                                  "librsync signature to the delta endpoint");
  }
  if ((op == GW_OP_FILES || op == GW_OP_STAGED) &&
      gw_store_path_parse (path, &ref) == -1)
    return gw_refuse (req, 403, "forbidden", "%s", df_error_get ());
  f = gw_farm_get (gw);
  dir = gw_farm_store (f, store);
  if (dir == NULL)
    r = df_http_respond_error (req, 404, "not-found", "server %s carries no "
                               "store %s", f->server, store);
  else if (op == GW_OP_MANIFEST) {
    json_t *files = gw_store_manifest (gw, dir);
    r = files ? df_http_respond_json (req, 200, json_pack (
          "{s:s, s:s, s:o}", "store", store, "server", f->server,
          "files", files)) : -1;
  }
  else if (op == GW_OP_STAGED)
    r = gw_serve_staged (gw, req, dir, path);
  else if (ref.kind == GW_FILE_MANIFEST)
    r = serve_manifest (req, dir, path);
  else if (ref.kind == GW_FILE_LAYER)
    r = serve_layer (gw, req, dir, &ref, path);
  else
    r = serve_boot (gw, req, dir, path);
  gw_farm_put (gw, f);
  return r;
}
