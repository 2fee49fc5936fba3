/* diskfarm-replicator — file tasks: start, finish, shared helpers (see
 * task.h).
 */
#include <config.h>

#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include "cleanup.h"
#include "commit.h"
#include "error.h"
#include "pagecache.h"
#include "task-int.h"

const struct repl_gw *
repl_run_gw (const struct repl_run *run, const char *server)
{
  size_t i;

  for (i = 0; i < run->ngws; i++)
    if (strcmp (run->gws[i].server, server) == 0)
      return &run->gws[i];
  return NULL;
}

char *
repl_run_url (const struct repl_run *run, const char *what, const char *path)
{
  char *url;
  int n = run->store
    ? asprintf (&url, "/v1/stores/%s/%s/%s", run->store, what, path)
    : asprintf (&url, "/v1/farm/%s/%s", what, path);

  if (n == -1) {
    df_error_errno ("%s", path);
    return NULL;
  }
  return url;
}

bool
repl_holes_work (struct repl_stage *st)
{
  struct repl_file probe = { .path = (char *) "probe" };
  CLEANUP_FREE char *p = NULL;
  bool ok = false;
  int fd;

  memset (probe.hash, 0, sizeof probe.hash);
  p = repl_stage_file_path (st, &probe, "probe");
  fd = p ? open (p, O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0600) : -1;
  if (fd >= 0) {
    ok = ftruncate (fd, 1 << 20) == 0 && lseek (fd, 0, SEEK_DATA) == -1 &&
      errno == ENXIO;
    close (fd);
    unlink (p);
  }
  df_error_clear ();
  return ok;
}

const char *
repl_task_server (const struct repl_task *t)
{
  return t->a->sources[t->src];
}

void
repl_task_fail (struct repl_task *t, const char *fmt, ...)
{
  CLEANUP_FREE char *msg = NULL;
  va_list ap;
  int n;

  if (t->error)
    return;
  va_start (ap, fmt);
  n = vasprintf (&msg, fmt, ap);
  va_end (ap);
  if (n == -1)
    msg = NULL;
  if (asprintf (&t->error, "%s from %s: %s", t->f->path, repl_task_server (t),
                msg ? msg : "out of memory") == -1)
    t->error = NULL;
}

int
repl_task_etag_matches (const struct repl_task *t, const char *line, size_t n)
{
  char value[160];
  uint8_t hash[DF_HASH_LEN];
  size_t i, o = 0;

  if (n < 5 || strncasecmp (line, "etag:", 5) != 0)
    return -1;
  for (i = 5; i < n && o + 1 < sizeof value; i++)
    if (!isspace ((unsigned char) line[i]) && line[i] != '"')
      value[o++] = line[i];
  value[o] = '\0';
  if (repl_hash_parse (value, hash) == -1) {
    df_error_clear ();
    return 0;
  }
  return memcmp (hash, t->f->hash, DF_HASH_LEN) == 0;
}

void
repl_task_finish (struct repl_task *t, int r)
{
  df_cache_release (t->basis_snap);     /* the basis is read no more */
  t->basis_snap = NULL;
  repl_sink_free (t->sink);     /* all hashed: the hasher is ours again */
  t->sink = NULL;
  if (r == 0 && !t->committed) {
    repl_relay_done (t);        /* peers still reading finish from it */
    if (repl_commit (t->run->st, t->fd, t->spath, t->f, t->hasher) == -1) {
      repl_task_fail (t, "%s", df_error_get ());
      repl_relay_undone (t);
      t->discard = true;        /* it arrived whole, and it is wrong */
      r = -1;
    }
  }
  repl_relay_stop (t);
  if (t->fd >= 0) {
    close (t->fd);
    t->fd = -1;
  }
  if (r == -1 && t->discard)
    unlink (t->spath);
  if (r == 0) {
    t->run->stats->bytes_files += t->f->size;
    if (t->delta) {
      t->run->stats->files_delta++;
      if (t->f->size > t->wire)
        t->run->stats->bytes_saved += t->f->size - t->wire;
    }
    else
      t->run->stats->files_downloaded++;
  }
  t->done (t->opaque, t, r);
}

struct repl_task *
repl_task_start (struct repl_run *run, const struct repl_action *a,
                 repl_task_done_fn done, void *opaque)
{
  struct repl_task *t = calloc (1, sizeof *t);
  int r;

  if (t == NULL) {
    df_error_errno ("%s", a->path);
    return NULL;
  }
  t->run = run;
  t->a = a;
  t->f = a->file;
  t->done = done;
  t->opaque = opaque;
  t->fd = t->basis_fd = t->got_fd = -1;
  if (a->nsources == 0) {
    free (t);
    df_error (ENOENT, "%s: no server to take it from", a->path);
    return NULL;
  }
  t->delta = a->act == REPL_DELTA;
  r = t->delta ? repl_delta_begin (t) : repl_download_begin (t);
  if (r == -1) {
    repl_task_free (t);
    return NULL;
  }
  return t;
}

const char *
repl_task_error (const struct repl_task *t)
{
  return t->error ? t->error : "failed";
}

bool
repl_task_was_delta (const struct repl_task *t)
{
  return t->delta;
}

bool
repl_task_was_relayed (const struct repl_task *t)
{
  return !t->delta && repl_relay_now (t);
}

const char *
repl_task_from (const struct repl_task *t)
{
  return repl_task_server (t);
}

const char *
repl_task_note (const struct repl_task *t)
{
  return t->note;
}

void
repl_task_free (struct repl_task *t)
{
  if (t == NULL)
    return;
  if (t->fd >= 0)
    close (t->fd);
  df_cache_release (t->basis_snap);
  if (t->basis_fd >= 0)
    close (t->basis_fd);
  repl_relay_stop (t);
  repl_patch_free (t->patch);
  repl_sink_free (t->sink);
  df_layer_hasher_free (t->hasher);
  free (t->sig);
  free (t->spath);
  free (t->error);
  free (t->note);
  free (t);
}
