/* diskfarm — servers of the farm: their addresses and the stores they
 * carry (see farm.h).
 */
#include <config.h>

#include <arpa/inet.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cleanup.h"
#include "error.h"
#include "farm/farm.h"
#include "util.h"

int
df_address_split (const char *address, unsigned default_port, char *host,
                  size_t len, unsigned *port)
{
  const char *colon = strrchr (address, ':');
  const char *hend = address + strlen (address);
  uint64_t p = default_port;
  struct in6_addr a6;
  char q[80];
  int n;

  if (address[0] == '[') {                      /* [V6] or [V6]:PORT */
    const char *close = strchr (address, ']');
    if (close == NULL || (close[1] && close[1] != ':'))
      goto bad;
    if (close[1] == ':' && df_parse_u64 (close + 2, &p) == -1)
      goto bad;
    hend = close + 1;
  }
  else if (colon && strchr (address, ':') == colon) {   /* HOST:PORT */
    if (df_parse_u64 (colon + 1, &p) == -1)
      goto bad;
    hend = colon;
  }
  else if (colon) {                             /* a bare IPv6 address */
    if (inet_pton (AF_INET6, address, &a6) != 1)
      goto bad;
    n = snprintf (host, len, "[%s]", address);
    if (n < 0 || (size_t) n >= len)
      goto bad;
    *port = p;
    return 0;
  }
  if (p == 0 || p > 65535 || hend == address || (size_t) (hend - address) >= len)
    goto bad;
  memcpy (host, address, hend - address);
  host[hend - address] = '\0';
  *port = p;
  return 0;
 bad:
  return df_error (EINVAL, "server address \"%s\" is not HOST[:PORT]",
                   df_quote (address, q, sizeof q));
}

bool
df_farm_store_shared (const struct df_farm *farm, const char *store)
{
  const char *v = df_farm_get (farm, DF_KIND_STORE, store, "shared");
  bool b = false;

  return v && df_parse_bool (v, &b) == 0 && b;
}

bool
df_farm_server_holds (const struct df_farm *farm, const char *server,
                      const char *store)
{
  const char *list = df_farm_get (farm, DF_KIND_SERVER, server, "store-paths");
  CLEANUP_FREE char *copy = NULL;
  char *save = NULL, *item;

  if (df_farm_store_shared (farm, store) || list == NULL)
    return true;
  copy = strdup (list);
  for (item = copy ? strtok_r (copy, ",", &save) : NULL; item;
       item = strtok_r (NULL, ",", &save)) {
    item += strspn (item, " \t");
    if (strncmp (item, store, strlen (store)) == 0 && item[strlen (store)] == ':')
      return true;
  }
  return false;
}
