/* Unit tests: bootsvc/ipxe (script text, kernel parameters, the
 * fallback chain, unsafe parameters, sessions).
 */
#include <config.h>

#include "test-helpers.h"
#include "ipxe.h"
#include "vdisk/vdisk.h"

static const uint8_t mac[6] = { 0x52, 0x54, 0x00, 0xab, 0xcd, 0xef };

static struct boot_server servers[2] = {
  { .name = "srv2", .host = "10.0.0.2", .nbd_port = 10809, .power = 1 },
  { .name = "srv1", .host = "[fd00::1]", .nbd_port = 10900, .power = 1 },
};

static struct ipxe_script
params (void)
{
  return (struct ipxe_script) {
    .device = "pc01", .mac = mac, .vdisk = "debian", .version = 3,
    .session = "0123abcd", .servers = servers, .nservers = 2,
    .http_port = 10810, .http = true, .cmdline = "root=/dev/nbd0p1 quiet",
    .timeout = 30,
  };
}

static void
assert_contains (const char *text, const char *needle)
{
  if (strstr (text, needle) == NULL)
    fail_msg ("script lacks \"%s\":\n%s", needle, text);
}

static void
test_script (void **state)
{
  struct ipxe_script p = params ();
  char *text = ipxe_script_build (&p);
  const char *args = "initrd=initrd BOOTIF=01-52-54-00-ab-cd-ef "
    "diskfarm.servers=10.0.0.2:10809,[fd00::1]:10900 "
    "diskfarm.export=dev/pc01@0123abcd diskfarm.device=pc01 "
    "diskfarm.timeout=30 root=/dev/nbd0p1 quiet";
  char line[1024];

  (void) state;
  assert_non_null (text);
  assert_true (strncmp (text, "#!ipxe\n", 7) == 0);
  assert_contains (text, "vdisk debian version 3");
  /* Server 1 over HTTP, then TFTP, then on to server 2. */
  snprintf (line, sizeof line, "kernel http://10.0.0.2:10810/vdisks/debian/kernel "
            "%s || kernel tftp://10.0.0.2/vdisks/debian/kernel %s || goto server2\n",
            args, args);
  assert_contains (text, line);
  assert_contains (text, "initrd http://10.0.0.2:10810/vdisks/debian/initrd || "
                   "initrd tftp://10.0.0.2/vdisks/debian/initrd || goto server2\n");
  assert_contains (text, "boot || goto server2\n:server2\n");
  /* The last server falls through to the failure message. */
  assert_contains (text, "kernel http://[fd00::1]:10810/vdisks/debian/kernel");
  assert_contains (text, "boot || goto failed\n:failed\n");
  assert_contains (text, "reboot ||\n");
  assert_true (strstr (text, "server3") == NULL);
  assert_true (strstr (text, "diskfarm.cache") == NULL);
  free (text);

  /* TFTP only, the client caches, no vDisk parameters. */
  p.http = false;
  p.client_cache = true;
  p.cmdline = NULL;
  p.nservers = 1;
  text = ipxe_script_build (&p);
  assert_non_null (text);
  assert_true (strstr (text, "http://") == NULL);
  assert_contains (text, "kernel tftp://10.0.0.2/vdisks/debian/kernel initrd=initrd ");
  assert_contains (text, "diskfarm.timeout=30 diskfarm.cache=device || goto failed\n");
  free (text);
}

static void
test_unsafe_cmdline (void **state)
{
  static const char *const bad[] = {
    "root=/dev/nbd0p1 ${evil}", "a || reboot", "quiet; shell", "x=\"y z\"",
    "#comment", "a\nb", "back\\slash", "it's",
  };
  struct ipxe_script p = params ();
  char big[BOOT_CMDLINE_MAX + 10];
  size_t i;

  (void) state;
  for (i = 0; i < sizeof bad / sizeof bad[0]; i++) {
    p.cmdline = bad[i];
    assert_null (ipxe_script_build (&p));
    assert_error_contains ("iPXE");
    assert_int_equal (df_boot_cmdline_check (bad[i]), -1);
  }
  assert_int_equal (df_boot_cmdline_check ("console=ttyS0,115200n8 ro quiet"), 0);
  assert_int_equal (df_boot_cmdline_check (NULL), 0);
  memset (big, 'a', sizeof big - 1);
  big[sizeof big - 1] = '\0';
  p.cmdline = big;
  assert_null (ipxe_script_build (&p));
  assert_error_contains ("command line would be");
  p = params ();
  p.nservers = 0;
  assert_null (ipxe_script_build (&p));
}

static void
test_error_script (void **state)
{
  char *text = ipxe_error_script ("vdisk ${x} has no kernel; || reboot");

  (void) state;
  assert_non_null (text);
  assert_true (strncmp (text, "#!ipxe\necho diskfarm: ", 22) == 0);
  assert_true (strchr (text, '$') == NULL);
  assert_true (strchr (text, ';') == NULL);
  assert_true (strstr (text, "||\n") != NULL);  /* only the script's own */
  assert_true (strstr (text, "|| reboot") == NULL);
  free (text);
}

static void
test_sessions (void **state)
{
  char a[BOOT_SESSION_LEN + 1], b[BOOT_SESSION_LEN + 1];

  (void) state;
  assert_int_equal (boot_session_new (a), 0);
  assert_int_equal (boot_session_new (b), 0);
  assert_int_equal (strlen (a), BOOT_SESSION_LEN);
  assert_true (df_name_valid (a));
  assert_string_not_equal (a, b);
}

int
main (void)
{
  const struct CMUnitTest tests[] = {
    cmocka_unit_test (test_script),
    cmocka_unit_test (test_unsafe_cmdline),
    cmocka_unit_test (test_error_script),
    cmocka_unit_test (test_sessions),
  };

  return cmocka_run_group_tests (tests, NULL, NULL);
}
