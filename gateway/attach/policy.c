/* diskfarm-gateway attach — which stack a device gets, and whether it
 * may fail over to other servers (see docs/attach.md "Which setups
 * survive a server's loss").
 */
#include <config.h>

#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "attach.h"
#include "error.h"
#include "util.h"

/* Server-side modes whose FLUSH is durable in the cache directory, so
 * that another server sharing it resumes the session exactly.
 */
static bool
durable_mode (const char *mode)
{
  return strcmp (mode, "disk") == 0 || strcmp (mode, "persistent") == 0 ||
    strcmp (mode, "none") == 0;
}

static int
plan_readonly_export (const struct attach_facts *f, struct attach_plan *p)
{
  if (f->overlay)
    p->overlay = true;
  else if (f->want_readonly)
    p->readonly = true;
  else
    return df_error (EINVAL, "the server exports the device read-only (its "
                     "write cache is \"device\": the client keeps the "
                     "writes): give --overlay FILE for them, or --read-only");
  if (f->read_cache && !f->has_identity)
    return df_error (EINVAL, "the server does not say which version it "
                     "serves (no hash= in its description): a read cache "
                     "cannot be keyed to it");
  p->read_cache = f->read_cache;
  p->failover = f->has_identity;
  snprintf (p->why, sizeof p->why, "%s", f->has_identity
            ? "the servers only read the version, and a replica must have "
              "its content hash"
            : "the server does not name the version's content hash, so no "
              "other server can be checked to hold an identical replica");
  return 0;
}

static int
plan_writable_export (const struct attach_facts *f, struct attach_plan *p)
{
  const char *mode = f->mode ? f->mode : "unknown";

  if (f->overlay)
    return df_error (EINVAL, "the device's write cache is on the server "
                     "(%s): --overlay is for devices whose write cache is "
                     "\"device\"", mode);
  if (f->read_cache)
    return df_error (EINVAL, "--read-cache needs a device whose writes stay "
                     "on this host (write cache \"device\"): the server's "
                     "write cache (%s) changes blocks of the version", mode);
  p->readonly = f->want_readonly;
  if (f->mode == NULL)
    snprintf (p->why, sizeof p->why, "the server does not say which write "
              "cache the device has");
  else if (!durable_mode (f->mode))
    snprintf (p->why, sizeof p->why, "its write cache is %s: what is in the "
              "server's RAM dies with the server", f->mode);
  else if (!f->shared)
    snprintf (p->why, sizeof p->why, "its write cache (%s) is not known to "
              "be on storage every server shares (--shared-cache, or "
              "shared stores in the farm)", f->mode);
  else {
    p->failover = true;
    snprintf (p->why, sizeof p->why, "its write cache (%s) is on storage "
              "every server shares, and the next server resumes the "
              "session", f->mode);
  }
  return 0;
}

int
attach_plan (const struct attach_facts *f, struct attach_plan *out)
{
  memset (out, 0, sizeof *out);
  if (f->readonly)
    return plan_readonly_export (f, out);
  return plan_writable_export (f, out);
}

const char *
attach_desc_cache_mode (const char *desc, char *buf, size_t len)
{
  const char *p = desc ? strstr (desc, "write cache ") : NULL;
  size_t n = 0;

  if (p == NULL || len == 0)
    return NULL;
  p += strlen ("write cache ");
  while (p[n] && p[n] != ' ' && p[n] != ',' && n + 1 < len)
    n++;
  if (n == 0)
    return NULL;
  memcpy (buf, p, n);
  buf[n] = '\0';
  return buf;
}

int
attach_export_check (const char *e)
{
  char name[DF_NAME_MAX + 1];
  const char *rest, *at;
  size_t n;
  uint64_t v;

  if (strncmp (e, "dev/", 4) != 0 && strncmp (e, "img/", 4) != 0)
    return df_error (EINVAL, "export \"%s\" is not dev/DEVICE[@SESSION] or "
                     "img/VDISK[@VERSION]", e);
  rest = e + 4;
  at = strchr (rest, '@');
  n = at ? (size_t) (at - rest) : strlen (rest);
  if (n == 0 || n > DF_NAME_MAX)
    return df_error (EINVAL, "export \"%s\": bad name", e);
  memcpy (name, rest, n);
  name[n] = '\0';
  if (df_name_check (e[0] == 'd' ? "device" : "vdisk", name) == -1)
    return -1;
  if (at == NULL)
    return 0;
  if (e[0] == 'd')
    return df_name_check ("session", at + 1);
  if (df_parse_u64 (at + 1, &v) == -1 || v == 0 || at[1] == '0')
    return df_error (EINVAL, "export \"%s\": bad version", e);
  return 0;
}
