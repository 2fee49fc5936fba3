/* diskfarm-replicator — the local files (see local.h). */
#include <config.h>

#include <dirent.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "cleanup.h"
#include "commit.h"
#include "error.h"
#include "io.h"
#include "local.h"
#include "util.h"
#include "vdisk/vdisk.h"

struct scan_ctx {
  struct repl_stage *st;
  bool farm;
  struct repl_local *v;
  size_t n, cap;
};

/* Adds path if it is a regular file here (and not added yet). */
static int
add (struct scan_ctx *c, const char *path)
{
  CLEANUP_FREE char *live = repl_stage_live_path (c->st, path);
  struct repl_local *l;
  struct stat sb;

  if (live == NULL)
    return -1;
  if (lstat (live, &sb) == -1 || !S_ISREG (sb.st_mode))
    return 0;
  if (repl_path_classify (path, c->farm, &(enum repl_kind) { 0 }, NULL,
                          NULL) == -1) {
    df_error_clear ();
    return 0;
  }
  if (c->n == c->cap) {
    size_t cap = c->cap ? 2 * c->cap : 64;
    struct repl_local *v = realloc (c->v, cap * sizeof *v);
    if (v == NULL)
      return df_error_errno ("scan");
    c->v = v;
    c->cap = cap;
  }
  l = &c->v[c->n];
  memset (l, 0, sizeof *l);
  if ((l->path = strdup (path)) == NULL)
    return df_error_errno ("scan");
  l->size = sb.st_size;
  l->mtime_ns = repl_mtime_ns (&sb);
  l->allocated = (uint64_t) sb.st_blocks * 512;
  l->hash_known = repl_stage_known_hash (c->st, path, &sb, l->hash);
  c->n++;
  return 0;
}

static int
add_joined (struct scan_ctx *c, const char *dir, const char *name)
{
  CLEANUP_FREE char *path = NULL;

  if (asprintf (&path, "%s/%s", dir, name) == -1)
    return df_error_errno ("scan");
  return add (c, path);
}

/* Files under rel (a directory relative to the root), depth levels. */
static int
add_tree (struct scan_ctx *c, const char *rel, int depth)
{
  CLEANUP_FREE char *live = repl_stage_live_path (c->st, rel);
  DIR *d = live && depth > 0 ? opendir (live) : NULL;
  struct dirent *e;
  int r = 0;

  while (d && r == 0 && (e = readdir (d)) != NULL) {
    CLEANUP_FREE char *sub = NULL;
    if (e->d_name[0] == '.')
      continue;
    if (asprintf (&sub, "%s/%s", rel, e->d_name) == -1)
      r = df_error_errno ("scan");
    else if (e->d_type == DT_DIR)
      r = add_tree (c, sub, depth - 1);
    else
      r = add (c, sub);
  }
  if (d)
    closedir (d);
  return r;
}

/* The NNNN.layer files of a vDisk directory (add checks the shape). */
static int
add_layers (struct scan_ctx *c, const char *rel)
{
  CLEANUP_FREE char *live = repl_stage_live_path (c->st, rel);
  DIR *d = live ? opendir (live) : NULL;
  struct dirent *e;
  int r = 0;

  while (d && r == 0 && (e = readdir (d)) != NULL) {
    size_t n = strlen (e->d_name);
    if (n == 10 && strcmp (e->d_name + 4, ".layer") == 0)
      r = add_joined (c, rel, e->d_name);
  }
  if (d)
    closedir (d);
  return r;
}

static int
scan_vdisk (struct scan_ctx *c, const char *name)
{
  CLEANUP_FREE char *rel = NULL, *boot = NULL;
  struct df_vdisk *vd;
  int r;

  if (!df_name_valid (name) || asprintf (&rel, "vdisks/%s", name) == -1)
    return 0;
  if (add_joined (c, rel, "vdisk.conf") == -1)
    return -1;
  if (add_layers (c, rel) == -1)
    return -1;
  if (asprintf (&boot, "%s/boot", rel) == -1)
    return df_error_errno ("scan");
  r = add_tree (c, boot, REPL_BOOT_DEPTH);
  vd = r == 0 ? df_vdisk_load (repl_stage_root (c->st), name) : NULL;
  if (vd) {
    if (vd->boot_kernel)
      r = add_joined (c, rel, vd->boot_kernel);
    if (r == 0 && vd->boot_initrd)
      r = add_joined (c, rel, vd->boot_initrd);
    df_vdisk_free (vd);
  }
  df_error_clear ();
  return r;
}

static int
cmp_local (const void *a, const void *b)
{
  return strcmp (((const struct repl_local *) a)->path,
                 ((const struct repl_local *) b)->path);
}

/* Sorts and drops duplicates (a file both listed and found). */
static void
sort_unique (struct scan_ctx *c)
{
  size_t i, o = 0;

  if (c->n > 1)
    qsort (c->v, c->n, sizeof *c->v, cmp_local);
  for (i = 0; i < c->n; i++) {
    if (o > 0 && strcmp (c->v[o - 1].path, c->v[i].path) == 0) {
      free ((char *) c->v[i].path);
      continue;
    }
    c->v[o++] = c->v[i];
  }
  c->n = o;
}

static int
scan_store (struct scan_ctx *c)
{
  char **names = df_store_vdisks (repl_stage_root (c->st));
  size_t i;
  int r = 0;

  if (names == NULL) {
    if (errno == ENOENT) {
      df_error_clear ();
      return 0;
    }
    return -1;
  }
  for (i = 0; names[i] && r == 0; i++)
    r = scan_vdisk (c, names[i]);
  df_strv_free (names);
  return r;
}

int
repl_scan (struct repl_stage *st, const struct repl_manifest *src,
           struct repl_scan *out)
{
  struct scan_ctx c = { .st = st, .farm = src->farm };
  size_t i;
  int r = 0;

  for (i = 0; i < src->nfiles && r == 0; i++)
    r = add (&c, src->files[i].path);
  if (r == 0 && src->farm) {
    r = add (&c, "farm.conf");
    if (r == 0)
      r = add_tree (&c, "devices.d", 1);
  }
  else if (r == 0)
    r = scan_store (&c);
  out->files = c.v;
  out->nfiles = c.n;
  if (r == -1) {
    repl_scan_free (out);
    return -1;
  }
  sort_unique (&c);
  out->nfiles = c.n;
  return 0;
}

int
repl_scan_hash (struct repl_stage *st, const struct repl_manifest *src,
                struct repl_scan *scan)
{
  size_t i;

  for (i = 0; i < scan->nfiles; i++) {
    struct repl_local *l = &scan->files[i];
    const struct repl_file *f = repl_manifest_find (src, l->path);
    struct stat sb;
    int r;

    if (f == NULL || !repl_plan_needs_hash (f, l))
      continue;
    r = repl_live_hash (st, l->path, f->kind, l->hash, &sb);
    if (r == -1) {
      /* An unreadable or damaged replica is replaced, not fatal. */
      df_error_clear ();
      continue;
    }
    l->hash_known = r == 1 && (uint64_t) sb.st_size == l->size;
  }
  return 0;
}

void
repl_scan_free (struct repl_scan *s)
{
  size_t i;

  if (s == NULL)
    return;
  for (i = 0; i < s->nfiles; i++)
    free ((char *) s->files[i].path);
  free (s->files);
  s->files = NULL;
  s->nfiles = 0;
}
