/* diskfarm-bootsvc — the DHCP service internals shared by service.c
 * (sockets, proxy answers) and full.c (addresses and leases).
 */
#ifndef DISKFARM_DHCP_SERVICE_H
#define DISKFARM_DHCP_SERVICE_H

#include <net/if.h>
#include <netinet/in.h>
#include <stdbool.h>

#include "bootsvc.h"
#include "dhcp/decide.h"
#include "dhcp/packet.h"

#define DHCP_SERVER_PORT 67
#define DHCP_CLIENT_PORT 68
#define DHCP_PXE_PORT 4011

struct dhcp_iface {
  struct dhcp_service *ds;
  char name[IF_NAMESIZE];
  int fd[2];                    /* port 67, port 4011 */
  struct df_watch *watch[2];
};

struct dhcp_service {
  struct bootsvc *svc;
  struct dhcp_iface ifaces[BOOTSVC_MAX_INTERFACES];
  size_t nifaces;
  uint64_t log_window_ns;       /* rate limit of malformed-packet logs */
  unsigned logged, not_logged;
};

/* One request being answered. */
struct dhcp_ctx {
  struct bootsvc *svc;
  struct dhcp_iface *iface;
  bool pxe_port;
  struct sockaddr_in from;
  const struct dhcp_packet *req;
  struct dhcp_client client;
  struct dhcp_decision d;
  const struct df_device *dev;  /* NULL if unknown */
  struct in_addr server_ip;     /* the interface's address: server id */
  struct in_addr netmask;
  struct in_addr boot_ip;       /* where TFTP and HTTP listen */
  char file[128];               /* the boot file sent, for the log */
};

/* Adds the boot server, boot file and PXE options the decision asks
 * for.  -1 with a message if the boot file name does not fit.
 */
int dhcp_add_boot (struct dhcp_ctx *c, struct dhcp_reply *r);
/* Finishes r and sends it where RFC 2131 says (relay, unicast to the
 * client's address, or broadcast); counts it.  yiaddr: the address
 * handed out (0 for none).
 */
int dhcp_send (struct dhcp_ctx *c, struct dhcp_reply *r, struct in_addr yiaddr);
/* "52:54:00:12:34:56 (pc01)" for logs, into buf of 96 bytes. */
const char *dhcp_who (const struct dhcp_ctx *c, char *buf);

/* full.c: answers in full DHCP mode. */
void dhcp_full_handle (struct dhcp_ctx *c);

#endif
