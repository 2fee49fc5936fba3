/* Unit tests: bootsvc/select (subnets, server addresses, rendezvous
 * order by power, stability, affinity, candidates from a farm).
 */
#include <config.h>

#include <arpa/inet.h>

#include "test-helpers.h"
#include "select.h"

static uint32_t
ip (const char *s)
{
  struct in_addr a;

  assert_int_equal (inet_pton (AF_INET, s, &a), 1);
  return a.s_addr;
}

static void
test_subnets (void **state)
{
  (void) state;
  assert_true (subnets_contain ("10.0.0.0/24", ip ("10.0.0.77")));
  assert_false (subnets_contain ("10.0.0.0/24", ip ("10.0.1.77")));
  assert_true (subnets_contain ("192.168.0.0/16,10.0.0.0/8", ip ("10.9.9.9")));
  assert_true (subnets_contain ("fd00::/8, 10.1.0.0/16", ip ("10.1.2.3")));
  assert_true (subnets_contain ("0.0.0.0/0", ip ("1.2.3.4")));
  assert_true (subnets_contain ("10.0.0.5/32", ip ("10.0.0.5")));
  assert_false (subnets_contain ("10.0.0.5/32", ip ("10.0.0.4")));
  assert_false (subnets_contain (NULL, ip ("10.0.0.1")));
  assert_false (subnets_contain ("junk, 10.0.0.0/33", ip ("10.0.0.1")));
}

static void
test_addresses (void **state)
{
  static const struct {
    const char *in, *host;
    unsigned port;
  } good[] = {
    { "10.0.0.1", "10.0.0.1", 10809 },
    { "10.0.0.1:10900", "10.0.0.1", 10900 },
    { "srv1.lab", "srv1.lab", 10809 },
    { "[fd00::1]:7000", "[fd00::1]", 7000 },
    { "[fd00::1]", "[fd00::1]", 10809 },
    { "fd00::1", "[fd00::1]", 10809 },
  };
  static const char *const bad[] = {
    "10.0.0.1:", "10.0.0.1:0", "10.0.0.1:70000", "[fd00::1", "fd00::zz",
    ":10809", "[fd00::1]x",
  };
  char host[256];
  unsigned port;
  size_t i;

  (void) state;
  for (i = 0; i < sizeof good / sizeof good[0]; i++) {
    if (boot_server_address (good[i].in, host, sizeof host, &port) == -1)
      fail_msg ("%s: %s", good[i].in, df_error_get ());
    assert_string_equal (host, good[i].host);
    assert_int_equal (port, good[i].port);
  }
  for (i = 0; i < sizeof bad / sizeof bad[0]; i++)
    if (boot_server_address (bad[i], host, sizeof host, &port) == 0)
      fail_msg ("\"%s\" was accepted", bad[i]);
}

static void
make_servers (struct boot_server *s, size_t n, const unsigned *power)
{
  size_t i;

  memset (s, 0, n * sizeof *s);
  for (i = 0; i < n; i++) {
    snprintf (s[i].name, sizeof s[i].name, "srv%zu", i + 1);
    snprintf (s[i].host, sizeof s[i].host, "10.0.0.%zu", i + 1);
    s[i].nbd_port = NBD_PORT_DEFAULT;
    s[i].power = power[i];
  }
}

#define DEVICES 3000

static void
test_share_by_power (void **state)
{
  static const unsigned power[3] = { 1, 1, 2 };
  struct boot_server s[3];
  unsigned first[3] = { 0 };
  char dev[32];
  size_t i, j;

  (void) state;
  for (i = 0; i < DEVICES; i++) {
    snprintf (dev, sizeof dev, "pc%04zu", i);
    make_servers (s, 3, power);
    assert_int_equal (boot_servers_order (s, 3, dev, AFFINITY_NONE, false, 4), 3);
    for (j = 0; j < 3; j++)
      if (strcmp (s[0].name, (const char *[]) { "srv1", "srv2", "srv3" }[j]) == 0)
        first[j]++;
  }
  /* Shares 1/4, 1/4, 1/2, within a few percent. */
  assert_in_range (first[0], DEVICES / 4 - 150, DEVICES / 4 + 150);
  assert_in_range (first[1], DEVICES / 4 - 150, DEVICES / 4 + 150);
  assert_in_range (first[2], DEVICES / 2 - 150, DEVICES / 2 + 150);
}

static void
test_stable_and_minimal_moves (void **state)
{
  static const unsigned power[5] = { 1, 1, 1, 1, 1 };
  struct boot_server all[5], fewer[5], again[5];
  unsigned moved = 0, lost = 0;
  char dev[32];
  size_t i;

  (void) state;
  for (i = 0; i < DEVICES; i++) {
    snprintf (dev, sizeof dev, "pc%04zu", i);
    make_servers (all, 5, power);
    make_servers (again, 5, power);
    /* Listed in another order: the same result. */
    memcpy (&again[0], &all[4], sizeof again[0]);
    memcpy (&again[4], &all[0], sizeof again[0]);
    assert_int_equal (boot_servers_order (all, 5, dev, AFFINITY_NONE, false, 4), 4);
    boot_servers_order (again, 5, dev, AFFINITY_NONE, false, 4);
    assert_string_equal (all[0].name, again[0].name);
    assert_string_equal (all[3].name, again[3].name);
    /* Without srv3, only srv3's devices change their first server. */
    make_servers (fewer, 5, power);
    memmove (&fewer[2], &fewer[3], 2 * sizeof fewer[0]);
    boot_servers_order (fewer, 4, dev, AFFINITY_NONE, false, 4);
    if (strcmp (all[0].name, "srv3") == 0)
      lost++;
    else if (strcmp (all[0].name, fewer[0].name) != 0)
      moved++;
  }
  assert_int_equal (moved, 0);
  assert_in_range (lost, DEVICES / 5 - 150, DEVICES / 5 + 150);
}

static void
test_affinity (void **state)
{
  static const unsigned power[4] = { 1, 1, 1, 1 };
  struct boot_server s[4];
  size_t n;

  (void) state;
  make_servers (s, 4, power);
  s[1].near = s[3].near = true;
  n = boot_servers_order (s, 4, "pc1", AFFINITY_BEST_EFFORT, true, 4);
  assert_int_equal (n, 4);
  assert_true (s[0].near && s[1].near);
  assert_false (s[2].near || s[3].near);

  make_servers (s, 4, power);
  s[1].near = s[3].near = true;
  n = boot_servers_order (s, 4, "pc1", AFFINITY_FIXED, true, 4);
  assert_int_equal (n, 2);
  assert_true (s[0].near && s[1].near);

  make_servers (s, 4, power);
  n = boot_servers_order (s, 4, "pc1", AFFINITY_FIXED, true, 4);
  assert_int_equal (n, 0);              /* nobody near: no server */

  /* Unknown client address: no affinity at all, up to max. */
  make_servers (s, 4, power);
  s[2].near = true;
  n = boot_servers_order (s, 4, "pc1", AFFINITY_FIXED, false, 3);
  assert_int_equal (n, 3);

  make_servers (s, 4, power);
  s[2].near = true;
  boot_servers_order (s, 4, "pc1", AFFINITY_NONE, true, 4);
  assert_false (s[0].near || s[1].near || s[2].near || s[3].near);
}

static void
test_from_farm (void **state)
{
  char *dir = test_tmpdir ();
  struct df_farm_init in = { .server = "srv1", .address = "10.0.0.1" };
  struct df_farm *farm;
  struct boot_server *s;
  size_t n;
  int i;

  (void) state;
  assert_int_equal (df_farm_create (dir, &in), 0);
  farm = df_farm_open (dir);
  assert_non_null (farm);
  assert_int_equal (df_farm_add (farm, DF_KIND_STORE, "nas"), 0);
  assert_int_equal (df_farm_set (farm, DF_KIND_STORE, "nas", "path", "/nas"), 0);
  assert_int_equal (df_farm_set (farm, DF_KIND_STORE, "nas", "shared", "yes"), 0);
  assert_int_equal (df_farm_add (farm, DF_KIND_SITE, "lab"), 0);
  assert_int_equal (df_farm_set (farm, DF_KIND_SITE, "lab", "subnets", "10.1.0.0/16"), 0);
  for (i = 2; i <= 3; i++) {
    char name[8], addr[32];
    snprintf (name, sizeof name, "srv%d", i);
    snprintf (addr, sizeof addr, "10.1.0.%d:10900", i);
    assert_int_equal (df_farm_add (farm, DF_KIND_SERVER, name), 0);
    assert_int_equal (df_farm_set (farm, DF_KIND_SERVER, name, "address", addr), 0);
    assert_int_equal (df_farm_set (farm, DF_KIND_SERVER, name, "site", "lab"), 0);
  }
  /* srv3 carries only the shared store. */
  assert_int_equal (df_farm_set (farm, DF_KIND_SERVER, "srv3", "store-paths",
                                 "nas:/mnt/nas"), 0);
  assert_int_equal (df_farm_set (farm, DF_KIND_SERVER, "srv1", "subnets",
                                 "10.0.0.0/24"), 0);

  assert_int_equal (boot_servers_from_farm (farm, "store", ip ("10.1.5.5"), true,
                                            &s, &n), 0);
  assert_int_equal (n, 2);
  assert_string_equal (s[0].name, "srv1");
  assert_false (s[0].near);
  assert_string_equal (s[1].name, "srv2");
  assert_true (s[1].near);              /* by its site's subnets */
  assert_string_equal (s[1].host, "10.1.0.2");
  assert_int_equal (s[1].nbd_port, 10900);
  free (s);
  assert_int_equal (boot_servers_from_farm (farm, "nas", ip ("10.0.0.9"), true,
                                            &s, &n), 0);
  assert_int_equal (n, 3);
  assert_true (s[0].near);
  assert_false (s[2].near);
  free (s);
  assert_int_equal (boot_servers_from_farm (farm, "nas", ip ("10.0.0.9"), false,
                                            &s, &n), 0);
  assert_false (s[0].near);
  free (s);
  df_farm_free (farm);
  test_tmpdir_free (dir);
}

static void
test_affinity_names (void **state)
{
  enum affinity a;

  (void) state;
  assert_int_equal (affinity_parse (NULL, &a), 0);
  assert_int_equal (a, AFFINITY_NONE);
  assert_int_equal (affinity_parse ("best-effort", &a), 0);
  assert_int_equal (a, AFFINITY_BEST_EFFORT);
  assert_int_equal (affinity_parse ("fixed", &a), 0);
  assert_int_equal (a, AFFINITY_FIXED);
  assert_int_equal (affinity_parse ("sticky", &a), -1);
  assert_error_contains ("sticky");
}

/* Replica identity, row by row: which replicas may serve a version. */
static void
test_replica_rule (void **state)
{
  enum { SAME, SIZE, MTIME, HASH };
  static const struct {
    bool want_sealed;
    enum replica_state have;
    bool have_sealed;
    int diff;                   /* what differs from the version */
    bool keep;
  } rows[] = {
    { true, REPLICA_PRESENT, true, SAME, true },
    { true, REPLICA_PRESENT, true, SIZE, false },
    { true, REPLICA_PRESENT, true, MTIME, false },
    { true, REPLICA_PRESENT, true, HASH, false },
    { true, REPLICA_PRESENT, false, SAME, false },  /* not sealed there */
    { true, REPLICA_MISSING, true, SAME, false },
    { true, REPLICA_INCOMPLETE, true, SAME, false },
    { true, REPLICA_UNKNOWN, true, SAME, false },   /* pending: not known */
    { false, REPLICA_PRESENT, false, SAME, true },  /* maintenance: its editor */
    { false, REPLICA_PRESENT, false, HASH, true },
    { false, REPLICA_MISSING, false, SAME, false },
    { false, REPLICA_UNKNOWN, false, SAME, false },
  };
  size_t i;

  (void) state;
  for (i = 0; i < sizeof rows / sizeof rows[0]; i++) {
    struct replica_identity want = { REPLICA_PRESENT, rows[i].want_sealed,
                                     1000, 5, { 0 } };
    struct replica_identity have = want;

    memset (want.hash, 0xab, DF_HASH_LEN);
    have = want;
    have.state = rows[i].have;
    have.sealed = rows[i].have_sealed;
    if (rows[i].diff == SIZE)
      have.size++;
    if (rows[i].diff == MTIME)
      have.mtime_ns++;
    if (rows[i].diff == HASH)
      have.hash[31] ^= 1;
    if (boot_replica_identical (&want, &have) != rows[i].keep)
      fail_msg ("row %zu: expected %s", i, rows[i].keep ? "keep" : "skip");
  }
}

static void
test_servers_keep (void **state)
{
  static const unsigned power[4] = { 1, 1, 1, 1 };
  static const bool keep[4] = { false, true, false, true };
  struct boot_server s[4];

  (void) state;
  make_servers (s, 4, power);
  assert_int_equal (boot_servers_keep (s, 4, keep), 2);
  assert_string_equal (s[0].name, "srv2");
  assert_string_equal (s[1].name, "srv4");
}

int
main (void)
{
  const struct CMUnitTest tests[] = {
    cmocka_unit_test (test_subnets),
    cmocka_unit_test (test_addresses),
    cmocka_unit_test (test_share_by_power),
    cmocka_unit_test (test_stable_and_minimal_moves),
    cmocka_unit_test (test_affinity),
    cmocka_unit_test (test_from_farm),
    cmocka_unit_test (test_affinity_names),
    cmocka_unit_test (test_replica_rule),
    cmocka_unit_test (test_servers_keep),
  };

  return cmocka_run_group_tests (tests, NULL, NULL);
}
