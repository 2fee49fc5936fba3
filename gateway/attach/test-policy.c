/* Unit tests of the attach's pure decisions: the stack plan, the
 * description's cache mode, ranking by load, export names.
 */
#include <config.h>

#include "test-helpers.h"
#include "attach/attach.h"

struct plan_case {
  struct attach_facts f;
  int rv;                       /* 0 or -1 */
  bool overlay, read_cache, readonly, failover;
  const char *says;             /* in why or in the error */
};

static const struct plan_case cases[] = {
  /* Write cache "device": the server only reads. */
  { { .readonly = true, .has_identity = true, .mode = "device",
      .overlay = true }, 0, true, false, false, true, "replica" },
  { { .readonly = true, .has_identity = true, .mode = "device",
      .overlay = true, .read_cache = true }, 0, true, true, false, true, "" },
  { { .readonly = true, .has_identity = true, .mode = "device" },
    -1, .says = "--overlay" },
  { { .readonly = true, .has_identity = true, .want_readonly = true },
    0, false, false, true, true, "" },
  { { .readonly = true, .overlay = true }, 0, true, false, false, false,
    "content hash" },
  { { .readonly = true, .overlay = true, .read_cache = true }, -1,
    .says = "keyed" },
  /* Server-side caches. */
  { { .has_identity = true, .mode = "disk", .shared = true }, 0, false, false,
    false, true, "shares" },
  { { .has_identity = true, .mode = "persistent", .shared = true }, 0, false,
    false, false, true, "" },
  { { .mode = "none", .shared = true }, 0, false, false, false, true, "" },
  { { .has_identity = true, .mode = "disk" }, 0, false, false, false, false,
    "--shared-cache" },
  { { .has_identity = true, .mode = "ram", .shared = true }, 0, false, false,
    false, false, "RAM" },
  { { .has_identity = true, .mode = "ram+disk", .shared = true }, 0, false,
    false, false, false, "RAM" },
  { { .has_identity = true, .shared = true }, 0, false, false, false, false,
    "does not say" },
  { { .has_identity = true, .mode = "disk", .shared = true,
      .want_readonly = true }, 0, false, false, true, true, "" },
  { { .has_identity = true, .mode = "disk", .overlay = true }, -1,
    .says = "--overlay is for" },
  { { .has_identity = true, .mode = "disk", .read_cache = true }, -1,
    .says = "--read-cache needs" },
};

static void
test_plan (void **state)
{
  size_t i;

  (void) state;
  for (i = 0; i < sizeof cases / sizeof cases[0]; i++) {
    const struct plan_case *c = &cases[i];
    struct attach_plan p;
    int rv = attach_plan (&c->f, &p);
    if (rv != c->rv)
      fail_msg ("case %zu: returned %d", i, rv);
    if (rv == -1) {
      if (strstr (df_error_get (), c->says) == NULL)
        fail_msg ("case %zu: \"%s\"", i, df_error_get ());
      continue;
    }
    if (p.overlay != c->overlay || p.read_cache != c->read_cache ||
        p.readonly != c->readonly || p.failover != c->failover)
      fail_msg ("case %zu: overlay %d read cache %d readonly %d failover %d",
                i, p.overlay, p.read_cache, p.readonly, p.failover);
    if (strstr (p.why, c->says) == NULL)
      fail_msg ("case %zu: why \"%s\"", i, p.why);
  }
}

static void
test_desc_mode (void **state)
{
  char buf[32];

  (void) state;
  assert_string_equal (attach_desc_cache_mode ("device pc1 session s: vdisk "
                       "base version 3, write cache ram+disk vdisk=base",
                       buf, sizeof buf), "ram+disk");
  assert_string_equal (attach_desc_cache_mode ("write cache disk", buf,
                                               sizeof buf), "disk");
  assert_string_equal (attach_desc_cache_mode ("x, write cache none, y", buf,
                                               sizeof buf), "none");
  assert_null (attach_desc_cache_mode ("vdisk base version 2", buf, sizeof buf));
  assert_null (attach_desc_cache_mode ("write cache ", buf, sizeof buf));
  assert_null (attach_desc_cache_mode (NULL, buf, sizeof buf));
}

static void
test_rank (void **state)
{
  static const struct {
    double load[5];
    size_t want[5];
  } t[] = {
    { { -1, -1, -1, -1, -1 }, { 0, 1, 2, 3, 4 } },
    { { 3, 1, 2, -1, 0.5 }, { 4, 1, 2, 0, 3 } },
    { { -1, 2, -1, 2, 1 }, { 4, 1, 3, 0, 2 } },
    { { 0, 0, 0, 0, 0 }, { 0, 1, 2, 3, 4 } },
  };
  size_t i, k;

  (void) state;
  for (i = 0; i < sizeof t / sizeof t[0]; i++) {
    size_t order[5] = { 0, 1, 2, 3, 4 };
    attach_rank_by_load (t[i].load, order, 5);
    for (k = 0; k < 5; k++)
      if (order[k] != t[i].want[k])
        fail_msg ("case %zu: position %zu is %zu", i, k, order[k]);
  }
}

static void
test_export (void **state)
{
  static const char *const good[] = {
    "dev/pc1", "dev/pc1@s-42", "img/base", "img/base@3",
  };
  static const char *const bad[] = {
    "pc1", "dev/", "dev/@x", "dev/../x", "dev/pc1@", "dev/pc1@a/b",
    "img/base@0", "img/base@03", "img/base@x", "edit/base",
  };
  size_t i;

  (void) state;
  for (i = 0; i < sizeof good / sizeof good[0]; i++)
    if (attach_export_check (good[i]) == -1)
      fail_msg ("refused %s: %s", good[i], df_error_get ());
  for (i = 0; i < sizeof bad / sizeof bad[0]; i++)
    if (attach_export_check (bad[i]) == 0)
      fail_msg ("accepted %s", bad[i]);
}

int
main (void)
{
  const struct CMUnitTest tests[] = {
    cmocka_unit_test (test_plan),
    cmocka_unit_test (test_desc_mode),
    cmocka_unit_test (test_rank),
    cmocka_unit_test (test_export),
  };

  return cmocka_run_group_tests (tests, NULL, NULL);
}
