/* diskfarm-bootsvc — which servers a device boots from, in which order.
 *
 * The candidates are the farm's servers that hold the store with the
 * device's vDisk.  Until a gateway reports load, they are ordered by a
 * weighted rendezvous hash of the device and server names: each server
 * comes first for a share of the devices proportional to its power
 * rating, a device's order never changes while the servers stay the
 * same, and a server that leaves moves only its own devices.  Subnet
 * affinity ([farm] affinity) puts servers near the client first
 * (best-effort) or keeps only those (fixed).
 */
#ifndef DISKFARM_BOOT_SELECT_H
#define DISKFARM_BOOT_SELECT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "farm/farm.h"
#include "hash/hash.h"
#include "util.h"

#define BOOT_SERVERS_MAX 4
#define NBD_PORT_DEFAULT 10809

enum affinity { AFFINITY_NONE, AFFINITY_BEST_EFFORT, AFFINITY_FIXED };

/* "none", "best-effort", "fixed"; -1 with a message otherwise. */
int affinity_parse (const char *s, enum affinity *out);

struct boot_server {
  char name[DF_NAME_MAX + 1];
  char host[256];               /* as in URLs: "10.0.0.1", "[fd00::1]" */
  unsigned nbd_port;
  unsigned power;
  bool near;                    /* one of its subnets holds the client */
  double score;                 /* rendezvous weight for the device */
};

/* Splits a farm server address "HOST", "HOST:PORT", "[V6]:PORT" or a
 * bare IPv6 address into host (IPv6 in brackets) and NBD port.
 */
int boot_server_address (const char *address, char *host, size_t len,
                         unsigned *port);

/* True if the IPv4 address (network order) is in one of the CIDRs of a
 * subnets list ("10.0.0.0/24, 10.1.0.0/16"); IPv6 entries never match.
 */
bool subnets_contain (const char *list, uint32_t addr);

/* Orders n candidates for device (see above) and returns how many of
 * the first max to use.  client_known false: no affinity is applied
 * (the client's address is not known).
 */
size_t boot_servers_order (struct boot_server *s, size_t n, const char *device,
                           enum affinity aff, bool client_known, size_t max);

/* The farm's servers that hold store (a shared store, a store listed in
 * their store-paths, or any store if they list none), with near set
 * for the client (network order; ignored if !client_known).  Host names
 * are resolved to IPv4 addresses; a server whose address is bad or does
 * not resolve is left out with a warning.  *out is malloc'd (caller
 * frees); *n may be 0.
 */
int boot_servers_from_farm (const struct df_farm *farm, const char *store,
                            uint32_t client, bool client_known,
                            struct boot_server **out, size_t *n);

/* Replica identity: a device goes only to servers whose replica of its
 * version is identical (DESIGN.md): same size, same mtime, same content
 * hash, and the layer file there.  Peers' replicas are known from their
 * gateways' /v1/vdisks (replicas.c), this server's own from a stat of
 * its layer file.  A server whose gateway has not answered lately is
 * not known to hold anything: a version is pending on a server until
 * the server says it holds it identical.
 */
enum replica_state {
  REPLICA_UNKNOWN,              /* no (recent) answer from its gateway */
  REPLICA_PRESENT,
  REPLICA_MISSING,
  REPLICA_INCOMPLETE,           /* there, but not as sealed */
};

struct replica_identity {
  enum replica_state state;
  bool sealed;
  uint64_t size, mtime_ns;
  uint8_t hash[DF_HASH_LEN];
};

/* May a server whose replica is have serve the version want (as this
 * server's vdisk.conf describes it)?  A sealed version: have is present,
 * sealed, and of the same size, mtime and hash.  An unsealed one
 * (maintenance, one editor): have is present.
 */
bool boot_replica_identical (const struct replica_identity *want,
                             const struct replica_identity *have);

/* Keeps the candidates whose keep[i] is true, in their order; returns
 * how many are left.
 */
size_t boot_servers_keep (struct boot_server *s, size_t n, const bool *keep);

#endif
