/* diskfarm-bootsvc — address leases for full DHCP mode.
 *
 * A pool is a range of IPv4 addresses and who holds each.  Bound leases
 * are kept in a text file, rewritten atomically after every change:
 *
 *   # comment
 *   52:54:00:12:34:56 10.0.0.100 1732300000
 *
 * (MAC address, IPv4 address, expiry in seconds since the epoch).  A
 * client keeps its address across renewals and, while nobody else needs
 * it, after its lease expired.  Clients are told apart by MAC address.
 */
#ifndef DISKFARM_DHCP_LEASES_H
#define DISKFARM_DHCP_LEASES_H

#include <netinet/in.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <time.h>

#define LEASE_POOL_MAX 65536            /* addresses in one range */
#define LEASE_OFFER_HOLD 60             /* seconds an offer is reserved */
#define LEASE_DECLINE_HOLD 600          /* seconds a declined address rests */

struct lease_pool;

/* A pool of first..last (inclusive).  file may be NULL (nothing kept);
 * an existing file is loaded: a malformed one is an error naming the
 * line (nothing is overwritten), leases outside the range are dropped
 * and counted (lease_pool_dropped).
 */
struct lease_pool *lease_pool_new (struct in_addr first, struct in_addr last,
                                   const char *file);
void lease_pool_free (struct lease_pool *pool);
size_t lease_pool_dropped (const struct lease_pool *pool);
bool lease_pool_contains (const struct lease_pool *pool, struct in_addr a);
/* Bound, unexpired leases. */
size_t lease_pool_bound (const struct lease_pool *pool, time_t now);

/* For a DHCPDISCOVER: the address mac holds or held, else requested if
 * it is free, else the free address unused longest; reserved for
 * LEASE_OFFER_HOLD seconds.  -1 with ENOSPC when the pool is full.
 * requested.s_addr 0: none.
 */
int lease_offer (struct lease_pool *pool, const uint8_t mac[6],
                 struct in_addr requested, time_t now, struct in_addr *out);
/* For a DHCPREQUEST: binds addr to mac for secs and saves the file.
 * -1 with ERANGE (not in the pool) or EADDRINUSE (another client's).
 */
int lease_bind (struct lease_pool *pool, const uint8_t mac[6],
                struct in_addr addr, time_t now, uint32_t secs);
/* The address mac holds now (offered or bound). */
bool lease_find (const struct lease_pool *pool, const uint8_t mac[6],
                 time_t now, struct in_addr *out);
/* DHCPRELEASE: frees mac's lease of addr and saves. */
int lease_release (struct lease_pool *pool, const uint8_t mac[6],
                   struct in_addr addr);
/* DHCPDECLINE: addr is in use by someone unknown; rest it a while. */
void lease_decline (struct lease_pool *pool, struct in_addr addr, time_t now);

#endif
