/* diskfarm-replicator — the vDisk rules of a commit: a manifest only
 * over layers that are here, never over this server's own edit, and the
 * directory of a removed vDisk (see commit.h).
 */
#include <config.h>

#include <dirent.h>
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "cleanup.h"
#include "commit.h"
#include "error.h"
#include "io.h"
#include "util.h"
#include "vdisk/vdisk.h"

static int
check_layer (struct repl_stage *st, const char *vdisk,
             const struct df_version *v)
{
  CLEANUP_FREE char *path = NULL;
  uint8_t hash[DF_HASH_LEN];
  struct stat sb;
  int r;

  if (asprintf (&path, "vdisks/%s/%s", vdisk, v->file) == -1)
    return df_error_errno ("%s", vdisk);
  r = repl_live_hash (st, path, REPL_KIND_LAYER, hash, &sb);
  if (r == -1)
    return -1;
  if (r == 0)
    return df_error (ENOENT, "its version %u names %s, which is not here (the "
                     "source did not offer it)", v->num, path);
  if ((uint64_t) sb.st_size != v->size || repl_mtime_ns (&sb) != v->mtime_ns ||
      memcmp (hash, v->hash, DF_HASH_LEN) != 0)
    return df_error (EINVAL, "its version %u names %s, and the one here is "
                     "another (size, mtime or content hash)", v->num, path);
  return 0;
}

int
repl_check_vdisk_conf (struct repl_stage *st, const char *vdisk,
                       const char *text, size_t len)
{
  CLEANUP_FREE char *origin = NULL;
  struct df_vdisk *vd;
  size_t i;
  int r = 0;

  if (asprintf (&origin, "vdisks/%s/vdisk.conf", vdisk) == -1)
    return df_error_errno ("%s", vdisk);
  vd = df_vdisk_parse (text, len, origin);
  if (vd == NULL)
    return -1;
  for (i = 0; i < vd->nversions && r == 0; i++)
    if (vd->versions[i].sealed)
      r = check_layer (st, vdisk, &vd->versions[i]);
  df_vdisk_free (vd);
  if (r == -1)
    df_error_prefix ("%s", origin);
  return r;
}

/* Is the layer of an unsealed version here this server's own edit? */
static bool
local_edit (struct repl_stage *st, const char *path,
            const struct repl_manifest *src)
{
  CLEANUP_FREE char *live = repl_stage_live_path (st, path);
  const struct repl_file *f = repl_manifest_find (src, path);
  uint8_t hash[DF_HASH_LEN];
  struct stat sb;

  if (live == NULL || lstat (live, &sb) == -1)
    return false;               /* not here: nobody edits it here */
  /* The source's sealed layer that has just arrived is no edit. */
  if (f && repl_live_hash (st, path, REPL_KIND_LAYER, hash, &sb) == 1 &&
      memcmp (hash, f->hash, DF_HASH_LEN) == 0)
    return false;
  df_error_clear ();
  return true;
}

int
repl_check_local_edit (struct repl_stage *st, const char *vdisk,
                       const struct repl_manifest *src, const char *source)
{
  struct df_vdisk *vd = df_vdisk_load (repl_stage_root (st), vdisk);
  size_t i;
  int r = 0;

  if (vd == NULL) {
    df_error_clear ();          /* none here yet, or unreadable: replaced */
    return 0;
  }
  for (i = 0; i < vd->nversions && r == 0; i++) {
    const struct df_version *v = &vd->versions[i];
    CLEANUP_FREE char *path = NULL;

    if (v->sealed)
      continue;
    if (asprintf (&path, "vdisks/%s/%s", vdisk, v->file) == -1)
      r = df_error_errno ("%s", vdisk);
    else if (local_edit (st, path, src))
      r = df_error (EBUSY, "vdisk \"%s\" version %u is in maintenance on "
                    "this server (%s is here): replication from %s would "
                    "overwrite it; promote or delete it here, or edit vDisks "
                    "on %s only", vdisk, v->num, path, source, source);
  }
  df_vdisk_free (vd);
  return r;
}

/* rmdir of dir and the directories under it that are empty; files stay. */
static void
remove_empty_dirs (const char *dir, int depth)
{
  DIR *d = depth > 0 ? opendir (dir) : NULL;
  struct dirent *e;

  while (d && (e = readdir (d)) != NULL) {
    CLEANUP_FREE char *sub = NULL;
    if (e->d_type != DT_DIR || strcmp (e->d_name, ".") == 0 ||
        strcmp (e->d_name, "..") == 0)
      continue;
    sub = df_path_join (dir, e->d_name);
    if (sub)
      remove_empty_dirs (sub, depth - 1);
  }
  if (d)
    closedir (d);
  rmdir (dir);
}

void
repl_prune_vdisk (struct repl_stage *st, const char *vdisk)
{
  CLEANUP_FREE char *rel = NULL, *dir = NULL, *lock = NULL, *vdisks = NULL;
  CLEANUP_FREE char *conf = NULL;

  if (asprintf (&rel, "vdisks/%s", vdisk) == -1 ||
      (dir = repl_stage_live_path (st, rel)) == NULL)
    return;
  conf = df_path_join (dir, "vdisk.conf");
  if (conf == NULL || access (conf, F_OK) == 0)
    return;                     /* it came back */
  lock = df_path_join (dir, ".lock");
  if (lock)
    unlink (lock);
  remove_empty_dirs (dir, REPL_BOOT_DEPTH + 1);
  vdisks = repl_stage_live_path (st, "vdisks");
  if (vdisks)
    df_fsync_dir (vdisks);
  df_error_clear ();
}
