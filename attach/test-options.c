/* Unit tests: diskfarm-attach options and kernel parameters. */
#include <config.h>

#include <arpa/inet.h>
#include <netinet/in.h>

#include "test-helpers.h"
#include "options.h"

static void
test_server_ipv4 (void **state)
{
  struct attach_server s;
  const struct sockaddr_in *sin = (const struct sockaddr_in *) &s.addr;

  (void) state;
  assert_int_equal (attach_server_parse ("10.0.0.5", &s), 0);
  assert_string_equal (s.name, "10.0.0.5:10809");
  assert_int_equal (sin->sin_family, AF_INET);
  assert_int_equal (ntohs (sin->sin_port), 10809);
  assert_int_equal (s.addrlen, sizeof *sin);
  assert_int_equal (attach_server_parse ("192.168.1.1:10900", &s), 0);
  assert_string_equal (s.name, "192.168.1.1:10900");
  assert_int_equal (ntohs (sin->sin_port), 10900);
}

static void
test_server_ipv6 (void **state)
{
  struct attach_server s;
  const struct sockaddr_in6 *sin6 = (const struct sockaddr_in6 *) &s.addr;

  (void) state;
  assert_int_equal (attach_server_parse ("[fd00::1]:10810", &s), 0);
  assert_string_equal (s.name, "[fd00::1]:10810");
  assert_int_equal (sin6->sin6_family, AF_INET6);
  assert_int_equal (ntohs (sin6->sin6_port), 10810);
  assert_int_equal (attach_server_parse ("[::1]", &s), 0);
  assert_string_equal (s.name, "[::1]:10809");
}

static void
test_server_bad (void **state)
{
  struct attach_server s;

  (void) state;
  assert_int_equal (attach_server_parse ("fd00::1", &s), -1);
  assert_error_contains ("[ADDRESS]:PORT");
  assert_int_equal (attach_server_parse ("server1.lab:10809", &s), -1);
  assert_error_contains ("not an IP address");
  assert_int_equal (attach_server_parse ("10.0.0.1:0", &s), -1);
  assert_error_contains ("bad port");
  assert_int_equal (attach_server_parse ("10.0.0.1:65536", &s), -1);
  assert_int_equal (attach_server_parse ("10.0.0.1:x", &s), -1);
  assert_int_equal (attach_server_parse ("10.0.0.1:", &s), -1);
  assert_int_equal (attach_server_parse ("[fd00::1", &s), -1);
  assert_int_equal (attach_server_parse ("[10.0.0.1]:1", &s), -1);
  assert_int_equal (attach_server_parse (":10809", &s), -1);
  assert_int_equal (attach_server_parse ("", &s), -1);
}

static void
test_server_list (void **state)
{
  struct attach_options o;

  (void) state;
  attach_options_init (&o);
  assert_int_equal (attach_options_set (&o, "servers",
                                        "10.0.0.1,10.0.0.2:1,[::1]:2"),
                    0);
  assert_int_equal (o.nservers, 3);
  assert_string_equal (o.servers[2].name, "[::1]:2");
  assert_int_equal (attach_options_set (&o, "servers",
                                        "1.1.1.1,1.1.1.2,1.1.1.3,1.1.1.4,"
                                        "1.1.1.5"), -1);
  assert_error_contains ("more than 4 servers");
  assert_int_equal (attach_options_set (&o, "servers", ","), -1);
  assert_error_contains ("no server");
}

static void
test_device (void **state)
{
  uint32_t i;

  (void) state;
  assert_int_equal (attach_nbd_parse ("/dev/nbd0", &i), 0);
  assert_int_equal (i, 0);
  assert_int_equal (attach_nbd_parse ("nbd12", &i), 0);
  assert_int_equal (i, 12);
  assert_int_equal (attach_nbd_parse ("3", &i), 0);
  assert_int_equal (i, 3);
  assert_int_equal (attach_nbd_parse ("/dev/sda", &i), -1);
  assert_error_contains ("not an NBD device");
  assert_int_equal (attach_nbd_parse ("/dev/nbd", &i), -1);
  assert_int_equal (attach_nbd_parse ("/dev/nbd0p1", &i), -1);
}

static void
test_numbers (void **state)
{
  struct attach_options o;

  (void) state;
  attach_options_init (&o);
  assert_int_equal (o.timeout, 60);
  assert_int_equal (o.connections, 1);
  assert_int_equal (attach_options_set (&o, "io-timeout", "7"), 0);
  assert_int_equal (o.io_timeout, 7);
  assert_int_equal (attach_options_set (&o, "dead_timeout", "0"), 0);
  assert_int_equal (o.dead_timeout, 0);
  assert_int_equal (attach_options_set (&o, "connections", "0"), -1);
  assert_error_contains ("from 1 to 16");
  assert_int_equal (attach_options_set (&o, "connections", "17"), -1);
  assert_int_equal (attach_options_set (&o, "timeout", "-1"), -1);
  assert_int_equal (attach_options_set (&o, "block_size", "1024"), 0);
  assert_int_equal (o.block_size, 1024);
  assert_int_equal (attach_options_set (&o, "block_size", "1536"), -1);
  assert_error_contains ("power of 2");
  assert_int_equal (attach_options_set (&o, "block_size", "8192"), -1);
  assert_int_equal (attach_options_set (&o, "nonsense", "1"), -2);
}

static void
test_export (void **state)
{
  struct attach_options o;
  char *big = malloc (NBD_MAX_NAME + 2);

  (void) state;
  attach_options_init (&o);
  assert_int_equal (attach_options_set (&o, "export", "dev/pc1@s1"), 0);
  assert_string_equal (o.export, "dev/pc1@s1");
  assert_int_equal (attach_options_set (&o, "export", ""), -1);
  assert_int_equal (attach_options_set (&o, "export", "a\tb"), -1);
  assert_error_contains ("control characters");
  memset (big, 'x', NBD_MAX_NAME + 1);
  big[NBD_MAX_NAME + 1] = '\0';
  assert_int_equal (attach_options_set (&o, "export", big), -1);
  big[NBD_MAX_NAME] = '\0';
  assert_int_equal (attach_options_set (&o, "export", big), 0);
  free (big);
}

static int warnings;
static void
count_warning (const char *key)
{
  (void) key;
  warnings++;
}

static void
test_cmdline (void **state)
{
  struct attach_options o;
  unsigned found;

  (void) state;
  attach_options_init (&o);
  warnings = 0;
  assert_int_equal (attach_options_parse_cmdline (&o,
    "BOOT_IMAGE=/vmlinuz root=/dev/nbd0p1 ro ip=dhcp "
    "diskfarm.servers=10.0.0.5:10809,10.0.0.6 "
    "diskfarm.export=dev/pc042@3f9a1c diskfarm.io-timeout=9 "
    "\"diskfarm.nbd=/dev/nbd2\" diskfarm.future=1 quiet "
    "diskfarm.device=pc042 diskfarm.cache=device\n",
    count_warning, &found), 0);
  assert_int_equal (found, 7);
  assert_int_equal (warnings, 1);
  assert_int_equal (o.nservers, 2);
  assert_string_equal (o.servers[1].name, "10.0.0.6:10809");
  assert_string_equal (o.export, "dev/pc042@3f9a1c");
  assert_int_equal (o.io_timeout, 9);
  assert_int_equal (o.index, 2);
  assert_int_equal (attach_options_check (&o), 0);
}

static void
test_cmdline_precedence (void **state)
{
  struct attach_options o;
  unsigned found;

  (void) state;
  attach_options_init (&o);
  /* Given on the command line: the kernel's value does not replace it. */
  assert_int_equal (attach_options_set (&o, "timeout", "3"), 0);
  assert_int_equal (attach_options_parse_cmdline (&o,
    "diskfarm.timeout=100 diskfarm.export=a diskfarm.export=b "
    "diskfarm.connections=2", NULL, &found), 0);
  assert_int_equal (o.timeout, 3);
  /* The last of repeated kernel parameters wins. */
  assert_string_equal (o.export, "b");
  assert_int_equal (o.connections, 2);
}

static void
test_cmdline_quotes_and_end (void **state)
{
  struct attach_options o;
  unsigned found;

  (void) state;
  attach_options_init (&o);
  assert_int_equal (attach_options_parse_cmdline (&o,
    "diskfarm.export=\"img/a b\"c -- diskfarm.timeout=1", NULL, &found), 0);
  assert_string_equal (o.export, "img/a bc");
  assert_int_equal (o.timeout, 60);
  assert_int_equal (found, 1);
}

static void
test_cmdline_errors (void **state)
{
  struct attach_options o;
  unsigned found;

  (void) state;
  attach_options_init (&o);
  assert_int_equal (attach_options_parse_cmdline (&o, "diskfarm.export",
                                                  NULL, &found), -1);
  assert_error_contains ("has no value");
  assert_int_equal (attach_options_parse_cmdline (&o,
    "diskfarm.servers=nas:10809", NULL, &found), -1);
  assert_error_contains ("kernel parameter diskfarm.servers");
  assert_error_contains ("not an IP address");
  attach_options_init (&o);
  assert_int_equal (attach_options_parse_cmdline (&o, "root=/dev/sda1 quiet",
                                                  NULL, &found), 0);
  assert_int_equal (found, 0);
  assert_int_equal (attach_options_check (&o), -1);
  assert_error_contains ("no servers");
  assert_int_equal (attach_options_set (&o, "servers", "10.1.1.1"), 0);
  assert_int_equal (attach_options_check (&o), -1);
  assert_error_contains ("no export");
}

int
main (void)
{
  const struct CMUnitTest tests[] = {
    cmocka_unit_test (test_server_ipv4),
    cmocka_unit_test (test_server_ipv6),
    cmocka_unit_test (test_server_bad),
    cmocka_unit_test (test_server_list),
    cmocka_unit_test (test_device),
    cmocka_unit_test (test_numbers),
    cmocka_unit_test (test_export),
    cmocka_unit_test (test_cmdline),
    cmocka_unit_test (test_cmdline_precedence),
    cmocka_unit_test (test_cmdline_quotes_and_end),
    cmocka_unit_test (test_cmdline_errors),
  };

  return cmocka_run_group_tests (tests, NULL, NULL);
}
