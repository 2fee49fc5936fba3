/* diskfarm-bootsvc — classifying requests and the answer table (see
 * decide.h).
 */
#include <config.h>

#include <stdlib.h>
#include <string.h>

#include "dhcp/decide.h"

#define PXE_VENDOR "PXEClient"
#define ARCH_TAG "PXEClient:Arch:"

/* Option 77 is "iPXE" as iPXE sends it, or RFC 3004 length-prefixed
 * instances, one of which is "iPXE".
 */
static bool
user_class_is_ipxe (const struct dhcp_option *o)
{
  size_t i = 0;

  if (o == NULL)
    return false;
  if (o->len == 4 && memcmp (o->data, "iPXE", 4) == 0)
    return true;
  while (i < o->len) {
    size_t n = o->data[i];
    if (i + 1 + n > o->len)
      return false;
    if (n == 4 && memcmp (o->data + i + 1, "iPXE", 4) == 0)
      return true;
    i += 1 + n;
  }
  return false;
}

/* "PXEClient:Arch:00007:UNDI:003016" carries the architecture too. */
static int
arch_from_vendor_class (const struct dhcp_option *o)
{
  size_t n = strlen (ARCH_TAG), i;
  int arch = 0;

  if (o->len < n + 5 || memcmp (o->data, ARCH_TAG, n) != 0)
    return -1;
  for (i = n; i < n + 5; i++) {
    if (o->data[i] < '0' || o->data[i] > '9')
      return -1;
    arch = arch * 10 + (o->data[i] - '0');
  }
  return arch;
}

void
dhcp_classify (const struct dhcp_packet *p, struct dhcp_client *c)
{
  const struct dhcp_option *vc = dhcp_get (p, DHO_VENDOR_CLASS);
  const struct dhcp_option *arch = dhcp_get (p, DHO_CLIENT_ARCH);
  const struct dhcp_option *eb = dhcp_get (p, DHO_IPXE_ENCAP);

  memset (c, 0, sizeof *c);
  c->request = p->op == BOOTREQUEST;
  c->msg_type = dhcp_msg_type (p);
  c->has_mac = p->htype == 1 && p->hlen == 6;
  memcpy (c->mac, p->chaddr, 6);
  c->pxe = vc && vc->len >= strlen (PXE_VENDOR) &&
    memcmp (vc->data, PXE_VENDOR, strlen (PXE_VENDOR)) == 0;
  c->ipxe = user_class_is_ipxe (dhcp_get (p, DHO_USER_CLASS)) || eb != NULL;
  c->ipxe_http = c->ipxe;
  if (eb) {
    uint8_t len;
    const uint8_t *v = dhcp_suboption (eb->data, eb->len, IPXE_FEATURE_HTTP, &len);
    c->ipxe_http = v && len >= 1 && v[0] != 0;
  }
  c->arch = -1;
  if (arch && arch->len >= 2)
    c->arch = arch->data[0] << 8 | arch->data[1];
  else if (vc)
    c->arch = arch_from_vendor_class (vc);
}

enum dhcp_boot
dhcp_boot_for (const struct dhcp_client *c)
{
  if (c->ipxe)
    return c->ipxe_http ? BOOT_SCRIPT_HTTP : BOOT_SCRIPT_TFTP;
  switch (c->arch) {
  case -1:                      /* PXE before RFC 4578: BIOS */
  case ARCH_X86_BIOS:
    return BOOT_BIOS;
  case ARCH_EFI_BC:
  case ARCH_EFI_X86_64:
    return BOOT_EFI;
  default:
    return BOOT_NONE;
  }
}

const char *
dhcp_boot_name (enum dhcp_boot b)
{
  static const char *const names[] = {
    "none", "bios", "efi", "ipxe-script-http", "ipxe-script-tftp",
  };

  return names[b];
}

static int
ignore (struct dhcp_decision *d, const char *why)
{
  d->action = ACT_IGNORE;
  d->boot = BOOT_NONE;
  d->why = why;
  return 0;
}

/* A PXE BIOS ROM is told to boot the offered file straight away; UEFI
 * firmware is not given option 43 (many mishandle it; without it they
 * ask port 4011, which answers with the file), nor is iPXE.
 */
static bool
wants_pxe_options (const struct dhcp_client *c, enum dhcp_boot boot)
{
  return boot == BOOT_BIOS && !c->ipxe;
}

static int
decide_pxe_port (const struct dhcp_client *c, const struct dhcp_situation *s,
                 struct dhcp_decision *d)
{
  if (!c->pxe)
    return ignore (d, "not a PXE client");
  if (c->msg_type != DHCPREQUEST && c->msg_type != DHCPINFORM)
    return ignore (d, "only DHCPREQUEST and DHCPINFORM are answered on the "
                   "PXE port");
  if (!s->known) {
    d->unknown = true;
    return ignore (d, "unknown MAC address (not a device of the farm)");
  }
  d->boot = dhcp_boot_for (c);
  if (d->boot == BOOT_NONE)
    return ignore (d, "no boot file for this client architecture");
  d->action = ACT_PROXY_ACK;
  d->pxe_options = wants_pxe_options (c, d->boot);
  return 0;
}

static int
decide_full (const struct dhcp_client *c, const struct dhcp_situation *s,
             struct dhcp_decision *d)
{
  d->action = ACT_LEASE;
  if (!c->pxe)
    return 0;
  if (!s->known) {
    d->unknown = true;          /* an address, but nothing to boot */
    return 0;
  }
  d->boot = dhcp_boot_for (c);
  d->pxe_options = wants_pxe_options (c, d->boot);
  return 0;
}

static int
decide_proxy (const struct dhcp_client *c, const struct dhcp_situation *s,
              struct dhcp_decision *d)
{
  if (!c->pxe)
    return ignore (d, "not a PXE client");
  if (c->msg_type != DHCPDISCOVER)
    return ignore (d, "a proxy answers only DHCPDISCOVER on port 67");
  if (!s->known) {
    d->unknown = true;
    return ignore (d, "unknown MAC address (not a device of the farm)");
  }
  d->boot = dhcp_boot_for (c);
  if (d->boot == BOOT_NONE)
    return ignore (d, "no boot file for this client architecture");
  d->action = ACT_PROXY_OFFER;
  d->pxe_options = wants_pxe_options (c, d->boot);
  return 0;
}

void
dhcp_decide (const struct dhcp_client *c, const struct dhcp_situation *s,
             struct dhcp_decision *d)
{
  memset (d, 0, sizeof *d);
  if (!c->request)
    ignore (d, "not a BOOTREQUEST");
  else if (c->msg_type == 0)
    ignore (d, "not a DHCP message (BOOTP is not served)");
  else if (!c->has_mac)
    ignore (d, "not an Ethernet client");
  else if (s->mode == DHCP_MODE_OFF)
    ignore (d, "DHCP is off");
  else if (s->pxe_port)
    decide_pxe_port (c, s, d);
  else if (s->mode == DHCP_MODE_FULL)
    decide_full (c, s, d);
  else
    decide_proxy (c, s, d);
}
