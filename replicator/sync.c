/* diskfarm-replicator — one sync of the farm and the stores (see
 * sync.h).
 */
#include <config.h>

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cleanup.h"
#include "error.h"
#include "farm/farm.h"
#include "report.h"
#include "sync.h"
#include "tree.h"
#include "util.h"

/* ---- the whole sync ---- */

static bool
sync_farm_dir (const struct repl_opts *o, struct df_farm *farm,
               struct repl_report *report, const char *self, const char *cs)
{
  struct repl_tree_spec t = { .o = o, .farm = farm, .report = report,
                              .self = self, .source = cs };
  CLEANUP_CLOSE int lock = df_farm_lock (df_farm_dir (farm));

  if (lock == -1) {
    repl_report_begin (report, "farm");
    repl_report_error (report, false, df_error_get ());
    repl_report_end (report, &(struct repl_stats) { 0 }, 0, 0, false);
    return false;
  }
  return repl_tree_sync (&t, df_farm_dir (farm));
}

static bool
sync_store (const struct repl_opts *o, struct df_farm *farm,
            struct repl_report *report, const char *self, const char *source,
            const char *store)
{
  struct repl_tree_spec t = { .o = o, .farm = farm, .report = report,
                              .self = self, .source = source, .store = store };
  CLEANUP_FREE char *root = df_farm_store_path (farm, store, self);

  if (root == NULL) {
    repl_report_begin (report, store);
    repl_report_error (report, false, df_error_get ());
    repl_report_end (report, &(struct repl_stats) { 0 }, 0, 0, false);
    return false;
  }
  if (df_mkdir_p (root, 0755) == -1) {
    repl_report_begin (report, store);
    repl_report_error (report, false, df_error_get ());
    repl_report_end (report, &(struct repl_stats) { 0 }, 0, 0, false);
    return false;
  }
  return repl_tree_sync (&t, root);
}

bool
repl_store_wanted (const struct df_farm *farm, const char *self,
                   const char *source, const char *store)
{
  return !df_farm_store_shared (farm, store) &&
    df_farm_server_holds (farm, self, store) &&
    df_farm_server_holds (farm, source, store);
}

/* Every store this server and the source carry, unless it is shared. */
static bool
sync_stores (const struct repl_opts *o, struct df_farm *farm,
             struct repl_report *report, const char *self, const char *source)
{
  CLEANUP_FREE const char **stores = df_farm_names (farm, DF_KIND_STORE);
  bool ok = true;
  size_t i;

  if (o->store) {
    if (!df_farm_exists (farm, DF_KIND_STORE, o->store)) {
      fprintf (stderr, "diskfarm-replicator: the farm has no store \"%s\"\n",
               o->store);
      return false;
    }
    if (df_farm_store_shared (farm, o->store)) {
      repl_report_begin (report, o->store);
      repl_report_note (report, "a shared store: every server sees the same "
                        "files, nothing to copy");
      repl_report_end (report, &(struct repl_stats) { 0 }, 0, 0, true);
      return true;
    }
    return sync_store (o, farm, report, self, source, o->store);
  }
  for (i = 0; stores && stores[i]; i++)
    if (repl_store_wanted (farm, self, source, stores[i]))
      ok &= sync_store (o, farm, report, self, source, stores[i]);
  return ok;
}

int
repl_sync (const struct repl_opts *o)
{
  struct df_farm *farm = df_farm_open (o->farm_dir);
  struct repl_report *report = NULL;
  const char *self, *cs, *source;
  CLEANUP_FREE char *self_copy = NULL;
  bool ok = true;
  int status = 2;

  if (farm == NULL || (self = df_farm_local_server (farm, o->server)) == NULL)
    goto fail;
  self_copy = strdup (self);
  cs = df_farm_setting (farm, "farm", "config-server");
  source = o->from ? o->from : cs;
  if (source && !df_farm_exists (farm, DF_KIND_SERVER, source)) {
    df_error (ENOENT, "--from: the farm has no server \"%s\"", source);
    goto fail;
  }
  report = repl_report_new (self, source, o->json, o->progress, o->quiet);
  if (report == NULL) {
    df_error (ENOMEM, "report");
    goto fail;
  }
  /* The farm directory first: the stores' sync then uses the new one. */
  if (o->store == NULL && cs && strcmp (cs, self) != 0) {
    ok &= sync_farm_dir (o, farm, report, self_copy, cs);
    if (!o->dry_run) {
      struct df_farm *fresh = df_farm_open (o->farm_dir);
      if (fresh) {
        df_farm_free (farm);
        farm = fresh;
      }
      else {
        repl_report_error (report, false, df_error_get ());
        ok = false;
      }
    }
  }
  source = o->from ? o->from : df_farm_setting (farm, "farm", "config-server");
  if (source == NULL) {
    df_error (EINVAL, "no source: give --from SERVER or set [farm] "
              "config-server in farm.conf");
    goto fail;
  }
  if (strcmp (source, self_copy) == 0) {
    repl_report_begin (report, "stores");
    repl_report_note (report, "this server (%s) is the source of the stores; "
                      "nothing to pull", self_copy);
    repl_report_end (report, &(struct repl_stats) { 0 }, 0, 0, true);
  }
  else
    ok &= sync_stores (o, farm, report, self_copy, source);
  status = repl_report_finish (report);
  if (!ok)
    status = 1;
  repl_report_free (report);
  df_farm_free (farm);
  return status;
 fail:
  fprintf (stderr, "diskfarm-replicator: %s\n", df_error_get ());
  repl_report_free (report);
  df_farm_free (farm);
  return 2;
}
