/* diskfarm-replicator — the sync plan (see plan.h). */
#include <config.h>

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "error.h"
#include "plan.h"

const char *
repl_act_name (enum repl_act a)
{
  switch (a) {
  case REPL_NOTHING: return "nothing";
  case REPL_DOWNLOAD: return "download";
  case REPL_DELTA: return "delta";
  case REPL_FIX_MTIME: return "fix-mtime";
  case REPL_WAIT: return "wait";
  case REPL_DELETE: return "delete";
  }
  return "?";
}

bool
repl_plan_needs_hash (const struct repl_file *src,
                      const struct repl_local *have)
{
  return have && !have->hash_known && have->size == src->size;
}

static const struct repl_local *
find_local (const struct repl_plan_input *in, const char *path)
{
  size_t lo = 0, hi = in->nlocal;

  while (lo < hi) {
    size_t mid = lo + (hi - lo) / 2;
    int c = strcmp (in->local[mid].path, path);
    if (c == 0)
      return &in->local[mid];
    if (c < 0)
      lo = mid + 1;
    else
      hi = mid;
  }
  return NULL;
}

static bool
in_sorted (const char *const *v, size_t n, const char *s)
{
  size_t lo = 0, hi = n;

  while (lo < hi) {
    size_t mid = lo + (hi - lo) / 2;
    int c = strcmp (v[mid], s);
    if (c == 0)
      return true;
    if (c < 0)
      lo = mid + 1;
    else
      hi = mid;
  }
  return false;
}

static bool
same_content (const struct repl_file *f, const struct repl_local *have)
{
  return have->hash_known && have->size == f->size &&
    memcmp (have->hash, f->hash, DF_HASH_LEN) == 0;
}

/* The best basis for a layer missing here: another layer of the same
 * vDisk, the one holding the most data (a base rather than a thin
 * child: layers keep blocks at fixed offsets, so a merged base matches
 * the old base almost everywhere), the newest on a tie.
 */
static const char *
layer_basis (const struct repl_plan_input *in, const struct repl_file *f)
{
  const struct repl_local *best = NULL;
  unsigned best_v = 0;
  size_t i;

  for (i = 0; i < in->nlocal; i++) {
    const struct repl_local *l = &in->local[i];
    char vdisk[DF_NAME_MAX + 1];
    enum repl_kind k;
    unsigned v;

    if (repl_path_classify (l->path, false, &k, vdisk, &v) == -1 ||
        k != REPL_KIND_LAYER || strcmp (vdisk, f->vdisk) != 0 ||
        l->allocated < in->delta_min)
      continue;
    if (best == NULL || l->allocated > best->allocated ||
        (l->allocated == best->allocated && v > best_v)) {
      best = l;
      best_v = v;
    }
  }
  df_error_clear ();
  return best ? best->path : NULL;
}

static int
cmp_names (const void *a, const void *b)
{
  return strcmp (*(const char *const *) a, *(const char *const *) b);
}

/* Fan-out (see plan.h): fills a->sources, rotated so that this server
 * takes its own holder first; returns false if it should wait.
 */
static bool
assign_sources (const struct repl_plan_input *in, const struct repl_file *f,
                struct repl_action *a)
{
  const char *holders[REPL_SOURCES_MAX * 4], *needers[256];
  size_t nh = 0, nn = 0, i, p;

  holders[nh++] = in->source;
  needers[nn++] = in->self;
  for (i = 0; i < in->npeers; i++) {
    const struct repl_peer *peer = &in->peers[i];
    const struct repl_file *pf;

    if (peer->m == NULL || strcmp (peer->name, in->self) == 0 ||
        strcmp (peer->name, in->source) == 0)
      continue;
    pf = repl_manifest_find (peer->m, f->path);
    if (repl_file_identical (pf, f)) {
      if (nh < sizeof holders / sizeof holders[0])
        holders[nh++] = peer->name;
    }
    else if (nn < sizeof needers / sizeof needers[0])
      needers[nn++] = peer->name;
  }
  /* The source stays first among holders: it has every file. */
  qsort (holders + 1, nh - 1, sizeof *holders, cmp_names);
  qsort (needers, nn, sizeof *needers, cmp_names);
  for (p = 0; strcmp (needers[p], in->self) != 0; p++)
    ;
  if (in->relay && a->act == REPL_DOWNLOAD && f->size >= in->fanout_min &&
      p >= nh) {
    /* Its relay's staged copy, then the same server once it holds it. */
    a->sources[0] = a->sources[1] = needers[p - nh];
    a->nrelay = 1;
    a->nsources = 2;
  }
  for (i = 0; i < nh && a->nsources < REPL_SOURCES_MAX; i++)
    a->sources[a->nsources++] = holders[(p + i) % nh];
  if (in->relay)
    return true;
  return p < nh || f->size < in->fanout_min ||
    in_sorted (in->go_now, in->ngo_now, f->path);
}

static int
file_phase (const struct repl_file *f)
{
  switch (f->kind) {
  case REPL_KIND_MANIFEST: return 1;
  case REPL_KIND_FARM: return strcmp (f->path, "farm.conf") == 0 ? 0 : 1;
  default: return 0;
  }
}

static void
plan_file (const struct repl_plan_input *in, const struct repl_file *f,
           struct repl_action *a)
{
  const struct repl_local *have = find_local (in, f->path);

  memset (a, 0, sizeof *a);
  a->path = f->path;
  strcpy (a->vdisk, f->vdisk);
  a->file = f;
  a->have = have;
  a->phase = file_phase (f);
  if (have && same_content (f, have)) {
    a->act = have->mtime_ns == f->mtime_ns ? REPL_NOTHING : REPL_FIX_MTIME;
    return;
  }
  if (have == NULL) {
    /* A hint: the download turns into a delta if the new layer is a
     * base (a merge), never for a child, whose holes would not match.
     */
    a->basis = f->kind == REPL_KIND_LAYER && f->size >= in->delta_min ?
      layer_basis (in, f) : NULL;
    a->act = REPL_DOWNLOAD;
  }
  else if (have->size >= in->delta_min && f->size >= in->delta_min) {
    a->basis = have->path;
    a->act = REPL_DELTA;
  }
  else
    a->act = REPL_DOWNLOAD;
  if (!assign_sources (in, f, a))
    a->act = REPL_WAIT;
}

/* Does the source list anything of this vDisk? */
static bool
source_has_vdisk (const struct repl_manifest *m, const char *vdisk)
{
  size_t i;

  for (i = 0; i < m->nfiles; i++)
    if (strcmp (m->files[i].vdisk, vdisk) == 0)
      return true;
  return false;
}

/* A local file the source does not list: 1 with the action, 0 to keep. */
static int
plan_delete (const struct repl_plan_input *in, const struct repl_local *l,
             struct repl_action *a)
{
  char vdisk[DF_NAME_MAX + 1] = "";
  enum repl_kind k;
  bool gone;

  if (repl_path_classify (l->path, in->src->farm, &k, vdisk, NULL) == -1) {
    df_error_clear ();
    return 0;                   /* not ours to touch */
  }
  memset (a, 0, sizeof *a);
  a->act = REPL_DELETE;
  a->path = l->path;
  a->have = l;
  a->phase = 2;
  if (k == REPL_KIND_FARM)
    return strcmp (l->path, "farm.conf") != 0;
  strcpy (a->vdisk, vdisk);
  gone = !source_has_vdisk (in->src, vdisk);
  if (k == REPL_KIND_MANIFEST) {
    /* A vDisk whose files are all gone: its manifest goes first.  One
     * that still has files keeps the manifest it has.
     */
    if (!gone)
      return 0;
    a->phase = 1;
  }
  return 1;
}

static int
cmp_actions (const void *x, const void *y)
{
  const struct repl_action *a = x, *b = y;

  if (a->phase != b->phase)
    return a->phase - b->phase;
  return strcmp (a->path, b->path);
}

int
repl_plan_make (const struct repl_plan_input *in, struct repl_plan *out)
{
  struct repl_action *acts;
  size_t i, n = 0;

  out->actions = NULL;
  out->nactions = 0;
  for (i = 1; i < in->nlocal; i++)
    if (strcmp (in->local[i - 1].path, in->local[i].path) >= 0)
      return df_error (EINVAL, "local files are not sorted (%s)",
                       in->local[i].path);
  if (in->src->nfiles == 0 && in->nlocal > 0 && !in->allow_empty)
    return df_error (ENOENT, "server %s offers no files at all, and this "
                     "server has %zu: refusing to delete them all (is the "
                     "source's store path right?)", in->source, in->nlocal);
  acts = calloc (in->src->nfiles + in->nlocal + 1, sizeof *acts);
  if (acts == NULL)
    return df_error_errno ("plan");
  for (i = 0; i < in->src->nfiles; i++)
    plan_file (in, &in->src->files[i], &acts[n++]);
  for (i = 0; i < in->nlocal; i++)
    if (repl_manifest_find (in->src, in->local[i].path) == NULL &&
        plan_delete (in, &in->local[i], &acts[n]) == 1)
      n++;
  qsort (acts, n, sizeof *acts, cmp_actions);
  out->actions = acts;
  out->nactions = n;
  return 0;
}

void
repl_plan_free (struct repl_plan *p)
{
  if (p == NULL)
    return;
  free (p->actions);
  p->actions = NULL;
  p->nactions = 0;
}
