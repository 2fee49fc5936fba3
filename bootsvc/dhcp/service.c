/* diskfarm-bootsvc — the DHCP service: per-interface sockets on ports 67
 * and 4011, requests parsed and classified, proxyDHCP answers, and the
 * way back to the client (RFC 2131 section 4.1).
 */
#include <config.h>

#include <arpa/inet.h>
#include <errno.h>
#include <net/if_arp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <unistd.h>

#include "dhcp/service.h"
#include "error.h"
#include "evloop/evloop.h"
#include "log.h"
#include "util.h"

#define MALFORMED_LOG_MAX 10            /* per minute */
#define MINUTE_NS (60 * 1000000000ULL)

static const uint8_t pxe_vendor_options[] = {
  PXE_DISCOVERY_CONTROL, 1, PXE_DISCOVERY_USE_FILE,
  PXE_MENU_PROMPT, 4, 0, 'P', 'X', 'E',   /* no prompt, no wait */
  DHO_END,
};

const char *
dhcp_who (const struct dhcp_ctx *c, char *buf)
{
  char mac[18];

  df_format_mac (c->client.mac, mac);
  if (c->dev)
    snprintf (buf, 96, "%s (%s)", mac, c->dev->name);
  else
    snprintf (buf, 96, "%s", mac);
  return buf;
}

static int
iface_ioctl (int fd, const char *ifname, unsigned long req, struct in_addr *out)
{
  struct ifreq ifr;

  memset (&ifr, 0, sizeof ifr);
  snprintf (ifr.ifr_name, sizeof ifr.ifr_name, "%s", ifname);
  if (ioctl (fd, req, &ifr) == -1)
    return df_error_errno ("%s: no IPv4 address", ifname);
  *out = ((struct sockaddr_in *) &ifr.ifr_addr)->sin_addr;
  return 0;
}

/* ---- the boot part of an answer ---- */

static const char *
boot_file (struct dhcp_ctx *c, char *buf, size_t len)
{
  const struct bootsvc_config *cfg = &c->svc->cfg;
  char ip[INET_ADDRSTRLEN], mac[18];

  inet_ntop (AF_INET, &c->boot_ip, ip, sizeof ip);
  snprintf (mac, sizeof mac, "%02x-%02x-%02x-%02x-%02x-%02x", c->client.mac[0],
            c->client.mac[1], c->client.mac[2], c->client.mac[3],
            c->client.mac[4], c->client.mac[5]);
  switch (c->d.boot) {
  case BOOT_BIOS:
    return cfg->bios_file;
  case BOOT_EFI:
    return cfg->efi_file;
  case BOOT_SCRIPT_HTTP:
    snprintf (buf, len, "http://%s:%u/boot/%s.ipxe", ip, cfg->http_port, mac);
    return buf;
  case BOOT_SCRIPT_TFTP:
    snprintf (buf, len, "tftp://%s/boot/%s.ipxe", ip, mac);
    return buf;
  case BOOT_NONE:
    break;
  }
  return NULL;
}

int
dhcp_add_boot (struct dhcp_ctx *c, struct dhcp_reply *r)
{
  const struct dhcp_option *uuid = dhcp_get (c->req, DHO_CLIENT_UUID);
  char buf[128];
  const char *file = boot_file (c, buf, sizeof buf);

  if (file == NULL)
    return 0;
  dhcp_reply_set_siaddr (r, c->boot_ip);
  if (dhcp_reply_set_file (r, file) == -1)
    return -1;
  snprintf (c->file, sizeof c->file, "%s", file);
  if (c->client.pxe)
    dhcp_reply_option_str (r, DHO_VENDOR_CLASS, "PXEClient");
  if (uuid && uuid->len == 17)
    dhcp_reply_option (r, DHO_CLIENT_UUID, uuid->data, uuid->len);
  if (c->d.pxe_options)
    dhcp_reply_option (r, DHO_VENDOR_ENCAP, pxe_vendor_options,
                       sizeof pxe_vendor_options);
  return 0;
}

/* ---- sending ---- */

/* Tells the kernel the client's MAC for yiaddr, so that a unicast
 * reaches a client that has no address yet (it cannot answer ARP).
 */
static int
arp_inject (struct dhcp_ctx *c, struct in_addr yiaddr)
{
  struct arpreq ar;
  struct sockaddr_in *pa = (struct sockaddr_in *) &ar.arp_pa;

  memset (&ar, 0, sizeof ar);
  pa->sin_family = AF_INET;
  pa->sin_addr = yiaddr;
  ar.arp_ha.sa_family = ARPHRD_ETHER;
  memcpy (ar.arp_ha.sa_data, c->client.mac, 6);
  ar.arp_flags = ATF_COM;
  snprintf (ar.arp_dev, sizeof ar.arp_dev, "%s", c->iface->name);
  return ioctl (c->iface->fd[0], SIOCSARP, &ar);
}

static void
destination (struct dhcp_ctx *c, struct in_addr yiaddr, bool nak,
             struct sockaddr_in *to)
{
  const struct dhcp_packet *req = c->req;

  memset (to, 0, sizeof *to);
  to->sin_family = AF_INET;
  to->sin_port = htons (DHCP_CLIENT_PORT);
  to->sin_addr.s_addr = INADDR_BROADCAST;
  if (c->pxe_port && c->from.sin_addr.s_addr != INADDR_ANY)
    *to = c->from;
  else if (c->pxe_port)
    to->sin_port = c->from.sin_port;    /* no address yet: broadcast */
  else if (req->giaddr.s_addr) {
    to->sin_addr = req->giaddr;
    to->sin_port = htons (DHCP_SERVER_PORT);
  }
  else if (nak)
    ;                           /* broadcast: the client's address is wrong */
  else if (req->ciaddr.s_addr)
    to->sin_addr = req->ciaddr;
  else if (yiaddr.s_addr && !(req->flags & DHCP_FLAG_BROADCAST) &&
           arp_inject (c, yiaddr) == 0)
    to->sin_addr = yiaddr;
}

int
dhcp_send (struct dhcp_ctx *c, struct dhcp_reply *r, struct in_addr yiaddr)
{
  struct bootsvc_stats *st = &c->svc->stats;
  uint8_t type = r->buf[DHCP_MIN_LEN + 2];  /* the first option is 53 */
  struct sockaddr_in to;
  size_t len = dhcp_reply_finish (r);
  char who[96], dst[INET_ADDRSTRLEN];

  if (len == 0) {
    df_log_error ("dhcp: %s to %s: %s", dhcp_msg_name (type),
                  dhcp_who (c, who), df_error_get ());
    return -1;
  }
  destination (c, yiaddr, type == DHCPNAK, &to);
  if (sendto (c->iface->fd[c->pxe_port], r->buf, len, 0,
              (struct sockaddr *) &to, sizeof to) != (ssize_t) len) {
    st->dhcp_send_errors++;
    df_log_error ("dhcp: cannot send %s to %s on %s: %m", dhcp_msg_name (type),
                  dhcp_who (c, who), c->iface->name);
    return -1;
  }
  if (type == DHCPOFFER)
    st->dhcp_offers++;
  else if (type == DHCPACK)
    st->dhcp_acks++;
  else if (type == DHCPNAK)
    st->dhcp_naks++;
  df_debug ("dhcp", "sent %s (%zu bytes) to %s:%u for %s",
            dhcp_msg_name (type), len,
            inet_ntop (AF_INET, &to.sin_addr, dst, sizeof dst),
            ntohs (to.sin_port), dhcp_who (c, who));
  return 0;
}

/* ---- proxyDHCP ---- */

static void
proxy_answer (struct dhcp_ctx *c)
{
  bool offer = c->d.action == ACT_PROXY_OFFER;
  struct in_addr none = { 0 };
  struct dhcp_reply r;
  char who[96];

  dhcp_reply_start (&r, c->req, offer ? DHCPOFFER : DHCPACK);
  if (offer || c->req->ciaddr.s_addr == 0)
    dhcp_reply_set_flags (&r, c->req->flags | DHCP_FLAG_BROADCAST);
  else
    dhcp_reply_set_ciaddr (&r, c->req->ciaddr);
  dhcp_reply_option_addr (&r, DHO_SERVER_ID, c->server_ip);
  if (dhcp_add_boot (c, &r) == -1) {
    df_log_error ("dhcp: %s: %s", dhcp_who (c, who), df_error_get ());
    return;
  }
  if (dhcp_send (c, &r, none) == 0)
    df_log_info ("dhcp: proxy %s to %s on %s: %s (%s)",
                 offer ? "offer" : "ack", dhcp_who (c, who), c->iface->name,
                 c->file, dhcp_boot_name (c->d.boot));
}

/* ---- receiving ---- */

static void
log_malformed (struct dhcp_service *ds, const struct sockaddr_in *from,
               const char *ifname, const char *why)
{
  uint64_t now = df_now_mono_ns ();
  char ip[INET_ADDRSTRLEN];

  if (now - ds->log_window_ns > MINUTE_NS) {
    if (ds->not_logged)
      df_log_warning ("dhcp: %u more malformed packets were not logged",
                      ds->not_logged);
    ds->log_window_ns = now;
    ds->logged = ds->not_logged = 0;
  }
  if (ds->logged++ >= MALFORMED_LOG_MAX) {
    ds->not_logged++;
    return;
  }
  df_log_warning ("dhcp: malformed packet from %s:%u on %s: %s",
                  inet_ntop (AF_INET, &from->sin_addr, ip, sizeof ip),
                  ntohs (from->sin_port), ifname, why);
}

static void
handle (struct dhcp_ctx *c)
{
  struct bootsvc *svc = c->svc;
  struct df_device dev;
  struct dhcp_situation s = {
    .mode = svc->cfg.dhcp_mode, .pxe_port = c->pxe_port,
  };
  bool bad_device = false;
  char who[96];

  dhcp_classify (c->req, &c->client);
  if (c->client.request && c->client.pxe && c->client.has_mac &&
      s.mode != DHCP_MODE_OFF) {
    bool may_add = c->pxe_port || c->client.msg_type == DHCPDISCOVER;
    s.known = bootsvc_device (svc, c->client.mac, may_add, &dev) == 0;
    bad_device = !s.known && errno == EINVAL;   /* logged already */
    if (s.known)
      c->dev = &dev;
  }
  dhcp_decide (&c->client, &s, &c->d);
  if (c->d.unknown && !bad_device)
    bootsvc_log_unknown (svc, c->client.mac, "dhcp");
  switch (c->d.action) {
  case ACT_IGNORE:
    svc->stats.dhcp_ignored++;
    if (c->client.request)
      df_debug ("dhcp", "ignoring %s from %s on %s%s: %s",
                dhcp_msg_name (c->client.msg_type), dhcp_who (c, who),
                c->iface->name, c->pxe_port ? " (PXE port)" : "", c->d.why);
    break;
  case ACT_PROXY_OFFER:
  case ACT_PROXY_ACK:
    proxy_answer (c);
    break;
  case ACT_LEASE:
    dhcp_full_handle (c);
    break;
  }
  c->dev = NULL;
}

static void
on_packet (struct dhcp_iface *iface, bool pxe_port)
{
  struct bootsvc *svc = iface->ds->svc;
  static uint8_t buf[DHCP_PACKET_MAX + 1];
  static struct dhcp_packet pkt;
  struct dhcp_ctx c = { .svc = svc, .iface = iface, .pxe_port = pxe_port };
  socklen_t fromlen = sizeof c.from;
  uint64_t start = df_now_mono_ns ();
  ssize_t n;

  n = recvfrom (iface->fd[pxe_port], buf, sizeof buf, MSG_TRUNC,
                (struct sockaddr *) &c.from, &fromlen);
  if (n < 0)
    return;
  svc->stats.dhcp_received++;
  if (dhcp_parse (buf, (size_t) n, &pkt) == -1) {
    svc->stats.dhcp_malformed++;
    log_malformed (iface->ds, &c.from, iface->name, df_error_get ());
    return;
  }
  if (iface_ioctl (iface->fd[0], iface->name, SIOCGIFADDR, &c.server_ip) == -1 ||
      iface_ioctl (iface->fd[0], iface->name, SIOCGIFNETMASK, &c.netmask) == -1) {
    df_debug ("dhcp", "%s", df_error_get ());
    svc->stats.dhcp_ignored++;
    return;
  }
  c.boot_ip = c.server_ip;
  if (svc->cfg.listen)
    inet_pton (AF_INET, svc->cfg.listen, &c.boot_ip);
  if (c.boot_ip.s_addr == INADDR_ANY)
    c.boot_ip = c.server_ip;
  c.req = &pkt;
  handle (&c);
  df_debug ("dhcp", "handled a packet in %llu us",
            (unsigned long long) (df_now_mono_ns () - start) / 1000);
}

static void
on_readable_67 (void *opaque, int fd, unsigned events)
{
  (void) fd;
  (void) events;
  on_packet (opaque, false);
}

static void
on_readable_4011 (void *opaque, int fd, unsigned events)
{
  (void) fd;
  (void) events;
  on_packet (opaque, true);
}

/* A UDP socket on port, receiving and sending on ifname only. */
static int
iface_socket (const char *ifname, unsigned port)
{
  struct sockaddr_in sa = {
    .sin_family = AF_INET, .sin_port = htons (port),
    .sin_addr = { INADDR_ANY },
  };
  int one = 1;
  int fd = socket (AF_INET, SOCK_DGRAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);

  if (fd == -1)
    return df_error_errno ("socket");
  if (setsockopt (fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one) == -1 ||
      setsockopt (fd, SOL_SOCKET, SO_BROADCAST, &one, sizeof one) == -1 ||
      setsockopt (fd, SOL_SOCKET, SO_BINDTODEVICE, ifname,
                  strlen (ifname) + 1) == -1) {
    df_error_errno ("%s: socket options", ifname);
    close (fd);
    return -1;
  }
  if (bind (fd, (struct sockaddr *) &sa, sizeof sa) == -1) {
    df_error_errno ("%s: UDP port %u", ifname, port);
    close (fd);
    return -1;
  }
  return fd;
}

static int
iface_open (struct dhcp_service *ds, struct dhcp_iface *iface, const char *name)
{
  static const unsigned ports[2] = { DHCP_SERVER_PORT, DHCP_PXE_PORT };
  static const df_watch_fn fns[2] = { on_readable_67, on_readable_4011 };
  int i;

  iface->ds = ds;
  iface->fd[0] = iface->fd[1] = -1;
  if (strlen (name) >= sizeof iface->name)
    return df_error (EINVAL, "interface name \"%s\" is too long", name);
  strcpy (iface->name, name);
  if (if_nametoindex (name) == 0)
    return df_error_errno ("interface %s", name);
  for (i = 0; i < 2; i++) {
    iface->fd[i] = iface_socket (name, ports[i]);
    if (iface->fd[i] == -1)
      return -1;
    iface->watch[i] = df_loop_watch (ds->svc->loop, iface->fd[i], DF_LOOP_READ,
                                     fns[i], iface);
    if (iface->watch[i] == NULL)
      return -1;
  }
  return 0;
}

int
dhcp_service_start (struct bootsvc *svc)
{
  struct dhcp_service *ds = calloc (1, sizeof *ds);
  size_t i;

  if (ds == NULL)
    return df_error_errno ("DHCP");
  ds->svc = svc;
  svc->dhcp = ds;
  for (i = 0; i < svc->cfg.ninterfaces; i++) {
    if (iface_open (ds, &ds->ifaces[i], svc->cfg.interfaces[i]) == -1) {
      ds->nifaces = i + 1;
      return -1;
    }
    ds->nifaces = i + 1;
  }
  return 0;
}

void
dhcp_service_free (struct dhcp_service *ds)
{
  size_t i;
  int j;

  if (ds == NULL)
    return;
  for (i = 0; i < ds->nifaces; i++)
    for (j = 0; j < 2; j++) {
      df_watch_free (ds->ifaces[i].watch[j]);
      if (ds->ifaces[i].fd[j] >= 0)
        close (ds->ifaces[i].fd[j]);
    }
  free (ds);
}
