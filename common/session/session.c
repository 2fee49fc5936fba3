/* diskfarm — device sessions: the set of one serving process.
 *
 * A session's life under the set's lock is a few fields (state, refs,
 * conns); its file I/O happens outside the lock, done by the one thread
 * that moved it to a busy state:
 *
 *   (new) --opener--> OPENING --setup ok--> READY --last close--> PARKING
 *                        |                  ^   ^                   |
 *                        v setup failed     |   +----- parked ------+
 *                     FAILED          resume: OPENING <- next opener
 *
 * Openers of the same DEVICE@SESSION that find it OPENING or PARKING
 * wait on its condition variable; nobody else waits.  A session leaves
 * the list (superseded, expired, failed) under the lock and is freed
 * outside it by whoever drops the last reference or pin.
 */
#include <config.h>

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "cleanup.h"
#include "error.h"
#include "session/session-int.h"
#include "util.h"

void
session_log (struct df_sessions *set, enum df_log_level level,
             const char *fmt, ...)
{
  char msg[1024];
  va_list ap;

  if (set->log == NULL)
    return;
  va_start (ap, fmt);
  vsnprintf (msg, sizeof msg, fmt, ap);
  va_end (ap);
  set->log (set->log_opaque, level, msg);
}

static struct df_session_counters *
default_alloc (void *opaque, const char *device, const char *session)
{
  (void) opaque;
  (void) device;
  (void) session;
  return calloc (1, sizeof (struct df_session_counters));
}

static void
default_free (void *opaque, struct df_session_counters *c)
{
  (void) opaque;
  free (c);
}

struct df_sessions *
df_sessions_new (const struct df_sessions_params *p)
{
  struct df_sessions *set = calloc (1, sizeof *set);

  if (set == NULL ||
      (p->cache_dir && (set->cache_dir = strdup (p->cache_dir)) == NULL)) {
    df_error_errno ("sessions");
    free (set);
    return NULL;
  }
  set->farm = p->farm;
  set->device_limit = p->device_limit;
  set->ram_limit = p->ram_limit;
  set->linger = p->linger;
  set->budget = p->budget;
  set->log = p->log;
  set->log_opaque = p->log_opaque;
  set->counters_alloc = p->counters_alloc ? p->counters_alloc : default_alloc;
  set->counters_free = p->counters_alloc ? p->counters_free : default_free;
  set->counters_opaque = p->counters_opaque;
  pthread_mutex_init (&set->lock, NULL);
  pthread_cond_init (&set->changed, NULL);
  return set;
}

static struct df_session *
session_new (struct df_sessions *set, const char *device, const char *name)
{
  struct df_session *s = calloc (1, sizeof *s);

  if (s == NULL) {
    df_error_errno ("session %s@%s", device, name);
    return NULL;
  }
  s->set = set;
  strcpy (s->device, device);
  strcpy (s->name, name);
  s->id = ++set->next_id;
  s->state = SESS_OPENING;
  pthread_mutex_init (&s->bdev_lock, NULL);
  pthread_cond_init (&s->cond, NULL);
  return s;
}

/* Frees the memory of a session nobody holds or looks at any more. */
static void
session_free (struct df_session *s)
{
  struct df_sessions *set = s->set;

  if (s->counters)
    set->counters_free (set->counters_opaque, s->counters);
  pthread_mutex_destroy (&s->bdev_lock);
  pthread_cond_destroy (&s->cond);
  free (s->path);
  free (s->dir);
  free (s->vdisk_store);
  free (s->vdisk);
  free (s->msg);
  free (s);
}

/* Takes s off the list.  set->lock held. */
static void
unlink_session (struct df_session *s)
{
  struct df_session **p;

  if (!s->linked)
    return;
  for (p = &s->set->list; *p; p = &(*p)->next)
    if (*p == s) {
      *p = s->next;
      break;
    }
  s->linked = false;
  s->next = NULL;
}

/* Drops one reference of a waiter or user; true if the caller must free
 * the session's memory.  set->lock held.
 */
static bool
drop_ref (struct df_session *s)
{
  return --s->refs == 0 && s->pins == 0 &&
    (s->state == SESS_GONE || s->state == SESS_FAILED);
}

/* Marks an unused session for ending (set->lock held): it stays listed,
 * CLOSING, so that openers of its name wait until its cache is closed
 * and, with remove, its file is gone.
 */
static void
doom (struct df_session *s, bool remove, struct df_session **doomed)
{
  s->state = SESS_CLOSING;
  s->remove = remove;
  s->dnext = *doomed;
  *doomed = s;
}

/* Ends the doomed sessions (no lock held): file I/O, then off the list. */
static void
end_all (struct df_sessions *set, struct df_session *doomed)
{
  struct df_session *s, *next;
  bool last;

  for (s = doomed; s; s = next) {
    next = s->dnext;
    session_release (s, s->remove);
    pthread_mutex_lock (&set->lock);
    unlink_session (s);
    s->state = SESS_GONE;
    pthread_cond_broadcast (&s->cond);
    last = s->refs == 0 && s->pins == 0;
    pthread_mutex_unlock (&set->lock);
    if (last)
      session_free (s);
  }
}

static struct df_session *
find_session (struct df_sessions *set, const char *device, const char *name)
{
  struct df_session *s;

  for (s = set->list; s; s = s->next)
    if (strcmp (s->device, device) == 0 && strcmp (s->name, name) == 0)
      return s;
  return NULL;
}

/* The device's older sessions that finished opening are superseded:
 * idle ones end now (onto *doomed), the others when their users leave.
 * Their names go into names (for the log, written once the lock is
 * gone).  A session that finishes opening after a newer one of the
 * device (its open was slow, the device rebooted meanwhile) supersedes
 * nothing: it is itself superseded, and returns false.  set->lock held.
 */
static bool
supersede (struct df_session *s, struct df_session **doomed, char *names,
           size_t len)
{
  struct df_session *o;
  size_t used = 0;

  names[0] = '\0';
  for (o = s->set->list; o; o = o->next)
    if (o != s && strcmp (o->device, s->device) == 0 && o->id > s->id &&
        strcmp (o->name, "0") != 0 &&
        (o->state == SESS_READY || o->state == SESS_PARKING)) {
      s->discard = true;
      return false;
    }
  for (o = s->set->list; o; o = o->next)
    if (o != s && strcmp (o->device, s->device) == 0 && !o->discard &&
        o->id < s->id &&
        (o->state == SESS_READY || o->state == SESS_PARKING)) {
      o->discard = true;
      if (used < len)
        used += snprintf (names + used, len - used, " %s", o->name);
      if (o->state == SESS_READY && o->refs == 0)
        doom (o, true, doomed);
    }
  return true;
}

/* The device's other session being parked or ended, pinned; NULL if
 * none.  set->lock held.
 */
static struct df_session *
settling (struct df_session *s)
{
  struct df_session *o;

  for (o = s->set->list; o; o = o->next)
    if (o != s && strcmp (o->device, s->device) == 0 &&
        (o->state == SESS_PARKING || o->state == SESS_CLOSING)) {
      o->pins++;
      return o;
    }
  return NULL;
}

void
session_wait_device (struct df_session *s)
{
  struct df_sessions *set = s->set;
  struct df_session *o;
  bool last;

  pthread_mutex_lock (&set->lock);
  while ((o = settling (s)) != NULL) {
    while (o->state == SESS_PARKING || o->state == SESS_CLOSING)
      pthread_cond_wait (&o->cond, &set->lock);
    last = --o->pins == 0 && o->refs == 0 && o->state == SESS_GONE;
    if (last) {
      pthread_mutex_unlock (&set->lock);
      session_free (o);
      pthread_mutex_lock (&set->lock);
    }
  }
  pthread_mutex_unlock (&set->lock);
}

void
session_discard_file (struct df_sessions *set, const char *device,
                      const char *name, const char *path)
{
  struct df_session *s, *doomed = NULL;

  pthread_mutex_lock (&set->lock);
  if (find_session (set, device, name) == NULL &&
      (s = session_new (set, device, name)) != NULL) {
    s->spec.mode = DF_CACHE_DISK;
    s->path = strdup (path);
    if (s->path == NULL) {
      pthread_mutex_unlock (&set->lock);
      session_free (s);
      return;
    }
    /* Listed, ending: openers of the name wait for the file to go. */
    s->linked = true;
    s->next = set->list;
    set->list = s;
    doom (s, true, &doomed);
  }
  pthread_mutex_unlock (&set->lock);
  end_all (set, doomed);
}

static bool
needs_attach (const struct df_session *s)
{
  return s->cache == NULL && s->private == NULL &&
    s->spec.mode != DF_CACHE_DEVICE;
}

static void
set_client (struct df_session *s, const char *client)
{
  if (client)
    snprintf (s->client, sizeof s->client, "%s", client);
}

/* A new session: set up outside the lock, then supersede the device's
 * other sessions and sweep their files.  Entered with set->lock held,
 * returns without it.
 */
static struct df_session *
open_new (struct df_sessions *set, const char *device, const char *name,
          const char *client)
{
  struct df_session *s = session_new (set, device, name), *doomed = NULL;
  bool last, boot = strcmp (name, "0") != 0;
  char superseded[256] = "";
  char *msg;
  int err;

  if (s == NULL) {
    pthread_mutex_unlock (&set->lock);
    return NULL;
  }
  s->refs = 1;
  s->linked = true;
  s->next = set->list;
  set->list = s;
  pthread_mutex_unlock (&set->lock);

  if (session_setup (s) == -1) {
    /* Waiters see the same error. */
    err = errno ? errno : EIO;
    msg = strdup (df_error_get ());
    session_release (s, false);
    pthread_mutex_lock (&set->lock);
    s->err = err;
    s->msg = msg;
    s->state = SESS_FAILED;
    unlink_session (s);
    pthread_cond_broadcast (&s->cond);
    last = drop_ref (s);
    pthread_mutex_unlock (&set->lock);
    if (last)
      session_free (s);
    errno = err;
    return NULL;
  }

  pthread_mutex_lock (&set->lock);
  s->state = SESS_READY;
  s->conns = 1;
  set_client (s, client);
  pthread_cond_broadcast (&s->cond);
  /* Session "0" (no session named: a tool, not a boot) leaves the
   * device's boot sessions alone.
   */
  if (boot && !supersede (s, &doomed, superseded, sizeof superseded))
    boot = false;               /* a newer session is the device's now */
  pthread_mutex_unlock (&set->lock);

  if (superseded[0])
    session_log (set, DF_LOG_DEBUG, "session %s@%s supersedes%s", device,
                 name, superseded);
  end_all (set, doomed);
  if (boot)
    session_sweep (set, s->dir, s->device);
  return s;
}

/* Resumes a parked session for its opener (set->lock held, returned
 * held); -1 with errno and a message.
 */
static int
resume (struct df_session *s, struct df_session **doomed)
{
  struct df_sessions *set = s->set;
  int r, err;

  s->state = SESS_OPENING;
  pthread_mutex_unlock (&set->lock);
  r = session_attach (s);
  err = errno;
  pthread_mutex_lock (&set->lock);
  s->state = SESS_READY;
  pthread_cond_broadcast (&s->cond);
  if (r == -1) {
    if (--s->refs == 0 && s->discard)
      doom (s, true, doomed);
    errno = err;
  }
  return r;
}

struct df_session *
df_session_open (struct df_sessions *set, const char *device,
                 const char *name, const char *client)
{
  struct df_session *s, *doomed = NULL;
  bool last;
  int err;

  if (df_name_check ("device", device) == -1 ||
      df_name_check ("session", name) == -1)
    return NULL;
  pthread_mutex_lock (&set->lock);
 again:
  s = find_session (set, device, name);
  if (s == NULL)
    return open_new (set, device, name, client);

  s->refs++;
  while (s->state == SESS_OPENING || s->state == SESS_PARKING ||
         s->state == SESS_CLOSING)
    pthread_cond_wait (&s->cond, &set->lock);
  if (s->state == SESS_GONE) {
    /* It ended (expired, superseded): a new one of that name starts. */
    if (drop_ref (s)) {
      pthread_mutex_unlock (&set->lock);
      session_free (s);
      pthread_mutex_lock (&set->lock);
    }
    goto again;
  }
  if (s->state == SESS_FAILED) {
    err = s->err;
    df_error (err, "%s", s->msg ? s->msg : strerror (err));
    last = drop_ref (s);
    pthread_mutex_unlock (&set->lock);
    if (last)
      session_free (s);
    errno = err;
    return NULL;
  }
  if (needs_attach (s) && s->discard) {
    /* Parked after a newer session superseded it: it ends, and a new
     * session of this name starts.
     */
    s->refs--;
    doom (s, true, &doomed);
    pthread_mutex_unlock (&set->lock);
    end_all (set, doomed);      /* frees it unless others wait on it */
    doomed = NULL;
    pthread_mutex_lock (&set->lock);
    goto again;
  }
  if (needs_attach (s) && resume (s, &doomed) == -1) {
    err = errno;
    pthread_mutex_unlock (&set->lock);
    end_all (set, doomed);
    errno = err;
    return NULL;
  }
  s->conns++;
  set_client (s, client);
  pthread_mutex_unlock (&set->lock);
  return s;
}

void
df_session_close (struct df_session *s)
{
  struct df_sessions *set;
  struct df_session *doomed = NULL;

  if (s == NULL)
    return;
  set = s->set;
  pthread_mutex_lock (&set->lock);
  s->conns--;
  if (--s->refs > 0) {
    pthread_mutex_unlock (&set->lock);
    return;
  }
  s->idle_since = df_now_mono_ns ();
  if (s->discard)
    doom (s, true, &doomed);
  else if (s->private || (s->cache && session_disk_mode (s->spec.mode))) {
    s->state = SESS_PARKING;
    pthread_mutex_unlock (&set->lock);
    session_park (s);
    pthread_mutex_lock (&set->lock);
    s->state = SESS_READY;
    s->idle_since = df_now_mono_ns ();
    pthread_cond_broadcast (&s->cond);
    /* Superseded while parking, and nobody came back meanwhile. */
    if (s->discard && s->refs == 0)
      doom (s, true, &doomed);
  }
  pthread_mutex_unlock (&set->lock);
  end_all (set, doomed);
}

/* Sessions whose linger time is over.  set->lock held. */
static struct df_session *
expired (struct df_sessions *set)
{
  uint64_t now = df_now_mono_ns ();
  uint64_t linger = (uint64_t) set->linger * 1000000000;
  struct df_session *s, *doomed = NULL;

  for (s = set->list; s; s = s->next)
    if (s->state == SESS_READY && s->refs == 0 &&
        now - s->idle_since >= linger)
      doom (s, true, &doomed);
  return doomed;
}

static void *
reaper_main (void *opaque)
{
  struct df_sessions *set = opaque;
  struct df_session *doomed, *s;
  struct timespec ts;

  pthread_mutex_lock (&set->lock);
  while (!set->stopping) {
    clock_gettime (CLOCK_REALTIME, &ts);
    ts.tv_sec += 1;
    pthread_cond_timedwait (&set->changed, &set->lock, &ts);
    if (set->stopping)
      break;
    doomed = expired (set);
    pthread_mutex_unlock (&set->lock);
    /* Ours until end_all: their names stay. */
    for (s = doomed; s; s = s->dnext)
      session_log (set, DF_LOG_DEBUG, "session %s@%s expired", s->device,
                   s->name);
    end_all (set, doomed);
    pthread_mutex_lock (&set->lock);
  }
  pthread_mutex_unlock (&set->lock);
  return NULL;
}

int
df_sessions_start (struct df_sessions *set)
{
  int err = pthread_create (&set->reaper, NULL, reaper_main, set);

  if (err)
    return df_error (err, "cannot start the session reaper: %m");
  set->reaper_running = true;
  return 0;
}

void
df_sessions_free (struct df_sessions *set)
{
  struct df_session *s;

  if (set == NULL)
    return;
  pthread_mutex_lock (&set->lock);
  set->stopping = true;
  pthread_cond_broadcast (&set->changed);
  pthread_mutex_unlock (&set->lock);
  if (set->reaper_running)
    pthread_join (set->reaper, NULL);
  /* Disk caches stay on disk for a restarted or another server. */
  while ((s = set->list) != NULL) {
    set->list = s->next;
    session_park (s);
    session_release (s, false);
    session_free (s);
  }
  pthread_mutex_destroy (&set->lock);
  pthread_cond_destroy (&set->changed);
  free (set->cache_dir);
  free (set);
}

int
df_sessions_foreach (struct df_sessions *set,
                     int (*fn) (void *, const struct df_session_figures *),
                     void *opaque)
{
  CLEANUP_FREE struct df_session **v = NULL;
  struct df_session *s, *gone = NULL;
  struct df_session_figures f;
  size_t n = 0, i;
  int r = 0;

  pthread_mutex_lock (&set->lock);
  for (s = set->list; s; s = s->next)
    n++;
  v = calloc (n ? n : 1, sizeof *v);
  n = 0;
  for (s = set->list; v && s; s = s->next)
    if (s->state == SESS_READY || s->state == SESS_PARKING) {
      s->pins++;
      v[n++] = s;
    }
  pthread_mutex_unlock (&set->lock);
  if (v == NULL)
    return df_error_errno ("sessions");

  for (i = 0; i < n && r == 0; i++) {
    df_session_figures (v[i], &f);
    r = fn (opaque, &f);
  }

  pthread_mutex_lock (&set->lock);
  for (i = 0; i < n; i++) {
    s = v[i];
    if (--s->pins == 0 && s->refs == 0 && s->state == SESS_GONE) {
      s->dnext = gone;
      gone = s;
    }
  }
  pthread_mutex_unlock (&set->lock);
  for (; gone; gone = s) {
    s = gone->dnext;
    session_free (gone);
  }
  return r == -1 ? -1 : 0;
}
