/* diskfarm-gateway serve — the farm, followed without a restart.
 *
 * The farm is loaded into a snapshot (struct gw_farm): the farm itself,
 * the [gateway] settings, the token and the stores this server carries.
 * Requests hold a reference to the snapshot they started with; a reload
 * publishes a new one and the old goes with its last reference, so no
 * lock is held while a request reads files.  Every poll_ms the main
 * loop compares a signature of the farm's files (farm.conf, devices.d
 * and each device file, the token file) with the snapshot's, and
 * reloads when it differs; SIGHUP reloads at once.
 */
#include <config.h>

#include <dirent.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "cleanup.h"
#include "error.h"
#include "gw.h"
#include "log.h"
#include "util.h"

/* FNV-1a over the identities of the farm's files. */
static void
mix (uint64_t *sig, const void *data, size_t len)
{
  const unsigned char *p = data;
  size_t i;

  for (i = 0; i < len; i++)
    *sig = (*sig ^ p[i]) * 0x100000001b3ULL;
}

static void
mix_file (uint64_t *sig, const char *path)
{
  struct stat st;
  uint64_t id[5] = { 0 };

  if (path && stat (path, &st) == 0) {
    id[0] = st.st_ino;
    id[1] = st.st_size;
    id[2] = st.st_mtim.tv_sec * 1000000000ULL + st.st_mtim.tv_nsec;
    id[3] = st.st_ctim.tv_sec * 1000000000ULL + st.st_ctim.tv_nsec;
    id[4] = st.st_mode;
  }
  mix (sig, id, sizeof id);
}

/* The farm's own files; the token file is mixed in after them. */
static uint64_t
files_signature (const char *dir)
{
  CLEANUP_FREE char *conf = df_path_join (dir, "farm.conf");
  CLEANUP_FREE char *ddir = df_path_join (dir, "devices.d");
  uint64_t sig = 0xcbf29ce484222325ULL;
  struct dirent *de;
  DIR *d;

  mix_file (&sig, conf);
  mix_file (&sig, ddir);
  d = ddir ? opendir (ddir) : NULL;
  while (d && (de = readdir (d)) != NULL) {
    CLEANUP_FREE char *p = NULL;
    if (de->d_name[0] == '.')
      continue;
    p = df_path_join (ddir, de->d_name);
    mix (&sig, de->d_name, strlen (de->d_name));
    mix_file (&sig, p);
  }
  if (d)
    closedir (d);
  return sig;
}

static uint64_t
farm_signature (const char *dir, const char *token_file)
{
  uint64_t sig = files_signature (dir);

  mix_file (&sig, token_file);
  return sig;
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
  /* The signature is taken before the files are read: a change while
   * loading is seen by the next check.
   */
  uint64_t sig = files_signature (cfg->farm_dir);
  struct gw_farm *f = calloc (1, sizeof *f);

  if (f == NULL) {
    df_error_errno ("%s", cfg->farm_dir);
    return NULL;
  }
  f->refs = 1;
  f->farm = df_farm_open (cfg->farm_dir);
  if (f->farm == NULL || df_gw_settings (f->farm, &f->settings) == -1)
    goto fail;
  mix_file (&sig, f->settings.token_file);
  f->server = df_farm_local_server (f->farm, cfg->server);
  if (f->server == NULL || find_stores (f) == -1)
    goto fail;
  if (f->settings.token_file &&
      df_gw_read_token (f->settings.token_file, true, &f->token) == -1)
    goto fail;
  f->signature = sig;
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

  if (!force && farm_signature (gw->cfg.farm_dir, cur->settings.token_file) ==
      cur->signature) {
    gw_farm_put (gw, cur);
    return;
  }
  f = farm_load (&gw->cfg);
  if (f == NULL) {
    gw_count (&gw->counters.reload_failures);
    df_log_error ("farm %s: %s (keeping the farm as it was)", gw->cfg.farm_dir,
                  df_error_get ());
    /* Not again until it changes once more. */
    cur->signature = farm_signature (gw->cfg.farm_dir,
                                     cur->settings.token_file);
    gw_farm_put (gw, cur);
    return;
  }
  gw_count (&gw->counters.reloads);
  log_reload (cur, f, &gw->cfg);
  gw_farm_put (gw, cur);
  pthread_mutex_lock (&gw->farm_lock);
  old = gw->farm;
  gw->farm = f;
  pthread_mutex_unlock (&gw->farm_lock);
  gw_farm_put (gw, old);
}
