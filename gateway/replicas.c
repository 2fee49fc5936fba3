/* diskfarm — comparing replicas across servers (see replicas.h). */
#include <config.h>

#include <stdlib.h>
#include <string.h>

#include "replicas.h"

const char *
replica_verdict_name (enum replica_verdict v)
{
  static const char *const names[] = {
    "identical", "incomplete", "differs", "missing",
  };

  return names[v];
}

static const char *
str (json_t *o, const char *key)
{
  return json_string_value (json_object_get (o, key));
}

/* The vDisk named name in a server's document, or NULL. */
static json_t *
find_vdisk (json_t *doc, const char *name)
{
  json_t *a = json_object_get (doc, "vdisks"), *v;
  size_t i;

  json_array_foreach (a, i, v) {
    const char *s = str (v, "name");
    if (s && strcmp (s, name) == 0)
      return v;
  }
  return NULL;
}

static json_t *
find_version (json_t *vdisk, json_int_t num)
{
  json_t *a = json_object_get (vdisk, "versions"), *v;
  size_t i;

  json_array_foreach (a, i, v)
    if (json_is_integer (json_object_get (v, "num")) &&
        json_integer_value (json_object_get (v, "num")) == num)
      return v;
  return NULL;
}

static bool
is_sealed_version (json_t *v)
{
  const char *state = str (v, "state");

  return json_is_integer (json_object_get (v, "num")) && state &&
    strcmp (state, "maintenance") != 0;
}

/* Every (vDisk, store, version, state) any server reports, as rows
 * without their verdicts yet: {"vdisk", "store", "version", "state"}.
 */
static void
add_row (json_t *rows, const char *vdisk, const char *store, json_t *ver)
{
  json_int_t num = json_integer_value (json_object_get (ver, "num"));
  json_t *r;
  size_t i;

  json_array_foreach (rows, i, r)
    if (strcmp (str (r, "vdisk"), vdisk) == 0 &&
        json_integer_value (json_object_get (r, "version")) == num)
      return;
  json_array_append_new (rows, json_pack ("{s:s, s:s, s:I, s:s}",
                                          "vdisk", vdisk, "store", store,
                                          "version", num,
                                          "state", str (ver, "state")));
}

static void
collect_rows (const struct replica_server *servers, size_t n, json_t *rows)
{
  size_t s, i, k;
  json_t *vd, *ver;

  for (s = 0; s < n; s++)
    json_array_foreach (json_object_get (servers[s].vdisks, "vdisks"), i, vd) {
      const char *name = str (vd, "name"), *store = str (vd, "store");
      if (name == NULL || store == NULL)
        continue;
      json_array_foreach (json_object_get (vd, "versions"), k, ver)
        if (is_sealed_version (ver))
          add_row (rows, name, store, ver);
    }
}

/* A copy's entry, and how it weighs: its verdict alone. */
static enum replica_verdict
copy_entry (json_t *ver, json_t **entry, bool *checking)
{
  const char *rep = str (ver, "replica"), *verified = str (ver, "verified");
  json_t *size = json_object_get (ver, "size");
  json_t *mtime = json_object_get (ver, "mtime_ns");
  const char *hash = str (ver, "hash");

  if (rep == NULL || strcmp (rep, "missing") == 0) {
    *entry = json_pack ("{s:s}", "replica", "missing");
    return VERDICT_MISSING;
  }
  if (strcmp (rep, "present") != 0 || !json_is_integer (size) ||
      !json_is_integer (mtime) || hash == NULL) {
    *entry = json_pack ("{s:s}", "replica", "incomplete");
    return VERDICT_INCOMPLETE;
  }
  *entry = json_pack ("{s:s, s:O, s:O, s:s, s:s?}", "replica", "present",
                      "size", size, "mtime_ns", mtime, "hash", hash,
                      "verified", verified);
  if (verified && strcmp (verified, "pending") == 0)
    *checking = true;
  return verified && strcmp (verified, "failed") == 0 ? VERDICT_DIFFERS :
    VERDICT_IDENTICAL;
}

static bool
same_identity (json_t *a, json_t *b)
{
  return json_equal (json_object_get (a, "size"), json_object_get (b, "size")) &&
    json_equal (json_object_get (a, "mtime_ns"), json_object_get (b, "mtime_ns")) &&
    json_equal (json_object_get (a, "hash"), json_object_get (b, "hash"));
}

/* A copy that can be a reference: present, hashed, not failed. */
static bool
usable (json_t *entry)
{
  const char *rep = str (entry, "replica"), *ver = str (entry, "verified");

  return rep && strcmp (rep, "present") == 0 &&
    !(ver && strcmp (ver, "failed") == 0);
}

/* Pending: the servers that do not (yet) hold the version identical to
 * the copy most servers hold (a damaged or half-replicated copy is not
 * the reference), as ["NAME", ...].
 */
static json_t *
pending_servers (json_t *per)
{
  json_t *ref = NULL, *e, *f, *pending = json_array ();
  const char *name, *other;
  size_t best = 0;

  json_object_foreach (per, name, e) {
    size_t count = 0;
    if (!usable (e))
      continue;
    json_object_foreach (per, other, f)
      count += usable (f) && same_identity (e, f);
    if (count > best) {
      best = count;
      ref = e;
    }
  }
  json_object_foreach (per, name, e)
    if (ref == NULL || !usable (e) || !same_identity (ref, e))
      json_array_append_new (pending, json_string (name));
  return pending;
}

static enum replica_verdict
judge_row (json_t *row, const struct replica_server *servers, size_t n,
           replica_holds_fn holds, void *opaque)
{
  enum replica_verdict worst = VERDICT_IDENTICAL, v;
  json_t *per = json_object (), *first = NULL;
  json_int_t num = json_integer_value (json_object_get (row, "version"));
  bool checking = false;
  size_t s;

  for (s = 0; s < n; s++) {
    json_t *vd, *ver, *entry;
    if (servers[s].vdisks == NULL ||
        !holds (opaque, servers[s].name, str (row, "store")))
      continue;
    vd = find_vdisk (servers[s].vdisks, str (row, "vdisk"));
    ver = vd ? find_version (vd, num) : NULL;
    v = copy_entry (ver, &entry, &checking);
    if (v == VERDICT_IDENTICAL) {
      if (first == NULL)
        first = entry;
      else if (!same_identity (first, entry))
        v = VERDICT_DIFFERS;
    }
    if (v > worst)
      worst = v;
    json_object_set_new (per, servers[s].name, entry);
  }
  json_object_set_new (row, "replicas",
                       json_string (replica_verdict_name (worst)));
  json_object_set_new (row, "checking", json_boolean (checking));
  json_object_set_new (row, "pending", pending_servers (per));
  json_object_set_new (row, "servers", per);
  return worst;
}

static int
cmp_rows (const void *a, const void *b)
{
  json_t *x = *(json_t *const *) a, *y = *(json_t *const *) b;
  int c = strcmp (str (x, "vdisk"), str (y, "vdisk"));
  json_int_t p = json_integer_value (json_object_get (x, "version"));
  json_int_t q = json_integer_value (json_object_get (y, "version"));

  return c ? c : (p > q) - (p < q);
}

json_t *
replicas_compare (const struct replica_server *servers, size_t n,
                  replica_holds_fn holds, void *opaque,
                  enum replica_verdict *worst)
{
  json_t *rows = json_array (), *sorted = json_array (), *r;
  json_t **v;
  size_t i, count;

  *worst = VERDICT_IDENTICAL;
  collect_rows (servers, n, rows);
  count = json_array_size (rows);
  v = calloc (count + 1, sizeof *v);
  if (v == NULL || sorted == NULL) {
    free (v);
    json_decref (rows);
    json_decref (sorted);
    return NULL;
  }
  json_array_foreach (rows, i, r) {
    enum replica_verdict w = judge_row (r, servers, n, holds, opaque);
    if (w > *worst)
      *worst = w;
    v[i] = r;
  }
  qsort (v, count, sizeof *v, cmp_rows);
  for (i = 0; i < count; i++)
    json_array_append (sorted, v[i]);
  free (v);
  json_decref (rows);
  return sorted;
}
