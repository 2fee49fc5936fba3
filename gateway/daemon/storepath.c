/* diskfarm-gateway serve — which paths the store and farm endpoints may
 * serve, and opening them without leaving their directory.
 *
 * The parsers are pure (no files): a path is a sequence of plain names
 * (df_name_valid: no "..", no '/', no '%', no control bytes) in one of
 * a few shapes; everything else is refused with the reason.
 */
#include <config.h>

#include <errno.h>
#include <fcntl.h>
#include <linux/openat2.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "error.h"
#include "storepath.h"
#include "util.h"

/* The next component of *p (advanced past it and its '/') into out. */
static int
component (const char **p, char out[DF_NAME_MAX + 1], bool last)
{
  const char *slash = strchr (*p, '/');
  size_t n = slash ? (size_t) (slash - *p) : strlen (*p);
  char q[80];

  if (n == 0)
    return df_error (EINVAL, "empty path component");
  if (n > DF_NAME_MAX)
    return df_error (EINVAL, "path component longer than %d bytes",
                     DF_NAME_MAX);
  memcpy (out, *p, n);
  out[n] = '\0';
  if (!df_name_valid (out))
    return df_error (EINVAL, "\"%s\" is not a plain name",
                     df_quote (out, q, sizeof q));
  if (last != (slash == NULL))
    return df_error (EINVAL, last ? "path goes on after a file" :
                     "path ends too early");
  *p += n + (slash != NULL);
  return 0;
}

static bool
is_layer_name (const char *s)
{
  size_t n = strlen (s), i;

  if (n < 10 || strcmp (s + n - 6, ".layer") != 0)
    return false;
  for (i = 0; i < n - 6; i++)
    if (s[i] < '0' || s[i] > '9')
      return false;
  return true;
}

int
gw_store_path_parse (const char *path, struct gw_file_ref *out)
{
  char first[DF_NAME_MAX + 1], third[DF_NAME_MAX + 1];
  const char *p = path;

  memset (out, 0, sizeof *out);
  if (component (&p, first, false) == -1)
    return -1;
  if (strcmp (first, "vdisks") != 0)
    return df_error (EPERM, "only files under vdisks/ are served");
  if (component (&p, out->vdisk, false) == -1)
    return -1;
  if (out->vdisk[0] == '.')
    return df_error (EPERM, "hidden vDisk directories are not served");
  if (strcmp (p, "boot") == 0 || strncmp (p, "boot/", 5) == 0) {
    p += 4 + (p[4] == '/');
    if (component (&p, out->name, true) == -1)
      return -1;
    if (out->name[0] == '.')
      return df_error (EPERM, "hidden files are not served");
    out->kind = GW_FILE_BOOT;
    return 0;
  }
  if (component (&p, third, true) == -1)
    return -1;
  strcpy (out->name, third);
  if (strcmp (third, "vdisk.conf") == 0)
    out->kind = GW_FILE_MANIFEST;
  else if (is_layer_name (third))
    out->kind = GW_FILE_LAYER;
  else
    return df_error (EPERM, "only vdisk.conf, layers and boot files are "
                     "served");
  return 0;
}

int
gw_store_route_parse (const char *sub, char store[DF_NAME_MAX + 1],
                      enum gw_store_op *op, const char **path)
{
  char verb[DF_NAME_MAX + 1];
  const char *p = sub;

  *path = NULL;
  if (strchr (sub, '/') == NULL)
    return df_error (ENOENT, "use STORE/manifest, STORE/files/PATH, "
                     "STORE/staged/PATH or STORE/delta/PATH");
  if (component (&p, store, false) == -1)
    return -1;
  if (strcmp (p, "manifest") == 0) {
    *op = GW_OP_MANIFEST;
    return 0;
  }
  if (strchr (p, '/') == NULL || component (&p, verb, false) == -1)
    return df_error (ENOENT, "use STORE/manifest, STORE/files/PATH, "
                     "STORE/staged/PATH or STORE/delta/PATH");
  if (strcmp (verb, "files") == 0)
    *op = GW_OP_FILES;
  else if (strcmp (verb, "delta") == 0)
    *op = GW_OP_DELTA;
  else if (strcmp (verb, "staged") == 0)
    *op = GW_OP_STAGED;
  else
    return df_error (ENOENT, "use STORE/manifest, STORE/files/PATH, "
                     "STORE/staged/PATH or STORE/delta/PATH");
  *path = p;
  return 0;
}

int
gw_farm_path_parse (const char *path, char device[DF_NAME_MAX + 1])
{
  char first[DF_NAME_MAX + 1];
  const char *p = path;
  size_t n;

  device[0] = '\0';
  if (strcmp (path, "farm.conf") == 0)
    return 0;
  if (component (&p, first, false) == -1)
    return -1;
  if (strcmp (first, "devices.d") != 0)
    return df_error (EPERM, "only farm.conf and devices.d/NAME.conf are "
                     "served");
  if (component (&p, device, true) == -1)
    return -1;
  n = strlen (device);
  if (n <= 5 || strcmp (device + n - 5, ".conf") != 0 || device[0] == '.')
    return df_error (EPERM, "only farm.conf and devices.d/NAME.conf are "
                     "served");
  device[n - 5] = '\0';
  return 0;
}

/* Without openat2 (before Linux 5.6): no symbolic link at all. */
static int
open_nofollow (int dirfd, const char *rel)
{
  char *copy = strdup (rel), *save = NULL, *comp, *next;
  int fd = dup (dirfd);

  if (copy == NULL || fd == -1) {
    free (copy);
    if (fd >= 0)
      close (fd);
    return -1;
  }
  for (comp = strtok_r (copy, "/", &save); comp; comp = next) {
    int nfd;
    next = strtok_r (NULL, "/", &save);
    nfd = openat (fd, comp, O_RDONLY | O_CLOEXEC | O_NOFOLLOW | O_NOCTTY |
                  (next ? O_DIRECTORY : 0));
    close (fd);
    fd = nfd;
    if (fd == -1)
      break;
  }
  free (copy);
  return fd;
}

int
gw_open_beneath (const char *root, const char *rel)
{
  struct open_how how = {
    .flags = O_RDONLY | O_CLOEXEC | O_NOCTTY,
    .resolve = RESOLVE_BENEATH | RESOLVE_NO_MAGICLINKS,
  };
  int dirfd = open (root, O_PATH | O_DIRECTORY | O_CLOEXEC);
  int fd, e;

  if (dirfd == -1)
    return df_error_errno ("%s", root);
  fd = syscall (SYS_openat2, dirfd, rel, &how, sizeof how);
  if (fd == -1 && errno == ENOSYS)
    fd = open_nofollow (dirfd, rel);
  e = errno;
  close (dirfd);
  if (fd >= 0)
    return fd;
  if (e == EXDEV || e == ELOOP)
    return df_error (EPERM, "%s leads out of %s", rel, root);
  return df_error (e, "%s: %m", rel);
}
