/* diskfarm-replicator — carrying out a plan (see exec.h). */
#include <config.h>

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cleanup.h"
#include "commit.h"
#include "error.h"
#include "exec.h"
#include "util.h"
#include "vdisk/vdisk.h"

enum { ST_PENDING, ST_OK, ST_FAILED, ST_WAITING, ST_HELD };

struct group {
  const char *name;             /* the vDisk; "" for the farm */
  bool blocked;                 /* an earlier phase failed or waits */
  bool removed;                 /* its vdisk.conf was deleted */
  int lock;                     /* df_vdisk_lock, or -1 */
};

struct slot {
  struct exec *x;
  size_t i;
};

struct exec {
  struct repl_run *run;
  const struct repl_plan *plan;
  struct group *groups;
  size_t ngroups;
  size_t *group_of;             /* per action */
  int *state;                   /* per action */
  struct repl_task **tasks;
  struct slot *slots;
  repl_error_fn err;
  repl_moved_fn moved;
  void *opaque;
};

static size_t
find_group (struct exec *x, const char *name)
{
  size_t i;

  for (i = 0; i < x->ngroups; i++)
    if (strcmp (x->groups[i].name, name) == 0)
      return i;
  x->groups[i].name = name;
  x->groups[i].lock = -1;
  x->ngroups++;
  return i;
}

static void
report (struct exec *x, bool warning, const char *msg)
{
  if (x->err)
    x->err (x->opaque, warning, msg);
}

static void
moved (struct exec *x, const struct repl_action *a, const char *how,
       const char *from)
{
  if (x->moved)
    x->moved (x->opaque, a->path, how, from);
}

static void
task_done (void *opaque, struct repl_task *t, int r)
{
  struct slot *s = opaque;

  s->x->state[s->i] = r == 0 ? ST_OK : ST_FAILED;
  if (r == 0)
    moved (s->x, &s->x->plan->actions[s->i],
           repl_task_was_delta (t) ? "delta"
           : repl_task_was_relayed (t) ? "relay" : "download",
           repl_task_from (t));
  if (repl_task_note (t))
    report (s->x, true, repl_task_note (t));
  if (r == -1)
    report (s->x, false, repl_task_error (t));
}

/* A vDisk's lock, for its manifest and deletions (store only). */
static int
lock_group (struct exec *x, struct group *g, const struct repl_action *a)
{
  CLEANUP_FREE char *dir = NULL;

  if (x->run->store == NULL || g->lock >= 0 || g->name[0] == '\0')
    return 0;
  if (a->act != REPL_DELETE) {
    if (asprintf (&dir, "%s/vdisks/%s", repl_stage_root (x->run->st),
                  g->name) == -1)
      return df_error_errno ("%s", g->name);
    if (df_mkdir_p (dir, 0755) == -1)
      return -1;
  }
  g->lock = df_vdisk_lock (repl_stage_root (x->run->st), g->name);
  return g->lock == -1 ? -1 : 0;
}

static void
fail_action (struct exec *x, size_t i, const char *what)
{
  CLEANUP_FREE char *msg = NULL;

  x->state[i] = ST_FAILED;
  if (asprintf (&msg, "%s: %s", what, df_error_get ()) == -1)
    msg = NULL;
  report (x, false, msg ? msg : what);
}

/* A file the vDisk's vdisk.conf here still names (a sealed layer, a
 * boot file) stays, even if the source no longer offers it (its copy
 * may be damaged): deleting it would leave a manifest naming a missing
 * file.
 */
static bool
still_named (struct exec *x, const struct group *g, const char *path)
{
  const char *rel = path + strlen ("vdisks/") + strlen (g->name) + 1;
  struct df_vdisk *vd;
  bool named = false;
  size_t i;

  if (x->run->store == NULL || g->name[0] == '\0' || g->removed ||
      strncmp (path, "vdisks/", 7) != 0)
    return false;
  vd = df_vdisk_load (repl_stage_root (x->run->st), g->name);
  if (vd == NULL) {
    df_error_clear ();
    return false;
  }
  for (i = 0; i < vd->nversions; i++)
    named |= vd->versions[i].sealed && strcmp (vd->versions[i].file, rel) == 0;
  named |= (vd->boot_kernel && strcmp (vd->boot_kernel, rel) == 0) ||
    (vd->boot_initrd && strcmp (vd->boot_initrd, rel) == 0);
  df_vdisk_free (vd);
  if (named) {
    CLEANUP_FREE char *msg = NULL;
    if (asprintf (&msg, "%s: kept: vdisks/%s/vdisk.conf here names it, and "
                  "the source does not offer it", path, g->name) > 0)
      report (x, true, msg);
  }
  return named;
}

static void
start_action (struct exec *x, size_t i)
{
  const struct repl_action *a = &x->plan->actions[i];
  struct repl_stats *stats = x->run->stats;
  struct group *g = &x->groups[x->group_of[i]];

  if (a->phase > 0 && lock_group (x, g, a) == -1) {
    fail_action (x, i, a->path);
    return;
  }
  switch (a->act) {
  case REPL_NOTHING:
    x->state[i] = ST_OK;
    stats->files_same++;
    break;
  case REPL_FIX_MTIME:
    if (repl_fix_mtime (x->run->st, a->file) == -1)
      fail_action (x, i, a->path);
    else {
      x->state[i] = ST_OK;
      stats->files_mtime++;
      moved (x, a, "mtime", NULL);
    }
    break;
  case REPL_DELETE:
    if (still_named (x, g, a->path)) {
      x->state[i] = ST_OK;              /* kept, with a warning */
      break;
    }
    if (repl_remove (x->run->st, a->path) == -1)
      fail_action (x, i, a->path);
    else {
      x->state[i] = ST_OK;
      stats->files_deleted++;
      moved (x, a, "delete", NULL);
      if (a->have && strcmp (strrchr (a->path, '/') ? strrchr (a->path, '/') + 1
                             : a->path, "vdisk.conf") == 0)
        g->removed = true;
    }
    break;
  case REPL_WAIT:
    x->state[i] = ST_WAITING;
    break;
  case REPL_DOWNLOAD:
  case REPL_DELTA:
    x->slots[i] = (struct slot) { x, i };
    x->tasks[i] = repl_task_start (x->run, a, task_done, &x->slots[i]);
    if (x->tasks[i] == NULL)
      fail_action (x, i, a->path);
    break;
  }
}

/* Groups with a failure or a wait in this phase hold back the next. */
static void
block_groups (struct exec *x, int phase)
{
  size_t i;

  for (i = 0; i < x->plan->nactions; i++)
    if (x->plan->actions[i].phase == phase &&
        (x->state[i] == ST_FAILED || x->state[i] == ST_WAITING ||
         x->state[i] == ST_HELD))
      x->groups[x->group_of[i]].blocked = true;
}

static int
run_phase (struct exec *x, int phase)
{
  size_t i;
  int r;

  for (i = 0; i < x->plan->nactions; i++) {
    if (x->plan->actions[i].phase != phase)
      continue;
    if (x->groups[x->group_of[i]].blocked)
      x->state[i] = ST_HELD;
    else
      start_action (x, i);
  }
  r = repl_engine_run (x->run->e);
  block_groups (x, phase);
  return r;
}

/* A vDisk this server edits itself is not replicated over. */
static void
check_edits (struct exec *x, const struct repl_manifest *src,
             const char *source)
{
  size_t i;

  if (x->run->store == NULL)
    return;
  for (i = 0; i < x->ngroups; i++) {
    struct group *g = &x->groups[i];
    if (g->name[0] && repl_check_local_edit (x->run->st, g->name, src,
                                             source) == -1) {
      report (x, false, df_error_get ());
      g->blocked = true;
    }
  }
}

static void
finish (struct exec *x, struct repl_exec_result *res)
{
  size_t i;

  for (i = 0; i < x->ngroups; i++) {
    if (x->groups[i].removed)
      repl_prune_vdisk (x->run->st, x->groups[i].name);
    if (x->groups[i].lock >= 0)
      close (x->groups[i].lock);
  }
  for (i = 0; i < x->plan->nactions; i++) {
    if (x->state[i] == ST_FAILED)
      res->failed++;
    else if (x->state[i] == ST_WAITING || x->state[i] == ST_HELD)
      res->waiting++;
    repl_task_free (x->tasks[i]);
  }
  x->run->stats->files_failed += res->failed;
}

int
repl_exec (struct repl_run *run, const struct repl_plan *plan,
           const struct repl_manifest *src, const char *source,
           repl_error_fn err, repl_moved_fn moved_fn, void *opaque,
           struct repl_exec_result *res)
{
  struct exec x = { .run = run, .plan = plan, .err = err, .moved = moved_fn,
                    .opaque = opaque };
  size_t n = plan->nactions + 1, i;
  int phase, r = 0;

  memset (res, 0, sizeof *res);
  x.groups = calloc (n, sizeof *x.groups);
  x.group_of = calloc (n, sizeof *x.group_of);
  x.state = calloc (n, sizeof *x.state);
  x.tasks = calloc (n, sizeof *x.tasks);
  x.slots = calloc (n, sizeof *x.slots);
  if (!x.groups || !x.group_of || !x.state || !x.tasks || !x.slots) {
    r = df_error_errno ("plan");
    goto out;
  }
  for (i = 0; i < plan->nactions; i++)
    x.group_of[i] = find_group (&x, plan->actions[i].vdisk);
  check_edits (&x, src, source);
  for (phase = 0; phase <= 2 && r == 0; phase++)
    r = run_phase (&x, phase);
  finish (&x, res);
 out:
  free (x.groups);
  free (x.group_of);
  free (x.state);
  free (x.tasks);
  free (x.slots);
  return r;
}
