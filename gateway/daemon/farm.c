/* diskfarm-gateway serve — the farm, followed without a restart.
 *
 * The farm is loaded into a snapshot (struct gw_farm): the farm itself,
 * the [gateway] settings, the token and the stores this server carries.
 * Requests hold a reference to the snapshot they started with; a reload
 * publishes a new one and the old goes with its last reference, so no
 * lock is held while a request reads files.  Every poll_ms the main
 * loop compares the farm's stamp (df_farm_stamp: farm.conf and the
 * device files) and the token file's with the snapshot's, and reloads
 * when they differ; SIGHUP reloads at once.
 */
#include <config.h>

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "cleanup.h"
#include "error.h"
#include "gw.h"
#include "log.h"
#include "util.h"

/* The token file's stamp (absent: not stamped). */
static void
token_stamp (const char *path, struct df_file_stamp *st, bool *stamped)
{
  *stamped = path && df_file_stamp_get (path, st) == 0;
  df_error_clear ();
}

/* The farm's files and the token file, now. */
struct gw_stamps {
  struct df_farm_stamp farm;
  struct df_file_stamp token;
  bool token_stamped;
};

/* Do the files differ from those f was read from?  A stamp taken within
 * a timestamp tick of a change does not count here: it is read again
 * (df_farm_stamp_changed) but was most likely read right.
 */
static bool
differs (const struct gw_farm *f, const struct gw_stamps *now)
{
  return now->farm.valid != f->stamp.valid ||
    now->farm.digest != f->stamp.digest ||
    now->farm.files != f->stamp.files ||
    now->token_stamped != f->token_stamped ||
    (now->token_stamped && !df_file_stamp_equal (&now->token,
                                                 &f->token_stamp));
}

/* Has the farm or its token file (maybe) changed since f was loaded? */
static bool
changed (const struct gw_config *cfg, const struct gw_farm *f,
         struct gw_stamps *now)
{
  df_farm_stamp_take (cfg->farm_dir, &now->farm);
  token_stamp (f->settings.token_file, &now->token, &now->token_stamped);
  return df_farm_stamp_changed (&f->stamp, &now->farm) || differs (f, now);
}

static void
farm_free (struct gw_farm *f)
{
  size_t i;

  if (f == NULL)
    return;
  for (i = 0; i < f->nstores; i++)
    free (f->stores[i].path);
  free (f->stores);
  if (f->token)
    explicit_bzero (f->token, strlen (f->token));
  free (f->token);
  df_gw_settings_free (&f->settings);
  df_farm_free (f->farm);
  free (f);
}

static int
find_stores (struct gw_farm *f)
{
  CLEANUP_FREE const char **names = df_farm_names (f->farm, DF_KIND_STORE);
  size_t i, n;

  if (names == NULL)
    return -1;
  for (n = 0; names[n]; n++)
    ;
  f->stores = calloc (n + 1, sizeof *f->stores);
  if (f->stores == NULL)
    return df_error_errno ("stores");
  for (i = 0; i < n; i++) {
    struct gw_store *s = &f->stores[f->nstores];
    if (!df_farm_server_holds (f->farm, f->server, names[i]))
      continue;
    s->name = names[i];
    s->path = df_farm_store_path (f->farm, names[i], f->server);
    if (s->path == NULL)
      return -1;
    f->nstores++;
  }
  return 0;
}

/* A new snapshot of the farm in dir, or NULL with a message. */
static struct gw_farm *
farm_load (const struct gw_config *cfg)
{
  struct gw_farm *f = calloc (1, sizeof *f);

  if (f == NULL) {
    df_error_errno ("%s", cfg->farm_dir);
    return NULL;
  }
  f->refs = 1;
  /* Stamps are taken before the files are read: a change while loading
   * is seen by the next check.
   */
  df_farm_stamp_take (cfg->farm_dir, &f->stamp);
  f->farm = df_farm_open (cfg->farm_dir);
  if (f->farm == NULL || df_gw_settings (f->farm, &f->settings) == -1)
    goto fail;
  token_stamp (f->settings.token_file, &f->token_stamp, &f->token_stamped);
  f->server = df_farm_local_server (f->farm, cfg->server);
  if (f->server == NULL || find_stores (f) == -1)
    goto fail;
  if (f->settings.token_file &&
      df_gw_read_token (f->settings.token_file, true, &f->token) == -1)
    goto fail;
  return f;

 fail:
  farm_free (f);
  return NULL;
}

int
gw_farm_start (struct gw *gw)
{
  pthread_mutex_init (&gw->farm_lock, NULL);
  gw->farm = farm_load (&gw->cfg);
  if (gw->farm == NULL)
    return -1;
  if (gw->farm->token == NULL)
    df_log_warning ("the farm sets no [gateway] token-file: only /metrics and "
                    "/v1/status can be used");
  return 0;
}

void
gw_farm_stop (struct gw *gw)
{
  farm_free (gw->farm);
  gw->farm = NULL;
  pthread_mutex_destroy (&gw->farm_lock);
}

struct gw_farm *
gw_farm_get (struct gw *gw)
{
  struct gw_farm *f;

  pthread_mutex_lock (&gw->farm_lock);
  f = gw->farm;
  f->refs++;
  pthread_mutex_unlock (&gw->farm_lock);
  return f;
}

void
gw_farm_put (struct gw *gw, struct gw_farm *f)
{
  bool last;

  if (f == NULL)
    return;
  pthread_mutex_lock (&gw->farm_lock);
  last = --f->refs == 0;
  pthread_mutex_unlock (&gw->farm_lock);
  if (last)
    farm_free (f);
}

const char *
gw_farm_store (const struct gw_farm *f, const char *name)
{
  size_t i;

  for (i = 0; i < f->nstores; i++)
    if (strcmp (f->stores[i].name, name) == 0)
      return f->stores[i].path;
  return NULL;
}

/* What a reload changes that needs a restart, or the operator's eye. */
static void
log_reload (const struct gw_farm *old, const struct gw_farm *f,
            const struct gw_config *cfg)
{
  df_log_info ("farm %s reloaded: server %s, %zu store%s%s", cfg->farm_dir,
               f->server, f->nstores, f->nstores == 1 ? "" : "s",
               f->token ? "" : ", no token");
  if (cfg->nlisten == 0 && f->settings.port != old->settings.port)
    df_log_warning ("[gateway] port is now %u: restart the gateway to listen "
                    "there (still on %u)", f->settings.port,
                    old->settings.port);
  if (strcmp (f->server, old->server) != 0)
    df_log_warning ("this server is now %s (was %s)", f->server, old->server);
}

void
gw_farm_check (struct gw *gw, bool force)
{
  struct gw_farm *cur = gw_farm_get (gw), *f, *old;
  struct gw_stamps now;
  bool news;

  if (!changed (&gw->cfg, cur, &now) && !force) {
    gw_farm_put (gw, cur);
    return;
  }
  /* Re-reads of an unsettled stamp are not news to the operator. */
  news = force || differs (cur, &now);
  f = farm_load (&gw->cfg);
  if (f == NULL) {
    if (news) {
      gw_count (&gw->counters.reload_failures);
      df_log_error ("farm %s: %s (keeping the farm as it was)",
                    gw->cfg.farm_dir, df_error_get ());
    }
    /* Not again until it changes once more. */
    cur->stamp = now.farm;
    cur->token_stamp = now.token;
    cur->token_stamped = now.token_stamped;
    gw_farm_put (gw, cur);
    return;
  }
  if (news) {
    gw_count (&gw->counters.reloads);
    log_reload (cur, f, &gw->cfg);
  }
  gw_farm_put (gw, cur);
  pthread_mutex_lock (&gw->farm_lock);
  old = gw->farm;
  gw->farm = f;
  pthread_mutex_unlock (&gw->farm_lock);
  gw_farm_put (gw, old);
}
