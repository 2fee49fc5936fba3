/* diskfarm-bootsvc — what the other servers' gateways say about their
 * replicas (GET /v1/vdisks), refreshed in the background (see
 * bootsvc.h).
 *
 * A thread of its own asks every other server's gateway every few
 * seconds and swaps in a new table; the DHCP and HTTP paths only look
 * the table up in memory.  Lock: pv->lock covers the table pointer and
 * the flags; it is never held across a request, a file or the farm.
 */
#include <config.h>

#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <jansson.h>

#include "bootsvc.h"
#include "error.h"
#include "gwapi/gwclient.h"
#include "log.h"
#include "util.h"

#define REFRESH_S 3
#define ASK_TIMEOUT_MS 2000
/* An answer older than this (the thread is stuck, a server went quiet)
 * is not trusted: its server is unknown again.
 */
#define STALE_NS (30 * 1000000000ULL)

struct peer_entry {
  char server[DF_NAME_MAX + 1];
  char vdisk[DF_NAME_MAX + 1];
  unsigned version;
  struct replica_identity id;
};

struct peer_table {
  struct peer_entry *v;
  size_t n;
  char (*answered)[DF_NAME_MAX + 1];    /* servers that answered */
  size_t nanswered;
  uint64_t when_ns;
};

struct peer_view {
  char *farm_dir;
  const char *server;                   /* --server, or NULL */
  /* The refresher thread's own: the farm as last read, and its stamp. */
  struct df_farm *farm;
  struct df_farm_stamp stamp;
  pthread_t thread;
  pthread_mutex_t lock;                 /* table, enabled, stop */
  pthread_cond_t wake;
  struct peer_table *table;
  bool enabled;                         /* the farm names a token file */
  bool stop;
};

static void
table_free (struct peer_table *t)
{
  if (t == NULL)
    return;
  free (t->v);
  free (t->answered);
  free (t);
}

static enum replica_state
state_of (const char *s)
{
  if (s && strcmp (s, "present") == 0)
    return REPLICA_PRESENT;
  if (s && strcmp (s, "incomplete") == 0)
    return REPLICA_INCOMPLETE;
  return REPLICA_MISSING;
}

/* One version of a server's document into e; false if unusable. */
static bool
parse_version (json_t *ver, struct peer_entry *e)
{
  json_t *num = json_object_get (ver, "num");
  const char *state = json_string_value (json_object_get (ver, "state"));
  const char *hash = json_string_value (json_object_get (ver, "hash"));
  const char *verified = json_string_value (json_object_get (ver, "verified"));

  if (!json_is_integer (num) || json_integer_value (num) <= 0 || state == NULL)
    return false;
  e->version = json_integer_value (num);
  e->id.state = state_of (json_string_value (json_object_get (ver, "replica")));
  e->id.sealed = strcmp (state, "maintenance") != 0;
  e->id.size = json_integer_value (json_object_get (ver, "size"));
  e->id.mtime_ns = json_integer_value (json_object_get (ver, "mtime_ns"));
  /* A copy its own gateway found damaged is no replica. */
  if (verified && strcmp (verified, "failed") == 0)
    e->id.state = REPLICA_INCOMPLETE;
  if (hash == NULL || df_unhex (hash, e->id.hash, DF_HASH_LEN) == -1) {
    df_error_clear ();
    memset (e->id.hash, 0, DF_HASH_LEN);
  }
  return true;
}

static int
add_doc (struct peer_table *t, const char *server, json_t *doc)
{
  json_t *vd, *ver;
  size_t i, k;

  json_array_foreach (json_object_get (doc, "vdisks"), i, vd) {
    const char *name = json_string_value (json_object_get (vd, "name"));
    if (!df_name_valid (name))
      continue;
    json_array_foreach (json_object_get (vd, "versions"), k, ver) {
      struct peer_entry e = { 0 }, *nv;
      if (!parse_version (ver, &e))
        continue;
      snprintf (e.server, sizeof e.server, "%s", server);
      snprintf (e.vdisk, sizeof e.vdisk, "%s", name);
      nv = realloc (t->v, (t->n + 1) * sizeof *nv);
      if (nv == NULL)
        return -1;
      t->v = nv;
      t->v[t->n++] = e;
    }
  }
  return 0;
}

/* The farm, read again only when it changed (the common stamp rule). */
static struct df_farm *
current_farm (struct peer_view *pv)
{
  struct df_farm_stamp now;
  struct df_farm *fresh;

  df_farm_stamp_take (pv->farm_dir, &now);
  if (pv->farm && !df_farm_stamp_changed (&pv->stamp, &now))
    return pv->farm;
  fresh = df_farm_open (pv->farm_dir);
  if (fresh == NULL) {
    /* Being edited, or broken: keep asking with the farm as it was. */
    df_error_clear ();
    return pv->farm;
  }
  df_farm_free (pv->farm);
  pv->farm = fresh;
  pv->stamp = now;
  return fresh;
}

/* Asks every other server once; a new table, or NULL if the farm names
 * no token file (then nobody can be asked, *enabled is false).  The
 * client is made anew each time: it reads the token file, which may
 * change without farm.conf changing.
 */
static struct peer_table *
ask_all (struct peer_view *pv, bool *enabled)
{
  struct df_farm *farm = current_farm (pv);
  struct df_gw_client *client = NULL;
  const char **names = NULL, *self;
  struct df_gw_result *res = NULL;
  struct peer_table *t = NULL;
  size_t i, n = 0, o = 0;

  *enabled = farm && df_farm_setting (farm, "gateway", "token-file");
  if (!*enabled || (self = df_farm_local_server (farm, pv->server)) == NULL ||
      (client = df_gw_client_new (farm)) == NULL ||
      (names = df_farm_names (farm, DF_KIND_SERVER)) == NULL)
    goto out;
  df_gw_client_set_timeout (client, ASK_TIMEOUT_MS);
  for (i = 0; names[i]; i++)
    if (strcmp (names[i], self) != 0)
      names[n++] = names[i];
  res = calloc (n + 1, sizeof *res);
  t = calloc (1, sizeof *t);
  if (res == NULL || t == NULL ||
      (t->answered = calloc (n + 1, sizeof *t->answered)) == NULL)
    goto out;
  df_gw_get_json_many (client, names, n, "/v1/vdisks", res);
  for (i = 0; i < n; i++) {
    if (res[i].doc && add_doc (t, names[i], res[i].doc) == 0)
      snprintf (t->answered[o++], DF_NAME_MAX + 1, "%s", names[i]);
    df_gw_result_clear (&res[i]);
  }
  t->nanswered = o;
  t->when_ns = df_now_mono_ns ();
 out:
  df_error_clear ();
  free (res);
  free (names);
  df_gw_client_free (client);
  return t;
}

static void *
refresher (void *opaque)
{
  struct peer_view *pv = opaque;

  for (;;) {
    struct peer_table *t, *old;
    struct timespec until;
    bool enabled;

    t = ask_all (pv, &enabled);
    pthread_mutex_lock (&pv->lock);
    old = pv->table;
    pv->table = t;
    pv->enabled = enabled;
    clock_gettime (CLOCK_MONOTONIC, &until);
    until.tv_sec += REFRESH_S;
    while (!pv->stop &&
           pthread_cond_timedwait (&pv->wake, &pv->lock, &until) != ETIMEDOUT)
      ;
    if (pv->stop) {
      pthread_mutex_unlock (&pv->lock);
      table_free (old);
      return NULL;
    }
    pthread_mutex_unlock (&pv->lock);
    table_free (old);
  }
}

struct peer_view *
peer_view_start (const char *farm_dir, const char *server)
{
  struct peer_view *pv = calloc (1, sizeof *pv);
  struct df_farm *farm;
  pthread_condattr_t ca;

  if (pv == NULL || (pv->farm_dir = strdup (farm_dir)) == NULL) {
    free (pv);
    df_error_errno ("peers");
    return NULL;
  }
  pv->server = server;
  /* Whether there are gateways to ask is known from the start: until
   * they answer, other servers are not known to hold anything.
   */
  farm = df_farm_open (farm_dir);
  pv->enabled = farm && df_farm_setting (farm, "gateway", "token-file");
  df_farm_free (farm);
  df_error_clear ();
  pthread_mutex_init (&pv->lock, NULL);
  pthread_condattr_init (&ca);
  pthread_condattr_setclock (&ca, CLOCK_MONOTONIC);
  pthread_cond_init (&pv->wake, &ca);
  pthread_condattr_destroy (&ca);
  if ((errno = pthread_create (&pv->thread, NULL, refresher, pv)) != 0) {
    df_error_errno ("peers: thread");
    pthread_mutex_destroy (&pv->lock);
    pthread_cond_destroy (&pv->wake);
    free (pv->farm_dir);
    free (pv);
    return NULL;
  }
  return pv;
}

void
peer_view_stop (struct peer_view *pv)
{
  if (pv == NULL)
    return;
  pthread_mutex_lock (&pv->lock);
  pv->stop = true;
  pthread_cond_signal (&pv->wake);
  pthread_mutex_unlock (&pv->lock);
  pthread_join (pv->thread, NULL);
  table_free (pv->table);
  df_farm_free (pv->farm);
  pthread_mutex_destroy (&pv->lock);
  pthread_cond_destroy (&pv->wake);
  free (pv->farm_dir);
  free (pv);
}

bool
peer_view_enabled (struct peer_view *pv)
{
  bool r;

  if (pv == NULL)
    return false;
  pthread_mutex_lock (&pv->lock);
  r = pv->enabled;
  pthread_mutex_unlock (&pv->lock);
  return r;
}

void
peer_view_lookup (struct peer_view *pv, const char *server, const char *vdisk,
                  unsigned version, struct replica_identity *id)
{
  const struct peer_table *t;
  size_t i;

  memset (id, 0, sizeof *id);
  id->state = REPLICA_UNKNOWN;
  if (pv == NULL)
    return;
  pthread_mutex_lock (&pv->lock);
  t = pv->table;
  if (t && df_now_mono_ns () - t->when_ns < STALE_NS) {
    for (i = 0; i < t->nanswered; i++)
      if (strcmp (t->answered[i], server) == 0) {
        id->state = REPLICA_MISSING;    /* answered: missing unless listed */
        break;
      }
    for (i = 0; i < t->n; i++)
      if (strcmp (t->v[i].server, server) == 0 &&
          strcmp (t->v[i].vdisk, vdisk) == 0 && t->v[i].version == version) {
        *id = t->v[i].id;
        break;
      }
  }
  pthread_mutex_unlock (&pv->lock);
}
