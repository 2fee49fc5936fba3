/* diskfarm — [gateway] settings, gateway URLs and tokens (see gwapi.h). */
#include <config.h>

#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "cleanup.h"
#include "error.h"
#include "gwapi/gwapi.h"
#include "util.h"

/* A path of farm.conf: relative ones are inside the farm directory. */
static int
farm_path (const struct df_farm *farm, const char *v, char **out)
{
  *out = v[0] == '/' ? strdup (v) : df_path_join (df_farm_dir (farm), v);
  return *out ? 0 : df_error_errno ("%s", v);
}

int
df_gw_settings (const struct df_farm *farm, struct df_gw_settings *out)
{
  const char *port = df_farm_setting (farm, "gateway", "port");
  const char *token = df_farm_setting (farm, "gateway", "token-file");
  const char *pub = df_farm_setting (farm, "gateway", "public");
  const char *ca = df_farm_setting (farm, "gateway", "ca-file");
  uint64_t p = DF_GATEWAY_PORT;
  char q[64];

  memset (out, 0, sizeof *out);
  out->public_status = true;
  if (port && (df_parse_u64 (port, &p) == -1 || p == 0 || p > 65535))
    return df_error (EINVAL, "[gateway] port = \"%s\" is not a TCP port",
                     df_quote (port, q, sizeof q));
  out->port = p;
  if (pub && strcmp (pub, "none") == 0)
    out->public_status = false;
  else if (pub && strcmp (pub, "status") != 0)
    return df_error (EINVAL, "[gateway] public = \"%s\" is not status or none",
                     df_quote (pub, q, sizeof q));
  if ((token && farm_path (farm, token, &out->token_file) == -1) ||
      (ca && farm_path (farm, ca, &out->ca_file) == -1)) {
    df_gw_settings_free (out);
    return -1;
  }
  return 0;
}

void
df_gw_settings_free (struct df_gw_settings *s)
{
  if (s == NULL)
    return;
  free (s->token_file);
  free (s->ca_file);
  s->token_file = s->ca_file = NULL;
}

char *
df_gw_url (const struct df_farm *farm, const struct df_gw_settings *s,
           const char *server)
{
  const char *gw = df_farm_get (farm, DF_KIND_SERVER, server, "gateway");
  struct df_server sv;
  char host[256];
  unsigned port;
  char *url;

  if (gw == NULL) {
    if (df_farm_server (farm, server, &sv) == -1)
      return NULL;
    /* The address's port is the NBD port: only its host is taken. */
    if (df_address_split (sv.address, 1, host, sizeof host, &port) == -1)
      goto bad;
    port = s->port;
  }
  else if (df_address_split (gw, s->port, host, sizeof host, &port) == -1)
    goto bad;
  if (asprintf (&url, "%s://%s:%u", s->ca_file ? "https" : "http", host,
                port) == -1) {
    df_error_errno ("server \"%s\"", server);
    return NULL;
  }
  return url;
 bad:
  df_error_prefix ("server \"%s\"", server);
  return NULL;
}

static int
check_token (const char *path, const char *t)
{
  size_t i, n = strlen (t);

  if (n < DF_TOKEN_MIN || n > DF_TOKEN_MAX)
    return df_error (EINVAL, "%s: a token is %d to %d characters", path,
                     DF_TOKEN_MIN, DF_TOKEN_MAX);
  for (i = 0; i < n; i++)
    if (!isgraph ((unsigned char) t[i]))
      return df_error (EINVAL, "%s: the token has a space or a control "
                       "character", path);
  return 0;
}

int
df_gw_read_token (const char *path, bool private_only, char **token)
{
  CLEANUP_CLOSE int fd = open (path, O_RDONLY | O_CLOEXEC | O_NOCTTY);
  char buf[DF_TOKEN_MAX + 64];
  struct stat st;
  ssize_t n;
  size_t len;
  char *s;

  *token = NULL;
  if (fd == -1 || fstat (fd, &st) == -1)
    return df_error_errno ("token file %s", path);
  if (!S_ISREG (st.st_mode))
    return df_error (EINVAL, "token file %s is not a regular file", path);
  if (private_only && (st.st_mode & (S_IROTH | S_IWOTH)))
    return df_error (EPERM, "token file %s may be read by others (mode %04o): "
                     "chmod o-rw it", path, (unsigned) (st.st_mode & 07777));
  n = df_read_full (fd, buf, sizeof buf - 1);
  if (n == -1)
    return df_error_errno ("token file %s", path);
  buf[n] = '\0';
  s = buf + strspn (buf, " \t\r\n");
  len = strlen (s);
  while (len > 0 && isspace ((unsigned char) s[len - 1]))
    s[--len] = '\0';
  if (check_token (path, s) == -1) {
    explicit_bzero (buf, sizeof buf);
    return -1;
  }
  *token = strdup (s);
  explicit_bzero (buf, sizeof buf);
  return *token ? 0 : df_error_errno ("token file %s", path);
}

bool
df_gw_token_equal (const char *presented, const char *token)
{
  size_t n = strlen (token), m = strlen (presented), i;
  unsigned char diff = n != m;

  for (i = 0; i < n; i++)
    diff |= (unsigned char) token[i] ^ (unsigned char) (i < m ? presented[i] : 0);
  return diff == 0;
}
