/* diskfarm-gateway attach — connect, build the stack, serve, detach.
 *
 * The stack, top down (DESIGN.md "The block-device stack"):
 *   overlay      a device with write cache "device": its writes (--overlay)
 *   read cache   a version's blocks on this host (--read-cache)
 *   upstream     NBD to the farm's servers, with failover
 * and over it the front ends: the NBD server (--nbd-socket) and the FUSE
 * file (--file), both calling the stack directly.
 */
#include <config.h>

#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "attach.h"
#include "cache/cache.h"
#include "error.h"
#include "log.h"
#include "nbd/server.h"
#include "rcache/rcache.h"
#include "util.h"

#define STOP_GRACE 10           /* s the front ends get before waiting
                                   requests are failed */

struct run {
  const struct attach_opts *o;
  char export[4200];
  struct attach_servers servers;
  struct attach_load *load;
  struct attach_plan plan;
  struct df_bdev *up, *rcache, *overlay, *top;
  struct df_nbd_server *nbd;
  struct attach_fuse *fuse;
  pthread_t signals;
  bool signals_running;
  pthread_mutex_t lock;
  pthread_cond_t cond;
  bool stop;
};

/* dev/DEVICE without a session gets a new one (a boot, in effect). */
static int
name_export (struct run *r)
{
  const char *e = r->o->export;
  uint8_t rnd[6];
  char hex[33];

  if (strncmp (e, "dev/", 4) != 0 || strchr (e, '@')) {
    snprintf (r->export, sizeof r->export, "%s", e);
    return 0;
  }
  if (df_random_bytes (rnd, sizeof rnd) == -1)
    return -1;
  snprintf (r->export, sizeof r->export, "%s@%s", e,
            df_hex (rnd, sizeof rnd, hex));
  df_log_info ("new session: %s", r->export);
  return 0;
}

static void
upstream_log (void *opaque, enum df_upstream_log level, const char *msg)
{
  (void) opaque;
  switch (level) {
  case DF_UP_ERROR: df_log_error ("%s", msg); break;
  case DF_UP_WARNING: df_log_warning ("%s", msg); break;
  case DF_UP_INFO: df_log_info ("%s", msg); break;
  case DF_UP_DEBUG: df_debug ("upstream", "%s", msg); break;
  }
}

static void
nbd_log (void *opaque, const char *msg)
{
  (void) opaque;
  df_log_warning ("nbd-socket: %s", msg);
}

static int
connect_upstream (struct run *r)
{
  const struct attach_opts *o = r->o;
  struct df_upstream_params p = {
    .export_name = r->export, .connections = o->connections,
    .connect_timeout = o->connect_timeout, .io_timeout = o->io_timeout,
    .dead_timeout = o->dead_timeout, .replay_limit = o->replay_limit,
    .log = upstream_log,
  };

  if ((o->farm ? attach_servers_from_farm (o->farm, &r->servers)
       : attach_servers_from_list (o->servers, &r->servers)) == -1)
    return -1;
  /* The farm's gateways say which server is least loaded. */
  if (o->farm) {
    r->load = attach_load_start (o->farm, (const char *const *) r->servers.name,
                                 r->servers.n);
    if (r->load == NULL)
      return -1;
    attach_load_wait (r->load, 2500);
    p.rank = attach_load_rank;
    p.opaque = r->load;
  }
  p.servers = (const char *const *) r->servers.nbd;
  p.nservers = r->servers.n;
  r->up = df_upstream_open (&p);
  return r->up ? 0 : -1;
}

/* What the server said, what the options ask: the plan, logged. */
static int
decide (struct run *r)
{
  const struct df_upstream_info *info = df_upstream_info (r->up);
  char mode[32], server[300], size[32], hex[13];
  struct attach_facts f = {
    .readonly = info->readonly, .has_identity = info->has_identity,
    .mode = attach_desc_cache_mode (info->description, mode, sizeof mode),
    .shared = r->o->shared_cache || r->servers.shared,
    .overlay = r->o->overlay != NULL, .read_cache = r->o->read_cache != NULL,
    .want_readonly = r->o->read_only,
  };

  if (attach_plan (&f, &r->plan) == -1)
    return -1;
  df_upstream_allow_failover (r->up, r->plan.failover);
  df_log_info ("%s: %s from %s%s%s", r->export,
               df_format_size (r->up->size, size, sizeof size),
               df_upstream_server (r->up, server, sizeof server),
               info->description ? ": " : "",
               info->description ? info->description : "");
  if (info->has_identity)
    df_log_info ("version %s %u, content hash %s...", info->vdisk,
                 info->version, df_hex (info->hash, 6, hex));
  if (r->plan.failover)
    df_log_info ("failover: to any listed server with an identical replica "
                 "(%s)", r->plan.why);
  else
    df_log_warning ("FAILOVER IS NOT SAFE for %s: %s.  If %s is lost, its "
                    "I/O waits for it to come back; no other server is "
                    "used.", r->export, r->plan.why, server);
  return 0;
}

static int
build_stack (struct run *r)
{
  const struct df_upstream_info *info = df_upstream_info (r->up);

  r->top = r->up;
  if (r->plan.read_cache) {
    struct df_rcache_params rp = {
      .dir = r->o->read_cache, .size = r->o->read_cache_size,
      .version_hash = info->hash,
    };
    r->rcache = df_rcache_open (r->top, &rp);
    if (r->rcache == NULL)
      return -1;
    r->top = r->rcache;
  }
  if (r->plan.overlay) {
    /* The client knows the version by its content hash only: the
     * overlay's parent id is the hash's first bytes (docs/attach.md).
     */
    struct df_cache_params cp = {
      .mode = DF_CACHE_PERSISTENT, .path = r->o->overlay,
      .parent_id = info->hash, .parent_hash = info->hash,
    };
    r->overlay = df_cache_open (r->top, &cp);
    if (r->overlay == NULL) {
      df_error_prefix ("--overlay");
      return -1;
    }
    r->top = r->overlay;
  }
  return 0;
}

static int
start_front_ends (struct run *r)
{
  char desc[sizeof r->export + 32];
  struct df_nbd_export e = {
    .bdev = r->top, .name = r->export, .description = desc,
    .readonly = r->plan.readonly, .multi_conn = true, .log = nbd_log,
  };

  snprintf (desc, sizeof desc, "diskfarm attach of %s", r->export);
  if (r->o->nbd_socket) {
    r->nbd = df_nbd_server_new (&e, 0);
    if (r->nbd == NULL ||
        df_nbd_server_listen_unix (r->nbd, r->o->nbd_socket, 0600) == -1)
      return -1;
    df_log_info ("NBD server on %s", r->o->nbd_socket);
  }
  if (r->o->file) {
    r->fuse = attach_fuse_mount (r->top, r->o->file,
                                 r->plan.readonly || (r->top->flags & DF_BDEV_RDONLY));
    if (r->fuse == NULL)
      return -1;
    df_log_info ("FUSE file %s", r->o->file);
  }
  return 0;
}

static void *
signal_main (void *arg)
{
  struct run *r = arg;
  struct timespec grace = { .tv_sec = STOP_GRACE };
  sigset_t set;
  int sig;

  sigemptyset (&set);
  sigaddset (&set, SIGTERM);
  sigaddset (&set, SIGINT);
  sigaddset (&set, SIGHUP);
  sigaddset (&set, SIGUSR2);    /* the main thread is done */
  if (sigwait (&set, &sig) != 0 || sig == SIGUSR2)
    return NULL;
  df_log_info ("%s: detaching", strsignal (sig));
  pthread_mutex_lock (&r->lock);
  r->stop = true;
  pthread_cond_broadcast (&r->cond);
  pthread_mutex_unlock (&r->lock);
  if (r->fuse)
    attach_fuse_stop (r->fuse);
  /* No server answers and requests hang?  Fail them after a grace
   * time, or at a second signal, so that the front ends can close.
   */
  sig = sigtimedwait (&set, NULL, &grace);
  if (sig == SIGUSR2)
    return NULL;
  df_log_warning ("requests still wait for a server: failing them");
  df_upstream_interrupt (r->up);
  while (sigwait (&set, &sig) == 0 && sig != SIGUSR2)
    ;
  return NULL;
}

/* Before any thread starts: they all inherit it, and only the signal
 * thread takes these signals.
 */
static void
block_signals (void)
{
  sigset_t set;

  sigemptyset (&set);
  sigaddset (&set, SIGTERM);
  sigaddset (&set, SIGINT);
  sigaddset (&set, SIGHUP);
  sigaddset (&set, SIGUSR2);
  sigaddset (&set, SIGPIPE);
  pthread_sigmask (SIG_BLOCK, &set, NULL);
}

static int
start_signals (struct run *r)
{
  int err = pthread_create (&r->signals, NULL, signal_main, r);

  if (err)
    return df_error (err, "signal thread: %m");
  r->signals_running = true;
  return 0;
}

static int
serve (struct run *r)
{
  char pid[32];
  int rv = 0;

  if (r->o->pid_file) {
    snprintf (pid, sizeof pid, "%d\n", (int) getpid ());
    if (df_write_file_atomic (r->o->pid_file, pid, strlen (pid), 0644) == -1)
      return -1;
  }
  df_log_info ("attached %s", r->export);
  if (r->fuse)
    rv = attach_fuse_run (r->fuse);
  else {
    pthread_mutex_lock (&r->lock);
    while (!r->stop)
      pthread_cond_wait (&r->cond, &r->lock);
    pthread_mutex_unlock (&r->lock);
  }
  return rv;
}

/* Front ends first (their requests finish), then the stack, flushed. */
static int
detach (struct run *r)
{
  int rv = 0;

  /* The signal thread may fail requests that wait for a server while
   * the NBD server stops; then it goes, before what it uses does.
   */
  df_nbd_server_free (r->nbd);
  if (r->signals_running) {
    pthread_kill (r->signals, SIGUSR2);
    pthread_join (r->signals, NULL);
  }
  attach_fuse_free (r->fuse);
  if (r->top && !(r->top->flags & DF_BDEV_RDONLY) && !r->plan.readonly &&
      df_bdev_flush (r->top) == -1) {
    df_log_error ("flushing %s: %s", r->export, df_error_get ());
    rv = -1;
  }
  if (r->rcache) {
    struct df_rcache_stats st;
    char used[32], size[32];
    df_rcache_stats (r->rcache, &st);
    df_log_info ("read cache %s: %" PRIu64 " hits, %" PRIu64 " misses, %s "
                 "of %s in use", r->o->read_cache, st.hits, st.misses,
                 df_format_size (st.used, used, sizeof used),
                 df_format_size (st.size, size, sizeof size));
  }
  df_bdev_close (r->overlay);
  df_bdev_close (r->rcache);
  df_bdev_close (r->up);
  attach_load_stop (r->load);
  attach_servers_free (&r->servers);
  if (r->o->pid_file)
    unlink (r->o->pid_file);
  pthread_mutex_destroy (&r->lock);
  pthread_cond_destroy (&r->cond);
  return rv;
}

int
attach_run (const struct attach_opts *o)
{
  struct run r = { .o = o };
  int rv = -1;

  pthread_mutex_init (&r.lock, NULL);
  pthread_cond_init (&r.cond, NULL);
  block_signals ();
  if (name_export (&r) == 0 && connect_upstream (&r) == 0 &&
      decide (&r) == 0 && build_stack (&r) == 0 &&
      start_front_ends (&r) == 0 && start_signals (&r) == 0 && serve (&r) == 0)
    rv = 0;
  if (rv == -1)
    df_log_error ("%s", df_error_get ());
  if (detach (&r) == -1)
    rv = -1;
  if (rv == 0)
    df_log_info ("detached %s", r.export);
  return rv;
}
