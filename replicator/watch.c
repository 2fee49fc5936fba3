/* diskfarm-replicator — watch mode (see watch.h). */
#include <config.h>

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "cleanup.h"
#include "error.h"
#include "farm/farm.h"
#include "gwclient.h"
#include "hash/hash.h"
#include "watch.h"

#define MANIFEST_MAX (64 * 1024 * 1024)
#define RETRY_MIN_S 10
#define RETRY_MAX_S 300

/* Adds one manifest (or the fact that it could not be read) to h. */
static void
digest_one (struct df_hash *h, struct df_gw_client *client, const char *server,
            const char *path)
{
  CLEANUP_FREE char *body = NULL;
  struct repl_gw gw;
  size_t len = 0;

  df_hash_update (h, path, strlen (path) + 1);
  if (repl_gw_resolve (client, server, &gw) == -1 ||
      repl_gw_get (&gw, path, MANIFEST_MAX, &body, &len) == -1) {
    df_hash_update (h, "unreachable", 12);
    df_error_clear ();
  }
  else
    df_hash_update (h, body, len);
  repl_gw_clear (&gw);
}

/* A digest of every manifest the next sync would read. */
static int
digest (const struct repl_opts *o, uint8_t out[DF_HASH_LEN])
{
  struct df_farm *farm = df_farm_open (o->farm_dir);
  struct df_hash *h = df_hash_new ();
  struct df_gw_client *client = NULL;
  CLEANUP_FREE const char **stores = NULL;
  const char *self, *cs, *source;
  size_t i;

  if (farm == NULL || h == NULL ||
      (self = df_farm_local_server (farm, o->server)) == NULL ||
      (client = df_gw_client_new (farm)) == NULL) {
    df_hash_free (h);
    df_farm_free (farm);
    return -1;
  }
  cs = df_farm_setting (farm, "farm", "config-server");
  source = o->from ? o->from : cs;
  if (o->store == NULL && cs && strcmp (cs, self) != 0)
    digest_one (h, client, cs, "/v1/farm/manifest");
  stores = source ? df_farm_names (farm, DF_KIND_STORE) : NULL;
  for (i = 0; stores && stores[i]; i++) {
    CLEANUP_FREE char *path = NULL;
    if ((o->store && strcmp (o->store, stores[i]) != 0) ||
        !repl_store_wanted (farm, self, source, stores[i]) ||
        asprintf (&path, "/v1/stores/%s/manifest", stores[i]) == -1)
      continue;
    digest_one (h, client, source, path);
  }
  df_gw_client_free (client);
  df_farm_free (farm);
  return df_hash_final (h, out);
}

static void
sleep_s (unsigned s)
{
  struct timespec ts = { s, 0 };

  while (nanosleep (&ts, &ts) == -1 && errno == EINTR)
    ;
}

int
repl_watch (const struct repl_opts *o, unsigned interval)
{
  uint8_t seen[DF_HASH_LEN], now[DF_HASH_LEN];
  unsigned retry = RETRY_MIN_S, waited = 0;
  bool failed;

  if (digest (o, seen) == -1) {
    fprintf (stderr, "diskfarm-replicator: %s\n", df_error_get ());
    return 2;
  }
  if (!o->quiet)
    printf ("watching the source every %u s\n", interval);
  failed = repl_sync (o) != 0;
  for (;;) {
    fflush (stdout);
    sleep_s (interval);
    waited += interval;
    if (digest (o, now) == -1) {
      /* The farm directory is unusable now; say so and keep looking. */
      fprintf (stderr, "diskfarm-replicator: %s\n", df_error_get ());
      continue;
    }
    if (memcmp (now, seen, DF_HASH_LEN) == 0 && !(failed && waited >= retry))
      continue;
    if (memcmp (now, seen, DF_HASH_LEN) != 0)
      retry = RETRY_MIN_S;
    else if (retry < RETRY_MAX_S)
      retry = retry * 2 > RETRY_MAX_S ? RETRY_MAX_S : retry * 2;
    memcpy (seen, now, DF_HASH_LEN);
    waited = 0;
    failed = repl_sync (o) != 0;
  }
}
