/* diskfarm-bootsvc — address leases for full DHCP mode (see leases.h). */
#include <config.h>

#include <arpa/inet.h>
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cleanup.h"
#include "dhcp/leases.h"
#include "error.h"
#include "util.h"

enum lease_state { LEASE_FREE, LEASE_OFFERED, LEASE_BOUND, LEASE_DECLINED };

struct lease {
  uint8_t mac[6];
  enum lease_state state;
  time_t expires;               /* for offered, bound and declined */
};

struct lease_pool {
  uint32_t first;               /* host order */
  size_t n;
  struct lease *leases;
  char *file;
  size_t dropped;
};

static const uint8_t no_mac[6];

static struct in_addr
addr_of (const struct lease_pool *pool, size_t i)
{
  struct in_addr a = { htonl (pool->first + (uint32_t) i) };

  return a;
}

static bool
index_of (const struct lease_pool *pool, struct in_addr a, size_t *i)
{
  uint32_t h = ntohl (a.s_addr);

  if (h < pool->first || h - pool->first >= pool->n)
    return false;
  *i = h - pool->first;
  return true;
}

bool
lease_pool_contains (const struct lease_pool *pool, struct in_addr a)
{
  size_t i;

  return index_of (pool, a, &i);
}

/* Nobody may use it now (expired leases still remember their client). */
static bool
is_taken (const struct lease *l, time_t now)
{
  return l->state != LEASE_FREE && l->expires > now;
}

static int
save (const struct lease_pool *pool)
{
  CLEANUP_FREE char *text = NULL;
  size_t len = 0, i;
  FILE *f;

  if (pool->file == NULL)
    return 0;
  f = open_memstream (&text, &len);
  if (f == NULL)
    return df_error_errno ("%s", pool->file);
  fprintf (f, "# diskfarm-bootsvc leases: MAC ADDRESS EXPIRES (seconds since "
           "the epoch)\n");
  for (i = 0; i < pool->n; i++) {
    const struct lease *l = &pool->leases[i];
    char mac[18], addr[INET_ADDRSTRLEN];
    struct in_addr a = addr_of (pool, i);

    if (l->state != LEASE_BOUND)
      continue;
    fprintf (f, "%s %s %" PRId64 "\n", df_format_mac (l->mac, mac),
             inet_ntop (AF_INET, &a, addr, sizeof addr), (int64_t) l->expires);
  }
  if (fclose (f) != 0)
    return df_error_errno ("%s", pool->file);
  return df_write_file_atomic (pool->file, text, len, 0644);
}

static int
load_line (struct lease_pool *pool, char *line, unsigned lineno)
{
  char mac_s[32], addr_s[32], extra[2];
  long long expires;
  uint8_t mac[6];
  struct in_addr a;
  size_t i;

  line[strcspn (line, "\r\n")] = '\0';
  line += strspn (line, " \t");
  if (line[0] == '\0' || line[0] == '#')
    return 0;
  if (sscanf (line, "%31s %31s %lld %1s", mac_s, addr_s, &expires, extra) != 3 ||
      df_parse_mac (mac_s, mac) == -1 || inet_pton (AF_INET, addr_s, &a) != 1 ||
      expires < 0)
    return df_error (EINVAL, "%s:%u: not a lease (MAC ADDRESS EXPIRES)",
                     pool->file, lineno);
  if (!index_of (pool, a, &i)) {
    pool->dropped++;
    return 0;
  }
  if (pool->leases[i].state != LEASE_FREE)
    return df_error (EINVAL, "%s:%u: address %s is leased twice", pool->file,
                     lineno, addr_s);
  memcpy (pool->leases[i].mac, mac, 6);
  pool->leases[i].state = LEASE_BOUND;
  pool->leases[i].expires = expires;
  return 0;
}

static int
load (struct lease_pool *pool)
{
  CLEANUP_FCLOSE FILE *f = fopen (pool->file, "re");
  char line[256];
  unsigned lineno = 0;

  if (f == NULL)
    return errno == ENOENT ? 0 : df_error_errno ("%s", pool->file);
  while (fgets (line, sizeof line, f)) {
    lineno++;
    if (strlen (line) == sizeof line - 1 && line[sizeof line - 2] != '\n')
      return df_error (EINVAL, "%s:%u: line too long", pool->file, lineno);
    if (load_line (pool, line, lineno) == -1)
      return -1;
  }
  if (ferror (f))
    return df_error_errno ("%s", pool->file);
  return 0;
}

struct lease_pool *
lease_pool_new (struct in_addr first, struct in_addr last, const char *file)
{
  uint32_t f = ntohl (first.s_addr), l = ntohl (last.s_addr);
  struct lease_pool *pool;

  if (l < f || (uint64_t) l - f + 1 > LEASE_POOL_MAX) {
    df_error (EINVAL, "an address range runs upwards and holds at most %d "
              "addresses", LEASE_POOL_MAX);
    return NULL;
  }
  pool = calloc (1, sizeof *pool);
  if (pool == NULL)
    goto nomem;
  pool->first = f;
  pool->n = (size_t) (l - f) + 1;
  pool->leases = calloc (pool->n, sizeof *pool->leases);
  if (pool->leases == NULL || (file && (pool->file = strdup (file)) == NULL))
    goto nomem;
  if (pool->file && load (pool) == -1) {
    lease_pool_free (pool);
    return NULL;
  }
  return pool;
 nomem:
  df_error_errno ("lease pool");
  lease_pool_free (pool);
  return NULL;
}

void
lease_pool_free (struct lease_pool *pool)
{
  if (pool == NULL)
    return;
  free (pool->leases);
  free (pool->file);
  free (pool);
}

size_t
lease_pool_dropped (const struct lease_pool *pool)
{
  return pool->dropped;
}

size_t
lease_pool_bound (const struct lease_pool *pool, time_t now)
{
  size_t i, n = 0;

  for (i = 0; i < pool->n; i++)
    if (pool->leases[i].state == LEASE_BOUND && pool->leases[i].expires > now)
      n++;
  return n;
}

/* mac's lease, taken or expired (but not reassigned); -1 if none. */
static long
find_mac (const struct lease_pool *pool, const uint8_t mac[6])
{
  size_t i;

  for (i = 0; i < pool->n; i++)
    if ((pool->leases[i].state == LEASE_OFFERED ||
         pool->leases[i].state == LEASE_BOUND) &&
        memcmp (pool->leases[i].mac, mac, 6) == 0)
      return i;
  return -1;
}

bool
lease_find (const struct lease_pool *pool, const uint8_t mac[6], time_t now,
            struct in_addr *out)
{
  long i = find_mac (pool, mac);

  if (i < 0 || !is_taken (&pool->leases[i], now))
    return false;
  *out = addr_of (pool, i);
  return true;
}

/* A free address: never used first, then the one expired longest ago. */
static long
find_free (const struct lease_pool *pool, time_t now)
{
  long best = -1;
  size_t i;

  for (i = 0; i < pool->n; i++) {
    const struct lease *l = &pool->leases[i];
    if (l->state == LEASE_FREE)
      return i;
    if (!is_taken (l, now) &&
        (best < 0 || l->expires < pool->leases[best].expires))
      best = i;
  }
  return best;
}

int
lease_offer (struct lease_pool *pool, const uint8_t mac[6],
             struct in_addr requested, time_t now, struct in_addr *out)
{
  long i = find_mac (pool, mac);
  size_t r;
  struct lease *l;

  if (i < 0 && requested.s_addr && index_of (pool, requested, &r) &&
      !is_taken (&pool->leases[r], now))
    i = r;
  if (i < 0)
    i = find_free (pool, now);
  if (i < 0)
    return df_error (ENOSPC, "no free address in the range");
  l = &pool->leases[i];
  /* A client's live lease stays bound; anything else is held for it. */
  if (!(l->state == LEASE_BOUND && l->expires > now &&
        memcmp (l->mac, mac, 6) == 0)) {
    l->state = LEASE_OFFERED;
    l->expires = now + LEASE_OFFER_HOLD;
  }
  memcpy (l->mac, mac, 6);
  *out = addr_of (pool, i);
  return 0;
}

int
lease_bind (struct lease_pool *pool, const uint8_t mac[6], struct in_addr addr,
            time_t now, uint32_t secs)
{
  long old = find_mac (pool, mac);
  struct lease *l;
  size_t i;

  if (!index_of (pool, addr, &i))
    return df_error (ERANGE, "address not in the range");
  l = &pool->leases[i];
  if (is_taken (l, now) && memcmp (l->mac, mac, 6) != 0)
    return df_error (EADDRINUSE, "address leased to another client");
  if (old >= 0 && (size_t) old != i) {
    pool->leases[old].state = LEASE_FREE;
    memcpy (pool->leases[old].mac, no_mac, 6);
  }
  memcpy (l->mac, mac, 6);
  l->state = LEASE_BOUND;
  l->expires = now + secs;
  return save (pool);
}

int
lease_release (struct lease_pool *pool, const uint8_t mac[6],
               struct in_addr addr)
{
  struct lease *l;
  size_t i;

  if (!index_of (pool, addr, &i))
    return 0;
  l = &pool->leases[i];
  if (l->state != LEASE_BOUND || memcmp (l->mac, mac, 6) != 0)
    return 0;
  /* Keep the client's name on it, expired, so it gets it back next time. */
  l->expires = 0;
  return save (pool);
}

void
lease_decline (struct lease_pool *pool, struct in_addr addr, time_t now)
{
  size_t i;

  if (!index_of (pool, addr, &i))
    return;
  pool->leases[i].state = LEASE_DECLINED;
  memcpy (pool->leases[i].mac, no_mac, 6);
  pool->leases[i].expires = now + LEASE_DECLINE_HOLD;
  save (pool);
}
