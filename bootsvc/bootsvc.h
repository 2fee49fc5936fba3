/* diskfarm-bootsvc — the daemon's shared state.
 *
 * One thread runs one df_loop with every socket: DHCP (67, 4011), TFTP
 * and HTTP.  Modules: options.c (command line), farmcache.c (the farm,
 * reloaded when it changes; devices by MAC; auto-add), boot.c (scripts,
 * kernels, initrds, iPXE binaries), web.c (HTTP routes), tftpd.c (TFTP
 * resolver), dhcp/service.c and dhcp/full.c (the DHCP side).
 */
#ifndef DISKFARM_BOOTSVC_H
#define DISKFARM_BOOTSVC_H

#include <netinet/in.h>
#include <sys/socket.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "dhcp/decide.h"
#include "farm/farm.h"
#include "select.h"

#define BOOTSVC_MAX_INTERFACES 8
#define BOOTSVC_MAX_DNS 3
#define BOOTSVC_HTTP_PORT 10810
#define BOOTSVC_TFTP_ROOT "/usr/lib/ipxe"
#define BOOTSVC_LEASE_FILE "/var/lib/diskfarm/bootsvc.leases"

struct bootsvc_config {
  const char *farm_dir;
  const char *server;                   /* --server, or NULL */
  const char *interfaces[BOOTSVC_MAX_INTERFACES];
  size_t ninterfaces;
  enum dhcp_mode dhcp_mode;
  struct in_addr range_first, range_last;
  bool have_range;
  uint32_t lease_time;                  /* seconds */
  const char *lease_file;
  struct in_addr router;                /* 0: none */
  struct in_addr dns[BOOTSVC_MAX_DNS];
  size_t ndns;
  const char *tftp_root;
  unsigned tftp_port;                   /* 0: no TFTP */
  const char *bios_file, *efi_file;
  unsigned http_port;
  const char *listen;                   /* HTTP and TFTP address, or NULL */
  unsigned boot_timeout;                /* diskfarm.timeout */
};

struct bootsvc_stats {
  uint64_t dhcp_received, dhcp_malformed, dhcp_ignored;
  uint64_t dhcp_offers, dhcp_acks, dhcp_naks, dhcp_send_errors;
  uint64_t unknown_macs;        /* requests (DHCP or HTTP) from unknown MACs */
  uint64_t devices_added, scripts, script_errors;
};

struct farm_cache;
struct peer_view;
struct dhcp_service;
struct lease_pool;
struct df_loop;
struct df_http_server;
struct boot_tftp;

struct bootsvc {
  struct bootsvc_config cfg;
  struct df_loop *loop;
  struct farm_cache *farm;
  struct peer_view *peers;              /* replicas on other servers */
  struct dhcp_service *dhcp;
  struct lease_pool *leases;            /* full mode */
  struct df_http_server *http;
  struct boot_tftp *tftp;
  struct bootsvc_stats stats;
};

/* options.c: parses argv into cfg (exits on --help, --version and
 * errors, like every program of the project).
 */
void bootsvc_parse_options (struct bootsvc_config *cfg, int argc, char **argv);

/* farmcache.c */
struct farm_cache *farm_cache_new (const char *dir, const char *server);
void farm_cache_free (struct farm_cache *fc);
/* The farm as it is now: reloaded if farm.conf or devices.d changed (a
 * farm that fails to load is logged and the previous one kept).
 */
struct df_farm *bootsvc_farm (struct bootsvc *svc);
/* The farm as last loaded, not looked at again: for the rest of a request
 * that began with bootsvc_farm or bootsvc_device, so that what it took
 * from the farm stays valid.
 */
struct df_farm *bootsvc_farm_loaded (struct bootsvc *svc);
/* Reloads now (SIGHUP), logging the outcome. */
void bootsvc_farm_reload (struct bootsvc *svc);
/* This server's name in the farm as last loaded (valid until the next
 * reload).
 */
const char *bootsvc_server_name (struct bootsvc *svc);
/* [farm] affinity, already checked when the farm was loaded. */
enum affinity bootsvc_affinity (struct bootsvc *svc);
/* The device with this MAC.  may_add: if the farm enables auto-add, an
 * unknown MAC becomes a device of the auto-add collection (at most 120
 * a minute).  -1 with ENOENT if unknown (and not added), EINVAL if its
 * device file is unusable (logged).
 */
int bootsvc_device (struct bootsvc *svc, const uint8_t mac[6], bool may_add,
                    struct df_device *out);
/* Logs an unknown MAC at most once a minute per MAC; counts each
 * request.  what: "dhcp" or "boot", for the log.
 */
void bootsvc_log_unknown (struct bootsvc *svc, const uint8_t mac[6],
                          const char *what);

/* peers.c: the replicas of the other servers, from their gateways'
 * /v1/vdisks, asked every few seconds by a thread of its own, so that
 * no DHCP or HTTP answer waits for them.  Only a farm that names a
 * token file ([gateway] token-file) has gateways to ask; without one,
 * replica identity is not checked (enabled false).
 */
struct peer_view *peer_view_start (const char *farm_dir, const char *server);
void peer_view_stop (struct peer_view *pv);   /* NULL is fine */
bool peer_view_enabled (struct peer_view *pv);
/* server's replica of vdisk@version as its gateway last said (within
 * 30 s): REPLICA_UNKNOWN if it did not answer lately, REPLICA_MISSING
 * if it answered without that version.  Memory only; never blocks on
 * I/O.
 */
void peer_view_lookup (struct peer_view *pv, const char *server,
                       const char *vdisk, unsigned version,
                       struct replica_identity *id);

/* boot.c */
/* The iPXE script for the device with this MAC booting from a client at
 * client (IPv4, network order; client_known false if not known).  Sets
 * *status: 200 with a script (for a device that cannot boot, a script
 * showing why), or 404 with a message for an unknown MAC.  NULL only on
 * failure to allocate.
 */
char *boot_script (struct bootsvc *svc, const uint8_t mac[6], uint32_t client,
                   bool client_known, bool http, unsigned *status);
/* Opens a vDisk's "kernel" or "initrd" from this server's stores; -1
 * with errno (ENOENT for no such vDisk or file) and a message.
 */
int boot_file_open (struct bootsvc *svc, const char *vdisk, const char *which);
/* Opens a file under the TFTP root (a relative path of plain names). */
int boot_root_open (struct bootsvc *svc, const char *path);
/* "aa-bb-cc-dd-ee-ff.ipxe" (also ':' separated, or 12 hex digits). */
int boot_parse_script_name (const char *name, uint8_t mac[6]);

/* web.c: the HTTP routes. */
int web_start (struct bootsvc *svc);

/* tftpd.c: the TFTP server and its resolver. */
int boot_tftp_start (struct bootsvc *svc);
void boot_tftp_free (struct boot_tftp *t);
/* Statistics as JSON-ready numbers; false if there is no TFTP server. */
struct tftp_numbers {
  uint64_t started, completed, failed, refused, bytes;
  unsigned active;
};
bool boot_tftp_stats (struct bootsvc *svc, struct tftp_numbers *out);
/* The resolver the TFTP server calls: client (may be NULL) decides the
 * subnet affinity of scripts.  boot_tftp_open is it without a client
 * (for tests).
 */
int boot_tftp_open_client (void *opaque, const char *path,
                           const struct sockaddr *client, socklen_t client_len);
int boot_tftp_open (void *opaque, const char *path);

/* dhcp/service.c */
int dhcp_service_start (struct bootsvc *svc);
void dhcp_service_free (struct dhcp_service *ds);

#endif
