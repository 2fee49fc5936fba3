/* diskfarm — NBD server: listening, and the threads of each connection. */
#include <config.h>

#include <errno.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include "error.h"
#include "nbd/server-int.h"

#define STOP_GRACE 10           /* seconds for replies at shutdown */

struct df_nbd_server {
  struct df_nbd_export e;       /* name and description are copies */
  unsigned threads;             /* per connection */
  int listen_fd;
  char *socket_path;
  pthread_t acceptor;
  bool accepting;
  pthread_mutex_t lock;         /* below */
  pthread_cond_t conns_cond;    /* a connection ended */
  struct conn *conns;
  unsigned nconns;
  bool stopping;
};

static void *
serve_main (void *arg)
{
  nbd_transmission (arg);
  return NULL;
}

/* The handshake, then the connection's threads until the client
 * leaves.
 */
static void
serve_conn (struct conn *c, unsigned threads)
{
  pthread_t t[DF_NBD_MAX_THREADS];
  unsigned n = 0, i;

  if (nbd_handshake (c) != 1)
    return;
  nbd_conn_start_writer (c);
  while (n + 1 < threads && pthread_create (&t[n], NULL, serve_main, c) == 0)
    n++;
  nbd_transmission (c);
  for (i = 0; i < n; i++)
    pthread_join (t[i], NULL);
  nbd_conn_drain (c);
}

static void *
conn_main (void *arg)
{
  struct conn *c = arg;
  struct df_nbd_server *s = c->srv;
  struct conn **p;

  serve_conn (c, s->threads);
  /* Off the list before the fd is closed: df_nbd_server_free shuts the
   * listed connections' fds down, and a closed fd's number may be
   * another socket's already.
   */
  pthread_mutex_lock (&s->lock);
  for (p = &s->conns; *p; p = &(*p)->next)
    if (*p == c) {
      *p = c->next;
      break;
    }
  pthread_mutex_unlock (&s->lock);
  close (c->in);
  pthread_mutex_lock (&s->lock);
  s->nconns--;
  pthread_cond_broadcast (&s->conns_cond);
  pthread_mutex_unlock (&s->lock);
  nbd_conn_destroy (c);
  free (c);
  return NULL;
}

int
df_nbd_server_add_fd (struct df_nbd_server *s, int fd)
{
  struct conn *c = malloc (sizeof *c);
  pthread_attr_t attr;
  pthread_t t;
  int err;

  if (c == NULL) {
    close (fd);
    return df_error_errno ("NBD connection");
  }
  nbd_conn_init (c, &s->e, fd, fd);
  c->srv = s;
  pthread_mutex_lock (&s->lock);
  if (s->stopping) {
    pthread_mutex_unlock (&s->lock);
    nbd_conn_destroy (c);
    free (c);
    close (fd);
    return df_error (ESHUTDOWN, "the NBD server is stopping");
  }
  c->next = s->conns;
  s->conns = c;
  s->nconns++;
  pthread_attr_init (&attr);
  pthread_attr_setdetachstate (&attr, PTHREAD_CREATE_DETACHED);
  err = pthread_create (&t, &attr, conn_main, c);
  pthread_attr_destroy (&attr);
  if (err) {
    s->conns = c->next;
    s->nconns--;
    pthread_mutex_unlock (&s->lock);
    nbd_conn_destroy (c);
    free (c);
    close (fd);
    return df_error (err, "NBD connection thread: %m");
  }
  pthread_mutex_unlock (&s->lock);
  return 0;
}

static void *
accept_main (void *arg)
{
  struct df_nbd_server *s = arg;

  for (;;) {
    int fd = accept4 (s->listen_fd, NULL, NULL, SOCK_CLOEXEC);

    if (fd == -1) {
      if (errno == EINTR || errno == ECONNABORTED)
        continue;
      pthread_mutex_lock (&s->lock);
      bool stopping = s->stopping;
      pthread_mutex_unlock (&s->lock);
      if (stopping)
        break;
      if (errno == EMFILE || errno == ENFILE || errno == ENOBUFS ||
          errno == ENOMEM) {
        nbd_log (&s->e, "accept: %s", strerror (errno));
        usleep (100000);
        continue;
      }
      break;
    }
    if (df_nbd_server_add_fd (s, fd) == -1 && errno != ESHUTDOWN)
      nbd_log (&s->e, "%s", df_error_get ());
  }
  return NULL;
}

struct df_nbd_server *
df_nbd_server_new (const struct df_nbd_export *e, unsigned threads)
{
  struct df_nbd_server *s = calloc (1, sizeof *s);

  if (s == NULL) {
    df_error_errno ("NBD server");
    return NULL;
  }
  s->e = *e;
  s->e.name = strdup (e->name);
  s->e.description = e->description ? strdup (e->description) : NULL;
  s->listen_fd = -1;
  s->threads = threads ? threads : DF_NBD_DEFAULT_THREADS;
  if (s->threads > DF_NBD_MAX_THREADS)
    s->threads = DF_NBD_MAX_THREADS;
  pthread_mutex_init (&s->lock, NULL);
  pthread_cond_init (&s->conns_cond, NULL);
  if (s->e.name == NULL || (e->description && s->e.description == NULL)) {
    df_error_errno ("NBD server");
    df_nbd_server_free (s);
    return NULL;
  }
  return s;
}

/* Whether a process still accepts connections on the socket file sa
 * names: refused (or gone) means it was left by a process that ended.
 */
static bool
socket_in_use (const struct sockaddr_un *sa)
{
  int fd = socket (AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
  bool used;

  if (fd == -1)
    return false;
  /* Non-blocking: a listener whose backlog is full answers EAGAIN, and
   * is in use all the same.
   */
  used = connect (fd, (const struct sockaddr *) sa, sizeof *sa) == 0 ||
    errno == EAGAIN || errno == EINPROGRESS;
  close (fd);
  return used;
}

/* Removes a socket file left by an earlier run; refuses other files,
 * and a socket another process serves (another attach of the same
 * path: replacing it would cut that one's clients off).
 */
static int
clear_socket_path (const struct sockaddr_un *sa)
{
  const char *path = sa->sun_path;
  struct stat st;

  if (lstat (path, &st) == -1)
    return errno == ENOENT ? 0 : df_error_errno ("%s", path);
  if (!S_ISSOCK (st.st_mode))
    return df_error (EEXIST, "%s exists and is not a socket", path);
  if (socket_in_use (sa))
    return df_error (EADDRINUSE, "%s is in use: another process serves "
                     "it", path);
  if (unlink (path) == -1)
    return df_error_errno ("removing the old socket %s", path);
  return 0;
}

int
df_nbd_server_listen_unix (struct df_nbd_server *s, const char *path,
                           mode_t mode)
{
  struct sockaddr_un sa = { .sun_family = AF_UNIX };
  int fd, err;

  if (strlen (path) >= sizeof sa.sun_path)
    return df_error (ENAMETOOLONG, "%s: socket path too long", path);
  strcpy (sa.sun_path, path);
  if (clear_socket_path (&sa) == -1)
    return -1;
  fd = socket (AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd == -1)
    return df_error_errno ("socket");
  if (bind (fd, (struct sockaddr *) &sa, sizeof sa) == -1 ||
      chmod (path, mode) == -1 || listen (fd, 64) == -1) {
    df_error_errno ("%s", path);
    close (fd);
    return -1;
  }
  s->listen_fd = fd;
  s->socket_path = strdup (path);
  err = pthread_create (&s->acceptor, NULL, accept_main, s);
  if (err) {
    close (fd);
    s->listen_fd = -1;
    unlink (path);
    return df_error (err, "NBD accept thread: %m");
  }
  s->accepting = true;
  return 0;
}

unsigned
df_nbd_server_connections (struct df_nbd_server *s)
{
  unsigned n;

  pthread_mutex_lock (&s->lock);
  n = s->nconns;
  pthread_mutex_unlock (&s->lock);
  return n;
}

void
df_nbd_server_free (struct df_nbd_server *s)
{
  struct timespec deadline;
  struct conn *c;

  if (s == NULL)
    return;
  pthread_mutex_lock (&s->lock);
  s->stopping = true;
  pthread_mutex_unlock (&s->lock);
  if (s->accepting) {
    shutdown (s->listen_fd, SHUT_RDWR);     /* wakes accept() */
    pthread_join (s->acceptor, NULL);
  }
  if (s->listen_fd >= 0)
    close (s->listen_fd);
  if (s->socket_path)
    unlink (s->socket_path);
  /* Readers see end of file; each connection ends after its jobs.  A
   * client that reads no replies is cut off after STOP_GRACE seconds.
   */
  pthread_mutex_lock (&s->lock);
  for (c = s->conns; c; c = c->next)
    shutdown (c->in, SHUT_RD);
  clock_gettime (CLOCK_REALTIME, &deadline);
  deadline.tv_sec += STOP_GRACE;
  while (s->nconns > 0)
    if (pthread_cond_timedwait (&s->conns_cond, &s->lock, &deadline)
        == ETIMEDOUT) {
      for (c = s->conns; c; c = c->next)
        shutdown (c->in, SHUT_RDWR);
      deadline.tv_sec += 3600;
    }
  pthread_mutex_unlock (&s->lock);
  pthread_mutex_destroy (&s->lock);
  pthread_cond_destroy (&s->conns_cond);
  free (s->socket_path);
  free ((char *) s->e.name);
  free ((char *) s->e.description);
  free (s);
}

void
df_nbd_serve_serial (const struct df_nbd_export *e, int in, int out)
{
  struct conn c;

  nbd_conn_init (&c, e, in, out);
  serve_conn (&c, 1);
  nbd_conn_destroy (&c);
}
