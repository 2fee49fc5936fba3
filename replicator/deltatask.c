/* diskfarm-replicator — a file by librsync delta (see task.h). */
#include <config.h>

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "cleanup.h"
#include "commit.h"
#include "error.h"
#include "log.h"
#include "pagecache.h"
#include "util.h"
#include "task-int.h"

struct delta_xfer {
  struct repl_task *t;
  CURL *h;
  bool checked, refused, bad_delta;
  char err[300];
  size_t errlen;
};

static int delta_post (struct repl_task *t);

static void
drop_delta (struct repl_task *t)
{
  repl_patch_free (t->patch);
  t->patch = NULL;
  if (t->fd >= 0) {
    close (t->fd);
    t->fd = -1;
  }
  if (t->spath)
    unlink (t->spath);
}

/* A delta that was no good: the whole file from the same source. */
static void
fall_back (struct repl_task *t)
{
  char *why = t->error;

  t->error = NULL;
  drop_delta (t);
  df_cache_release (t->basis_snap);     /* the basis is read no more */
  t->basis_snap = NULL;
  free (t->note);
  if (asprintf (&t->note, "%s; downloading the whole file instead",
                why ? why : "the delta failed") == -1)
    t->note = NULL;
  free (why);
  t->pass_failed = t->fatal = t->discard = false;
  if (repl_download_begin (t) == -1) {
    repl_task_fail (t, "%s", df_error_get ());
    repl_task_finish (t, -1);
  }
}

static int
delta_data (void *opaque, const char *data, size_t n)
{
  struct delta_xfer *x = opaque;
  long status = 0;

  if (!x->checked) {
    x->checked = true;
    curl_easy_getinfo (x->h, CURLINFO_RESPONSE_CODE, &status);
    x->refused = status != 200;
  }
  if (x->refused) {
    size_t room = sizeof x->err - 1 - x->errlen;
    memcpy (x->err + x->errlen, data, n < room ? n : room);
    x->errlen += n < room ? n : room;
    return 0;
  }
  x->t->wire += n;
  if (x->t->t_first == 0)
    x->t->t_first = df_now_mono_ns ();
  if (repl_patch_feed (x->t->patch, data, n) == -1) {
    bool full = errno == ENOSPC || errno == EDQUOT;
    x->bad_delta = !full && errno != EIO;
    x->t->fatal = full;
    repl_task_fail (x->t, "%s", df_error_get ());
    return -1;
  }
  return 0;
}

static void
delta_header (void *opaque, const char *line, size_t n)
{
  struct delta_xfer *x = opaque;

  if (repl_task_etag_matches (x->t, line, n) == 0) {
    x->t->fatal = true;
    repl_task_fail (x->t, "it now serves another file");
  }
}

/* The delta arrived whole: apply its end, check, commit.  The answer
 * was complete (a source that stops mid-answer ends in a transfer
 * error, see delta_done), so a delta that still ends short, inside a
 * command, is corrupt like any other: the whole file instead.  Only a
 * full file system is not the delta's fault.
 */
/* Where the time of a delta went (--verbose). */
static void
log_stages (const struct repl_task *t, uint64_t t_end)
{
  uint64_t first = t->t_first ? t->t_first : t->t_last;

  df_debug ("delta", "%s: signature %.3f s, first delta byte %.3f s later, "
            "delta end %.3f s later, patch end and commit %.3f s later",
            t->f->path, (t->t_sig - t->t_begin) / 1e9,
            (first - t->t_sig) / 1e9, (t->t_last - first) / 1e9,
            (t_end - t->t_last) / 1e9);
}

static void
complete (struct repl_task *t)
{
  if (repl_patch_finish (t->patch) == -1) {
    repl_task_fail (t, "%s", df_error_get ());
    if (errno == ENOSPC || errno == EDQUOT) {
      drop_delta (t);
      repl_task_finish (t, -1);
    }
    else
      fall_back (t);
    return;
  }
  if (repl_commit (t->run->st, t->fd, t->spath, t->f, t->hasher) == -1) {
    repl_task_fail (t, "%s", df_error_get ());
    fall_back (t);
    return;
  }
  t->committed = true;
  log_stages (t, df_now_mono_ns ());
  repl_task_finish (t, 0);
}

static void
delta_done (void *opaque, CURLcode code, long status, const char *errbuf)
{
  struct delta_xfer *x = opaque;
  struct repl_task *t = x->t;
  const struct repl_gw *gw = repl_run_gw (t->run, repl_task_server (t));
  bool bad_delta = x->bad_delta;

  t->t_last = df_now_mono_ns ();
  if (code == CURLE_OK && status == 200 && !t->error) {
    free (x);
    complete (t);
    return;
  }
  if (!t->error && repl_gw_check (gw, NULL, code, errbuf, status, x->err,
                                  x->errlen) == -1)
    repl_task_fail (t, "the delta: %s", df_error_get ());
  free (x);
  if (bad_delta || status == 405 || status == 501) {
    fall_back (t);
    return;
  }
  drop_delta (t);
  if (!t->fatal && status != 401 && status != 403 && status != 404 &&
      t->src + 1 < t->a->nsources) {
    t->src++;                   /* another holder may answer */
    free (t->error);
    t->error = NULL;
    if (delta_post (t) == 0)
      return;
    repl_task_fail (t, "%s", df_error_get ());
  }
  repl_task_finish (t, -1);
}

static int
delta_post (struct repl_task *t)
{
  static const struct repl_xfer_ops ops = { delta_data, delta_header,
                                            delta_done };
  const struct repl_gw *gw = repl_run_gw (t->run, repl_task_server (t));
  CLEANUP_FREE char *url = repl_run_url (t->run, "delta", t->f->path);
  char errbuf[CURL_ERROR_SIZE];
  struct curl_slist *headers;
  struct delta_xfer *x;

  if (gw == NULL || url == NULL)
    return df_error (ENOENT, "no gateway for server %s", repl_task_server (t));
  if (t->fd == -1) {
    t->fd = open (t->spath, O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC |
                  O_NOFOLLOW, 0600);
    if (t->fd == -1)
      return df_error_errno ("%s", t->spath);
  }
  repl_patch_free (t->patch);
  t->patch = repl_patch_new (t->basis_fd, t->basis_size, t->fd, t->f->size);
  /* The output is written from offset 0 into a new file, in order: a
   * layer is hashed as the patch writes it.
   */
  df_layer_hasher_free (t->hasher);
  t->hasher = NULL;
  if (t->patch && t->f->kind == REPL_KIND_LAYER) {
    if ((t->hasher = df_layer_hasher_new ()) == NULL)
      df_error_clear ();        /* the commit hashes the file instead */
    repl_patch_hash_into (t->patch, t->hasher);
  }
  t->t_first = 0;               /* of this source's answer */
  x = t->patch ? calloc (1, sizeof *x) : NULL;
  if (x == NULL)
    return -1;
  x->t = t;
  x->h = repl_gw_handle (gw, url, &headers, errbuf);
  if (x->h == NULL) {
    free (x);
    return -1;
  }
  headers = curl_slist_append (headers, "Content-Type: application/octet-stream");
  headers = curl_slist_append (headers, "Expect:");
  curl_easy_setopt (x->h, CURLOPT_HTTPHEADER, headers);
  curl_easy_setopt (x->h, CURLOPT_POST, 1L);
  curl_easy_setopt (x->h, CURLOPT_POSTFIELDS, t->sig);
  curl_easy_setopt (x->h, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t) t->sig_len);
  t->wire += t->sig_len;
  return repl_engine_add (t->run->e, x->h, headers, &ops, x, t->f->size / 20);
}

int
repl_delta_begin (struct repl_task *t)
{
  CLEANUP_FREE char *basis = repl_stage_live_path (t->run->st, t->a->basis);
  struct stat sb;

  if (basis == NULL)
    return -1;
  t->delta = t->delta_tried = true;
  t->t_begin = df_now_mono_ns ();
  t->basis_fd = open (basis, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
  if (t->basis_fd == -1 || fstat (t->basis_fd, &sb) == -1)
    return df_error_errno ("%s", basis);
  t->basis_size = sb.st_size;
  df_cache_release (t->basis_snap);
  t->basis_snap = df_cache_snapshot (t->basis_fd, 0, t->basis_size);
  free (t->sig);
  t->sig = NULL;
  if (repl_signature (t->basis_fd, t->basis_size, &t->sig, &t->sig_len) == -1) {
    df_error_prefix ("%s", basis);
    return -1;
  }
  t->t_sig = df_now_mono_ns ();
  t->spath = repl_stage_file_path (t->run->st, t->f, "delta");
  if (t->spath == NULL)
    return -1;
  return delta_post (t);
}
