/* diskfarm — where the farm's vDisks are: which store of this server
 * holds one, and the names of all of them.  The one rule every program
 * that looks up a vDisk by name follows (the plugin, the boot service,
 * the CLI, the FUSE view).
 */
#include <config.h>

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "cleanup.h"
#include "error.h"
#include "farm/farm.h"
#include "util.h"

char *
df_farm_find_vdisk (const struct df_farm *farm, const char *server,
                    const char *vdisk, const char **store_name)
{
  CLEANUP_FREE const char **stores = NULL;
  CLEANUP_FREE char *unreadable = NULL;
  int err = 0;
  size_t i;

  if (df_name_check ("vdisk", vdisk) == -1)
    return NULL;
  stores = df_farm_names (farm, DF_KIND_STORE);
  if (stores == NULL)
    return NULL;
  for (i = 0; stores[i]; i++) {
    char *path = df_farm_store_path (farm, stores[i], server);
    CLEANUP_FREE char *conf = NULL;
    struct stat st;

    if (path == NULL)
      continue;
    if (asprintf (&conf, "%s/vdisks/%s/vdisk.conf", path, vdisk) == -1)
      conf = NULL;
    else if (stat (conf, &st) == 0) {
      if (store_name)
        *store_name = stores[i];
      return path;
    }
    /* A store that cannot be looked in (gone, unmounted, no access)
     * may hold it: not the same as "not there".
     */
    else if (errno != ENOENT && errno != ENOTDIR && err == 0) {
      err = errno;
      unreadable = TAKE_PTR (conf);
    }
    free (path);
  }
  if (err) {
    errno = err;
    df_error_errno ("vdisk \"%s\": cannot look in %s", vdisk, unreadable);
    return NULL;
  }
  df_error (ENOENT, "vdisk \"%s\" is not in any store of the farm", vdisk);
  return NULL;
}

static int
cmp_names (const void *a, const void *b)
{
  return strcmp (*(char *const *) a, *(char *const *) b);
}

/* Appends the names of v that all[0..*n) lacks, taking them from v. */
static int
merge_names (char ***all, size_t *n, char **v)
{
  size_t j, k;

  for (j = 0; v[j]; j++) {
    char **nv;

    for (k = 0; k < *n && strcmp ((*all)[k], v[j]) != 0; k++)
      ;
    if (k < *n)
      continue;
    nv = realloc (*all, (*n + 2) * sizeof *nv);
    if (nv == NULL)
      return -1;
    *all = nv;
    nv[(*n)++] = TAKE_PTR (v[j]);
    nv[*n] = NULL;
  }
  return 0;
}

char **
df_farm_vdisk_names (const struct df_farm *farm, const char *server)
{
  CLEANUP_FREE const char **stores = df_farm_names (farm, DF_KIND_STORE);
  char **all = calloc (1, sizeof *all);
  size_t n = 0, i;

  if (stores == NULL || all == NULL)
    goto nomem;
  for (i = 0; stores[i]; i++) {
    CLEANUP_FREE char *path = df_farm_store_path (farm, stores[i], server);
    char **v = path ? df_store_vdisks (path) : NULL;
    int r = v ? merge_names (&all, &n, v) : 0;

    df_strv_free (v);
    if (r == -1)
      goto nomem;
  }
  qsort (all, n, sizeof *all, cmp_names);
  df_error_clear ();            /* what failed is not a failure here */
  return all;

 nomem:
  df_strv_free (all);
  df_error_errno ("vdisks of the farm");
  return NULL;
}

struct df_vdisk *
df_farm_load_vdisk (const struct df_farm *farm, const char *server,
                    const char *vdisk, const char **store_name, int *lock)
{
  CLEANUP_FREE char *store = df_farm_find_vdisk (farm, server, vdisk,
                                                 store_name);
  struct df_vdisk *vd;
  int fd = -1;

  if (store == NULL)
    return NULL;
  if (lock && (fd = df_vdisk_lock (store, vdisk)) == -1)
    return NULL;
  vd = df_vdisk_load (store, vdisk);
  if (vd == NULL && fd >= 0) {
    int err = errno;
    close (fd);
    errno = err;
    fd = -1;
  }
  if (lock)
    *lock = fd;
  return vd;
}
