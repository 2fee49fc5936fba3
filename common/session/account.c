/* diskfarm — device sessions: the device users get, which counts every
 * request, and what a session says about itself (figures, description).
 */
#include <config.h>

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "error.h"
#include "session/session-int.h"
#include "util.h"

#define ADD(field, n) __atomic_add_fetch (&(field), (n), __ATOMIC_RELAXED)
#define LOAD(field) __atomic_load_n (&(field), __ATOMIC_RELAXED)

/* The device below: stable while the caller holds the session (it
 * changes only when nobody does).
 */
static struct df_bdev *
below (struct df_bdev *b)
{
  struct df_session *s = ((struct counting *) b)->s;

  if (s->private)
    return s->private;
  if (s->cache)
    return s->cache;
  return s->chain->bdev;
}

/* Counts a failed request; logs a full cache once per session. */
static int
failed (struct df_bdev *b)
{
  struct df_session *s = ((struct counting *) b)->s;
  int err = errno;

  ADD (s->counters->errors, 1);
  if (err == ENOSPC) {
    ADD (s->counters->cache_full, 1);
    if (!__atomic_exchange_n (&s->enospc_logged, true, __ATOMIC_RELAXED))
      session_log (s->set, DF_LOG_ERROR, "device %s session %s: write cache "
                   "full (limit %" PRIu64 " bytes); writes fail with ENOSPC, "
                   "reads go on", s->device, s->name, s->spec.limit);
  }
  errno = err;
  return -1;
}

static void
count_write (struct df_bdev *b, uint32_t count)
{
  struct df_session *s = ((struct counting *) b)->s;

  ADD (s->counters->write_requests, 1);
  ADD (s->counters->write_bytes, count);
}

static int
counting_pread (struct df_bdev *b, void *buf, uint32_t count, uint64_t offset)
{
  struct df_session *s = ((struct counting *) b)->s;

  if (df_bdev_pread (below (b), buf, count, offset) == -1)
    return failed (b);
  ADD (s->counters->read_requests, 1);
  ADD (s->counters->read_bytes, count);
  return 0;
}

static int
counting_pwrite (struct df_bdev *b, const void *buf, uint32_t count,
                 uint64_t offset, uint32_t flags)
{
  if (df_bdev_pwrite (below (b), buf, count, offset, flags) == -1)
    return failed (b);
  count_write (b, count);
  return 0;
}

static int
counting_flush (struct df_bdev *b)
{
  return df_bdev_flush (below (b)) == -1 ? failed (b) : 0;
}

static int
counting_zero (struct df_bdev *b, uint32_t count, uint64_t offset,
               uint32_t flags)
{
  if (df_bdev_zero (below (b), count, offset, flags) == -1) {
    /* A fast zero the device cannot do is not a failure of the session. */
    if (errno == ENOTSUP && (flags & DF_FAST_ZERO))
      return -1;
    return failed (b);
  }
  count_write (b, count);
  return 0;
}

static int
counting_trim (struct df_bdev *b, uint32_t count, uint64_t offset,
               uint32_t flags)
{
  if (df_bdev_trim (below (b), count, offset, flags) == -1)
    return failed (b);
  count_write (b, count);
  return 0;
}

static int
counting_extents (struct df_bdev *b, uint32_t count, uint64_t offset,
                  df_extent_fn fn, void *opaque)
{
  if (df_bdev_extents (below (b), count, offset, fn, opaque) == -1)
    return failed (b);
  return 0;
}

/* Users never close it: the session does. */
static void
counting_close (struct df_bdev *b)
{
  (void) b;
}

static const struct df_bdev_ops counting_ops = {
  .name = "session",
  .pread = counting_pread,
  .pwrite = counting_pwrite,
  .flush = counting_flush,
  .zero = counting_zero,
  .trim = counting_trim,
  .extents = counting_extents,
  .close = counting_close,
};

void
session_counting_init (struct df_session *s)
{
  struct df_bdev *b;

  s->counting.bdev.ops = &counting_ops;
  s->counting.s = s;
  b = below (&s->counting.bdev);
  s->counting.bdev.size = b->size;
  s->counting.bdev.flags = b->flags;
  if (s->spec.mode == DF_CACHE_DEVICE)
    s->counting.bdev.flags |= DF_BDEV_RDONLY;
}

struct df_bdev *
df_session_bdev (struct df_session *s)
{
  return &s->counting.bdev;
}

bool
df_session_readonly (const struct df_session *s)
{
  return s->spec.mode == DF_CACHE_DEVICE;
}

char *
df_session_describe (const struct df_session *s)
{
  char hex[2 * DF_HASH_LEN + 1], *d;
  int r;

  if (s->sealed)
    r = asprintf (&d, "device %s session %s: vdisk %s version %u, write cache "
                  "%s vdisk=%s version=%u hash=%s", s->device, s->name,
                  s->vdisk, s->version, df_cache_mode_name (s->spec.mode),
                  s->vdisk, s->version, df_hex (s->hash, DF_HASH_LEN, hex));
  else
    r = asprintf (&d, "device %s session %s: vdisk %s version %u, write cache "
                  "%s vdisk=%s version=%u", s->device, s->name, s->vdisk,
                  s->version, df_cache_mode_name (s->spec.mode), s->vdisk,
                  s->version);
  if (r == -1) {
    df_error_errno ("description");
    return NULL;
  }
  return d;
}

const char *
df_session_state_name (enum df_session_state st)
{
  switch (st) {
  case DF_SESSION_BOOTING: return "booting";
  case DF_SESSION_ACTIVE: return "active";
  case DF_SESSION_LINGERING: return "lingering";
  }
  return "?";
}

static void
load_counters (const struct df_session_counters *c,
               struct df_session_counters *out)
{
  out->read_bytes = LOAD (c->read_bytes);
  out->read_requests = LOAD (c->read_requests);
  out->write_bytes = LOAD (c->write_bytes);
  out->write_requests = LOAD (c->write_requests);
  out->errors = LOAD (c->errors);
  out->cache_full = LOAD (c->cache_full);
}

void
df_session_figures (struct df_session *s, struct df_session_figures *f)
{
  struct df_cache_stats cs = { 0 };
  uint64_t now = df_now_real_ns ();

  memset (f, 0, sizeof *f);
  strcpy (f->device, s->device);
  strcpy (f->session, s->name);
  snprintf (f->export_name, sizeof f->export_name, "dev/%s@%s", s->device,
            s->name);
  f->id = s->id;
  f->connected_since_ns = s->since_ns;
  load_counters (s->counters, &f->counters);
  f->counters_at = s->counters;
  f->cache_mode = s->spec.mode;
  f->cache_limit = s->spec.limit;
  snprintf (f->vdisk, sizeof f->vdisk, "%s", s->vdisk ? s->vdisk : "");
  f->version = s->version;

  pthread_mutex_lock (&s->set->lock);
  f->connections = s->conns;
  strcpy (f->client, s->client);
  pthread_mutex_unlock (&s->set->lock);

  pthread_mutex_lock (&s->bdev_lock);
  if (s->cache)
    df_cache_stats (s->cache, &cs);
  pthread_mutex_unlock (&s->bdev_lock);
  f->cache_used = cs.used_bytes;

  if (f->connections == 0)
    f->state = DF_SESSION_LINGERING;
  else if (now - s->since_ns <
           DF_SESSION_BOOT_SECONDS * UINT64_C (1000000000) &&
           f->counters.read_bytes < DF_SESSION_BOOT_BYTES)
    f->state = DF_SESSION_BOOTING;
  else
    f->state = DF_SESSION_ACTIVE;
}
