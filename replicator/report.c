/* diskfarm-replicator — progress, summaries and the JSON report (see
 * report.h).
 */
#include <config.h>

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "report.h"
#include "util.h"

struct repl_report {
  bool json, progress, quiet;
  json_t *root;                 /* the --json document */
  json_t *tree;                 /* the tree being synced */
  char *tree_name;
  uint64_t tree_start_ns;
  bool drawn;                   /* a progress line is on the screen */
  bool all_ok;
};

struct repl_report *
repl_report_new (const char *server, const char *source, bool json,
                 bool progress, bool quiet)
{
  struct repl_report *r = calloc (1, sizeof *r);

  if (r == NULL)
    return NULL;
  r->json = json;
  r->progress = progress && !json && !quiet;
  r->quiet = quiet;
  r->all_ok = true;
  r->root = json_pack ("{s:s, s:s?, s:[]}", "server", server, "source", source,
                       "trees");
  if (r->root == NULL) {
    free (r);
    return NULL;
  }
  return r;
}

void
repl_report_free (struct repl_report *r)
{
  if (r == NULL)
    return;
  json_decref (r->root);
  json_decref (r->tree);
  free (r->tree_name);
  free (r);
}

static void
clear_line (struct repl_report *r)
{
  if (r->drawn) {
    fputs ("\r\033[K", stderr);
    r->drawn = false;
  }
}

void
repl_report_begin (struct repl_report *r, const char *tree)
{
  json_decref (r->tree);
  free (r->tree_name);
  r->tree_name = strdup (tree);
  r->tree = json_pack ("{s:s, s:[], s:[], s:[], s:[], s:[]}", "tree", tree,
                       "errors", "warnings", "notes", "plan", "moved");
  r->tree_start_ns = df_now_mono_ns ();
}

void
repl_report_progress (void *opaque, uint64_t done, uint64_t total)
{
  struct repl_report *r = opaque;
  double secs = (df_now_mono_ns () - r->tree_start_ns) / 1e9;
  double rate = secs > 0 ? done / secs : 0;
  char d[32], t[32], rt[32], eta[32] = "--:--";

  if (!r->progress || total == 0)
    return;
  if (rate > 0 && total > done) {
    unsigned long s = (total - done) / rate;
    snprintf (eta, sizeof eta, "%lu:%02lu", s / 60, s % 60);
  }
  df_format_size (done, d, sizeof d);
  df_format_size (total, t, sizeof t);
  df_format_size ((uint64_t) rate, rt, sizeof rt);
  fprintf (stderr, "\r\033[K%s: %s of %s, %s/s, ETA %s",
           r->tree_name ? r->tree_name : "", d, t, rt, eta);
  fflush (stderr);
  r->drawn = true;
}

void
repl_report_error (void *opaque, bool warning, const char *msg)
{
  struct repl_report *r = opaque;

  clear_line (r);
  json_array_append_new (json_object_get (r->tree, warning ? "warnings"
                                          : "errors"), json_string (msg));
  if (!r->json || !warning)
    fprintf (stderr, "diskfarm-replicator: %s%s: %s\n",
             warning ? "warning: " : "", r->tree_name, msg);
}

void
repl_report_moved (void *opaque, const char *path, const char *how,
                   const char *from)
{
  struct repl_report *r = opaque;

  json_array_append_new (json_object_get (r->tree, "moved"), json_pack (
      "{s:s, s:s, s:s?}", "path", path, "how", how, "from", from));
}

void
repl_report_note (struct repl_report *r, const char *fmt, ...)
{
  char buf[512];
  va_list ap;

  va_start (ap, fmt);
  vsnprintf (buf, sizeof buf, fmt, ap);
  va_end (ap);
  json_array_append_new (json_object_get (r->tree, "notes"), json_string (buf));
  if (!r->json && !r->quiet) {
    clear_line (r);
    printf ("%s: %s\n", r->tree_name, buf);
  }
}

void
repl_report_end (struct repl_report *r, const struct repl_stats *s,
                 uint64_t wire_in, uint64_t wire_out, bool ok)
{
  double secs = (df_now_mono_ns () - r->tree_start_ns) / 1e9;
  unsigned moved = s->files_downloaded + s->files_delta;
  char a[32], b[32], c[32];
  json_t *fig;

  clear_line (r);
  if (!ok)
    r->all_ok = false;
  fig = json_pack (
      "{s:b, s:{s:i, s:i, s:i, s:i, s:i, s:i}, s:{s:I, s:I, s:I, s:I}, s:f}",
      "ok", ok,
      "files", "downloaded", s->files_downloaded, "delta", s->files_delta,
      "mtime_fixed", s->files_mtime, "deleted", s->files_deleted,
      "failed", s->files_failed, "identical", s->files_same,
      "bytes", "files", (json_int_t) s->bytes_files,
      "wire_in", (json_int_t) wire_in, "wire_out", (json_int_t) wire_out,
      "saved_by_deltas", (json_int_t) s->bytes_saved,
      "seconds", secs);
  if (fig)
    json_object_update (r->tree, fig);
  json_decref (fig);
  json_array_append (json_object_get (r->root, "trees"), r->tree);
  if (r->json || r->quiet)
    return;
  printf ("%s: %s; %u moved (%u whole, %u by delta), %u mtime fixed, "
          "%u deleted, %u identical, %u failed; %s moved, %s on the wire, "
          "%s saved by deltas; %.1f s\n", r->tree_name, ok ? "ok" : "FAILED",
          moved, s->files_downloaded, s->files_delta, s->files_mtime,
          s->files_deleted, s->files_same, s->files_failed,
          df_format_size (s->bytes_files, a, sizeof a),
          df_format_size (wire_in + wire_out, b, sizeof b),
          df_format_size (s->bytes_saved, c, sizeof c), secs);
  fflush (stdout);
}

void
repl_report_plan (struct repl_report *r, const struct repl_action *a)
{
  char size[32] = "";

  if (a->file)
    df_format_size (a->file->size, size, sizeof size);
  json_array_append_new (json_object_get (r->tree, "plan"), json_pack (
      "{s:s, s:s, s:s?, s:s?, s:I}", "action", repl_act_name (a->act),
      "path", a->path, "basis", a->basis,
      "from", a->nsources ? a->sources[0] : NULL,
      "size", (json_int_t) (a->file ? a->file->size : 0)));
  if (r->json || a->act == REPL_NOTHING)
    return;
  printf ("%s: %s %s%s%s%s%s%s%s%s\n", r->tree_name, repl_act_name (a->act),
          a->path, size[0] ? " (" : "", size, size[0] ? ")" : "",
          a->basis ? " on " : "", a->basis ? a->basis : "",
          a->nsources ? " from " : "", a->nsources ? a->sources[0] : "");
}

int
repl_report_finish (struct repl_report *r)
{
  json_object_set_new (r->root, "ok", json_boolean (r->all_ok));
  if (r->json) {
    char *text = json_dumps (r->root, JSON_INDENT (2));
    if (text) {
      puts (text);
      free (text);
    }
  }
  return r->all_ok ? 0 : 1;
}
