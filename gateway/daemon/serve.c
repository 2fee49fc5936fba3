/* diskfarm-gateway serve — start, run until SIGTERM or SIGINT, stop.
 * SIGHUP reloads the farm at once.
 */
#include <config.h>

#include <errno.h>
#include <malloc.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/signalfd.h>
#include <unistd.h>

#include "error.h"
#include "evloop/evloop.h"
#include "gateway.h"
#include "gw.h"
#include "log.h"
#include "util.h"

struct main_state {
  struct gw *gw;
  int sigfd;
  struct df_watch *sigwatch;
  struct df_timer *poll;
};

static void
on_signal (void *opaque, int fd, unsigned events)
{
  struct main_state *m = opaque;
  struct signalfd_siginfo si;

  (void) events;
  while (read (fd, &si, sizeof si) == sizeof si) {
    if (si.ssi_signo == SIGHUP)
      gw_farm_check (m->gw, true);
    else {
      df_log_info ("stopping (signal %u)", si.ssi_signo);
      df_loop_stop (m->gw->loop);
    }
  }
}

static void
on_poll (void *opaque)
{
  struct main_state *m = opaque;

  gw_farm_check (m->gw, false);
  df_timer_arm (m->poll, (uint64_t) m->gw->cfg.poll_ms * 1000000);
}

static int
watch_signals (struct main_state *m)
{
  sigset_t set;

  sigemptyset (&set);
  sigaddset (&set, SIGINT);
  sigaddset (&set, SIGTERM);
  sigaddset (&set, SIGHUP);
  /* Blocked before any thread starts, so that every thread has it so. */
  if (pthread_sigmask (SIG_BLOCK, &set, NULL) != 0)
    return df_error_errno ("sigprocmask");
  m->sigfd = signalfd (-1, &set, SFD_CLOEXEC | SFD_NONBLOCK);
  if (m->sigfd == -1)
    return df_error_errno ("signalfd");
  m->sigwatch = df_loop_watch (m->gw->loop, m->sigfd, DF_LOOP_READ, on_signal,
                               m);
  return m->sigwatch ? 0 : -1;
}

/* Every connection is a file descriptor: take what the hard limit gives. */
static void
raise_fd_limit (const struct gw_config *cfg)
{
  struct rlimit rl;
  rlim_t want = (rlim_t) cfg->max_connections * GW_MAX_LISTEN + 256;

  if (getrlimit (RLIMIT_NOFILE, &rl) == -1 || rl.rlim_cur >= want)
    return;
  rl.rlim_cur = rl.rlim_max < want ? rl.rlim_max : want;
  setrlimit (RLIMIT_NOFILE, &rl);
}

static void
log_start (struct gw *gw)
{
  struct gw_farm *f = gw_farm_get (gw);
  char where[512] = "";
  size_t i;

  for (i = 0; i < gw->nhttp; i++)
    snprintf (where + strlen (where), sizeof where - strlen (where), "%s%s",
              i ? ", " : "", gw->where[i]);
  df_log_info ("serving farm %s as server %s (%zu store%s) over HTTP%s on %s",
               gw->cfg.farm_dir, f->server, f->nstores,
               f->nstores == 1 ? "" : "s", gw->cfg.tls_cert ? "S" : "", where);
  gw_farm_put (gw, f);
}

static int
start (struct gw *gw, struct main_state *m)
{
  gw->start_mono_ns = df_now_mono_ns ();
  raise_fd_limit (&gw->cfg);
  gw->loop = df_loop_new ();
  if (gw->loop == NULL || watch_signals (m) == -1)
    return -1;
  if (gw_farm_start (gw) == -1)
    return -1;
  gw->hashes = gw_hashes_new ();
  if (gw->hashes == NULL)
    return -1;
  if (gw->cfg.upload_rate &&
      (gw->upload = df_http_rate_new (gw->cfg.upload_rate)) == NULL)
    return -1;
  gw->delta = gw_delta_new (gw);
  if (gw->delta == NULL || gw_http_start (gw) == -1)
    return -1;
  m->poll = df_loop_timer (gw->loop, on_poll, m);
  if (m->poll == NULL)
    return -1;
  df_timer_arm (m->poll, (uint64_t) gw->cfg.poll_ms * 1000000);
  log_start (gw);
  return 0;
}

/* Suspended requests are answered before the HTTP servers stop, and
 * the delta engine goes after them.
 */
static void
stop (struct gw *gw, struct main_state *m)
{
  gw_delta_shutdown (gw->delta);
  gw_http_stop (gw);
  gw_delta_free (gw->delta);
  gw_hashes_free (gw->hashes);
  df_http_rate_free (gw->upload);
  if (gw->farm)
    gw_farm_stop (gw);
  df_timer_free (m->poll);
  df_watch_free (m->sigwatch);
  if (m->sigfd >= 0)
    close (m->sigfd);
  df_loop_free (gw->loop);
}

int
gw_serve_main (int argc, char **argv)
{
  struct gw gw = { 0 };
  struct main_state m = { .gw = &gw, .sigfd = -1 };
  int r;

  df_log_init ("diskfarm-gateway");
  /* Many small requests on a few threads: with an arena per thread
   * (glibc's default) the heap fragments and the daemon's memory creeps
   * up for minutes under load; two arenas keep it flat.
   */
  mallopt (M_ARENA_MAX, 2);
  /* Streamed answers (copied file ranges, deltas, relayed copies) each
   * take a 256 KiB buffer.  With glibc's sliding threshold, the first
   * such buffer freed moves the threshold above it and the next ones
   * come from the heap, which keeps them: a fixed threshold maps and
   * unmaps them, and the daemon's memory stays flat under load.
   */
  mallopt (M_MMAP_THRESHOLD, 128 * 1024);
  r = gw_parse_options (&gw.cfg, argc, argv);
  if (r != 0)
    return r == 1 ? 0 : 1;
  r = 1;
  if (start (&gw, &m) == -1)
    df_log_error ("%s", df_error_get ());
  else if (df_loop_run (gw.loop) == -1)
    df_log_error ("event loop: %s", df_error_get ());
  else
    r = 0;
  stop (&gw, &m);
  return r;
}
