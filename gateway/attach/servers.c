/* diskfarm-gateway attach — the servers to use: a --servers list, or the
 * farm directory's servers and their gateways.
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

#define GATEWAY_PORT_DEFAULT 10811

void
attach_servers_free (struct attach_servers *s)
{
  size_t i;

  for (i = 0; i < s->n; i++) {
    free (s->nbd[i]);
    free (s->status_url[i]);
  }
  free (s->ca_file);
  memset (s, 0, sizeof *s);
}

/* "http[s]://HOST:PORT/v1/status" of a gateway (host as in URLs). */
static char *
status_url (const char *host, unsigned port, bool tls)
{
  char *u;

  if (asprintf (&u, "%s://%s:%u/v1/status", tls ? "https" : "http", host,
                port) == -1) {
    df_error_errno ("gateway URL");
    return NULL;
  }
  return u;
}

static int
add (struct attach_servers *s, const char *nbd, char *url)
{
  if (s->n == DF_UPSTREAM_MAX_SERVERS) {
    free (url);
    return df_error (E2BIG, "more than %d servers", DF_UPSTREAM_MAX_SERVERS);
  }
  s->nbd[s->n] = strdup (nbd);
  s->status_url[s->n] = url;
  if (s->nbd[s->n] == NULL) {
    free (url);
    return df_error_errno ("servers");
  }
  s->n++;
  return 0;
}

int
attach_servers_from_list (const char *list, unsigned gateway_port,
                          struct attach_servers *out)
{
  CLEANUP_FREE char *copy = strdup (list);
  char *save = NULL, *item;

  memset (out, 0, sizeof *out);
  if (copy == NULL)
    return df_error_errno ("servers");
  for (item = strtok_r (copy, ",", &save); item;
       item = strtok_r (NULL, ",", &save)) {
    struct df_upstream_addr a;
    char host[300], *url = NULL;

    if (df_upstream_parse_addr (item, &a) == -1)
      goto err;
    if (gateway_port && !a.path[0]) {
      snprintf (host, sizeof host, strchr (a.host, ':') ? "[%s]" : "%s",
                a.host);
      if ((url = status_url (host, gateway_port, false)) == NULL)
        goto err;
    }
    if (add (out, item, url) == -1)
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

/* The NBD address and gateway URL of one farm server. */
static int
add_farm_server (struct df_farm *farm, const char *name, unsigned gw_port,
                 bool tls, struct attach_servers *out)
{
  const char *address = df_farm_get (farm, DF_KIND_SERVER, name, "address");
  const char *gateway = df_farm_get (farm, DF_KIND_SERVER, name, "gateway");
  char host[300], nbd[320];
  unsigned port;
  char *url;

  if (address == NULL)
    return df_error (EINVAL, "server %s has no address", name);
  if (df_address_split (address, DF_UPSTREAM_DEFAULT_PORT, host, sizeof host,
                        &port) == -1)
    return -1;
  snprintf (nbd, sizeof nbd, "%s:%u", host, port);
  if (gateway && df_address_split (gateway, gw_port, host, sizeof host,
                                   &port) == -1)
    return -1;
  url = status_url (host, gateway ? port : gw_port, tls);
  if (url == NULL)
    return -1;
  return add (out, nbd, url);
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
  const char *v;
  uint64_t gw_port = GATEWAY_PORT_DEFAULT;
  size_t i;
  int r = -1;

  memset (out, 0, sizeof *out);
  if (farm == NULL)
    return -1;
  if ((v = df_farm_setting (farm, "gateway", "port")) != NULL &&
      (df_parse_u64 (v, &gw_port) == -1 || gw_port == 0 || gw_port > 65535)) {
    df_error (EINVAL, "[gateway] port \"%s\" is not a port", v);
    goto out;
  }
  if ((v = df_farm_setting (farm, "gateway", "ca-file")) != NULL &&
      (out->ca_file = v[0] == '/' ? strdup (v)
                                  : df_path_join (df_farm_dir (farm), v))
      == NULL) {
    df_error_errno ("ca-file");
    goto out;
  }
  names = df_farm_names (farm, DF_KIND_SERVER);
  for (i = 0; names && names[i]; i++)
    if (add_farm_server (farm, names[i], gw_port, out->ca_file != NULL,
                         out) == -1) {
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
