/* diskfarm-replicator — one tree (the farm directory or a store) synced
 * from its source (see tree.h).
 */
#include <config.h>

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "cleanup.h"
#include "error.h"
#include "exec.h"
#include "farm/farm.h"
#include "gwclient.h"
#include "local.h"
#include "report.h"
#include "relay.h"
#include "tree.h"
#include "util.h"

#define MANIFEST_MAX (64 * 1024 * 1024)
#define POLL_NS (1000 * 1000000ULL)     /* fan-out: how often to look again */
#define PEER_TIMEOUT_S 20L
#define FANOUT_RATE (100 * 1024 * 1024)  /* bytes/s a peer is assumed to get */

/* One tree: the farm directory or a store. */
struct tree {
  const struct repl_opts *o;
  struct df_farm *farm;
  struct repl_report *report;
  const char *self, *source;
  const char *store;            /* NULL: the farm */
  struct df_gw_client *client;  /* the farm's gateways */
  struct repl_gw *gws;          /* [0] the source, then peers */
  size_t ngws;
  struct repl_manifest **ms;    /* per gateway, NULL if not reachable */
  struct waiting {
    char *path;
    uint64_t since_ns;
    size_t holders;
  } *waits;
  size_t nwaits;
  bool verified;                /* --verify's rehash is done */
};

/* ---- manifests ---- */

struct body {
  char *data;
  size_t len;
  bool too_big;
};

struct mreq {
  struct tree *t;
  size_t i;
  struct body b;
};

static int
body_data (void *opaque, const char *p, size_t n)
{
  struct body *b = &((struct mreq *) opaque)->b;
  char *nd;

  if (b->len + n > MANIFEST_MAX) {
    b->too_big = true;
    return -1;
  }
  if ((nd = realloc (b->data, b->len + n + 1)) == NULL)
    return -1;
  memcpy (nd + b->len, p, n);
  b->data = nd;
  b->len += n;
  b->data[b->len] = '\0';
  return 0;
}

static void
manifest_done (void *opaque, CURLcode code, long status, const char *errbuf)
{
  struct mreq *q = opaque;
  struct tree *t = q->t;
  const struct repl_gw *gw = &t->gws[q->i];
  const char *what = t->store ? "store manifest" : "farm manifest";

  if (repl_gw_check (gw, what, code, errbuf, status, q->b.data, q->b.len) == 0)
    t->ms[q->i] = repl_manifest_parse (q->b.data ? q->b.data : "", q->b.len,
                                       t->store == NULL, gw->server);
  if (t->ms[q->i] == NULL && q->i == 0)
    repl_report_error (t->report, false, df_error_get ());
  else if (t->ms[q->i] == NULL && t->o->verbose)
    repl_report_error (t->report, true, df_error_get ());
  df_error_clear ();
}

/* Every gateway's manifest at once; only the source's is required. */
static int
fetch_manifests (struct tree *t)
{
  static const struct repl_xfer_ops ops = { body_data, NULL, manifest_done };
  struct repl_engine *e = repl_engine_new (16, 0);
  CLEANUP_FREE struct mreq *q = calloc (t->ngws, sizeof *q);
  CLEANUP_FREE char *path = NULL;
  size_t i;

  if (e == NULL || q == NULL ||
      asprintf (&path, t->store ? "/v1/stores/%s/manifest" : "/v1/farm/manifest",
                t->store) == -1) {
    repl_engine_free (e);
    return df_error (ENOMEM, "manifests");
  }
  for (i = 0; i < t->ngws; i++) {
    char errbuf[CURL_ERROR_SIZE];
    struct curl_slist *headers;
    CURL *h = repl_gw_handle (&t->gws[i], path, &headers, errbuf);

    repl_manifest_free (t->ms[i]);
    t->ms[i] = NULL;
    q[i] = (struct mreq) { .t = t, .i = i };
    if (h == NULL)
      continue;
    curl_easy_setopt (h, CURLOPT_TIMEOUT, PEER_TIMEOUT_S);
    repl_engine_add (e, h, headers, &ops, &q[i], 0);
  }
  repl_engine_run (e);
  repl_engine_free (e);
  for (i = 0; i < t->ngws; i++)
    free (q[i].b.data);
  return t->ms[0] ? 0 : -1;
}

/* ---- the gateways of a tree ---- */

static int
add_gw (struct tree *t, const char *server)
{
  if (repl_gw_resolve (t->client, server, &t->gws[t->ngws]) == -1) {
    if (t->ngws == 0)
      return -1;
    /* A peer we cannot even address is left out of the fan-out. */
    repl_report_error (t->report, true, df_error_get ());
    return 0;
  }
  t->ngws++;
  return 0;
}

static int
resolve_gateways (struct tree *t)
{
  CLEANUP_FREE const char **names = df_farm_names (t->farm, DF_KIND_SERVER);
  size_t i, n;

  if (names == NULL)
    return -1;
  t->client = df_gw_client_new (t->farm);
  if (t->client == NULL)
    return -1;
  if (!df_gw_client_has_token (t->client) &&
      df_farm_setting (t->farm, "gateway", "token-file"))
    repl_report_error (t->report, true, "the token file ([gateway] "
                       "token-file) cannot be read: requests go without it");
  for (n = 0; names[n]; n++)
    ;
  t->gws = calloc (n + 1, sizeof *t->gws);
  t->ms = calloc (n + 1, sizeof *t->ms);
  if (t->gws == NULL || t->ms == NULL)
    return df_error_errno ("gateways");
  if (add_gw (t, t->source) == -1)
    return -1;
  for (i = 0; names[i]; i++)
    if (strcmp (names[i], t->self) != 0 && strcmp (names[i], t->source) != 0 &&
        (t->store == NULL ||
         df_farm_server_holds (t->farm, names[i], t->store)) &&
        add_gw (t, names[i]) == -1)
      return -1;
  return 0;
}

static void
tree_free (struct tree *t)
{
  size_t i;

  for (i = 0; t->gws && i < t->ngws; i++) {
    repl_gw_clear (&t->gws[i]);
    repl_manifest_free (t->ms[i]);
  }
  for (i = 0; i < t->nwaits; i++)
    free (t->waits[i].path);
  free (t->waits);
  free (t->gws);
  free (t->ms);
  df_gw_client_free (t->client);
}

/* ---- fan-out waits ---- */

static size_t
holders (const struct tree *t, const struct repl_file *f)
{
  size_t i, n = 0;

  for (i = 0; i < t->ngws; i++)
    if (repl_file_identical (repl_manifest_find (t->ms[i], f->path), f))
      n++;
  return n;
}

static int
cmp_str (const void *a, const void *b)
{
  return strcmp (*(const char *const *) a, *(const char *const *) b);
}

/* How long a file may wait for a new holder: --fanout-wait, plus the
 * time a peer takes to fetch it at 100 MiB/s (a round of a big file
 * takes that long, and nothing shows it in the manifests meanwhile).
 */
static uint64_t
wait_limit_ns (const struct repl_opts *o, const struct repl_file *f)
{
  uint64_t transfer_s = f ? f->size / FANOUT_RATE : 0;

  return (o->fanout_wait + transfer_s) * 1000000000ULL;
}

/* Before planning: the waits whose holders did not change for their
 * wait limit go now (go: sorted, pointing into t->waits).
 */
static size_t
waits_due (struct tree *t, const char **go)
{
  uint64_t now = df_now_mono_ns ();
  size_t i, n = 0;

  for (i = 0; i < t->nwaits; i++) {
    struct waiting *w = &t->waits[i];
    const struct repl_file *f = repl_manifest_find (t->ms[0], w->path);
    size_t h = f ? holders (t, f) : 0;

    if (h != w->holders) {
      w->holders = h;
      w->since_ns = now;
    }
    if (now - w->since_ns >= wait_limit_ns (t->o, f))
      go[n++] = w->path;
  }
  qsort (go, n, sizeof *go, cmp_str);
  return n;
}

/* After a round: the files that wait now, since when. */
static void
waits_update (struct tree *t, const struct repl_plan *plan)
{
  uint64_t now = df_now_mono_ns ();
  struct waiting *nw = calloc (plan->nactions + 1, sizeof *nw);
  size_t i, j, n = 0;

  if (nw == NULL)
    return;
  for (i = 0; i < plan->nactions; i++) {
    const struct repl_action *a = &plan->actions[i];
    if (a->act != REPL_WAIT)
      continue;
    for (j = 0; j < t->nwaits && strcmp (t->waits[j].path, a->path); j++)
      ;
    if (j < t->nwaits) {
      nw[n++] = t->waits[j];
      t->waits[j].path = NULL;
    }
    else if ((nw[n].path = strdup (a->path)) != NULL) {
      nw[n].since_ns = now;
      nw[n++].holders = holders (t, a->file);
    }
  }
  for (j = 0; j < t->nwaits; j++)
    free (t->waits[j].path);
  free (t->waits);
  t->waits = nw;
  t->nwaits = n;
}

/* ---- one round: scan, plan, execute ---- */

/* Staged files no action wants any more go. */
static void
tidy (struct repl_stage *st, const struct repl_plan *plan)
{
  CLEANUP_FREE uint8_t (*keep)[DF_HASH_LEN] =
    calloc (plan->nactions + 1, sizeof *keep);
  size_t i, n = 0;

  if (keep == NULL)
    return;
  for (i = 0; i < plan->nactions; i++) {
    const struct repl_action *a = &plan->actions[i];
    if (a->act == REPL_DOWNLOAD || a->act == REPL_DELTA || a->act == REPL_WAIT)
      memcpy (keep[n++], a->file->hash, DF_HASH_LEN);
  }
  repl_stage_tidy (st, (const uint8_t (*)[DF_HASH_LEN]) keep, n);
}

static int
round_once (struct tree *t, struct repl_run *run, struct repl_exec_result *res)
{
  CLEANUP_FREE struct repl_peer *peers = calloc (t->ngws, sizeof *peers);
  CLEANUP_FREE const char **go = calloc (t->nwaits + 1, sizeof *go);
  struct repl_scan scan = { 0 };
  struct repl_plan plan = { 0 };
  struct repl_plan_input in;
  size_t i, ngo;
  int r = -1;

  memset (res, 0, sizeof *res);
  if (peers == NULL || go == NULL)
    return df_error_errno ("plan");
  for (i = 1; i < t->ngws; i++)
    peers[i - 1] = (struct repl_peer) { t->gws[i].server, t->ms[i] };
  ngo = waits_due (t, go);
  if (t->o->verify && !t->verified) {
    repl_stage_forget_all (run->st);        /* hash everything again */
    t->verified = true;
  }
  if (repl_scan (run->st, t->ms[0], &scan) == -1 ||
      repl_scan_hash (run->st, t->ms[0], &scan) == -1)
    goto out;
  in = (struct repl_plan_input) {
    .self = t->self, .source = t->source, .src = t->ms[0],
    .peers = peers, .npeers = t->ngws - 1,
    .local = scan.files, .nlocal = scan.nfiles,
    .delta_min = t->o->delta_min, .fanout_min = t->o->fanout_min,
    .go_now = go, .ngo_now = ngo, .allow_empty = t->o->allow_empty,
    .relay = !t->o->fanout_rounds && t->store != NULL,
  };
  if (repl_plan_make (&in, &plan) == -1)
    goto out;
  if (t->o->dry_run) {
    for (i = 0; i < plan.nactions; i++)
      repl_report_plan (t->report, &plan.actions[i]);
    r = 0;
    goto out;
  }
  tidy (run->st, &plan);
  r = repl_exec (run, &plan, t->ms[0], t->source, repl_report_error,
                 repl_report_moved, t->report, res);
  waits_update (t, &plan);
 out:
  repl_plan_free (&plan);
  repl_scan_free (&scan);
  return r;
}

static void
pause_ns (uint64_t ns)
{
  struct timespec ts = { ns / 1000000000ULL, ns % 1000000000ULL };

  while (nanosleep (&ts, &ts) == -1 && errno == EINTR)
    ;
}

/* Rounds until nothing waits for a peer any more. */
static bool
sync_rounds (struct tree *t, struct repl_run *run)
{
  struct repl_exec_result res;
  bool first = true;

  for (;;) {
    if (!first)
      pause_ns (POLL_NS);
    if (fetch_manifests (t) == -1)
      return false;
    if (round_once (t, run, &res) == -1) {
      repl_report_error (t->report, false, df_error_get ());
      return false;
    }
    if (first && t->o->verbose && res.waiting)
      repl_report_note (t->report, "%zu files wait for a peer to get them "
                        "first (fan-out)", res.waiting);
    first = false;
    if (res.failed || res.waiting == 0 || t->o->dry_run)
      return res.failed == 0;
  }
}

bool
repl_tree_sync (const struct repl_tree_spec *spec, const char *root)
{
  struct tree tree = { .o = spec->o, .farm = spec->farm,
                       .report = spec->report, .self = spec->self,
                       .source = spec->source, .store = spec->store };
  struct tree *t = &tree;
  struct repl_stats stats = { 0 };
  struct repl_run run = { .store = t->store, .stats = &stats,
                          .verbose = t->o->verbose };
  bool ok = false;

  repl_report_begin (t->report, t->store ? t->store : "farm");
  if (resolve_gateways (t) == -1) {
    repl_report_error (t->report, false, df_error_get ());
    goto out;
  }
  run.gws = t->gws;
  run.ngws = t->ngws;
  run.st = repl_stage_open (root, true);
  run.e = repl_engine_new (t->o->jobs, t->o->bwlimit);
  if (run.st == NULL || run.e == NULL) {
    repl_report_error (t->report, false, df_error_get ());
    goto out;
  }
  run.resume_ok = repl_holes_work (run.st);
  repl_engine_set_progress (run.e, repl_report_progress, t->report);
  ok = sync_rounds (t, &run);
  repl_relay_tidy (run.st);
  if (repl_stage_save (run.st) == -1)
    repl_report_error (t->report, true, df_error_get ());
 out:
  repl_report_end (t->report, &stats, run.e ? repl_engine_wire_in (run.e) : 0,
                   run.e ? repl_engine_wire_out (run.e) : 0, ok);
  repl_engine_free (run.e);
  repl_stage_close (run.st);
  tree_free (t);
  return ok;
}

