/* diskfarm — NBD export names (see export-name.h). */
#include <config.h>

#include <errno.h>
#include <string.h>

#include "error.h"
#include "export-name.h"
#include "vdisk/vdisk.h"

static int
bad (const char *s, const char *why)
{
  char q[80];

  return df_error (EINVAL, "export name \"%s\" %s (use img/VDISK[@VERSION], "
                   "dev/DEVICE[@SESSION] or edit/VDISK)",
                   df_quote (s, q, sizeof q), why);
}

/* Copies a validated name of len bytes from p into out. */
static int
take_name (const char *s, const char *p, size_t len, char out[DF_NAME_MAX + 1],
           const char *what)
{
  char q[80];

  if (len == 0 || len > DF_NAME_MAX)
    return bad (s, len ? "has a name longer than 64 characters"
                       : "has an empty name");
  memcpy (out, p, len);
  out[len] = '\0';
  if (!df_name_valid (out))
    return df_error (EINVAL, "export name \"%s\": invalid %s name",
                     df_quote (s, q, sizeof q), what);
  return 0;
}

int
df_export_parse (const char *s, struct df_export_name *out)
{
  const char *rest, *at;
  size_t n;

  memset (out, 0, sizeof *out);
  if (s == NULL || s[0] == '\0')
    return bad ("", "is empty");
  if (strlen (s) > 4096)
    return bad (s, "is too long");
  if (strncmp (s, "img/", 4) == 0) {
    out->kind = DF_EXPORT_IMG;
    rest = s + 4;
  }
  else if (strncmp (s, "dev/", 4) == 0) {
    out->kind = DF_EXPORT_DEV;
    rest = s + 4;
  }
  else if (strncmp (s, "edit/", 5) == 0) {
    out->kind = DF_EXPORT_EDIT;
    rest = s + 5;
  }
  else
    return bad (s, "has no img/, dev/ or edit/ prefix");

  at = strchr (rest, '@');
  n = at ? (size_t) (at - rest) : strlen (rest);
  if (take_name (s, rest, n, out->name,
                 out->kind == DF_EXPORT_DEV ? "device" : "vdisk") == -1)
    return -1;
  if (at == NULL) {
    if (out->kind == DF_EXPORT_DEV)
      strcpy (out->session, "0");
    return 0;
  }
  switch (out->kind) {
  case DF_EXPORT_EDIT:
    return bad (s, "cannot name a version or session");
  case DF_EXPORT_DEV:
    return take_name (s, at + 1, strlen (at + 1), out->session, "session");
  case DF_EXPORT_IMG: {
    uint64_t v;
    if (at[1] == '0' || df_parse_u64 (at + 1, &v) == -1 || v == 0 ||
        v > DF_VERSION_MAX)
      return bad (s, "has a bad version number");
    out->version = v;
    return 0;
  }
  }
  return bad (s, "is not understood");
}
