/* diskfarm-gateway attach — the servers' load figures: the "load" of
 * each gateway's GET /v1/status (docs/api.md), asked of all of them at
 * once through the gateways' client (common/gwapi) every few seconds in
 * a thread, so that a failover never waits for HTTP.
 */
#include <config.h>

#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "attach.h"
#include "error.h"
#include "farm/farm.h"
#include "gwapi/gwclient.h"
#include "util.h"

#define POLL_SECONDS 5
#define TIMEOUT_MS 2000

struct attach_load {
  struct df_gw_client *client;
  const char *const *names;     /* not owned */
  size_t n;
  pthread_t thread;
  pthread_mutex_t lock;         /* below */
  pthread_cond_t cond;
  double load[DF_UPSTREAM_MAX_SERVERS];   /* < 0: unknown */
  unsigned rounds;
  bool stop;
};

/* One question to every gateway; the loads, -1 where none came. */
static void
ask (struct attach_load *l, double *load)
{
  struct df_gw_result res[DF_UPSTREAM_MAX_SERVERS];
  size_t i;

  df_gw_get_json_many (l->client, l->names, l->n, "/v1/status", res);
  for (i = 0; i < l->n; i++) {
    json_t *v = res[i].doc ? json_object_get (res[i].doc, "load") : NULL;
    load[i] = json_is_number (v) && json_number_value (v) >= 0
      ? json_number_value (v) : -1;
    df_gw_result_clear (&res[i]);
  }
}

static void *
poll_main (void *arg)
{
  struct attach_load *l = arg;

  pthread_mutex_lock (&l->lock);
  while (!l->stop) {
    double load[DF_UPSTREAM_MAX_SERVERS];
    struct timespec ts;

    pthread_mutex_unlock (&l->lock);
    ask (l, load);
    pthread_mutex_lock (&l->lock);
    memcpy (l->load, load, l->n * sizeof *load);
    l->rounds++;
    pthread_cond_broadcast (&l->cond);
    clock_gettime (CLOCK_REALTIME, &ts);
    ts.tv_sec += POLL_SECONDS;
    if (!l->stop)
      pthread_cond_timedwait (&l->cond, &l->lock, &ts);
  }
  pthread_mutex_unlock (&l->lock);
  return NULL;
}

struct attach_load *
attach_load_start (const char *farm_dir, const char *const *names, size_t n)
{
  struct attach_load *l = calloc (1, sizeof *l);
  struct df_farm *farm;
  size_t i;
  int err;

  if (l == NULL) {
    df_error_errno ("load figures");
    return NULL;
  }
  farm = df_farm_open (farm_dir);
  l->client = farm ? df_gw_client_new (farm) : NULL;
  df_farm_free (farm);
  if (l->client == NULL) {
    free (l);
    return NULL;
  }
  df_gw_client_set_timeout (l->client, TIMEOUT_MS);
  l->names = names;
  l->n = n;
  for (i = 0; i < DF_UPSTREAM_MAX_SERVERS; i++)
    l->load[i] = -1;
  pthread_mutex_init (&l->lock, NULL);
  pthread_cond_init (&l->cond, NULL);
  err = pthread_create (&l->thread, NULL, poll_main, l);
  if (err) {
    df_error (err, "load figure thread: %m");
    pthread_mutex_destroy (&l->lock);
    pthread_cond_destroy (&l->cond);
    df_gw_client_free (l->client);
    free (l);
    return NULL;
  }
  return l;
}

void
attach_load_wait (struct attach_load *l, unsigned ms)
{
  struct timespec ts;

  clock_gettime (CLOCK_REALTIME, &ts);
  ts.tv_sec += ms / 1000;
  ts.tv_nsec += (long) (ms % 1000) * 1000000;
  if (ts.tv_nsec >= 1000000000) {
    ts.tv_sec++;
    ts.tv_nsec -= 1000000000;
  }
  pthread_mutex_lock (&l->lock);
  while (l->rounds == 0 && !l->stop)
    if (pthread_cond_timedwait (&l->cond, &l->lock, &ts) == ETIMEDOUT)
      break;
  pthread_mutex_unlock (&l->lock);
}

void
attach_rank_by_load (const double *load, size_t *order, size_t n)
{
  size_t i, j;

  /* Insertion sort: stable, and n is at most a handful. */
  for (i = 1; i < n; i++) {
    size_t k = order[i];
    for (j = i; j > 0; j--) {
      double a = load[order[j - 1]], b = load[k];
      bool after = a < 0 ? b >= 0 : (b >= 0 && b < a);
      if (!after)
        break;
      order[j] = order[j - 1];
    }
    order[j] = k;
  }
}

void
attach_load_rank (void *opaque, size_t *order, size_t n)
{
  struct attach_load *l = opaque;
  double load[DF_UPSTREAM_MAX_SERVERS];

  pthread_mutex_lock (&l->lock);
  memcpy (load, l->load, sizeof load);
  pthread_mutex_unlock (&l->lock);
  attach_rank_by_load (load, order, n);
}

void
attach_load_stop (struct attach_load *l)
{
  if (l == NULL)
    return;
  pthread_mutex_lock (&l->lock);
  l->stop = true;
  pthread_cond_broadcast (&l->cond);
  pthread_mutex_unlock (&l->lock);
  pthread_join (l->thread, NULL);
  pthread_mutex_destroy (&l->lock);
  pthread_cond_destroy (&l->cond);
  df_gw_client_free (l->client);
  free (l);
}
