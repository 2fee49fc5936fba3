/* diskfarm-bootsvc — full DHCP mode: addresses from the range, leases
 * kept in the lease file (RFC 2131 section 4.3), boot information for
 * the farm's devices.
 */
#include <config.h>

#include <arpa/inet.h>
#include <errno.h>
#include <string.h>
#include <time.h>

#include "dhcp/leases.h"
#include "dhcp/service.h"
#include "error.h"
#include "log.h"
#include "util.h"

/* Address options and, for devices, what to boot. */
static int
fill_reply (struct dhcp_ctx *c, struct dhcp_reply *r, struct in_addr yiaddr,
            bool lease)
{
  const struct bootsvc_config *cfg = &c->svc->cfg;

  dhcp_reply_set_yiaddr (r, yiaddr);
  dhcp_reply_option_addr (r, DHO_SERVER_ID, c->server_ip);
  if (lease) {
    dhcp_reply_option_u32 (r, DHO_LEASE_TIME, cfg->lease_time);
    dhcp_reply_option_u32 (r, DHO_RENEWAL_TIME, cfg->lease_time / 2);
    dhcp_reply_option_u32 (r, DHO_REBINDING_TIME, cfg->lease_time / 8 * 7);
  }
  dhcp_reply_option_addr (r, DHO_SUBNET_MASK, c->netmask);
  if (cfg->router.s_addr)
    dhcp_reply_option_addr (r, DHO_ROUTERS, cfg->router);
  if (cfg->ndns)
    dhcp_reply_option (r, DHO_DNS_SERVERS, cfg->dns, cfg->ndns * 4);
  if (c->dev)
    dhcp_reply_option_str (r, DHO_HOST_NAME, c->dev->name);
  return dhcp_add_boot (c, r);
}

static void
log_answer (struct dhcp_ctx *c, const char *what, struct in_addr a)
{
  char ip[INET_ADDRSTRLEN], who[96];

  df_log_info ("dhcp: %s %s to %s on %s%s%s", what,
               inet_ntop (AF_INET, &a, ip, sizeof ip), dhcp_who (c, who),
               c->iface->name, c->file[0] ? ", boot " : "", c->file);
}

static void
nak (struct dhcp_ctx *c, const char *why)
{
  struct in_addr none = { 0 };
  struct dhcp_reply r;
  char who[96];

  dhcp_reply_start (&r, c->req, DHCPNAK);
  dhcp_reply_option_addr (&r, DHO_SERVER_ID, c->server_ip);
  dhcp_reply_option_str (&r, DHO_MESSAGE, why);
  if (dhcp_send (c, &r, none) == 0)
    df_log_info ("dhcp: nak to %s on %s: %s", dhcp_who (c, who),
                 c->iface->name, why);
}

static void
on_discover (struct dhcp_ctx *c)
{
  struct in_addr requested = { 0 }, a;
  struct dhcp_reply r;
  char who[96];

  dhcp_get_addr (c->req, DHO_REQUESTED_ADDRESS, &requested);
  if (lease_offer (c->svc->leases, c->client.mac, requested, time (NULL), &a) == -1) {
    df_log_warning ("dhcp: no address for %s: %s", dhcp_who (c, who),
                    df_error_get ());
    return;
  }
  dhcp_reply_start (&r, c->req, DHCPOFFER);
  if (fill_reply (c, &r, a, true) == 0 && dhcp_send (c, &r, a) == 0)
    log_answer (c, "offer", a);
}

/* The address a DHCPREQUEST asks for, by its state (RFC 2131 4.3.2);
 * false if it is not for us to answer.
 */
static bool
requested_address (struct dhcp_ctx *c, struct in_addr *a, bool *ours)
{
  struct in_addr sid;
  bool has_sid = dhcp_get_addr (c->req, DHO_SERVER_ID, &sid);

  *ours = has_sid && sid.s_addr == c->server_ip.s_addr;
  if (has_sid && !*ours)
    return false;               /* SELECTING another server's offer */
  if (!dhcp_get_addr (c->req, DHO_REQUESTED_ADDRESS, a))
    *a = c->req->ciaddr;        /* RENEWING or REBINDING */
  return a->s_addr != 0;
}

static void
on_request (struct dhcp_ctx *c)
{
  struct lease_pool *pool = c->svc->leases;
  struct dhcp_reply r;
  struct in_addr a;
  bool ours;
  char who[96];

  if (!requested_address (c, &a, &ours))
    return;
  if (!lease_pool_contains (pool, a)) {
    /* Wrong for this network, or asked of us: say no.  Else silence. */
    if (ours || (a.s_addr & c->netmask.s_addr) ==
        (c->server_ip.s_addr & c->netmask.s_addr))
      nak (c, "address not in this server's range");
    return;
  }
  if (lease_bind (pool, c->client.mac, a, time (NULL), c->svc->cfg.lease_time) == -1) {
    if (errno == EADDRINUSE || errno == ERANGE) {
      nak (c, df_error_get ());
      return;
    }
    /* Bound in memory, but the lease file could not be written. */
    df_log_error ("dhcp: lease of %s: %s", dhcp_who (c, who), df_error_get ());
  }
  dhcp_reply_start (&r, c->req, DHCPACK);
  dhcp_reply_set_ciaddr (&r, c->req->ciaddr);
  if (fill_reply (c, &r, a, true) == 0 && dhcp_send (c, &r, a) == 0)
    log_answer (c, "ack", a);
}

static void
on_inform (struct dhcp_ctx *c)
{
  struct in_addr none = { 0 };
  struct dhcp_reply r;

  dhcp_reply_start (&r, c->req, DHCPACK);
  dhcp_reply_set_ciaddr (&r, c->req->ciaddr);
  if (fill_reply (c, &r, none, false) == 0 && dhcp_send (c, &r, none) == 0)
    log_answer (c, "inform ack", c->req->ciaddr);
}

void
dhcp_full_handle (struct dhcp_ctx *c)
{
  struct lease_pool *pool = c->svc->leases;
  struct in_addr a;
  char who[96], ip[INET_ADDRSTRLEN];

  if (c->req->giaddr.s_addr) {
    df_debug ("dhcp", "ignoring relayed %s: full mode serves %s's subnet only",
              dhcp_msg_name (c->client.msg_type), c->iface->name);
    return;
  }
  switch (c->client.msg_type) {
  case DHCPDISCOVER:
    on_discover (c);
    break;
  case DHCPREQUEST:
    on_request (c);
    break;
  case DHCPINFORM:
    on_inform (c);
    break;
  case DHCPRELEASE:
    if (lease_release (pool, c->client.mac, c->req->ciaddr) == -1)
      df_log_error ("dhcp: release: %s", df_error_get ());
    else
      df_log_info ("dhcp: %s released %s", dhcp_who (c, who),
                   inet_ntop (AF_INET, &c->req->ciaddr, ip, sizeof ip));
    break;
  case DHCPDECLINE:
    if (dhcp_get_addr (c->req, DHO_REQUESTED_ADDRESS, &a)) {
      lease_decline (pool, a, time (NULL));
      df_log_warning ("dhcp: %s declined %s: another host uses it",
                      dhcp_who (c, who), inet_ntop (AF_INET, &a, ip, sizeof ip));
    }
    break;
  default:
    break;
  }
}
