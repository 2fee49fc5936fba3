/* diskfarm — HTTP connections and their request deadline.
 *
 * libmicrohttpd closes a connection that stays silent for its timeout,
 * but a client that sends one header byte every few seconds (slowloris)
 * is never silent.  So every connection carries a deadline: the request
 * (headers and body) must have arrived request_timeout after the
 * connection opened, or after its previous request was answered.  Once
 * a request is complete the deadline is lifted until it is answered.
 * Once a second a sweeper shuts down the socket of every connection
 * past its deadline; libmicrohttpd then sees the end of the stream and
 * closes it the normal way.
 *
 * The socket stays valid while the connection is in the list:
 * libmicrohttpd reports a connection closed (and we unlink it, under
 * conns_lock) before it closes the socket.
 */
#include <config.h>

#include <errno.h>
#include <stdlib.h>
#include <sys/socket.h>
#include <time.h>

#include "error.h"
#include "evloop/evloop.h"
#include "http-internal.h"
#include "log.h"
#include "util.h"

#define SWEEP_NS 1000000000ULL

struct http_conn {
  struct http_conn *prev, *next;
  struct MHD_Connection *mhd;
  int fd;
  bool suspended;               /* under conns_lock */
  bool waiting;                 /* http_conn_wait; under conns_lock */
  uint64_t deadline_ns;         /* atomic; 0: none */
  struct df_cache_snap *sent;   /* http_conn_sent; only the connection's
                                   own thread touches it */
};

static struct http_conn *conn_of (struct MHD_Connection *conn);

void
http_on_connection (void *cls, struct MHD_Connection *conn,
                    void **socket_context,
                    enum MHD_ConnectionNotificationCode code)
{
  struct df_http_server *srv = cls;
  struct http_conn *c = *socket_context;
  const union MHD_ConnectionInfo *ci;

  if (code == MHD_CONNECTION_NOTIFY_STARTED) {
    c = calloc (1, sizeof *c);
    if (c == NULL)
      return;                   /* untracked: only the idle timeout */
    ci = MHD_get_connection_info (conn, MHD_CONNECTION_INFO_CONNECTION_FD);
    c->fd = ci ? ci->connect_fd : -1;
    c->mhd = conn;
    c->deadline_ns = df_now_mono_ns () + srv->request_timeout_ns;
    pthread_mutex_lock (&srv->conns_lock);
    c->next = srv->conns;
    if (srv->conns)
      srv->conns->prev = c;
    srv->conns = c;
    pthread_mutex_unlock (&srv->conns_lock);
    http_count (&srv->stats.connections, 1);
    *socket_context = c;
    return;
  }
  if (c == NULL)
    return;
  pthread_mutex_lock (&srv->conns_lock);
  if (c->prev)
    c->prev->next = c->next;
  else
    srv->conns = c->next;
  if (c->next)
    c->next->prev = c->prev;
  pthread_mutex_unlock (&srv->conns_lock);
  __atomic_fetch_sub (&srv->stats.connections, 1, __ATOMIC_RELAXED);
  df_cache_release (c->sent);
  free (c);
  *socket_context = NULL;
}

void
http_conn_deadline (struct df_http_server *srv, struct MHD_Connection *conn,
                    bool set)
{
  struct http_conn *c = conn_of (conn);

  if (c)
    __atomic_store_n (&c->deadline_ns,
                      set ? df_now_mono_ns () + srv->request_timeout_ns : 0,
                      __ATOMIC_RELAXED);
}

static struct http_conn *
conn_of (struct MHD_Connection *conn)
{
  const union MHD_ConnectionInfo *ci =
    MHD_get_connection_info (conn, MHD_CONNECTION_INFO_SOCKET_CONTEXT);

  return ci ? ci->socket_context : NULL;
}

void
http_conn_sent (struct MHD_Connection *conn, struct df_cache_snap *s)
{
  struct http_conn *c = conn_of (conn);

  df_cache_restore (s);
  if (c == NULL) {
    df_cache_release (s);
    return;
  }
  /* The client asked again: it has read the previous response. */
  df_cache_release (c->sent);
  c->sent = s;
}

/* libmicrohttpd is called outside conns_lock: it takes its own locks,
 * and calls http_on_connection, which takes conns_lock.
 */
void
http_conn_suspend (struct df_http_server *srv, struct MHD_Connection *conn,
                   bool suspend)
{
  struct http_conn *c = conn_of (conn);
  bool was;

  if (c == NULL) {
    if (suspend)
      MHD_suspend_connection (conn);
    else
      MHD_resume_connection (conn);
    return;
  }
  pthread_mutex_lock (&srv->conns_lock);
  was = c->suspended;
  c->suspended = suspend;
  pthread_mutex_unlock (&srv->conns_lock);
  if (suspend)
    MHD_suspend_connection (conn);
  else if (was)                 /* not already resumed by resume_all */
    MHD_resume_connection (conn);
}

/* Suspended connections are never closed, so they stay valid after the
 * lock is dropped.
 */
void
http_conns_resume_all (struct df_http_server *srv)
{
  struct MHD_Connection **todo = NULL, **nt;
  struct http_conn *c;
  size_t n = 0, i;

  pthread_mutex_lock (&srv->conns_lock);
  for (c = srv->conns; c; c = c->next)
    if (c->suspended && (nt = realloc (todo, (n + 1) * sizeof *todo))) {
      todo = nt;
      todo[n++] = c->mhd;
      c->suspended = false;
    }
  pthread_mutex_unlock (&srv->conns_lock);
  for (i = 0; i < n; i++)
    MHD_resume_connection (todo[i]);
  free (todo);
}

static void
sweep (struct df_http_server *srv)
{
  uint64_t now = df_now_mono_ns ();
  struct http_conn *c;

  pthread_mutex_lock (&srv->conns_lock);
  for (c = srv->conns; c; c = c->next) {
    uint64_t d = __atomic_load_n (&c->deadline_ns, __ATOMIC_RELAXED);
    if (d == 0 || d > now || c->fd < 0)
      continue;
    __atomic_store_n (&c->deadline_ns, 0, __ATOMIC_RELAXED);
    shutdown (c->fd, SHUT_RDWR);
    http_count (&srv->stats.cut_off, 1);
    df_debug ("http", "cut off a connection that did not send its request "
              "in time");
  }
  pthread_mutex_unlock (&srv->conns_lock);
}

static void
on_sweep_timer (void *opaque)
{
  struct df_http_server *srv = opaque;

  sweep (srv);
  df_timer_arm (srv->sweep_timer, SWEEP_NS);
}

static void *
sweeper_thread (void *opaque)
{
  struct df_http_server *srv = opaque;
  struct timespec ts;

  pthread_mutex_lock (&srv->conns_lock);
  while (!srv->stopping) {
    clock_gettime (CLOCK_MONOTONIC, &ts);
    ts.tv_sec += 1;
    pthread_cond_timedwait (&srv->stop_cond, &srv->conns_lock, &ts);
    if (srv->stopping)
      break;
    pthread_mutex_unlock (&srv->conns_lock);
    sweep (srv);
    pthread_mutex_lock (&srv->conns_lock);
  }
  pthread_mutex_unlock (&srv->conns_lock);
  return NULL;
}

int
http_sweeper_start (struct df_http_server *srv, struct df_loop *loop)
{
  int e;

  if (loop) {
    srv->sweep_timer = df_loop_timer (loop, on_sweep_timer, srv);
    if (srv->sweep_timer == NULL)
      return -1;
    df_timer_arm (srv->sweep_timer, SWEEP_NS);
    return 0;
  }
  e = pthread_create (&srv->sweeper, NULL, sweeper_thread, srv);
  if (e)
    return df_error (e, "cannot start the HTTP sweeper thread: %m");
  srv->sweeper_running = true;
  return 0;
}

void
http_sweeper_stop (struct df_http_server *srv)
{
  df_timer_free (srv->sweep_timer);
  srv->sweep_timer = NULL;
  pthread_mutex_lock (&srv->conns_lock);
  srv->stopping = true;
  pthread_cond_broadcast (&srv->stop_cond);
  pthread_mutex_unlock (&srv->conns_lock);
  if (srv->waker_running) {
    pthread_join (srv->waker, NULL);
    srv->waker_running = false;
  }
  if (!srv->sweeper_running)
    return;
  pthread_join (srv->sweeper, NULL);
  srv->sweeper_running = false;
}

/* ---- streamed bodies that wait for data (stream.c) ---- */

/* Resumes every waiting connection each WAKE_NS while some wait: their
 * readers look again.  Started with the first wait, stopped with the
 * server.
 */
static void *
waker_thread (void *opaque)
{
  struct df_http_server *srv = opaque;
  struct MHD_Connection **todo = NULL, **nt;
  struct timespec ts;
  struct http_conn *c;
  size_t n, i;

  pthread_mutex_lock (&srv->conns_lock);
  while (!srv->stopping) {
    if (srv->nwaiting == 0) {
      pthread_cond_wait (&srv->stop_cond, &srv->conns_lock);
      continue;
    }
    pthread_mutex_unlock (&srv->conns_lock);
    ts = (struct timespec) { 0, HTTP_WAKE_NS };
    nanosleep (&ts, NULL);
    pthread_mutex_lock (&srv->conns_lock);
    n = 0;
    for (c = srv->conns; c; c = c->next)
      if (c->waiting && (nt = realloc (todo, (n + 1) * sizeof *todo))) {
        todo = nt;
        todo[n++] = c->mhd;
        c->waiting = c->suspended = false;
        srv->nwaiting--;
      }
    pthread_mutex_unlock (&srv->conns_lock);
    for (i = 0; i < n; i++)
      MHD_resume_connection (todo[i]);
    pthread_mutex_lock (&srv->conns_lock);
  }
  pthread_mutex_unlock (&srv->conns_lock);
  free (todo);
  return NULL;
}

bool
http_conn_wait (struct df_http_server *srv, struct MHD_Connection *conn)
{
  struct http_conn *c = conn_of (conn);
  bool ok = false;

  if (c == NULL)
    return false;               /* untracked: the caller blocks instead */
  pthread_mutex_lock (&srv->conns_lock);
  if (!srv->stopping && !srv->closing &&
      (srv->waker_running ||
       pthread_create (&srv->waker, NULL, waker_thread, srv) == 0)) {
    srv->waker_running = ok = true;
    /* Marked before it is suspended: the waker takes the lock after
     * its sleep, and resuming a connection whose suspension is still
     * on its way in is what libmicrohttpd allows from other threads.
     */
    c->waiting = c->suspended = true;
    srv->nwaiting++;
    pthread_cond_broadcast (&srv->stop_cond);
  }
  pthread_mutex_unlock (&srv->conns_lock);
  if (ok)
    MHD_suspend_connection (conn);
  return ok;
}
