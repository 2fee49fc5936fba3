/* Unit tests: bootsvc/dhcp/decide (client classification and the proxy
 * and full-mode decision table, row by row).
 */
#include <config.h>

#include "test-helpers.h"
#include "dhcp/decide.h"

static struct dhcp_packet pkt;

/* Parses a request with these options (without the end option). */
static void
make (const uint8_t *opts, size_t len)
{
  uint8_t buf[600] = { BOOTREQUEST, 1, 6 };

  memcpy (buf + 28, "\x52\x54\x00\x12\x34\x56", 6);
  memcpy (buf + 236, "\x63\x82\x53\x63", 4);
  memcpy (buf + 240, opts, len);
  buf[240 + len] = 255;
  if (dhcp_parse (buf, 241 + len, &pkt) == -1)
    fail_msg ("%s", df_error_get ());
}

#define MAKE(...) do {                                  \
    static const uint8_t o_[] = { __VA_ARGS__ };        \
    make (o_, sizeof o_);                               \
  } while (0)

#define PXE_VC 60, 32, 'P', 'X', 'E', 'C', 'l', 'i', 'e', 'n', 't', ':', 'A', \
    'r', 'c', 'h', ':', '0', '0', '0', '0', '7', ':', 'U', 'N', 'D', 'I',    \
    ':', '0', '0', '3', '0', '1', '6'

static void
test_classify (void **state)
{
  struct dhcp_client c;

  (void) state;
  /* UEFI PXE: architecture from the vendor class when 93 is absent. */
  MAKE (53, 1, DHCPDISCOVER, PXE_VC);
  dhcp_classify (&pkt, &c);
  assert_true (c.request && c.has_mac && c.pxe);
  assert_false (c.ipxe);
  assert_int_equal (c.msg_type, DHCPDISCOVER);
  assert_int_equal (c.arch, 7);
  assert_int_equal (dhcp_boot_for (&c), BOOT_EFI);

  /* Option 93 wins over the vendor class. */
  MAKE (53, 1, DHCPDISCOVER, PXE_VC, 93, 2, 0, 0);
  dhcp_classify (&pkt, &c);
  assert_int_equal (c.arch, 0);
  assert_int_equal (dhcp_boot_for (&c), BOOT_BIOS);

  /* iPXE as it sends itself: user class "iPXE", 175 with HTTP. */
  MAKE (53, 1, DHCPDISCOVER, PXE_VC, 77, 4, 'i', 'P', 'X', 'E',
        175, 6, 0x13, 1, 1, 0x15, 1, 1);
  dhcp_classify (&pkt, &c);
  assert_true (c.ipxe && c.ipxe_http);
  assert_int_equal (dhcp_boot_for (&c), BOOT_SCRIPT_HTTP);

  /* An iPXE built without HTTP fetches its script over TFTP. */
  MAKE (53, 1, DHCPDISCOVER, PXE_VC, 175, 3, 0x15, 1, 1);
  dhcp_classify (&pkt, &c);
  assert_true (c.ipxe);
  assert_false (c.ipxe_http);
  assert_int_equal (dhcp_boot_for (&c), BOOT_SCRIPT_TFTP);

  /* RFC 3004 user classes, one of them iPXE. */
  MAKE (53, 1, DHCPDISCOVER, 77, 9, 3, 'f', 'o', 'o', 4, 'i', 'P', 'X', 'E');
  dhcp_classify (&pkt, &c);
  assert_true (c.ipxe);
  assert_false (c.pxe);
  MAKE (53, 1, DHCPDISCOVER, 77, 5, 'g', 'P', 'X', 'E', '!');
  dhcp_classify (&pkt, &c);
  assert_false (c.ipxe);

  /* No architecture at all: an old PXE ROM, BIOS.  ARM64 UEFI: none. */
  MAKE (53, 1, DHCPDISCOVER, 60, 9, 'P', 'X', 'E', 'C', 'l', 'i', 'e', 'n', 't');
  dhcp_classify (&pkt, &c);
  assert_int_equal (c.arch, -1);
  assert_int_equal (dhcp_boot_for (&c), BOOT_BIOS);
  MAKE (53, 1, DHCPDISCOVER, PXE_VC, 93, 2, 0, 11);
  dhcp_classify (&pkt, &c);
  assert_int_equal (dhcp_boot_for (&c), BOOT_NONE);
  MAKE (53, 1, DHCPDISCOVER, PXE_VC, 93, 2, 0, 9);
  dhcp_classify (&pkt, &c);
  assert_int_equal (dhcp_boot_for (&c), BOOT_EFI);

  /* Not a PXE client: a vendor class that only starts alike. */
  MAKE (53, 1, DHCPDISCOVER, 60, 4, 'P', 'X', 'E', 'C');
  dhcp_classify (&pkt, &c);
  assert_false (c.pxe);
}

enum kind { PLAIN, PXE_BIOS, PXE_EFI, PXE_ARM, IPXE };

static void
client (enum kind k, unsigned type, struct dhcp_client *c)
{
  memset (c, 0, sizeof *c);
  c->request = true;
  c->has_mac = true;
  c->msg_type = type;
  c->arch = -1;
  c->pxe = k != PLAIN;
  c->arch = k == PXE_EFI ? 7 : k == PXE_ARM ? 11 : 0;
  c->ipxe = c->ipxe_http = k == IPXE;
}

static void
test_table (void **state)
{
  static const struct {
    enum dhcp_mode mode;
    bool pxe_port, known;
    enum kind kind;
    unsigned type;
    enum dhcp_action action;
    enum dhcp_boot boot;
    bool pxe_options, unknown;
  } rows[] = {
    /* proxy on port 67: only DISCOVERs of known PXE clients */
    { DHCP_MODE_PROXY, false, true, PXE_BIOS, DHCPDISCOVER, ACT_PROXY_OFFER, BOOT_BIOS, true, false },
    { DHCP_MODE_PROXY, false, true, PXE_EFI, DHCPDISCOVER, ACT_PROXY_OFFER, BOOT_EFI, false, false },
    { DHCP_MODE_PROXY, false, true, IPXE, DHCPDISCOVER, ACT_PROXY_OFFER, BOOT_SCRIPT_HTTP, false, false },
    { DHCP_MODE_PROXY, false, false, PXE_BIOS, DHCPDISCOVER, ACT_IGNORE, BOOT_NONE, false, true },
    { DHCP_MODE_PROXY, false, true, PXE_ARM, DHCPDISCOVER, ACT_IGNORE, BOOT_NONE, false, false },
    { DHCP_MODE_PROXY, false, true, PLAIN, DHCPDISCOVER, ACT_IGNORE, BOOT_NONE, false, false },
    { DHCP_MODE_PROXY, false, true, PXE_BIOS, DHCPREQUEST, ACT_IGNORE, BOOT_NONE, false, false },
    { DHCP_MODE_PROXY, false, true, IPXE, DHCPREQUEST, ACT_IGNORE, BOOT_NONE, false, false },
    { DHCP_MODE_PROXY, false, true, PXE_BIOS, DHCPRELEASE, ACT_IGNORE, BOOT_NONE, false, false },
    /* port 4011: REQUEST and INFORM of known PXE clients, any mode */
    { DHCP_MODE_PROXY, true, true, PXE_EFI, DHCPREQUEST, ACT_PROXY_ACK, BOOT_EFI, false, false },
    { DHCP_MODE_PROXY, true, true, PXE_BIOS, DHCPINFORM, ACT_PROXY_ACK, BOOT_BIOS, true, false },
    { DHCP_MODE_PROXY, true, true, IPXE, DHCPREQUEST, ACT_PROXY_ACK, BOOT_SCRIPT_HTTP, false, false },
    { DHCP_MODE_PROXY, true, false, PXE_EFI, DHCPREQUEST, ACT_IGNORE, BOOT_NONE, false, true },
    { DHCP_MODE_PROXY, true, true, PXE_EFI, DHCPDISCOVER, ACT_IGNORE, BOOT_NONE, false, false },
    { DHCP_MODE_PROXY, true, true, PLAIN, DHCPREQUEST, ACT_IGNORE, BOOT_NONE, false, false },
    { DHCP_MODE_FULL, true, true, PXE_EFI, DHCPREQUEST, ACT_PROXY_ACK, BOOT_EFI, false, false },
    /* full: everyone gets an address; known PXE clients a boot file */
    { DHCP_MODE_FULL, false, false, PLAIN, DHCPDISCOVER, ACT_LEASE, BOOT_NONE, false, false },
    { DHCP_MODE_FULL, false, false, PLAIN, DHCPREQUEST, ACT_LEASE, BOOT_NONE, false, false },
    { DHCP_MODE_FULL, false, true, PXE_BIOS, DHCPDISCOVER, ACT_LEASE, BOOT_BIOS, true, false },
    { DHCP_MODE_FULL, false, true, PXE_EFI, DHCPREQUEST, ACT_LEASE, BOOT_EFI, false, false },
    { DHCP_MODE_FULL, false, true, IPXE, DHCPREQUEST, ACT_LEASE, BOOT_SCRIPT_HTTP, false, false },
    { DHCP_MODE_FULL, false, false, PXE_BIOS, DHCPDISCOVER, ACT_LEASE, BOOT_NONE, false, true },
    { DHCP_MODE_FULL, false, true, PXE_ARM, DHCPDISCOVER, ACT_LEASE, BOOT_NONE, false, false },
    { DHCP_MODE_FULL, false, false, PLAIN, DHCPRELEASE, ACT_LEASE, BOOT_NONE, false, false },
    /* off */
    { DHCP_MODE_OFF, false, true, PXE_BIOS, DHCPDISCOVER, ACT_IGNORE, BOOT_NONE, false, false },
    { DHCP_MODE_OFF, true, true, PXE_BIOS, DHCPREQUEST, ACT_IGNORE, BOOT_NONE, false, false },
  };
  size_t i;

  (void) state;
  for (i = 0; i < sizeof rows / sizeof rows[0]; i++) {
    struct dhcp_situation s = { rows[i].mode, rows[i].pxe_port, rows[i].known };
    struct dhcp_client c;
    struct dhcp_decision d;

    client (rows[i].kind, rows[i].type, &c);
    dhcp_decide (&c, &s, &d);
    if (d.action != rows[i].action || d.boot != rows[i].boot ||
        d.pxe_options != rows[i].pxe_options || d.unknown != rows[i].unknown)
      fail_msg ("row %zu: action %d boot %s options %d unknown %d (%s)", i,
                d.action, dhcp_boot_name (d.boot), d.pxe_options, d.unknown,
                d.why ? d.why : "-");
    if (d.action == ACT_IGNORE)
      assert_non_null (d.why);
  }
}

static void
test_not_for_us (void **state)
{
  struct dhcp_situation s = { DHCP_MODE_FULL, false, true };
  struct dhcp_client c;
  struct dhcp_decision d;

  (void) state;
  client (PXE_BIOS, DHCPDISCOVER, &c);
  c.request = false;                    /* another server's reply */
  dhcp_decide (&c, &s, &d);
  assert_int_equal (d.action, ACT_IGNORE);
  client (PXE_BIOS, 0, &c);             /* BOOTP */
  dhcp_decide (&c, &s, &d);
  assert_int_equal (d.action, ACT_IGNORE);
  assert_non_null (strstr (d.why, "BOOTP"));
  client (PXE_BIOS, DHCPDISCOVER, &c);
  c.has_mac = false;                    /* InfiniBand and the like */
  dhcp_decide (&c, &s, &d);
  assert_int_equal (d.action, ACT_IGNORE);
}

int
main (void)
{
  const struct CMUnitTest tests[] = {
    cmocka_unit_test (test_classify),
    cmocka_unit_test (test_table),
    cmocka_unit_test (test_not_for_us),
  };

  return cmocka_run_group_tests (tests, NULL, NULL);
}
