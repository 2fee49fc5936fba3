/* diskfarm — NBD upstream: export identity and server addresses. */
#include <config.h>

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "error.h"
#include "farm/farm.h"
#include "upstream/upstream.h"

/* The last space-separated word of desc[0..*end) that starts with key;
 * moves *end to the space before it.  NULL if the word there does not
 * start with key.
 */
static const char *
last_word (const char *desc, size_t *end, const char *key, size_t *len)
{
  size_t e = *end, b = e;
  size_t klen = strlen (key);

  while (b > 0 && desc[b - 1] != ' ')
    b--;
  if (e - b <= klen || strncmp (desc + b, key, klen) != 0)
    return NULL;
  *len = e - b - klen;
  *end = b > 0 ? b - 1 : 0;
  return desc + b + klen;
}

int
df_upstream_parse_identity (const char *desc, struct df_upstream_info *out)
{
  size_t end, len;
  const char *hash, *version, *vdisk;
  char buf[DF_NAME_MAX + 1], *p;
  unsigned long v;

  if (desc == NULL)
    return -1;
  end = strlen (desc);
  while (end > 0 && desc[end - 1] == ' ')
    end--;
  if ((hash = last_word (desc, &end, "hash=", &len)) == NULL ||
      len != 2 * DF_HASH_LEN || df_unhex (hash, out->hash, DF_HASH_LEN) == -1)
    return -1;
  if ((version = last_word (desc, &end, "version=", &len)) == NULL ||
      len == 0 || len > 10)
    return -1;
  memcpy (buf, version, len);
  buf[len] = '\0';
  errno = 0;
  v = strtoul (buf, &p, 10);
  if (errno || *p || v == 0 || v > UINT32_MAX || buf[0] == '0')
    return -1;
  if ((vdisk = last_word (desc, &end, "vdisk=", &len)) == NULL ||
      len == 0 || len > DF_NAME_MAX)
    return -1;
  memcpy (out->vdisk, vdisk, len);
  out->vdisk[len] = '\0';
  if (!df_name_valid (out->vdisk))
    return -1;
  out->version = v;
  out->has_identity = true;
  return 0;
}

int
df_upstream_parse_addr (const char *s, struct df_upstream_addr *out)
{
  char host[sizeof out->host + 2];
  size_t len;

  memset (out, 0, sizeof *out);
  if (strncmp (s, "unix:", 5) == 0) {
    if (s[5] == '\0' || strlen (s + 5) >= sizeof out->path)
      return df_error (EINVAL, "server \"%s\": bad unix socket path", s);
    strcpy (out->path, s + 5);
    return 0;
  }
  if (df_address_split (s, DF_UPSTREAM_DEFAULT_PORT, host, sizeof host,
                        &out->port) == -1)
    return -1;
  /* getaddrinfo wants an IPv6 address without its brackets. */
  len = strlen (host);
  if (host[0] == '[') {
    memcpy (out->host, host + 1, len - 2);
    out->host[len - 2] = '\0';
  }
  else
    strcpy (out->host, host);
  return 0;
}
