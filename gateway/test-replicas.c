/* Unit tests: gateway/replicas.c — the verdicts diskfarm status gives
 * one vDisk version across servers, from their /v1/vdisks documents,
 * driven from a table: identical, still being checked, differs (hash,
 * mtime, size, a failed check), incomplete, missing (no file, no such
 * version), servers that do not carry the store or did not answer left
 * out, maintenance versions not compared, rows sorted.
 */
#include <config.h>

#include "test-helpers.h"
#include "replicas.h"

/* A copy of base@1 as a server reports it. */
#define COPY(rep, size, mtime, hash, verified)                          \
  "{\"num\": 1, \"state\": \"production\", \"replica\": \"" rep "\", "  \
  "\"size\": " #size ", \"mtime_ns\": " #mtime ", \"hash\": \"" hash    \
  "\", \"verified\": \"" verified "\"}"
#define GOOD COPY ("present", 100, 5, "aa", "ok")
#define DOC(versions)                                                   \
  "{\"vdisks\": [{\"name\": \"base\", \"store\": \"store\", "           \
  "\"versions\": [" versions "]}]}"

struct replica_case {
  const char *what;
  const char *docs[3];          /* s1, s2 (carry the store), s3 (not); NULL: down */
  const char *want;             /* "VDISK@N VERDICT[ checking]; ..." */
  enum replica_verdict worst;
};

static const struct replica_case cases[] = {
  { "identical", { DOC (GOOD), DOC (GOOD), DOC ("") },
    "base@1 identical", VERDICT_IDENTICAL },
  { "one copy still being checked",
    { DOC (GOOD), DOC (COPY ("present", 100, 5, "aa", "pending")), NULL },
    "base@1 identical checking", VERDICT_IDENTICAL },
  { "hash differs",
    { DOC (GOOD), DOC (COPY ("present", 100, 5, "bb", "ok")), NULL },
    "base@1 differs", VERDICT_DIFFERS },
  { "mtime differs",
    { DOC (GOOD), DOC (COPY ("present", 100, 6, "aa", "ok")), NULL },
    "base@1 differs", VERDICT_DIFFERS },
  { "size differs",
    { DOC (GOOD), DOC (COPY ("present", 101, 5, "aa", "ok")), NULL },
    "base@1 differs", VERDICT_DIFFERS },
  { "content failed its check, identity the same",
    { DOC (GOOD), DOC (COPY ("present", 100, 5, "aa", "failed")), NULL },
    "base@1 differs", VERDICT_DIFFERS },
  { "no file", { DOC (GOOD), DOC ("{\"num\": 1, \"state\": \"production\", "
                                  "\"replica\": \"missing\"}"), NULL },
    "base@1 missing", VERDICT_MISSING },
  { "no such version", { DOC (GOOD), DOC (""), NULL },
    "base@1 missing", VERDICT_MISSING },
  { "no such vDisk", { DOC (GOOD), "{\"vdisks\": []}", NULL },
    "base@1 missing", VERDICT_MISSING },
  { "shorter copy", { DOC (GOOD), DOC (COPY ("incomplete", 60, 5, "aa", "ok")),
                      NULL },
    "base@1 incomplete", VERDICT_INCOMPLETE },
  { "present without a hash",
    { DOC (GOOD), DOC ("{\"num\": 1, \"state\": \"production\", "
                       "\"replica\": \"present\", \"size\": 100, "
                       "\"mtime_ns\": 5}"), NULL },
    "base@1 incomplete", VERDICT_INCOMPLETE },
  { "missing outweighs incomplete",
    { DOC (COPY ("incomplete", 60, 5, "aa", "ok")), DOC (""), NULL },
    "base@1 missing", VERDICT_MISSING },
  { "a server without the store is left out",
    { DOC (GOOD), DOC (GOOD), DOC (COPY ("present", 1, 1, "cc", "failed")) },
    "base@1 identical", VERDICT_IDENTICAL },
  { "a server that did not answer is left out",
    { DOC (GOOD), NULL, NULL }, "base@1 identical", VERDICT_IDENTICAL },
  { "maintenance versions are not compared",
    { DOC ("{\"num\": 1, \"state\": \"maintenance\", \"replica\": \"present\"}"),
      DOC (""), NULL }, "", VERDICT_IDENTICAL },
  { "rows by vDisk and version",
    { "{\"vdisks\": [{\"name\": \"zeta\", \"store\": \"store\", \"versions\": ["
      GOOD "]}, {\"name\": \"base\", \"store\": \"store\", \"versions\": ["
      "{\"num\": 2, \"state\": \"test\", \"replica\": \"missing\"}, " GOOD "]}]}",
      "{\"vdisks\": [{\"name\": \"base\", \"store\": \"store\", \"versions\": ["
      GOOD "]}, {\"name\": \"zeta\", \"store\": \"store\", \"versions\": ["
      GOOD "]}]}", NULL },
    "base@1 identical; base@2 missing; zeta@1 identical", VERDICT_MISSING },
  { "not a document of vDisks", { "[1, 2]", "{\"vdisks\": 7}", NULL },
    "", VERDICT_IDENTICAL },
};

static bool
holds (void *opaque, const char *server, const char *store)
{
  (void) opaque;
  return strcmp (store, "store") == 0 && strcmp (server, "s3") != 0;
}

/* The rows as "VDISK@N VERDICT[ checking]", joined by "; ". */
static void
describe (json_t *rows, char *out, size_t len)
{
  json_t *r;
  size_t i;

  out[0] = '\0';
  json_array_foreach (rows, i, r)
    snprintf (out + strlen (out), len - strlen (out), "%s%s@%lld %s%s",
              i ? "; " : "",
              json_string_value (json_object_get (r, "vdisk")),
              (long long) json_integer_value (json_object_get (r, "version")),
              json_string_value (json_object_get (r, "replicas")),
              json_is_true (json_object_get (r, "checking")) ? " checking" : "");
}

static void
test_verdicts (void **state)
{
  size_t c, i;

  (void) state;
  for (c = 0; c < sizeof cases / sizeof cases[0]; c++) {
    const struct replica_case *k = &cases[c];
    struct replica_server servers[3] = { { "s1", NULL }, { "s2", NULL },
                                         { "s3", NULL } };
    enum replica_verdict worst;
    char got[512];
    json_t *rows;

    for (i = 0; i < 3; i++) {
      servers[i].vdisks = k->docs[i] ? json_loads (k->docs[i], 0, NULL) : NULL;
      if (k->docs[i] && servers[i].vdisks == NULL)
        fail_msg ("%s: document %zu is not JSON", k->what, i);
    }
    rows = replicas_compare (servers, 3, holds, NULL, &worst);
    assert_non_null (rows);
    describe (rows, got, sizeof got);
    if (strcmp (got, k->want) != 0 || worst != k->worst)
      fail_msg ("%s: got \"%s\" (worst %s), want \"%s\" (worst %s)", k->what,
                got, replica_verdict_name (worst), k->want,
                replica_verdict_name (k->worst));
    json_decref (rows);
    for (i = 0; i < 3; i++)
      json_decref (servers[i].vdisks);
  }
}

/* What one server says of its copy is kept in the row. */
static void
test_row_details (void **state)
{
  struct replica_server servers[2] = { { "s1", NULL }, { "s2", NULL } };
  enum replica_verdict worst;
  json_t *rows, *per;

  (void) state;
  servers[0].vdisks = json_loads (DOC (GOOD), 0, NULL);
  servers[1].vdisks = json_loads (DOC (COPY ("present", 100, 5, "bb", "ok")),
                                  0, NULL);
  rows = replicas_compare (servers, 2, holds, NULL, &worst);
  assert_int_equal (json_array_size (rows), 1);
  per = json_object_get (json_array_get (rows, 0), "servers");
  assert_string_equal (json_string_value (json_object_get (
                         json_object_get (per, "s2"), "hash")), "bb");
  assert_int_equal (json_integer_value (json_object_get (
                      json_object_get (per, "s1"), "mtime_ns")), 5);
  assert_string_equal (json_string_value (json_object_get (
                         json_array_get (rows, 0), "state")), "production");
  json_decref (rows);
  json_decref (servers[0].vdisks);
  json_decref (servers[1].vdisks);
}

int
main (void)
{
  const struct CMUnitTest tests[] = {
    cmocka_unit_test (test_verdicts),
    cmocka_unit_test (test_row_details),
  };

  return cmocka_run_group_tests (tests, NULL, NULL);
}
