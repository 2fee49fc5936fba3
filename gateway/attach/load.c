/* diskfarm-gateway attach — the servers' load figures, from the "load"
 * of each gateway's GET /v1/status (docs/api.md), polled in a thread so
 * that a failover never waits for HTTP.
 *
 * The only HTTP client code of the attach: it moves to the common
 * gateway client once that exists.
 */
#include <config.h>

#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <curl/curl.h>
#include <jansson.h>

#include "attach.h"
#include "error.h"
#include "util.h"

#define POLL_SECONDS 5
#define MAX_BODY 65536

struct attach_load {
  char **urls;                  /* not owned */
  size_t n;
  char *ca_file;
  pthread_t thread;
  pthread_mutex_t lock;         /* below */
  pthread_cond_t cond;
  double load[DF_UPSTREAM_MAX_SERVERS];   /* < 0: unknown */
  unsigned rounds;
  bool stop;
};

struct body {
  char data[MAX_BODY];
  size_t len;
};

static size_t
collect (char *ptr, size_t size, size_t nmemb, void *opaque)
{
  struct body *b = opaque;
  size_t n = size * nmemb;

  if (b->len + n >= sizeof b->data)
    return 0;                   /* too big: fail the transfer */
  memcpy (b->data + b->len, ptr, n);
  b->len += n;
  b->data[b->len] = '\0';
  return n;
}

/* One GET; the load, or -1 if the gateway does not say. */
static double
fetch (CURL *curl, const char *url, const char *ca_file)
{
  struct body *b = malloc (sizeof *b);
  json_t *j = NULL, *load;
  double r = -1;
  long code = 0;

  if (b == NULL)
    return -1;
  b->len = 0;
  curl_easy_reset (curl);
  curl_easy_setopt (curl, CURLOPT_URL, url);
  curl_easy_setopt (curl, CURLOPT_NOSIGNAL, 1L);
  curl_easy_setopt (curl, CURLOPT_CONNECTTIMEOUT_MS, 1000L);
  curl_easy_setopt (curl, CURLOPT_TIMEOUT_MS, 2000L);
  curl_easy_setopt (curl, CURLOPT_WRITEFUNCTION, collect);
  curl_easy_setopt (curl, CURLOPT_WRITEDATA, b);
  if (ca_file)
    curl_easy_setopt (curl, CURLOPT_CAINFO, ca_file);
  if (curl_easy_perform (curl) == CURLE_OK &&
      curl_easy_getinfo (curl, CURLINFO_RESPONSE_CODE, &code) == CURLE_OK &&
      code == 200 && (j = json_loadb (b->data, b->len, 0, NULL)) != NULL &&
      json_is_number (load = json_object_get (j, "load")))
    r = json_number_value (load);
  json_decref (j);
  free (b);
  return r >= 0 ? r : -1;
}

static void *
poll_main (void *arg)
{
  struct attach_load *l = arg;
  CURL *curl = curl_easy_init ();

  pthread_mutex_lock (&l->lock);
  while (!l->stop) {
    struct timespec ts;
    size_t i;

    for (i = 0; i < l->n && !l->stop; i++) {
      double v = -1;
      pthread_mutex_unlock (&l->lock);
      if (curl && l->urls[i])
        v = fetch (curl, l->urls[i], l->ca_file);
      pthread_mutex_lock (&l->lock);
      l->load[i] = v;
    }
    l->rounds++;
    pthread_cond_broadcast (&l->cond);
    clock_gettime (CLOCK_REALTIME, &ts);
    ts.tv_sec += POLL_SECONDS;
    if (!l->stop)
      pthread_cond_timedwait (&l->cond, &l->lock, &ts);
  }
  pthread_mutex_unlock (&l->lock);
  if (curl)
    curl_easy_cleanup (curl);
  return NULL;
}

struct attach_load *
attach_load_start (char **urls, size_t n, const char *ca_file)
{
  struct attach_load *l = calloc (1, sizeof *l);
  size_t i;
  int err;

  if (l == NULL) {
    df_error_errno ("load figures");
    return NULL;
  }
  curl_global_init (CURL_GLOBAL_DEFAULT);
  l->urls = urls;
  l->n = n;
  l->ca_file = ca_file ? strdup (ca_file) : NULL;
  for (i = 0; i < DF_UPSTREAM_MAX_SERVERS; i++)
    l->load[i] = -1;
  pthread_mutex_init (&l->lock, NULL);
  pthread_cond_init (&l->cond, NULL);
  err = pthread_create (&l->thread, NULL, poll_main, l);
  if (err) {
    df_error (err, "load figure thread: %m");
    pthread_mutex_destroy (&l->lock);
    pthread_cond_destroy (&l->cond);
    free (l->ca_file);
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

  if (l == NULL)
    return;
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
  free (l->ca_file);
  free (l);
}
