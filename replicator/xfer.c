/* diskfarm-replicator — the transfer engine (see xfer.h). */
#include <config.h>

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "error.h"
#include "util.h"
#include "xfer.h"

#define PROGRESS_NS (500 * 1000000ULL)

struct xfer {
  struct repl_engine *e;
  struct xfer *prev, *next;     /* the engine's list */
  CURL *h;
  struct curl_slist *headers;
  const struct repl_xfer_ops *ops;
  void *opaque;
  bool aborted;                 /* data said stop */
  char errbuf[CURL_ERROR_SIZE];
};

struct repl_engine {
  CURLM *multi;
  unsigned jobs;
  uint64_t bwlimit;
  struct xfer *list;            /* transfers added, not done */
  size_t running;
  uint64_t expect, got;         /* body bytes, for progress */
  uint64_t wire_in, wire_out;
  repl_progress_fn progress;
  void *progress_opaque;
  uint64_t last_progress_ns;
};

struct repl_engine *
repl_engine_new (unsigned jobs, uint64_t bwlimit)
{
  struct repl_engine *e = calloc (1, sizeof *e);

  if (e == NULL || (e->multi = curl_multi_init ()) == NULL) {
    free (e);
    df_error (ENOMEM, "curl");
    return NULL;
  }
  e->jobs = jobs ? jobs : 1;
  e->bwlimit = bwlimit;
  curl_multi_setopt (e->multi, CURLMOPT_MAX_TOTAL_CONNECTIONS, (long) e->jobs);
  curl_multi_setopt (e->multi, CURLMOPT_MAX_HOST_CONNECTIONS, (long) e->jobs);
  return e;
}

static void
xfer_free (struct xfer *x)
{
  struct repl_engine *e = x->e;

  if (x->prev)
    x->prev->next = x->next;
  else
    e->list = x->next;
  if (x->next)
    x->next->prev = x->prev;
  e->running--;
  curl_multi_remove_handle (e->multi, x->h);
  curl_easy_cleanup (x->h);
  curl_slist_free_all (x->headers);
  free (x);
}

void
repl_engine_free (struct repl_engine *e)
{
  if (e == NULL)
    return;
  /* Transfers still there were abandoned (a failed run). */
  while (e->list)
    xfer_free (e->list);
  curl_multi_cleanup (e->multi);
  free (e);
}

void
repl_engine_set_progress (struct repl_engine *e, repl_progress_fn fn,
                          void *opaque)
{
  e->progress = fn;
  e->progress_opaque = opaque;
}

/* The limit is shared equally by the transfers that can run now (curl
 * reads the option as it goes, so running transfers follow).
 */
static void
share_bandwidth (struct repl_engine *e)
{
  size_t n = e->running < e->jobs ? e->running : e->jobs;
  curl_off_t each;
  struct xfer *x;

  if (e->bwlimit == 0 || n == 0)
    return;
  each = e->bwlimit / n ? (curl_off_t) (e->bwlimit / n) : 1;
  for (x = e->list; x; x = x->next)
    curl_easy_setopt (x->h, CURLOPT_MAX_RECV_SPEED_LARGE, each);
}

static size_t
on_data (char *p, size_t size, size_t n, void *opaque)
{
  struct xfer *x = opaque;
  size_t len = size * n;

  x->e->got += len;
  if (x->ops->data (x->opaque, p, len) == -1) {
    x->aborted = true;
    return 0;                   /* CURLE_WRITE_ERROR */
  }
  return len;
}

static size_t
on_header (char *p, size_t size, size_t n, void *opaque)
{
  struct xfer *x = opaque;

  if (x->ops->header)
    x->ops->header (x->opaque, p, size * n);
  return size * n;
}

int
repl_engine_add (struct repl_engine *e, CURL *h, struct curl_slist *headers,
                 const struct repl_xfer_ops *ops, void *opaque,
                 uint64_t expect)
{
  struct xfer *x = calloc (1, sizeof *x);

  if (x == NULL) {
    curl_easy_cleanup (h);
    curl_slist_free_all (headers);
    return df_error_errno ("transfer");
  }
  x->e = e;
  x->h = h;
  x->headers = headers;
  x->ops = ops;
  x->opaque = opaque;
  curl_easy_setopt (h, CURLOPT_PRIVATE, x);
  curl_easy_setopt (h, CURLOPT_ERRORBUFFER, x->errbuf);
  curl_easy_setopt (h, CURLOPT_WRITEFUNCTION, on_data);
  curl_easy_setopt (h, CURLOPT_WRITEDATA, x);
  curl_easy_setopt (h, CURLOPT_HEADERFUNCTION, on_header);
  curl_easy_setopt (h, CURLOPT_HEADERDATA, x);
  /* Under a receive-speed limit, reads of curl's default size: with
   * bigger ones (download.c asks 512 KiB) the limit does not hold (16
   * MiB came in 0.6 s at 2 MiB/s).
   */
  if (e->bwlimit)
    curl_easy_setopt (h, CURLOPT_BUFFERSIZE, (long) CURL_MAX_WRITE_SIZE);
  if (curl_multi_add_handle (e->multi, h) != CURLM_OK) {
    curl_easy_cleanup (h);
    curl_slist_free_all (headers);
    free (x);
    return df_error (ENOMEM, "curl_multi_add_handle");
  }
  x->next = e->list;
  if (e->list)
    e->list->prev = x;
  e->list = x;
  e->running++;
  share_bandwidth (e);
  e->expect += expect;
  return 0;
}

static void
count_wire (struct repl_engine *e, CURL *h)
{
  curl_off_t down = 0, up = 0;
  long hdr = 0, req = 0;

  curl_easy_getinfo (h, CURLINFO_SIZE_DOWNLOAD_T, &down);
  curl_easy_getinfo (h, CURLINFO_SIZE_UPLOAD_T, &up);
  curl_easy_getinfo (h, CURLINFO_HEADER_SIZE, &hdr);
  curl_easy_getinfo (h, CURLINFO_REQUEST_SIZE, &req);
  e->wire_in += down + hdr;
  e->wire_out += up + req;
}

/* Finished transfers: their done callbacks, then they go.  The number
 * reaped.
 */
static unsigned
reap (struct repl_engine *e)
{
  unsigned n = 0;
  CURLMsg *m;
  int left;

  while ((m = curl_multi_info_read (e->multi, &left)) != NULL) {
    struct xfer *x;
    char *priv = NULL;
    long status = 0;
    CURLcode code = m->data.result;

    if (m->msg != CURLMSG_DONE)
      continue;
    curl_easy_getinfo (m->easy_handle, CURLINFO_PRIVATE, &priv);
    x = (struct xfer *) priv;
    curl_easy_getinfo (x->h, CURLINFO_RESPONSE_CODE, &status);
    count_wire (e, x->h);
    curl_multi_remove_handle (e->multi, x->h);
    /* done may add transfers; x leaves the list after it ran. */
    x->ops->done (x->opaque, x->aborted ? CURLE_ABORTED_BY_CALLBACK : code,
                  status, x->errbuf);
    xfer_free (x);
    share_bandwidth (e);
    n++;
  }
  return n;
}

static void
report (struct repl_engine *e, bool force)
{
  uint64_t now = df_now_mono_ns ();

  if (e->progress == NULL || (!force && now - e->last_progress_ns < PROGRESS_NS))
    return;
  e->last_progress_ns = now;
  e->progress (e->progress_opaque, e->got, e->expect);
}

int
repl_engine_run (struct repl_engine *e)
{
  int still = 0;

  while (e->running > 0) {
    CURLMcode mc = curl_multi_perform (e->multi, &still);

    /* Transfers that ended go first: their done callbacks may start
     * the next ones, which must not wait for the poll's timeout (one
     * step of a file after another, each a short request).
     */
    if (mc == CURLM_OK && reap (e) == 0 && e->running > 0)
      mc = curl_multi_poll (e->multi, NULL, 0, 200, NULL);
    if (mc != CURLM_OK)
      return df_error (EIO, "curl: %s", curl_multi_strerror (mc));
    report (e, false);
  }
  report (e, true);
  return 0;
}

uint64_t
repl_engine_wire_in (const struct repl_engine *e)
{
  return e->wire_in;
}

uint64_t
repl_engine_wire_out (const struct repl_engine *e)
{
  return e->wire_out;
}
