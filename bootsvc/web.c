/* diskfarm-bootsvc — HTTP routes:
 *
 *   GET /boot/MAC.ipxe            the device's iPXE script (new session)
 *   GET /vdisks/NAME/kernel       a vDisk's kernel   (Range, ETag)
 *   GET /vdisks/NAME/initrd       a vDisk's initrd   (Range, ETag)
 *   GET /ipxe/FILE                a file of the TFTP root (iPXE binaries)
 *   GET /v1/status                counters, as JSON
 *   GET /metrics                  the same counters for Prometheus
 */
#include <config.h>

#include <errno.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bootsvc.h"
#include "cleanup.h"
#include "dhcp/leases.h"
#include "error.h"
#include "http/http.h"
#include "http/prom.h"
#include "log.h"
#include "util.h"

/* A missing file is 404, anything else 403, with the reason. */
static int
respond_open_error (struct df_http_request *req)
{
  int e = errno;

  df_debug ("http", "%s: %s", df_http_path (req), df_error_get ());
  return df_http_respond_text (req, e == ENOENT ? 404 : 403, "%s\n",
                               df_error_get ());
}

static int
h_script (struct df_http_request *req, void *opaque)
{
  struct bootsvc *svc = opaque;
  CLEANUP_FREE char *text = NULL;
  unsigned status;
  uint32_t client = 0;
  bool known = df_http_peer_ipv4 (req, &client);
  uint8_t mac[6];

  if (boot_parse_script_name (df_http_subpath (req), mac) == -1)
    return df_http_respond_text (req, 404, "%s\n", df_error_get ());
  text = boot_script (svc, mac, client, known, true, &status);
  if (text == NULL)
    return df_error (ENOMEM, "script");
  if (df_http_add_header (req, "Cache-Control", "no-store") == -1)
    return -1;
  return df_http_respond (req, status, "text/plain; charset=utf-8", text,
                          strlen (text));
}

static int
h_vdisk_file (struct df_http_request *req, void *opaque)
{
  struct bootsvc *svc = opaque;
  const char *sub = df_http_subpath (req), *slash = strchr (sub, '/');
  char vdisk[DF_NAME_MAX + 1];
  int fd;

  if (slash == NULL || (size_t) (slash - sub) > DF_NAME_MAX ||
      (strcmp (slash + 1, "kernel") != 0 && strcmp (slash + 1, "initrd") != 0))
    return df_http_respond_text (req, 404, "use /vdisks/NAME/kernel or "
                                 "/vdisks/NAME/initrd\n");
  memcpy (vdisk, sub, slash - sub);
  vdisk[slash - sub] = '\0';
  fd = boot_file_open (svc, vdisk, slash + 1);
  if (fd == -1)
    return respond_open_error (req);
  return df_http_respond_file (req, fd, "application/octet-stream", NULL);
}

static int
h_ipxe_file (struct df_http_request *req, void *opaque)
{
  int fd = boot_root_open (opaque, df_http_subpath (req));

  if (fd == -1)
    return respond_open_error (req);
  return df_http_respond_file (req, fd, "application/octet-stream", NULL);
}

static json_t *
dhcp_json (struct bootsvc *svc)
{
  const struct bootsvc_stats *s = &svc->stats;
  static const char *const modes[] = { "off", "proxy", "full" };
  json_t *o = json_pack ("{s:s, s:I, s:I, s:I, s:I, s:I, s:I, s:I}",
    "mode", modes[svc->cfg.dhcp_mode],
    "received", (json_int_t) s->dhcp_received,
    "malformed", (json_int_t) s->dhcp_malformed,
    "ignored", (json_int_t) s->dhcp_ignored,
    "offers", (json_int_t) s->dhcp_offers,
    "acks", (json_int_t) s->dhcp_acks,
    "naks", (json_int_t) s->dhcp_naks,
    "send_errors", (json_int_t) s->dhcp_send_errors);

  if (svc->leases)
    json_object_set_new (o, "leases",
                         json_integer (lease_pool_bound (svc->leases,
                                                         time (NULL))));
  return o;
}

static json_t *
tftp_json (struct bootsvc *svc)
{
  struct tftp_numbers t;

  if (!boot_tftp_stats (svc, &t))
    return json_null ();
  return json_pack ("{s:I, s:I, s:I, s:I, s:I, s:i}",
                    "started", (json_int_t) t.started,
                    "completed", (json_int_t) t.completed,
                    "failed", (json_int_t) t.failed,
                    "refused", (json_int_t) t.refused,
                    "bytes", (json_int_t) t.bytes, "active", (int) t.active);
}

static int
h_status (struct df_http_request *req, void *opaque)
{
  struct bootsvc *svc = opaque;
  struct df_http_stats h;
  const char *server = bootsvc_server_name (svc);

  df_http_server_stats (svc->http, &h);
  return df_http_respond_json (req, 200, json_pack (
    "{s:s, s:s?, s:o, s:o, s:{s:I, s:I, s:I}, s:{s:I, s:I, s:I, s:I}}",
    "program", "diskfarm-bootsvc " PACKAGE_VERSION,
    "server", server,
    "dhcp", dhcp_json (svc),
    "tftp", tftp_json (svc),
    "http", "requests", (json_int_t) h.requests,
            "errors", (json_int_t) (h.status_4xx + h.status_5xx),
            "bytes", (json_int_t) h.bytes,
    "boot", "scripts", (json_int_t) svc->stats.scripts,
            "script_errors", (json_int_t) svc->stats.script_errors,
            "unknown_macs", (json_int_t) svc->stats.unknown_macs,
            "devices_added", (json_int_t) svc->stats.devices_added));
}

static void
prom_counter (struct df_prom *p, const char *name, const char *help,
              uint64_t v)
{
  df_prom_family (p, name, "counter", help);
  df_prom_u64 (p, name, v, NULL);
}

static void
dhcp_metrics (struct bootsvc *svc, struct df_prom *p)
{
  const struct bootsvc_stats *s = &svc->stats;
  static const struct {
    const char *kind;
    size_t offset;
  } kinds[] = {
    { "received", offsetof (struct bootsvc_stats, dhcp_received) },
    { "malformed", offsetof (struct bootsvc_stats, dhcp_malformed) },
    { "ignored", offsetof (struct bootsvc_stats, dhcp_ignored) },
    { "offer", offsetof (struct bootsvc_stats, dhcp_offers) },
    { "ack", offsetof (struct bootsvc_stats, dhcp_acks) },
    { "nak", offsetof (struct bootsvc_stats, dhcp_naks) },
    { "send_error", offsetof (struct bootsvc_stats, dhcp_send_errors) },
  };
  size_t i;

  df_prom_family (p, "diskfarm_bootsvc_dhcp_packets_total", "counter",
                  "DHCP packets received (received, malformed, ignored) and "
                  "answers sent (offer, ack, nak) or not (send_error)");
  for (i = 0; i < sizeof kinds / sizeof kinds[0]; i++)
    df_prom_u64 (p, "diskfarm_bootsvc_dhcp_packets_total",
                 *(const uint64_t *) ((const char *) s + kinds[i].offset),
                 "kind", kinds[i].kind, NULL);
  if (svc->leases) {
    df_prom_family (p, "diskfarm_bootsvc_dhcp_leases", "gauge",
                    "Addresses leased now (full DHCP mode)");
    df_prom_u64 (p, "diskfarm_bootsvc_dhcp_leases",
                 lease_pool_bound (svc->leases, time (NULL)), NULL);
  }
}

static void
tftp_metrics (struct bootsvc *svc, struct df_prom *p)
{
  struct tftp_numbers t;

  if (!boot_tftp_stats (svc, &t))
    return;
  df_prom_family (p, "diskfarm_bootsvc_tftp_transfers_total", "counter",
                  "TFTP transfers by outcome");
  df_prom_u64 (p, "diskfarm_bootsvc_tftp_transfers_total", t.started,
               "outcome", "started", NULL);
  df_prom_u64 (p, "diskfarm_bootsvc_tftp_transfers_total", t.completed,
               "outcome", "completed", NULL);
  df_prom_u64 (p, "diskfarm_bootsvc_tftp_transfers_total", t.failed,
               "outcome", "failed", NULL);
  df_prom_u64 (p, "diskfarm_bootsvc_tftp_transfers_total", t.refused,
               "outcome", "refused", NULL);
  prom_counter (p, "diskfarm_bootsvc_tftp_sent_bytes_total",
                "Bytes sent over TFTP", t.bytes);
  df_prom_family (p, "diskfarm_bootsvc_tftp_active_transfers", "gauge",
                  "TFTP transfers under way");
  df_prom_u64 (p, "diskfarm_bootsvc_tftp_active_transfers", t.active, NULL);
}

static void
count_code (unsigned code, uint64_t n, void *opaque)
{
  char c[8];

  snprintf (c, sizeof c, "%u", code);
  df_prom_u64 (opaque, "diskfarm_bootsvc_http_requests_total", n,
               "code", c, NULL);
}

static int
h_metrics (struct df_http_request *req, void *opaque)
{
  struct bootsvc *svc = opaque;
  struct df_prom *p = df_prom_new ();
  struct df_http_stats h;

  if (p == NULL)
    return df_error (ENOMEM, "metrics");
  dhcp_metrics (svc, p);
  tftp_metrics (svc, p);
  df_http_server_stats (svc->http, &h);
  df_prom_family (p, "diskfarm_bootsvc_http_requests_total", "counter",
                  "HTTP requests answered, by status code");
  df_http_server_codes (svc->http, count_code, p);
  prom_counter (p, "diskfarm_bootsvc_http_response_bytes_total",
                "Bytes of HTTP answers queued", h.bytes);
  prom_counter (p, "diskfarm_bootsvc_scripts_total", "iPXE scripts made",
                svc->stats.scripts);
  prom_counter (p, "diskfarm_bootsvc_script_errors_total",
                "iPXE scripts that show a device why it cannot boot",
                svc->stats.script_errors);
  prom_counter (p, "diskfarm_bootsvc_unknown_macs_total",
                "Requests from MAC addresses the farm does not know",
                svc->stats.unknown_macs);
  prom_counter (p, "diskfarm_bootsvc_devices_added_total",
                "Devices added automatically", svc->stats.devices_added);
  return df_http_respond_prom (req, p);
}

int
web_start (struct bootsvc *svc)
{
  static struct df_http_route routes[] = {
    { .method = "GET", .path = "/boot/", .fn = h_script },
    { .method = "GET", .path = "/vdisks/", .fn = h_vdisk_file },
    { .method = "GET", .path = "/ipxe/", .fn = h_ipxe_file },
    { .method = "GET", .path = "/v1/status", .fn = h_status },
    { .method = "GET", .path = "/metrics", .fn = h_metrics },
    { NULL },
  };
  struct df_http_config cfg = {
    .listen = svc->cfg.listen, .port = svc->cfg.http_port, .loop = svc->loop,
    .routes = routes, .access_log = true,
  };
  size_t i;

  for (i = 0; routes[i].path; i++)
    routes[i].opaque = svc;
  svc->http = df_http_server_new (&cfg);
  return svc->http ? 0 : -1;
}
