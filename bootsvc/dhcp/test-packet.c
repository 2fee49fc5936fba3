/* Unit tests: bootsvc/dhcp/packet (parsing, RFC 3396 long options,
 * option overload, malformed packets, building replies).
 */
#include <config.h>

#include <arpa/inet.h>

#include "test-helpers.h"
#include "dhcp/packet.h"

static const uint8_t mac[6] = { 0x52, 0x54, 0x00, 0x12, 0x34, 0x56 };

/* A BOOTREQUEST with the given options (code, len, data... then 255). */
static size_t
request (uint8_t *buf, const uint8_t *opts, size_t optlen)
{
  memset (buf, 0, 240);
  buf[0] = BOOTREQUEST;
  buf[1] = 1;
  buf[2] = 6;
  memcpy (buf + 4, "\xde\xad\xbe\xef", 4);
  buf[10] = 0x80;                       /* broadcast flag */
  memcpy (buf + 28, mac, 6);
  memcpy (buf + 236, "\x63\x82\x53\x63", 4);
  memcpy (buf + 240, opts, optlen);
  return 240 + optlen;
}

static struct dhcp_packet pkt;

static void
test_parse_discover (void **state)
{
  static const uint8_t opts[] = {
    53, 1, DHCPDISCOVER,
    0, 0,                               /* pads */
    60, 32, 'P', 'X', 'E', 'C', 'l', 'i', 'e', 'n', 't', ':', 'A', 'r', 'c',
    'h', ':', '0', '0', '0', '0', '0', ':', 'U', 'N', 'D', 'I', ':', '0',
    '0', '2', '0', '0', '1',
    93, 2, 0, 7,
    50, 4, 10, 0, 0, 9,
    255,
  };
  uint8_t buf[600];
  size_t len = request (buf, opts, sizeof opts);
  struct in_addr a;
  const struct dhcp_option *o;

  (void) state;
  assert_int_equal (dhcp_parse (buf, len, &pkt), 0);
  assert_int_equal (pkt.op, BOOTREQUEST);
  assert_int_equal (pkt.hlen, 6);
  assert_memory_equal (pkt.chaddr, mac, 6);
  assert_int_equal (pkt.flags, DHCP_FLAG_BROADCAST);
  assert_memory_equal (&pkt.xid, "\xde\xad\xbe\xef", 4);
  assert_int_equal (dhcp_msg_type (&pkt), DHCPDISCOVER);
  o = dhcp_get (&pkt, DHO_VENDOR_CLASS);
  assert_non_null (o);
  assert_int_equal (o->len, 32);
  assert_memory_equal (o->data, "PXEClient:Arch:00000", 20);
  assert_true (dhcp_get_addr (&pkt, DHO_REQUESTED_ADDRESS, &a));
  assert_int_equal (ntohl (a.s_addr), 0x0a000009);
  assert_false (dhcp_get_addr (&pkt, DHO_SERVER_ID, &a));
  assert_false (dhcp_get_addr (&pkt, DHO_CLIENT_ARCH, &a));   /* 2 bytes */
  assert_null (dhcp_get (&pkt, DHO_USER_CLASS));
}

static void
test_long_options (void **state)
{
  /* Option 43 in two instances is one value (RFC 3396). */
  static const uint8_t opts[] = {
    53, 1, DHCPREQUEST,
    43, 3, 6, 1, 8,
    12, 2, 'h', 'i',
    43, 2, 255, 0,
    255,
  };
  uint8_t buf[600], sublen;
  const struct dhcp_option *o;
  const uint8_t *sub;

  (void) state;
  assert_int_equal (dhcp_parse (buf, request (buf, opts, sizeof opts), &pkt), 0);
  o = dhcp_get (&pkt, DHO_VENDOR_ENCAP);
  assert_non_null (o);
  assert_int_equal (o->len, 5);
  assert_memory_equal (o->data, "\x06\x01\x08\xff\x00", 5);
  sub = dhcp_suboption (o->data, o->len, 6, &sublen);
  assert_non_null (sub);
  assert_int_equal (sublen, 1);
  assert_int_equal (sub[0], 8);
  assert_null (dhcp_suboption (o->data, o->len, 7, &sublen));
  o = dhcp_get (&pkt, DHO_HOST_NAME);
  assert_int_equal (o->len, 2);
  assert_memory_equal (o->data, "hi", 2);
}

static void
test_overload (void **state)
{
  static const uint8_t opts[] = { 53, 1, DHCPDISCOVER, 52, 1, 3, 255 };
  uint8_t buf[600];
  size_t len = request (buf, opts, sizeof opts);

  (void) state;
  /* file field (offset 108) first, then sname (44). */
  memcpy (buf + 108, "\x0c\x03" "abc" "\xff", 6);
  memcpy (buf + 44, "\x0c\x02" "de" "\x3c\x01" "X", 7);
  assert_int_equal (dhcp_parse (buf, len, &pkt), 0);
  assert_int_equal (dhcp_get (&pkt, DHO_HOST_NAME)->len, 5);
  assert_memory_equal (dhcp_get (&pkt, DHO_HOST_NAME)->data, "abcde", 5);
  assert_int_equal (dhcp_get (&pkt, DHO_VENDOR_CLASS)->len, 1);

  buf[240 + 5] = 4;                     /* overload value out of range */
  assert_int_equal (dhcp_parse (buf, len, &pkt), -1);
  assert_error_contains ("overload");
}

static void
test_malformed (void **state)
{
  static const struct {
    const uint8_t *opts;
    size_t len;
    const char *error;
  } cases[] = {
    { (const uint8_t *) "\x35\x01\x01", 3, "no end option" },
    { (const uint8_t *) "\x35\x01\x01\x3c\x20PXE\xff", 9, "runs past the end" },
    { (const uint8_t *) "\x35\x01\x01\x3c", 4, "no length byte" },
    { (const uint8_t *) "", 0, "no end option" },
  };
  uint8_t buf[600];
  size_t i, len;

  (void) state;
  for (i = 0; i < sizeof cases / sizeof cases[0]; i++) {
    len = request (buf, cases[i].opts, cases[i].len);
    assert_int_equal (dhcp_parse (buf, len, &pkt), -1);
    assert_error_contains (cases[i].error);
  }
  len = request (buf, (const uint8_t *) "\xff", 1);
  assert_int_equal (dhcp_parse (buf, 239, &pkt), -1);
  assert_error_contains ("truncated");
  assert_int_equal (dhcp_parse (buf, 0, &pkt), -1);
  buf[236] = 0;
  assert_int_equal (dhcp_parse (buf, len, &pkt), -1);
  assert_error_contains ("magic cookie");
  buf[236] = 99;
  buf[2] = 17;
  assert_int_equal (dhcp_parse (buf, len, &pkt), -1);
  assert_error_contains ("hardware address length");
  buf[2] = 6;
  assert_int_equal (dhcp_parse (buf, len, &pkt), 0);
  /* No message type: BOOTP, parsed but typeless; a bad type is 0 too. */
  assert_int_equal (dhcp_msg_type (&pkt), 0);
  len = request (buf, (const uint8_t *) "\x35\x01\x09\xff", 4);
  assert_int_equal (dhcp_parse (buf, len, &pkt), 0);
  assert_int_equal (dhcp_msg_type (&pkt), 0);
  assert_int_equal (dhcp_parse (buf, DHCP_PACKET_MAX + 1, &pkt), -1);
  assert_error_contains ("oversized");
}

static struct dhcp_packet reparsed;

static void
test_build_reply (void **state)
{
  static const uint8_t opts[] = {
    53, 1, DHCPDISCOVER, 97, 17, 0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12,
    13, 14, 15, 16, 255,
  };
  uint8_t buf[600], big[600];
  struct dhcp_reply r;
  struct in_addr sid = { htonl (0x0a000002) }, y;
  size_t len;

  (void) state;
  memset (big, 'x', sizeof big);
  assert_int_equal (dhcp_parse (buf, request (buf, opts, sizeof opts), &pkt), 0);
  pkt.giaddr.s_addr = htonl (0x0a010001);
  dhcp_reply_start (&r, &pkt, DHCPOFFER);
  dhcp_reply_set_siaddr (&r, sid);
  assert_int_equal (dhcp_reply_set_file (&r, "undionly.kpxe"), 0);
  dhcp_reply_option_addr (&r, DHO_SERVER_ID, sid);
  dhcp_reply_option_str (&r, DHO_VENDOR_CLASS, "PXEClient");
  dhcp_reply_option (&r, DHO_HOST_NAME, big, 260);     /* split in two */
  len = dhcp_reply_finish (&r);
  assert_true (len >= DHCP_REPLY_MIN);
  assert_int_equal (dhcp_parse (r.buf, len, &reparsed), 0);
  assert_int_equal (reparsed.op, BOOTREPLY);
  assert_int_equal (reparsed.xid, pkt.xid);
  assert_int_equal (reparsed.flags, pkt.flags);
  assert_memory_equal (reparsed.chaddr, mac, 6);
  assert_int_equal (reparsed.giaddr.s_addr, pkt.giaddr.s_addr);
  assert_int_equal (reparsed.yiaddr.s_addr, 0);
  assert_int_equal (reparsed.siaddr.s_addr, sid.s_addr);
  assert_string_equal ((const char *) r.buf + 108, "undionly.kpxe");
  assert_int_equal (dhcp_msg_type (&reparsed), DHCPOFFER);
  assert_true (dhcp_get_addr (&reparsed, DHO_SERVER_ID, &y));
  assert_int_equal (y.s_addr, sid.s_addr);
  assert_int_equal (dhcp_get (&reparsed, DHO_HOST_NAME)->len, 260);

  /* Too big for the default 548 bytes. */
  dhcp_reply_start (&r, &pkt, DHCPOFFER);
  dhcp_reply_option (&r, DHO_HOST_NAME, big, 255);
  dhcp_reply_option (&r, DHO_MESSAGE, big, 255);
  assert_true (r.overflow);
  assert_int_equal (dhcp_reply_finish (&r), 0);
  assert_error_contains ("does not fit");
  memset (big, 'y', 200);
  big[200] = '\0';
  assert_int_equal (dhcp_reply_set_file (&r, (const char *) big), -1);
}

static void
test_max_message_size (void **state)
{
  static const uint8_t opts[] = { 53, 1, DHCPDISCOVER, 57, 2, 0x05, 0xdc, 255 };
  uint8_t buf[600], big[600];
  struct dhcp_reply r;

  (void) state;
  memset (big, 'x', sizeof big);
  assert_int_equal (dhcp_parse (buf, request (buf, opts, sizeof opts), &pkt), 0);
  dhcp_reply_start (&r, &pkt, DHCPOFFER);
  assert_int_equal (r.max, 1500 - 28);
  dhcp_reply_option (&r, DHO_HOST_NAME, big, 255);
  dhcp_reply_option (&r, DHO_MESSAGE, big, 255);
  assert_false (r.overflow);
  assert_true (dhcp_reply_finish (&r) > 548);
}

int
main (void)
{
  const struct CMUnitTest tests[] = {
    cmocka_unit_test (test_parse_discover),
    cmocka_unit_test (test_long_options),
    cmocka_unit_test (test_overload),
    cmocka_unit_test (test_malformed),
    cmocka_unit_test (test_build_reply),
    cmocka_unit_test (test_max_message_size),
  };

  return cmocka_run_group_tests (tests, NULL, NULL);
}
