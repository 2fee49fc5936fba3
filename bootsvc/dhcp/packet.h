/* diskfarm-bootsvc — DHCP packets: parsing and building.
 *
 * RFC 2131 (DHCP), 2132 (options), 3396 (long options split over
 * several instances), 4578 (PXE client architecture) and the PXE 2.1
 * specification.  Pure functions over byte buffers, no I/O and no
 * logging, so they can be unit-tested and fuzzed alone.  The parser
 * returns -1 with a message (see error.h) on a malformed packet.
 */
#ifndef DISKFARM_DHCP_PACKET_H
#define DISKFARM_DHCP_PACKET_H

#include <netinet/in.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define DHCP_FIXED_LEN 236              /* op .. file */
#define DHCP_MIN_LEN 240                /* and the magic cookie */
#define DHCP_PACKET_MAX 4096            /* longest datagram read */
#define DHCP_REPLY_MIN 300              /* BOOTP clients want this much */
#define DHCP_REPLY_DEFAULT_MAX 548      /* 576 minus IP and UDP headers */

#define BOOTREQUEST 1
#define BOOTREPLY 2

enum dhcp_msg_type {
  DHCPDISCOVER = 1,
  DHCPOFFER = 2,
  DHCPREQUEST = 3,
  DHCPDECLINE = 4,
  DHCPACK = 5,
  DHCPNAK = 6,
  DHCPRELEASE = 7,
  DHCPINFORM = 8,
};

enum dhcp_option_code {
  DHO_PAD = 0,
  DHO_SUBNET_MASK = 1,
  DHO_ROUTERS = 3,
  DHO_DNS_SERVERS = 6,
  DHO_HOST_NAME = 12,
  DHO_VENDOR_ENCAP = 43,        /* PXE options for PXEClient */
  DHO_REQUESTED_ADDRESS = 50,
  DHO_LEASE_TIME = 51,
  DHO_OVERLOAD = 52,
  DHO_MESSAGE_TYPE = 53,
  DHO_SERVER_ID = 54,
  DHO_PARAM_LIST = 55,
  DHO_MESSAGE = 56,
  DHO_MAX_MESSAGE_SIZE = 57,
  DHO_RENEWAL_TIME = 58,
  DHO_REBINDING_TIME = 59,
  DHO_VENDOR_CLASS = 60,
  DHO_CLIENT_ID = 61,
  DHO_BOOTFILE = 67,
  DHO_USER_CLASS = 77,
  DHO_CLIENT_ARCH = 93,
  DHO_CLIENT_NDI = 94,
  DHO_CLIENT_UUID = 97,
  DHO_IPXE_ENCAP = 175,
  DHO_END = 255,
};

/* PXE vendor options inside option 43. */
#define PXE_DISCOVERY_CONTROL 6
#define PXE_MENU_PROMPT 10
/* Discovery control bit 3: boot the file named in this offer. */
#define PXE_DISCOVERY_USE_FILE 0x08

/* iPXE feature flag inside option 175 (the build speaks HTTP). */
#define IPXE_FEATURE_HTTP 0x13

struct dhcp_option {
  const uint8_t *data;          /* into the packet's store */
  uint16_t len;
  bool present;
};

struct dhcp_packet {
  uint8_t op, htype, hlen, hops;
  uint32_t xid;                 /* as on the wire (opaque) */
  uint16_t secs, flags;         /* host order */
  struct in_addr ciaddr, yiaddr, siaddr, giaddr;
  uint8_t chaddr[16];
  struct dhcp_option opt[256];
  /* Option data, each option's instances concatenated (RFC 3396). */
  uint8_t store[DHCP_PACKET_MAX];
};

#define DHCP_FLAG_BROADCAST 0x8000

/* Parses len bytes at buf into *p.  Checks the length, the magic
 * cookie, hlen, every option's length and the end option; honours
 * option overload (52).  Returns 0, or -1 with a message.
 */
int dhcp_parse (const void *buf, size_t len, struct dhcp_packet *p);

/* NULL if the option is absent. */
const struct dhcp_option *dhcp_get (const struct dhcp_packet *p, uint8_t code);
/* The message type (option 53), or 0 (BOOTP, or a bad option). */
unsigned dhcp_msg_type (const struct dhcp_packet *p);
/* A 4-byte address option; false if absent or of another length. */
bool dhcp_get_addr (const struct dhcp_packet *p, uint8_t code,
                    struct in_addr *out);
/* The data of a sub-option inside an encapsulated option's data
 * (options 43 and 175 hold code/length/value triples).  NULL if absent
 * or malformed.
 */
const uint8_t *dhcp_suboption (const uint8_t *data, size_t len, uint8_t code,
                               uint8_t *sublen);
const char *dhcp_msg_name (unsigned type);

/* ---- building replies ---- */

struct dhcp_reply {
  uint8_t buf[DHCP_PACKET_MAX];
  size_t len;                   /* end of the options written so far */
  size_t max;                   /* longest reply the client takes */
  bool overflow;                /* an option did not fit */
};

/* Starts a BOOTREPLY of the given message type to req: xid, flags,
 * giaddr and chaddr copied; ciaddr, yiaddr, siaddr zero; the message
 * type option written.  The size limit honours the client's option 57.
 */
void dhcp_reply_start (struct dhcp_reply *r, const struct dhcp_packet *req,
                       uint8_t type);
void dhcp_reply_set_ciaddr (struct dhcp_reply *r, struct in_addr a);
void dhcp_reply_set_yiaddr (struct dhcp_reply *r, struct in_addr a);
void dhcp_reply_set_siaddr (struct dhcp_reply *r, struct in_addr a);
void dhcp_reply_set_flags (struct dhcp_reply *r, uint16_t flags);
/* The boot file field (up to 127 bytes); -1 with a message if longer. */
int dhcp_reply_set_file (struct dhcp_reply *r, const char *file);

/* Options longer than 255 bytes are split into instances (RFC 3396).
 * A full reply sets overflow; dhcp_reply_finish then fails.
 */
void dhcp_reply_option (struct dhcp_reply *r, uint8_t code, const void *data,
                        size_t len);
void dhcp_reply_option_u8 (struct dhcp_reply *r, uint8_t code, uint8_t v);
void dhcp_reply_option_u32 (struct dhcp_reply *r, uint8_t code, uint32_t v);
void dhcp_reply_option_addr (struct dhcp_reply *r, uint8_t code,
                             struct in_addr a);
void dhcp_reply_option_str (struct dhcp_reply *r, uint8_t code, const char *s);
/* Writes the end option and pads to DHCP_REPLY_MIN.  Returns the length
 * to send, or 0 with a message if the options did not fit.
 */
size_t dhcp_reply_finish (struct dhcp_reply *r);

#endif
