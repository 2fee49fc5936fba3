/* diskfarm-replicator — relays (see relay.h). */
#include <config.h>

#include <dirent.h>
#include <endian.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cleanup.h"
#include "error.h"
#include "gwapi/gwapi.h"
#include "relay.h"
#include "task-int.h"
#include "util.h"

static char *
sibling (const struct repl_task *t, const char *suffix)
{
  return repl_stage_file_path (t->run->st, t->f, suffix);
}

/* A resumed copy: what an earlier run wrote (its data regions) has
 * arrived too.  Its holes are fetched again, and logged as they come.
 */
static void
note_resumed (struct repl_task *t)
{
  off_t off = 0, end;

  if (t->got_fd < 0 || t->fd < 0 || !t->run->resume_ok)
    return;
  while ((off = lseek (t->fd, off, SEEK_DATA)) != -1) {
    end = lseek (t->fd, off, SEEK_HOLE);
    if (end == -1 || end <= off)
      break;
    repl_relay_note (t, off, end);
    off = end;
  }
}

void
repl_relay_open (struct repl_task *t)
{
  CLEANUP_FREE char *log = NULL;

  if (t->got_fd >= 0 || t->run->store == NULL)
    return;
  log = sibling (t, "got");
  if (log == NULL) {
    df_error_clear ();
    return;
  }
  /* A new inode: a reader of an earlier run's log sees it abandoned. */
  unlink (log);
  t->got_fd = open (log, O_WRONLY | O_CREAT | O_EXCL | O_APPEND | O_CLOEXEC |
                    O_NOFOLLOW, 0600);
  note_resumed (t);
}

void
repl_relay_note (struct repl_task *t, uint64_t start, uint64_t end)
{
  uint64_t rec[2] = { htole64 (start), htole64 (end) };

  if (t->got_fd < 0)
    return;
  /* O_APPEND: one record lands whole.  A failure stops the relaying. */
  if (write (t->got_fd, rec, sizeof rec) != (ssize_t) sizeof rec)
    repl_relay_stop (t);
}

void
repl_relay_stop (struct repl_task *t)
{
  CLEANUP_FREE char *log = NULL;

  if (t->got_fd < 0)
    return;
  log = sibling (t, "got");
  if (log)
    unlink (log);
  df_error_clear ();
  close (t->got_fd);
  t->got_fd = -1;
}

void
repl_relay_done (struct repl_task *t)
{
  CLEANUP_FREE char *done = NULL;

  if (t->run->store == NULL || t->spath == NULL)
    return;
  done = sibling (t, "done");
  if (done) {
    unlink (done);
    if (link (t->spath, done) == -1)
      df_error_clear ();      /* peers then take it from elsewhere */
  }
  df_error_clear ();
}

void
repl_relay_undone (struct repl_task *t)
{
  CLEANUP_FREE char *done = NULL;

  if (t->run->store == NULL)
    return;
  done = sibling (t, "done");
  if (done)
    unlink (done);
  df_error_clear ();
}

void
repl_relay_tidy (struct repl_stage *st)
{
  CLEANUP_FREE char *dir = repl_stage_live_path (st, DF_STAGING_DIR);
  DIR *d = dir ? opendir (dir) : NULL;
  struct dirent *e;

  df_error_clear ();
  if (d == NULL)
    return;
  while ((e = readdir (d)) != NULL) {
    size_t n = strlen (e->d_name);
    if (n > 5 && strcmp (e->d_name + n - 5, ".done") == 0)
      unlinkat (dirfd (d), e->d_name, 0);
  }
  closedir (d);
}

bool
repl_relay_now (const struct repl_task *t)
{
  return t->src < t->a->nrelay;
}

char *
repl_relay_url (const struct repl_task *t)
{
  char hex[2 * DF_HASH_LEN + 1];
  char *url;

  if (!repl_relay_now (t) || t->run->store == NULL)
    return repl_run_url (t->run, "files", t->f->path);
  df_hex (t->f->hash, DF_HASH_LEN, hex);
  if (asprintf (&url, "/v1/stores/%s/staged/%s?hash=%s", t->run->store,
                t->f->path, hex) == -1) {
    df_error_errno ("%s", t->f->path);
    return NULL;
  }
  return url;
}
