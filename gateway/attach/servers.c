/* diskfarm-gateway attach — the servers to use: a --servers list, or the
 * farm directory's servers.
 */
#include <config.h>

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "attach.h"
#include "cleanup.h"
#include "error.h"
#include "farm/farm.h"
#include "util.h"

void
attach_servers_free (struct attach_servers *s)
{
  size_t i;

  for (i = 0; i < s->n; i++) {
    free (s->nbd[i]);
    free (s->name[i]);
  }
  memset (s, 0, sizeof *s);
}

static int
add (struct attach_servers *s, const char *nbd, const char *name)
{
  if (s->n == DF_UPSTREAM_MAX_SERVERS)
    return df_error (E2BIG, "more than %d servers", DF_UPSTREAM_MAX_SERVERS);
  s->nbd[s->n] = strdup (nbd);
  s->name[s->n] = name ? strdup (name) : NULL;
  if (s->nbd[s->n] == NULL || (name && s->name[s->n] == NULL)) {
    free (s->nbd[s->n]);
    return df_error_errno ("servers");
  }
  s->n++;
  return 0;
}

int
attach_servers_from_list (const char *list, struct attach_servers *out)
{
  CLEANUP_FREE char *copy = strdup (list);
  char *save = NULL, *item;

  memset (out, 0, sizeof *out);
  if (copy == NULL)
    return df_error_errno ("servers");
  for (item = strtok_r (copy, ",", &save); item;
       item = strtok_r (NULL, ",", &save)) {
    struct df_upstream_addr a;
    if (df_upstream_parse_addr (item, &a) == -1 || add (out, item, NULL) == -1)
      goto err;
  }
  if (out->n == 0) {
    df_error (EINVAL, "--servers names no server");
    goto err;
  }
  return 0;
 err:
  attach_servers_free (out);
  return -1;
}

/* The NBD address of one farm server. */
static int
add_farm_server (struct df_farm *farm, const char *name,
                 struct attach_servers *out)
{
  const char *address = df_farm_get (farm, DF_KIND_SERVER, name, "address");
  char host[300], nbd[320];
  unsigned port;

  if (address == NULL)
    return df_error (EINVAL, "server %s has no address", name);
  if (df_address_split (address, DF_UPSTREAM_DEFAULT_PORT, host, sizeof host,
                        &port) == -1)
    return -1;
  snprintf (nbd, sizeof nbd, "%s:%u", host, port);
  return add (out, nbd, name);
}

/* Are all the farm's stores shared, so the default cache directories
 * (STORE/caches) are too?
 */
static bool
stores_shared (struct df_farm *farm)
{
  CLEANUP_FREE const char **stores = df_farm_names (farm, DF_KIND_STORE);
  size_t i;

  if (stores == NULL || stores[0] == NULL)
    return false;
  for (i = 0; stores[i]; i++) {
    const char *v = df_farm_get (farm, DF_KIND_STORE, stores[i], "shared");
    bool b = false;
    if (v == NULL || df_parse_bool (v, &b) == -1 || !b)
      return false;
  }
  return true;
}

int
attach_servers_from_farm (const char *dir, struct attach_servers *out)
{
  struct df_farm *farm = df_farm_open (dir);
  CLEANUP_FREE const char **names = NULL;
  size_t i;
  int r = -1;

  memset (out, 0, sizeof *out);
  if (farm == NULL)
    return -1;
  names = df_farm_names (farm, DF_KIND_SERVER);
  for (i = 0; names && names[i]; i++)
    if (add_farm_server (farm, names[i], out) == -1) {
      df_error_prefix ("%s/farm.conf", dir);
      goto out;
    }
  if (out->n == 0) {
    df_error (ENOENT, "%s/farm.conf lists no server", dir);
    goto out;
  }
  out->shared = stores_shared (farm);
  r = 0;
 out:
  if (r == -1)
    attach_servers_free (out);
  df_farm_free (farm);
  return r;
}
