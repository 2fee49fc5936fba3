/* diskfarm-bootsvc — who is asking, and what the boot service answers.
 *
 * The decision table of the proxyDHCP and DHCP service, as pure
 * functions: a request is classified (PXE firmware, iPXE, anything else;
 * its architecture), then dhcp_decide says whether to answer and with
 * which boot file.  No I/O, so the table is unit-tested row by row.
 */
#ifndef DISKFARM_DHCP_DECIDE_H
#define DISKFARM_DHCP_DECIDE_H

#include <stdbool.h>
#include <stdint.h>

#include "dhcp/packet.h"

/* RFC 4578 client system architectures we have iPXE binaries for. */
#define ARCH_X86_BIOS 0
#define ARCH_EFI_BC 7                   /* used by x86-64 UEFI firmware */
#define ARCH_EFI_X86_64 9

struct dhcp_client {
  bool request;                 /* op is BOOTREQUEST */
  unsigned msg_type;            /* 0 for BOOTP */
  bool has_mac;                 /* Ethernet: htype 1, hlen 6 */
  uint8_t mac[6];
  bool pxe;                     /* vendor class starts with "PXEClient" */
  bool ipxe;                    /* user class "iPXE" or option 175 */
  bool ipxe_http;               /* that iPXE speaks HTTP */
  int arch;                     /* option 93, else from the vendor class;
                                   -1 if neither says */
};

void dhcp_classify (const struct dhcp_packet *p, struct dhcp_client *c);

enum dhcp_boot {
  BOOT_NONE,
  BOOT_BIOS,                    /* undionly.kpxe over TFTP */
  BOOT_EFI,                     /* snponly.efi or ipxe.efi over TFTP */
  BOOT_SCRIPT_HTTP,             /* iPXE: http://SERVER:PORT/boot/MAC.ipxe */
  BOOT_SCRIPT_TFTP,             /* iPXE without HTTP: tftp://SERVER/boot/... */
};

/* The file a PXE or iPXE client should boot; BOOT_NONE for
 * architectures without an iPXE binary here (32-bit UEFI, ARM...).
 */
enum dhcp_boot dhcp_boot_for (const struct dhcp_client *c);
const char *dhcp_boot_name (enum dhcp_boot b);

enum dhcp_mode {
  DHCP_MODE_OFF,
  DHCP_MODE_PROXY,              /* beside the site's DHCP server */
  DHCP_MODE_FULL,               /* we hand out addresses too */
};

struct dhcp_situation {
  enum dhcp_mode mode;
  bool pxe_port;                /* the request came to port 4011 */
  bool known;                   /* the farm has (or just added) the MAC */
};

enum dhcp_action {
  ACT_IGNORE,
  ACT_PROXY_OFFER,              /* port 67: boot file, no address */
  ACT_PROXY_ACK,                /* port 4011: boot file, to the sender */
  ACT_LEASE,                    /* full mode: the lease code answers */
};

struct dhcp_decision {
  enum dhcp_action action;
  enum dhcp_boot boot;          /* BOOT_NONE: no boot information */
  bool pxe_options;             /* option 43 for a BIOS PXE ROM */
  bool unknown;                 /* ignored (or no boot) for an unknown MAC */
  const char *why;              /* for ACT_IGNORE: the reason */
};

void dhcp_decide (const struct dhcp_client *c, const struct dhcp_situation *s,
                  struct dhcp_decision *d);

#endif
