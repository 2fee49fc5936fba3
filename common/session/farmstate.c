/* diskfarm — farm snapshots and shared chains (see farmstate.h). */
#include <config.h>

#include <errno.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cleanup.h"
#include "error.h"
#include "session/farmstate.h"
#include "util.h"

struct snapshot {
  struct df_farm_ref pub;       /* first: the public view */
  struct df_farmstate *fs;
  struct df_farm *farm;
  struct df_farm_stamp stamp;   /* taken before the farm was read */
  uint64_t seq;                 /* order of the reads' starts */
  unsigned refs;                /* holders, and 1 while current */
};

struct chain {
  struct df_chain_ref pub;      /* first: the public view */
  char *key;                    /* VDISKDIR@VERSION */
  unsigned refs;
  struct chain *next;
};

/* Two locks, never held together, and never across file I/O (reading
 * the farm, opening or closing layers happens outside them):
 *   lock         current, seq, failed, and every snapshot's refs
 *   chains_lock  the chain list and every chain's refs
 */
struct df_farmstate {
  char *dir;
  char *server;                 /* NULL: the farm's choice */
  df_log_fn log;
  void *log_opaque;
  pthread_mutex_t lock;
  struct snapshot *current;
  uint64_t seq;
  struct df_farm_stamp failed;  /* of the last read that failed */
  pthread_mutex_t chains_lock;
  struct chain *chains;
};

void
df_farmstate_log (struct df_farmstate *fs, enum df_log_level level,
                  const char *fmt, ...)
{
  char msg[1024];
  va_list ap;

  if (fs->log == NULL)
    return;
  va_start (ap, fmt);
  vsnprintf (msg, sizeof msg, fmt, ap);
  va_end (ap);
  fs->log (fs->log_opaque, level, msg);
}

/* Reads the farm (no lock held).  The stamp was taken before. */
static struct snapshot *
read_farm (struct df_farmstate *fs, const struct df_farm_stamp *stamp)
{
  struct snapshot *s = calloc (1, sizeof *s);

  if (s == NULL) {
    df_error_errno ("farm %s", fs->dir);
    return NULL;
  }
  s->fs = fs;
  s->stamp = *stamp;
  s->farm = df_farm_open (fs->dir);
  if (s->farm == NULL ||
      (s->pub.server = df_farm_local_server (s->farm, fs->server)) == NULL) {
    df_farm_free (s->farm);
    free (s);
    return NULL;
  }
  s->pub.farm = s->farm;
  return s;
}

static void
snapshot_free (struct snapshot *s)
{
  if (s) {
    df_farm_free (s->farm);
    free (s);
  }
}

struct df_farmstate *
df_farmstate_new (const struct df_farmstate_params *p)
{
  struct df_farmstate *fs = calloc (1, sizeof *fs);
  struct df_farm_stamp stamp;

  if (fs == NULL || (fs->dir = strdup (p->dir)) == NULL ||
      (p->server && (fs->server = strdup (p->server)) == NULL)) {
    df_error_errno ("farm %s", p->dir);
    if (fs)
      free (fs->dir);
    free (fs);
    return NULL;
  }
  fs->log = p->log;
  fs->log_opaque = p->log_opaque;
  pthread_mutex_init (&fs->lock, NULL);
  pthread_mutex_init (&fs->chains_lock, NULL);
  df_farm_stamp_take (fs->dir, &stamp);
  fs->current = read_farm (fs, &stamp);
  if (fs->current == NULL) {
    df_farmstate_free (fs);
    return NULL;
  }
  fs->current->refs = 1;
  return fs;
}

void
df_farmstate_free (struct df_farmstate *fs)
{
  struct chain *c;

  if (fs == NULL)
    return;
  while ((c = fs->chains) != NULL) {
    fs->chains = c->next;
    df_bdev_close (c->pub.bdev);
    free (c->key);
    free (c);
  }
  snapshot_free (fs->current);
  pthread_mutex_destroy (&fs->lock);
  pthread_mutex_destroy (&fs->chains_lock);
  free (fs->server);
  free (fs->dir);
  free (fs);
}

/* The current snapshot, held, if the stamp now says it is still good
 * (or the farm is known unreadable as it is now).  Called with lock.
 */
static struct snapshot *
current_if_good (struct df_farmstate *fs, const struct df_farm_stamp *now)
{
  struct snapshot *cur = fs->current;

  if (!df_farm_stamp_changed (&cur->stamp, now) ||
      (fs->failed.valid && !df_farm_stamp_changed (&fs->failed, now))) {
    cur->refs++;
    return cur;
  }
  return NULL;
}

struct df_farm_ref *
df_farmstate_get (struct df_farmstate *fs)
{
  struct df_farm_stamp now;
  struct snapshot *s, *old = NULL;
  uint64_t seq;
  bool failed_first = false;
  char was[DF_NAME_MAX + 1] = "";

  df_farm_stamp_take (fs->dir, &now);
  pthread_mutex_lock (&fs->lock);
  s = current_if_good (fs, &now);
  seq = ++fs->seq;
  pthread_mutex_unlock (&fs->lock);
  if (s)
    return &s->pub;

  s = read_farm (fs, &now);
  pthread_mutex_lock (&fs->lock);
  if (s == NULL) {
    /* Keep serving the last good farm; say so once per change. */
    failed_first = !fs->failed.valid || fs->failed.digest != now.digest ||
      fs->failed.files != now.files;
    fs->failed = now;
    s = fs->current;
    s->refs++;
  }
  else if (fs->current->seq < seq) {
    old = fs->current;
    /* Without --server, which server this is can change with the farm. */
    if (strcmp (old->pub.server, s->pub.server) != 0)
      snprintf (was, sizeof was, "%s", old->pub.server);
    fs->current = s;
    s->seq = seq;
    s->refs = 2;                /* current, and the caller */
    if (--old->refs > 0)
      old = NULL;
    memset (&fs->failed, 0, sizeof fs->failed);
  }
  else
    s->refs = 1;                /* a newer read is current: ours alone */
  pthread_mutex_unlock (&fs->lock);
  if (failed_first)
    df_farmstate_log (fs, DF_LOG_ERROR, "farm %s changed but cannot be "
                      "read, keeping the last good one: %s", fs->dir,
                      df_error_get ());
  if (was[0])
    df_farmstate_log (fs, DF_LOG_WARNING, "farm %s: this server is now "
                      "\"%s\" (was \"%s\")", fs->dir, s->pub.server, was);
  snapshot_free (old);
  df_error_clear ();
  return &s->pub;
}

void
df_farm_ref_put (struct df_farm_ref *ref)
{
  struct snapshot *s = (struct snapshot *) ref;
  bool last;

  if (s == NULL)
    return;
  pthread_mutex_lock (&s->fs->lock);
  last = --s->refs == 0;
  pthread_mutex_unlock (&s->fs->lock);
  if (last)
    snapshot_free (s);
}

/* A held chain of key whose top is the version with id; chains_lock. */
static struct chain *
find_chain (struct df_farmstate *fs, const char *key, const uint8_t *id)
{
  struct chain *c;

  for (c = fs->chains; c; c = c->next)
    if (strcmp (c->key, key) == 0 &&
        memcmp (c->pub.id, id, DF_LAYER_ID_LEN) == 0) {
      c->refs++;
      return c;
    }
  return NULL;
}

/* Opens a version's chain, unshared yet (no lock held). */
static struct chain *
open_chain (const struct df_vdisk *vd, const struct df_version *v, char *key)
{
  struct chain *c = calloc (1, sizeof *c);

  if (c == NULL) {
    df_error_errno ("chain %s", key);
    free (key);
    return NULL;
  }
  c->key = key;
  c->pub.bdev = df_vdisk_open (vd, v->num, false);
  if (c->pub.bdev == NULL) {
    free (c->key);
    free (c);
    return NULL;
  }
  c->pub.version = v->num;
  c->pub.sealed = v->sealed;
  memcpy (c->pub.id, v->id, DF_LAYER_ID_LEN);
  memcpy (c->pub.hash, v->hash, DF_HASH_LEN);
  c->refs = 1;
  return c;
}

static void
chain_free (struct chain *c)
{
  df_bdev_close (c->pub.bdev);
  free (c->key);
  free (c);
}

struct df_chain_ref *
df_farmstate_chain (struct df_farmstate *fs, const struct df_vdisk *vd,
                    unsigned version)
{
  const struct df_version *v = df_vdisk_version (vd, version);
  char *key;
  struct chain *c, *mine;

  if (v == NULL) {
    df_error (ENOENT, "vdisk \"%s\" has no version %u", vd->name, version);
    return NULL;
  }
  if (asprintf (&key, "%s@%u", vd->dir, version) == -1) {
    df_error_errno ("chain");
    return NULL;
  }
  pthread_mutex_lock (&fs->chains_lock);
  c = find_chain (fs, key, v->id);
  pthread_mutex_unlock (&fs->chains_lock);
  if (c) {
    free (key);
    return &c->pub;
  }
  mine = open_chain (vd, v, key);
  if (mine == NULL)
    return NULL;
  pthread_mutex_lock (&fs->chains_lock);
  c = find_chain (fs, mine->key, v->id);
  if (c == NULL) {
    mine->next = fs->chains;
    fs->chains = mine;
    c = TAKE_PTR (mine);
  }
  pthread_mutex_unlock (&fs->chains_lock);
  if (mine)
    chain_free (mine);          /* another user opened it meanwhile */
  else
    df_farmstate_log (fs, DF_LOG_DEBUG, "opened %s", c->key);
  return &c->pub;
}

void
df_farmstate_chain_put (struct df_farmstate *fs, struct df_chain_ref *ref)
{
  struct chain *c = (struct chain *) ref, **p;

  if (c == NULL)
    return;
  pthread_mutex_lock (&fs->chains_lock);
  if (--c->refs > 0) {
    pthread_mutex_unlock (&fs->chains_lock);
    return;
  }
  for (p = &fs->chains; *p; p = &(*p)->next)
    if (*p == c) {
      *p = c->next;
      break;
    }
  pthread_mutex_unlock (&fs->chains_lock);
  df_farmstate_log (fs, DF_LOG_DEBUG, "closed %s", c->key);
  chain_free (c);
}
