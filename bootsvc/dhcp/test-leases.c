/* Unit tests: bootsvc/dhcp/leases (offers, binding, renewal, the lease
 * file and its errors).
 */
#include <config.h>

#include <arpa/inet.h>

#include "test-helpers.h"
#include "dhcp/leases.h"

static char *dir;
static const uint8_t mac_a[6] = { 2, 0, 0, 0, 0, 0xa }, mac_b[6] = { 2, 0, 0, 0, 0, 0xb };

static struct in_addr
ip (const char *s)
{
  struct in_addr a;

  assert_int_equal (inet_pton (AF_INET, s, &a), 1);
  return a;
}

static const char *
str (struct in_addr a)
{
  static char buf[4][INET_ADDRSTRLEN];
  static int i;

  return inet_ntop (AF_INET, &a, buf[i++ % 4], INET_ADDRSTRLEN);
}

static int
setup (void **state)
{
  (void) state;
  dir = test_tmpdir ();
  return 0;
}

static int
teardown (void **state)
{
  (void) state;
  test_tmpdir_free (dir);
  return 0;
}

static void
test_offer_bind_renew (void **state)
{
  char *file = test_path (dir, "leases");
  struct lease_pool *pool = lease_pool_new (ip ("10.0.0.10"), ip ("10.0.0.12"), file);
  struct in_addr none = { 0 }, a, b, c;
  time_t now = 1000000;
  char *text = NULL;
  size_t len;

  (void) state;
  assert_non_null (pool);
  assert_true (lease_pool_contains (pool, ip ("10.0.0.12")));
  assert_false (lease_pool_contains (pool, ip ("10.0.0.13")));
  assert_int_equal (lease_offer (pool, mac_a, none, now, &a), 0);
  assert_string_equal (str (a), "10.0.0.10");
  /* The offer is held: b gets another address, a the same one again. */
  assert_int_equal (lease_offer (pool, mac_b, a, now, &b), 0);
  assert_string_equal (str (b), "10.0.0.11");
  assert_int_equal (lease_offer (pool, mac_a, none, now + 1, &c), 0);
  assert_int_equal (c.s_addr, a.s_addr);
  /* b cannot take a's address. */
  assert_int_equal (lease_bind (pool, mac_b, a, now, 600), -1);
  assert_int_equal (errno, EADDRINUSE);
  assert_int_equal (lease_bind (pool, mac_a, a, now, 600), 0);
  assert_int_equal (lease_pool_bound (pool, now), 1);
  assert_true (lease_find (pool, mac_a, now, &c));
  assert_int_equal (c.s_addr, a.s_addr);
  /* Renewal keeps the address; the file holds the lease. */
  assert_int_equal (lease_bind (pool, mac_a, a, now + 300, 600), 0);
  assert_int_equal (df_read_file (file, 4096, &text, &len), 0);
  assert_non_null (strstr (text, "02:00:00:00:00:0a 10.0.0.10 1000900\n"));
  free (text);
  assert_int_equal (lease_bind (pool, mac_a, ip ("10.0.1.1"), now, 600), -1);
  assert_int_equal (errno, ERANGE);
  lease_pool_free (pool);

  /* Reloaded, the client gets its address back, even after expiry. */
  pool = lease_pool_new (ip ("10.0.0.10"), ip ("10.0.0.12"), file);
  assert_non_null (pool);
  assert_int_equal (lease_offer (pool, mac_a, none, now + 5000, &c), 0);
  assert_int_equal (c.s_addr, a.s_addr);
  lease_pool_free (pool);
  free (file);
}

static void
test_requested_and_full (void **state)
{
  struct lease_pool *pool = lease_pool_new (ip ("10.0.0.10"), ip ("10.0.0.11"), NULL);
  uint8_t mac_c[6] = { 2, 0, 0, 0, 0, 0xc };
  struct in_addr none = { 0 }, a;
  time_t now = 5000;

  (void) state;
  assert_int_equal (lease_offer (pool, mac_a, ip ("10.0.0.11"), now, &a), 0);
  assert_string_equal (str (a), "10.0.0.11");
  assert_int_equal (lease_bind (pool, mac_a, a, now, 100), 0);
  assert_int_equal (lease_offer (pool, mac_b, ip ("10.0.0.11"), now, &a), 0);
  assert_string_equal (str (a), "10.0.0.10");       /* taken: another one */
  assert_int_equal (lease_offer (pool, mac_c, none, now, &a), -1);
  assert_int_equal (errno, ENOSPC);
  /* Expired offers and leases are free again, oldest first. */
  assert_int_equal (lease_offer (pool, mac_c, none, now + 101, &a), 0);
  assert_string_equal (str (a), "10.0.0.10");
  mac_c[5] = 0xd;
  assert_int_equal (lease_offer (pool, mac_c, none, now + 101, &a), 0);
  assert_string_equal (str (a), "10.0.0.11");
  lease_pool_free (pool);
}

static void
test_release_decline (void **state)
{
  char *file = test_path (dir, "leases");
  struct lease_pool *pool = lease_pool_new (ip ("10.0.0.10"), ip ("10.0.0.11"), file);
  struct in_addr none = { 0 }, a, b;
  time_t now = 100;

  (void) state;
  assert_int_equal (lease_offer (pool, mac_a, none, now, &a), 0);
  assert_int_equal (lease_bind (pool, mac_a, a, now, 1000), 0);
  assert_int_equal (lease_release (pool, mac_a, a), 0);
  assert_int_equal (lease_pool_bound (pool, now), 0);
  assert_false (lease_find (pool, mac_a, now, &b));
  /* Released, but remembered: a gets the same address back. */
  assert_int_equal (lease_offer (pool, mac_a, none, now, &b), 0);
  assert_int_equal (b.s_addr, a.s_addr);
  /* A declined address rests; the client gets another. */
  lease_decline (pool, a, now);
  assert_int_equal (lease_offer (pool, mac_a, none, now, &b), 0);
  assert_int_not_equal (b.s_addr, a.s_addr);
  lease_pool_free (pool);
  free (file);
}

static void
test_bad_files (void **state)
{
  char *file = test_path (dir, "leases");
  struct lease_pool *pool;

  (void) state;
  test_write (dir, "leases", "# ok\n\n02:00:00:00:00:0a 10.0.0.10 5\n"
              "02:00:00:00:00:0b 10.0.0.1x 5\n");
  assert_null (lease_pool_new (ip ("10.0.0.10"), ip ("10.0.0.11"), file));
  assert_error_contains ("leases:4: not a lease");
  test_write (dir, "leases", "02:00:00:00:00:0a 10.0.0.10 5\n"
              "02:00:00:00:00:0b 10.0.0.10 5\n");
  assert_null (lease_pool_new (ip ("10.0.0.10"), ip ("10.0.0.11"), file));
  assert_error_contains ("leased twice");
  test_write (dir, "leases", "02:00:00:00:00:0a 10.0.0.10 5 extra\n");
  assert_null (lease_pool_new (ip ("10.0.0.10"), ip ("10.0.0.11"), file));
  /* Leases outside a changed range are dropped, and counted. */
  test_write (dir, "leases", "02:00:00:00:00:0a 10.0.0.10 5\n"
              "02:00:00:00:00:0b 10.0.9.10 5\n");
  pool = lease_pool_new (ip ("10.0.0.10"), ip ("10.0.0.11"), file);
  assert_non_null (pool);
  assert_int_equal (lease_pool_dropped (pool), 1);
  lease_pool_free (pool);
  assert_null (lease_pool_new (ip ("10.0.0.11"), ip ("10.0.0.10"), NULL));
  assert_null (lease_pool_new (ip ("10.0.0.0"), ip ("10.2.0.0"), NULL));
  free (file);
}

int
main (void)
{
  const struct CMUnitTest tests[] = {
    cmocka_unit_test_setup_teardown (test_offer_bind_renew, setup, teardown),
    cmocka_unit_test_setup_teardown (test_requested_and_full, setup, teardown),
    cmocka_unit_test_setup_teardown (test_release_decline, setup, teardown),
    cmocka_unit_test_setup_teardown (test_bad_files, setup, teardown),
  };

  return cmocka_run_group_tests (tests, NULL, NULL);
}
