/* diskfarm-bootsvc — boot server candidates and their order (see
 * select.h).
 */
#include <config.h>

#include <arpa/inet.h>
#include <ctype.h>
#include <errno.h>
#include <math.h>
#include <netdb.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cleanup.h"
#include "error.h"
#include "log.h"
#include "select.h"

int
affinity_parse (const char *s, enum affinity *out)
{
  char q[64];

  if (s == NULL || strcmp (s, "none") == 0)
    *out = AFFINITY_NONE;
  else if (strcmp (s, "best-effort") == 0)
    *out = AFFINITY_BEST_EFFORT;
  else if (strcmp (s, "fixed") == 0)
    *out = AFFINITY_FIXED;
  else
    return df_error (EINVAL, "affinity \"%s\" is not none, best-effort or "
                     "fixed", df_quote (s, q, sizeof q));
  return 0;
}

int
boot_server_address (const char *address, char *host, size_t len,
                     unsigned *port)
{
  return df_address_split (address, NBD_PORT_DEFAULT, host, len, port);
}

bool
subnets_contain (const char *list, uint32_t addr)
{
  CLEANUP_FREE char *copy = list ? strdup (list) : NULL;
  char *save = NULL, *item;
  uint32_t h = ntohl (addr);

  for (item = copy ? strtok_r (copy, ", \t", &save) : NULL; item;
       item = strtok_r (NULL, ", \t", &save)) {
    char *slash = strchr (item, '/');
    struct in_addr net;
    uint64_t bits;
    uint32_t mask;

    if (slash == NULL)
      continue;
    *slash = '\0';
    if (inet_pton (AF_INET, item, &net) != 1 ||
        df_parse_u64 (slash + 1, &bits) == -1 || bits > 32)
      continue;
    mask = bits == 0 ? 0 : ~(uint32_t) 0 << (32 - bits);
    if ((ntohl (net.s_addr) & mask) == (h & mask))
      return true;
  }
  return false;
}

/* 64-bit FNV-1a over "device\0server", finished with splitmix64 so that
 * similar names spread well.
 */
static uint64_t
pair_hash (const char *device, const char *server)
{
  uint64_t h = 0xcbf29ce484222325ULL;
  const char *parts[2] = { device, server };
  size_t i;

  for (i = 0; i < 2; i++) {
    const unsigned char *s = (const unsigned char *) parts[i];
    do {
      h ^= *s;
      h *= 0x100000001b3ULL;
    } while (*s++);
  }
  h ^= h >> 30;
  h *= 0xbf58476d1ce4e5b9ULL;
  h ^= h >> 27;
  h *= 0x94d049bb133111ebULL;
  h ^= h >> 31;
  return h;
}

/* Weighted rendezvous: -power / ln(u), u uniform in (0, 1). */
static double
rendezvous_score (const char *device, const struct boot_server *s)
{
  double u = ((pair_hash (device, s->name) >> 11) + 0.5) / 9007199254740992.0;

  return -(double) (s->power ? s->power : 1) / log (u);
}

static int
cmp_servers (const void *a, const void *b)
{
  const struct boot_server *x = a, *y = b;

  if (x->near != y->near)
    return x->near ? -1 : 1;
  if (x->score != y->score)
    return x->score > y->score ? -1 : 1;
  return strcmp (x->name, y->name);
}

size_t
boot_servers_order (struct boot_server *s, size_t n, const char *device,
                    enum affinity aff, bool client_known, size_t max)
{
  size_t i, keep = n;

  for (i = 0; i < n; i++) {
    s[i].score = rendezvous_score (device, &s[i]);
    if (aff == AFFINITY_NONE || !client_known)
      s[i].near = false;
  }
  qsort (s, n, sizeof *s, cmp_servers);
  if (aff == AFFINITY_FIXED && client_known)
    for (keep = 0; keep < n && s[keep].near; keep++)
      ;
  return keep < max ? keep : max;
}

/* Devices get IP addresses (an initramfs has no resolver): a host name
 * is resolved here, to its first IPv4 address.
 */
static int
resolve_host (char *host, size_t len)
{
  struct addrinfo hints = { .ai_family = AF_INET, .ai_socktype = SOCK_STREAM };
  struct addrinfo *ai = NULL;
  struct in_addr a;
  int r;

  if (host[0] == '[' || inet_pton (AF_INET, host, &a) == 1)
    return 0;
  r = getaddrinfo (host, NULL, &hints, &ai);
  if (r != 0)
    return df_error (ENOENT, "host name %s: %s", host, gai_strerror (r));
  inet_ntop (AF_INET, &((struct sockaddr_in *) ai->ai_addr)->sin_addr, host, len);
  freeaddrinfo (ai);
  return 0;
}

static int
fill_server (const struct df_farm *farm, const char *name, uint32_t client,
             struct boot_server *out)
{
  struct df_server sv;
  const char *subnets;

  if (df_farm_server (farm, name, &sv) == -1)
    return -1;
  memset (out, 0, sizeof *out);
  snprintf (out->name, sizeof out->name, "%s", name);
  if (boot_server_address (sv.address, out->host, sizeof out->host,
                           &out->nbd_port) == -1 ||
      resolve_host (out->host, sizeof out->host) == -1) {
    df_error_prefix ("server \"%s\"", name);
    return -1;
  }
  out->power = sv.power;
  subnets = sv.subnets;
  if (subnets == NULL && sv.site)
    subnets = df_farm_get (farm, DF_KIND_SITE, sv.site, "subnets");
  out->near = subnets_contain (subnets, client);
  return 0;
}

int
boot_servers_from_farm (const struct df_farm *farm, const char *store,
                        uint32_t client, bool client_known,
                        struct boot_server **out, size_t *n)
{
  CLEANUP_FREE const char **names = df_farm_names (farm, DF_KIND_SERVER);
  struct boot_server *s;
  size_t i, count = 0;

  *out = NULL;
  *n = 0;
  if (names == NULL)
    return -1;
  for (i = 0; names[i]; i++)
    ;
  s = calloc (i + 1, sizeof *s);
  if (s == NULL)
    return df_error_errno ("servers");
  for (i = 0; names[i]; i++) {
    if (!df_farm_server_holds (farm, names[i], store))
      continue;
    if (fill_server (farm, names[i], client, &s[count]) == -1) {
      df_log_warning ("boot: leaving out %s", df_error_get ());
      continue;
    }
    if (!client_known)
      s[count].near = false;
    count++;
  }
  *out = s;
  *n = count;
  return 0;
}

bool
boot_replica_identical (const struct replica_identity *want,
                        const struct replica_identity *have)
{
  if (have->state != REPLICA_PRESENT)
    return false;
  if (!want->sealed)
    return true;
  return have->sealed && have->size == want->size &&
    have->mtime_ns == want->mtime_ns &&
    memcmp (have->hash, want->hash, DF_HASH_LEN) == 0;
}

size_t
boot_servers_keep (struct boot_server *s, size_t n, const bool *keep)
{
  size_t i, o = 0;

  for (i = 0; i < n; i++)
    if (keep[i]) {
      if (o != i)
        s[o] = s[i];
      o++;
    }
  return o;
}
