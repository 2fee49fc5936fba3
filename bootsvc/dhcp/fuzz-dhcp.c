/* libFuzzer harness: DHCP packets as the boot service reads them.
 *
 * Every input is parsed; a packet that parses is classified, run
 * through the decision table in every situation, and answered the way
 * the service would (echoing the client's options), and the answer
 * must parse again.
 */
#include <config.h>

#include <stdint.h>
#include <stdlib.h>

#include "dhcp/decide.h"
#include "dhcp/packet.h"

int LLVMFuzzerTestOneInput (const uint8_t *data, size_t size);

static struct dhcp_packet pkt, again;
static struct dhcp_reply reply;

static void
answer (const struct dhcp_client *c)
{
  static const uint8_t echo[] = {
    DHO_CLIENT_UUID, DHO_VENDOR_CLASS, DHO_HOST_NAME, DHO_USER_CLASS,
  };
  struct in_addr a = { 0x0100000a };
  size_t i, len;
  uint8_t sublen;

  dhcp_reply_start (&reply, &pkt, DHCPOFFER);
  dhcp_reply_set_yiaddr (&reply, a);
  dhcp_reply_option_addr (&reply, DHO_SERVER_ID, a);
  dhcp_reply_set_file (&reply, dhcp_boot_name (dhcp_boot_for (c)));
  for (i = 0; i < sizeof echo; i++) {
    const struct dhcp_option *o = dhcp_get (&pkt, echo[i]);
    if (o)
      dhcp_reply_option (&reply, echo[i], o->data, o->len);
  }
  len = dhcp_reply_finish (&reply);
  if (len && dhcp_parse (reply.buf, len, &again) == -1)
    abort ();                   /* we built something we cannot read */
  if (dhcp_get (&pkt, DHO_VENDOR_ENCAP))
    dhcp_suboption (dhcp_get (&pkt, DHO_VENDOR_ENCAP)->data,
                    dhcp_get (&pkt, DHO_VENDOR_ENCAP)->len, 6, &sublen);
}

int
LLVMFuzzerTestOneInput (const uint8_t *data, size_t size)
{
  struct dhcp_client c;
  struct dhcp_decision d;
  int mode, port, known;

  if (dhcp_parse (data, size, &pkt) == -1)
    return 0;
  dhcp_classify (&pkt, &c);
  for (mode = DHCP_MODE_OFF; mode <= DHCP_MODE_FULL; mode++)
    for (port = 0; port < 2; port++)
      for (known = 0; known < 2; known++) {
        struct dhcp_situation s = { mode, port, known };
        dhcp_decide (&c, &s, &d);
        if (d.action == ACT_IGNORE && d.why == NULL)
          abort ();
      }
  answer (&c);
  return 0;
}
