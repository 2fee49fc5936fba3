/* diskfarm-attach — options and kernel parameters (see options.h). */
#include <config.h>

#include <arpa/inet.h>
#include <ctype.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cleanup.h"
#include "error.h"
#include "options.h"
#include "util.h"

#define PREFIX "diskfarm."

void
attach_options_init (struct attach_options *o)
{
  memset (o, 0, sizeof *o);
  o->connections = 1;
  o->timeout = 60;
  o->connect_timeout = 5;
  o->io_timeout = 30;
  o->dead_timeout = 120;
}

int
attach_server_parse (const char *s, struct attach_server *srv)
{
  char host[64], q[80];
  const char *port = NULL;
  uint64_t portnum = NBD_DEFAULT_PORT;
  size_t len;
  struct sockaddr_in *sin = (struct sockaddr_in *) &srv->addr;
  struct sockaddr_in6 *sin6 = (struct sockaddr_in6 *) &srv->addr;

  memset (srv, 0, sizeof *srv);
  if (s[0] == '[') {                    /* [IPv6]:PORT */
    const char *end = strchr (s, ']');
    if (end == NULL || (end[1] != '\0' && end[1] != ':'))
      goto bad;
    len = end - s - 1;
    if (end[1] == ':')
      port = end + 2;
  }
  else {
    const char *colon = strchr (s, ':');
    if (colon && strchr (colon + 1, ':'))
      return df_error (EINVAL, "server \"%s\": write IPv6 addresses as "
                       "[ADDRESS]:PORT", df_quote (s, q, sizeof q));
    len = colon ? (size_t) (colon - s) : strlen (s);
    if (colon)
      port = colon + 1;
  }
  if (len == 0 || len >= sizeof host)
    goto bad;
  memcpy (host, s[0] == '[' ? s + 1 : s, len);
  host[len] = '\0';
  if (port && (df_parse_u64 (port, &portnum) == -1 || portnum == 0 ||
               portnum > 65535))
    return df_error (EINVAL, "server \"%s\": bad port",
                     df_quote (s, q, sizeof q));

  if (inet_pton (AF_INET, host, &sin->sin_addr) == 1 && s[0] != '[') {
    sin->sin_family = AF_INET;
    sin->sin_port = htons (portnum);
    srv->addrlen = sizeof *sin;
    snprintf (srv->name, sizeof srv->name, "%s:%u", host, (unsigned) portnum);
    return 0;
  }
  if (inet_pton (AF_INET6, host, &sin6->sin6_addr) == 1 && s[0] == '[') {
    sin6->sin6_family = AF_INET6;
    sin6->sin6_port = htons (portnum);
    srv->addrlen = sizeof *sin6;
    snprintf (srv->name, sizeof srv->name, "[%s]:%u", host, (unsigned) portnum);
    return 0;
  }
  /* No resolver in an initramfs: the boot service writes addresses. */
  return df_error (EINVAL, "server \"%s\" is not an IP address "
                   "(HOST:PORT with an IPv4 address or [IPv6]:PORT)",
                   df_quote (s, q, sizeof q));
 bad:
  return df_error (EINVAL, "bad server \"%s\" (want ADDRESS[:PORT])",
                   df_quote (s, q, sizeof q));
}

static int
parse_servers (struct attach_options *o, const char *list)
{
  CLEANUP_FREE char *copy = strdup (list);
  char *tok, *save = NULL;
  size_t n = 0;

  if (copy == NULL)
    return df_error_errno ("strdup");
  for (tok = strtok_r (copy, ",", &save); tok;
       tok = strtok_r (NULL, ",", &save)) {
    if (n == ATTACH_MAX_SERVERS)
      return df_error (EINVAL, "more than %d servers in \"%s\"",
                       ATTACH_MAX_SERVERS, list);
    if (attach_server_parse (tok, &o->servers[n]) == -1)
      return -1;
    n++;
  }
  if (n == 0)
    return df_error (EINVAL, "no server in the server list");
  o->nservers = n;
  return 0;
}

static int
parse_export (struct attach_options *o, const char *name)
{
  size_t len = strlen (name), i;
  char q[80];

  if (len == 0)
    return df_error (EINVAL, "the export name is empty");
  if (len > NBD_MAX_NAME)
    return df_error (EINVAL, "export name longer than %d bytes", NBD_MAX_NAME);
  for (i = 0; i < len; i++)
    if ((unsigned char) name[i] < 0x20 || name[i] == 0x7f)
      return df_error (EINVAL, "export name \"%s\" has control characters",
                       df_quote (name, q, sizeof q));
  memcpy (o->export, name, len + 1);
  return 0;
}

int
attach_nbd_parse (const char *s, uint32_t *index)
{
  const char *p = s;
  uint64_t v;
  char q[80];

  if (strncmp (p, "/dev/", 5) == 0)
    p += 5;
  if (strncmp (p, "nbd", 3) == 0)
    p += 3;
  /* The kernel caps the index far lower (minor bits); it says so. */
  if (df_parse_u64 (p, &v) == -1 || v > 0xfffff)
    return df_error (EINVAL, "\"%s\" is not an NBD device (/dev/nbdN)",
                     df_quote (s, q, sizeof q));
  *index = v;
  return 0;
}

/* A whole number of seconds or a count within [min, max]. */
static int
parse_u32 (const char *value, uint32_t min, uint32_t max, uint32_t *out)
{
  uint64_t v;
  char q[80];

  if (df_parse_u64 (value, &v) == -1 || v < min || v > max)
    return df_error (EINVAL, "\"%s\" is not a number from %u to %u",
                     df_quote (value, q, sizeof q), min, max);
  *out = v;
  return 0;
}

static const char *const param_names[ATTACH_NPARAMS] = {
  [ATTACH_SERVERS] = "servers",
  [ATTACH_EXPORT] = "export",
  [ATTACH_NBD] = "nbd",
  [ATTACH_CONNECTIONS] = "connections",
  [ATTACH_BLOCK_SIZE] = "block_size",
  [ATTACH_TIMEOUT] = "timeout",
  [ATTACH_CONNECT_TIMEOUT] = "connect_timeout",
  [ATTACH_IO_TIMEOUT] = "io_timeout",
  [ATTACH_DEAD_TIMEOUT] = "dead_timeout",
};

static int
param_lookup (const char *key)
{
  char k[32];
  size_t i;

  for (i = 0; key[i] && i < sizeof k - 1; i++)
    k[i] = key[i] == '-' ? '_' : key[i];
  k[i] = '\0';
  for (i = 0; i < ATTACH_NPARAMS; i++)
    if (strcmp (k, param_names[i]) == 0)
      return i;
  return -1;
}

/* Parameters of the boot contract that are not diskfarm-attach's. */
static bool
param_of_others (const char *key)
{
  return strcmp (key, "device") == 0 || strcmp (key, "cache") == 0;
}

static int
set_param (struct attach_options *o, int p, const char *value)
{
  switch (p) {
  case ATTACH_SERVERS: return parse_servers (o, value);
  case ATTACH_EXPORT: return parse_export (o, value);
  case ATTACH_NBD: return attach_nbd_parse (value, &o->index);
  case ATTACH_CONNECTIONS:
    return parse_u32 (value, 1, ATTACH_MAX_CONNECTIONS, &o->connections);
  case ATTACH_BLOCK_SIZE:
    if (parse_u32 (value, 512, 4096, &o->block_size) == -1)
      return -1;
    if (!df_is_power_of_2 (o->block_size))
      return df_error (EINVAL, "%u is not a power of 2", o->block_size);
    return 0;
  case ATTACH_TIMEOUT:
    return parse_u32 (value, 0, 86400, &o->timeout);
  case ATTACH_CONNECT_TIMEOUT:
    return parse_u32 (value, 1, 3600, &o->connect_timeout);
  case ATTACH_IO_TIMEOUT:
    return parse_u32 (value, 0, 86400, &o->io_timeout);
  case ATTACH_DEAD_TIMEOUT:
    return parse_u32 (value, 0, 86400, &o->dead_timeout);
  }
  abort ();
}

int
attach_options_set (struct attach_options *o, const char *key,
                    const char *value)
{
  int p = param_lookup (key);

  if (p < 0)
    return -2;
  if (set_param (o, p, value) == -1)
    return -1;
  o->given |= 1u << p;
  return 0;
}

/* Next word of a kernel command line, the way the kernel splits it:
 * whitespace separates, double quotes group and are removed.  Returns
 * a malloc'd word (caller frees) and advances *text, or NULL at the end.
 */
static char *
next_word (const char **text)
{
  const char *p = *text;
  char *word, *w;
  bool quoted = false;

  while (isspace ((unsigned char) *p))
    p++;
  if (*p == '\0')
    return NULL;
  word = w = malloc (strlen (p) + 1);
  if (word == NULL)
    return NULL;
  for (; *p && (quoted || !isspace ((unsigned char) *p)); p++) {
    if (*p == '"')
      quoted = !quoted;
    else
      *w++ = *p;
  }
  *w = '\0';
  *text = p;
  return word;
}

int
attach_options_parse_cmdline (struct attach_options *o, const char *text,
                              void (*warn) (const char *key),
                              unsigned *found)
{
  const unsigned from_options = o->given;
  char *word;

  *found = 0;
  while ((word = next_word (&text)) != NULL) {
    CLEANUP_FREE char *w = word;
    char *eq;
    int p;

    if (strcmp (w, "--") == 0)          /* the rest belongs to init */
      break;
    if (strncmp (w, PREFIX, strlen (PREFIX)) != 0)
      continue;
    (*found)++;
    eq = strchr (w, '=');
    if (eq == NULL)
      return df_error (EINVAL, "kernel parameter %s has no value", w);
    *eq = '\0';
    p = param_lookup (w + strlen (PREFIX));
    if (p < 0) {
      if (warn && !param_of_others (w + strlen (PREFIX)))
        warn (w);
      continue;
    }
    if (from_options & (1u << p))       /* options win */
      continue;
    if (set_param (o, p, eq + 1) == -1) {
      df_error_prefix ("kernel parameter %s", w);
      return -1;
    }
    o->given |= 1u << p;
  }
  return 0;
}

int
attach_options_check (const struct attach_options *o)
{
  if (o->nservers == 0)
    return df_error (EINVAL, "no servers: give --servers or "
                     PREFIX "servers= on the kernel command line");
  if (o->export[0] == '\0')
    return df_error (EINVAL, "no export: give --export or "
                     PREFIX "export= on the kernel command line");
  return 0;
}
