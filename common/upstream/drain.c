/* diskfarm — NBD upstream: letting go of a lost server's connections
 * gently.
 *
 * A connection given up on may still have requests the server is
 * working on.  Closing it at once (or shutting it down for reading)
 * makes the server's replies, when they come — a cut network that comes
 * back — meet a reset, and nbdkit 1.32 (Debian 12) aborts when a
 * connection with several replies pending fails that way (fixed upstream
 * by nbdkit commit 9d82aa4f, "server: Don't assert on send if client
 * hangs up early").  So the attach keeps the socket: it says it is done
 * (FIN), reads and drops whatever the server still sends, and closes once
 * the server has closed its side, or after DRAIN_MAX_S.
 */
#include <config.h>

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stdlib.h>
#include <sys/socket.h>
#include <unistd.h>

#include "error.h"
#include "upstream/upstream-int.h"

#define DRAIN_MAX_S 600

void
up_drain_add (struct upstream *up, int fd)
{
  bool added = false;

  shutdown (fd, SHUT_WR);
  pthread_mutex_lock (&up->lock);
  if (up->ndrains < UP_MAX_DRAINS && up->drainer_running) {
    up->drains[up->ndrains].fd = fd;
    up->drains[up->ndrains].since = df_now_mono_ns ();
    up->ndrains++;
    added = true;
    pthread_cond_signal (&up->drain_cond);
  }
  pthread_mutex_unlock (&up->lock);
  if (!added)
    close (fd);
}

/* Reads what came on fd and drops it: true once the server is done. */
static bool
drained (int fd)
{
  char buf[65536];

  for (;;) {
    ssize_t r = recv (fd, buf, sizeof buf, MSG_DONTWAIT);
    if (r > 0)
      continue;
    return r == 0 || (errno != EAGAIN && errno != EINTR);
  }
}

/* One pass over the sockets (lock held): polls them for a while without
 * the lock, closes those done.  Returns when stopping.
 */
static void
drain_pass (struct upstream *up)
{
  struct pollfd pfd[UP_MAX_DRAINS];
  uint64_t now = df_now_mono_ns ();
  unsigned i, n = up->ndrains;

  for (i = 0; i < n; i++)
    pfd[i] = (struct pollfd) { .fd = up->drains[i].fd, .events = POLLIN };
  pthread_mutex_unlock (&up->lock);
  poll (pfd, n, 500);
  pthread_mutex_lock (&up->lock);
  /* Only this thread removes entries; others append behind n. */
  for (i = n; i-- > 0;) {
    struct up_drain *d = &up->drains[i];
    if ((pfd[i].revents && drained (d->fd)) ||
        now - d->since >= (uint64_t) DRAIN_MAX_S * 1000000000) {
      close (d->fd);
      *d = up->drains[--up->ndrains];
    }
  }
}

static void *
drainer_main (void *arg)
{
  struct upstream *up = arg;

  pthread_mutex_lock (&up->lock);
  while (up->state != UP_STOPPING) {
    if (up->ndrains == 0)
      pthread_cond_wait (&up->drain_cond, &up->lock);
    else
      drain_pass (up);
  }
  pthread_mutex_unlock (&up->lock);
  return NULL;
}

int
up_drainer_start (struct upstream *up)
{
  int err = pthread_create (&up->drainer, NULL, drainer_main, up);

  if (err)
    return df_error (err, "upstream drainer thread: %m");
  up->drainer_running = true;
  return 0;
}

/* After the supervisor stopped (state UP_STOPPING): what is left is
 * closed as it is.
 */
void
up_drainer_stop (struct upstream *up)
{
  unsigned i;

  if (!up->drainer_running)
    return;
  pthread_mutex_lock (&up->lock);
  pthread_cond_broadcast (&up->drain_cond);
  pthread_mutex_unlock (&up->lock);
  pthread_join (up->drainer, NULL);
  up->drainer_running = false;
  for (i = 0; i < up->ndrains; i++)
    close (up->drains[i].fd);
  up->ndrains = 0;
}
