/* diskfarm — NBD upstream: asynchronous reads, streamed.
 *
 * A batch run by up_run_round goes out, and its caller waits for all of
 * its answers before it can answer its own client, which only then sends
 * more: the client, the attach and the server take turns.  Reads that
 * come through pread_async go instead to the pump, a thread that checks
 * a connection out and streams on it: it sends what is queued as soon as
 * it is queued, and tells each read done as soon as its reply is in, so
 * the client's next requests travel while the server still works on the
 * earlier ones.
 *
 * The connection is the round's as for any request: the pump gives it
 * back when nothing is in flight and nothing queued, or when another
 * thread waits for a connection (a writer, on a one-connection export).
 * A lost connection is lost for the round (up_round_lost): the reads in
 * flight go back to the queue and are sent again once the supervisor
 * has a new round, as up_run_round does.  When no server serves any
 * more (dead timeout, detach, close) the queued reads fail.
 */
#include <config.h>

#include <errno.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <unistd.h>

#include "error.h"
#include "nbd/proto.h"
#include "upstream/upstream-int.h"

#define SLOTS 512               /* reads in flight on the connection */
#define CHUNK (32 * 1024 * 1024)        /* larger reads run in place */

/* What the pump does on the connection it has checked out. */
struct stream {
  struct uconn *c;
  struct df_bdev_aread *slot[SLOTS];    /* in flight, by cookie */
  uint16_t free[SLOTS];         /* free slots, a stack */
  unsigned nfree;
  uint64_t serial;              /* the cookies' upper bits */
  uint8_t out[SLOTS * NBD_REQUEST_SIZE];        /* requests to send */
  size_t outpos, outlen;
  struct df_bdev_aread *cur;    /* a payload coming in */
  uint32_t cur_got;
  struct df_bdev_aread *done[SLOTS];    /* answered, to be told */
  size_t ndone;
  uint64_t last;                /* monotonic ns of the last progress */
};

static void
kick (struct up_pump *p)
{
  uint64_t one = 1;

  if (write (p->efd, &one, sizeof one) == -1 && errno != EAGAIN)
    abort ();                   /* an eventfd write cannot fail otherwise */
}

static void
unkick (struct up_pump *p)
{
  uint64_t junk;

  if (read (p->efd, &junk, sizeof junk) == -1 && errno != EAGAIN)
    abort ();
}

/* Appends a list of reads to the queue (front: before what is there). */
static void
enqueue (struct up_pump *p, struct df_bdev_aread *first,
         struct df_bdev_aread *last, bool front)
{
  bool wake;

  pthread_mutex_lock (&p->lock);
  if (front) {
    last->next = p->head;
    p->head = first;
    if (p->tail == NULL)
      p->tail = last;
  }
  else {
    last->next = NULL;
    if (p->tail)
      p->tail->next = first;
    else
      p->head = first;
    p->tail = last;
  }
  wake = !p->kicked;
  p->kicked = true;
  pthread_mutex_unlock (&p->lock);
  if (wake)
    kick (p);
}

void
up_pread_async (struct df_bdev *b, struct df_bdev_aread **a, size_t n)
{
  struct upstream *up = (struct upstream *) b;
  struct df_bdev_aread *first = NULL, *last = NULL;
  size_t i;

  for (i = 0; i < n; i++) {
    if (a[i]->count > CHUNK || a[i]->count == 0) {
      a[i]->error = a[i]->count && up->bdev.ops->pread (b, a[i]->buf,
                                                         a[i]->count,
                                                         a[i]->offset) == -1
        ? errno : 0;
      df_bdev_aio_complete (&a[i], 1);
      continue;
    }
    a[i]->next = NULL;
    if (last)
      last->next = a[i];
    else
      first = a[i];
    last = a[i];
  }
  if (first)
    enqueue (&up->pump, first, last, false);
}

/* Takes the whole queue. */
static struct df_bdev_aread *
take_all (struct up_pump *p)
{
  struct df_bdev_aread *l;

  pthread_mutex_lock (&p->lock);
  l = p->head;
  p->head = p->tail = NULL;
  p->kicked = false;
  pthread_mutex_unlock (&p->lock);
  return l;
}

/* Fails every queued read with err. */
static void
fail_queued (struct up_pump *p, int err)
{
  struct df_bdev_aread *l = take_all (p), *done[64];
  size_t n = 0;

  while (l) {
    struct df_bdev_aread *next = l->next;
    l->error = err;
    done[n++] = l;
    if (n == 64 || next == NULL) {
      df_bdev_aio_complete (done, n);
      n = 0;
    }
    l = next;
  }
}

/* Moves queued reads into free slots and their requests into out. */
static void
take (struct upstream *up, struct stream *s)
{
  struct up_pump *p = &up->pump;
  struct df_bdev_aread *a;

  if (s->nfree == 0)
    return;
  /* What is still to send goes first: out holds a request per slot. */
  if (s->outpos > 0) {
    memmove (s->out, s->out + s->outpos, s->outlen - s->outpos);
    s->outlen -= s->outpos;
    s->outpos = 0;
  }
  pthread_mutex_lock (&p->lock);
  p->kicked = false;
  while (s->nfree > 0 && (a = p->head) != NULL) {
    uint16_t k = s->free[--s->nfree];
    uint8_t *h;

    p->head = a->next;
    if (s->nfree == SLOTS - 1)
      s->last = df_now_mono_ns ();      /* the first in flight */
    a->cookie = (s->serial++ << 16) | k;
    s->slot[k] = a;
    h = s->out + s->outlen;
    nbd_put32 (h, NBD_REQUEST_MAGIC);
    nbd_put16 (h + 4, 0);
    nbd_put16 (h + 6, NBD_CMD_READ);
    nbd_put64 (h + 8, a->cookie);
    nbd_put64 (h + 16, a->offset);
    nbd_put32 (h + 24, a->count);
    s->outlen += NBD_REQUEST_SIZE;
  }
  if (p->head == NULL)
    p->tail = NULL;
  pthread_mutex_unlock (&p->lock);
}

/* Sends what the socket takes: 0 (the rest waits for POLLOUT) or -1. */
static int
push (struct stream *s, char *why, size_t len)
{
  while (s->outpos < s->outlen) {
    ssize_t n = send (s->c->fd, s->out + s->outpos, s->outlen - s->outpos,
                      MSG_NOSIGNAL | MSG_DONTWAIT);
    if (n == -1 && errno == EINTR)
      continue;
    if (n == -1 && (errno == EAGAIN || errno == EWOULDBLOCK))
      return 0;
    if (n == -1) {
      snprintf (why, len, "sending: %s", strerror (errno));
      return -1;
    }
    s->outpos += n;
  }
  return 0;
}

static unsigned
in_flight (const struct stream *s)
{
  return SLOTS - s->nfree;
}

/* Read a is answered: out of its slot, into done. */
static void
answered (struct stream *s, struct df_bdev_aread *a)
{
  uint16_t k = a->cookie & 0xffff;

  s->slot[k] = NULL;
  s->free[s->nfree++] = k;
  s->done[s->ndone++] = a;
  s->last = df_now_mono_ns ();
  s->cur = NULL;
}

/* Takes the replies in the buffer (see wire.c's parse). */
static int
parse (struct stream *s, char *why, size_t len)
{
  struct uconn *c = s->c;

  for (;;) {
    const uint8_t *p = c->rbuf + c->rpos;
    size_t have = c->rlen - c->rpos, n;
    struct df_bdev_aread *a;
    uint64_t cookie;
    uint32_t err;

    if (s->cur) {
      a = s->cur;
      n = a->count - s->cur_got < have ? a->count - s->cur_got : have;
      memcpy ((char *) a->buf + s->cur_got, p, n);
      c->rpos += n;
      s->cur_got += n;
      if (s->cur_got < a->count)
        return 0;
      answered (s, a);
      continue;
    }
    if (have < NBD_SIMPLE_REPLY_SIZE)
      return 0;
    err = nbd_get32 (p + 4);
    cookie = nbd_get64 (p + 8);
    a = s->slot[cookie & (SLOTS - 1)];
    if (nbd_get32 (p) != NBD_SIMPLE_REPLY_MAGIC || (cookie & 0xffff) >= SLOTS
        || a == NULL || a->cookie != cookie) {
      snprintf (why, len, "the server sent a reply that was not asked for");
      return -1;
    }
    c->rpos += NBD_SIMPLE_REPLY_SIZE;
    a->error = err ? up_errno_of_wire (err) : 0;
    if (a->error == ESHUTDOWN) {
      snprintf (why, len, "the server is shutting down");
      return -1;
    }
    if (err == 0) {
      s->cur = a;
      s->cur_got = 0;
    }
    else
      answered (s, a);
  }
}

/* Reads what came: 0 (more later) or -1 (see wire.c's pull). */
static int
pull (struct stream *s, char *why, size_t len)
{
  struct uconn *c = s->c;

  for (;;) {
    ssize_t n;

    if (parse (s, why, len) == -1)
      return -1;
    if (in_flight (s) == 0)
      return 0;
    if (c->rpos == c->rlen)
      c->rpos = c->rlen = 0;
    if (s->cur && c->rlen == 0 &&
        s->cur->count - s->cur_got >= UP_RBUF / 2) {
      /* A big payload: straight into place. */
      struct df_bdev_aread *a = s->cur;
      n = recv (c->fd, (char *) a->buf + s->cur_got, a->count - s->cur_got,
                MSG_DONTWAIT);
      if (n > 0) {
        s->cur_got += n;
        if (s->cur_got == a->count)
          answered (s, a);
        continue;
      }
    }
    else {
      size_t room;
      if (c->rpos > 0) {
        memmove (c->rbuf, c->rbuf + c->rpos, c->rlen - c->rpos);
        c->rlen -= c->rpos;
        c->rpos = 0;
      }
      room = UP_RBUF - c->rlen;
      n = recv (c->fd, c->rbuf + c->rlen, room, MSG_DONTWAIT);
      if (n > 0) {
        c->rlen += n;
        if ((size_t) n < room)  /* the socket is empty: poll next */
          return parse (s, why, len);
        continue;
      }
    }
    if (n == -1 && errno == EINTR)
      continue;
    if (n == -1 && (errno == EAGAIN || errno == EWOULDBLOCK))
      return 0;
    snprintf (why, len, "%s", n == 0 ? "the server closed the connection"
              : strerror (errno));
    return -1;
  }
}

/* Tells the answered reads. */
static void
tell (struct stream *s)
{
  if (s->ndone) {
    df_bdev_aio_complete (s->done, s->ndone);
    s->ndone = 0;
  }
}

/* After the connection was lost: the reads in flight go back to the
 * front of the queue, to be sent again.
 */
static void
requeue (struct upstream *up, struct stream *s)
{
  struct df_bdev_aread *first = NULL, *last = NULL;
  unsigned k;

  for (k = 0; k < SLOTS; k++)
    if (s->slot[k]) {
      struct df_bdev_aread *a = s->slot[k];
      s->slot[k] = NULL;
      a->next = first;
      first = a;
      if (last == NULL)
        last = a;
    }
  if (first)
    enqueue (&up->pump, first, last, true);
}

static void
stream_reset (struct stream *s, struct uconn *c)
{
  unsigned k;

  s->c = c;
  s->nfree = 0;
  for (k = SLOTS; k > 0; k--)
    s->free[s->nfree++] = k - 1;
  s->outpos = s->outlen = 0;
  s->cur = NULL;
  s->ndone = 0;
  s->last = df_now_mono_ns ();
}

static bool
stopping (struct upstream *up)
{
  return __atomic_load_n (&up->pump.stop, __ATOMIC_ACQUIRE);
}

/* When the connection's requests started waiting (up_round_lost takes
 * the oldest for the pause): now, or never while nothing is in flight.
 */
static void
mark_busy (struct uconn *c, bool waiting)
{
  __atomic_store_n (&c->busy_since, waiting ? df_now_mono_ns () : UINT64_MAX,
                    __ATOMIC_RELAXED);
}

/* Streams the queue over c, waiting on it while idle, until another
 * thread wants a connection or the pump stops (0; nothing in flight),
 * or the connection is lost (-1, why; the reads in flight are queued
 * again).  One epoll set holds the socket, the pump's eventfd and the
 * lost-round eventfd: cheaper than a poll of the three per wait.
 */
static int
stream (struct upstream *up, struct stream *s, char *why, size_t len)
{
  uint64_t limit = (uint64_t) up->p.io_timeout * 1000000000;
  struct up_pump *p = &up->pump;
  struct uconn *c = s->c;
  struct epoll_event ev = { .events = EPOLLIN, .data.fd = c->fd };
  bool out_watched = false, idle = false;

  if (epoll_ctl (p->epfd, EPOLL_CTL_ADD, c->fd, &ev) == -1) {
    snprintf (why, len, "epoll: %s", strerror (errno));
    requeue (up, s);
    return -1;
  }
  for (;;) {
    struct epoll_event evs[3];
    bool yield = __atomic_load_n (&up->conn_waiters, __ATOMIC_RELAXED) > 0;
    int timeout = -1, n, i;

    if (stopping (up)) {        /* close: nobody waits for these */
      snprintf (why, len, "the device is being closed");
      goto lost;
    }
    if (!yield)
      take (up, s);
    if (push (s, why, len) == -1)
      goto lost;
    if (in_flight (s) == 0) {
      if (yield)
        break;
      if (!idle)
        mark_busy (c, false);
      idle = true;
    }
    else {
      uint64_t now = df_now_mono_ns ();
      if (idle)
        mark_busy (c, true);
      idle = false;
      if (limit) {
        if (now - s->last >= limit) {
          snprintf (why, len, "no reply for %u s", up->p.io_timeout);
          goto lost;
        }
        timeout = (s->last + limit - now) / 1000000 + 1;
      }
    }
    if (out_watched != (s->outpos < s->outlen)) {
      out_watched = !out_watched;
      ev.events = EPOLLIN | (out_watched ? EPOLLOUT : 0);
      if (epoll_ctl (p->epfd, EPOLL_CTL_MOD, c->fd, &ev) == -1) {
        snprintf (why, len, "epoll: %s", strerror (errno));
        goto lost;
      }
    }
    n = epoll_wait (p->epfd, evs, 3, timeout);
    if (n == -1 && errno != EINTR) {
      snprintf (why, len, "%s", strerror (errno));
      goto lost;
    }
    for (i = 0; i < n; i++) {
      if (evs[i].data.fd == p->efd)
        unkick (p);
      else if (evs[i].data.fd == up->lost_fd) {
        if (__atomic_load_n (&c->lost, __ATOMIC_ACQUIRE)) {
          snprintf (why, len, "another connection to the server was lost");
          goto lost;
        }
      }
      else if ((evs[i].events & (EPOLLIN | EPOLLHUP | EPOLLERR)) &&
               pull (s, why, len) == -1)
        goto lost;
    }
    tell (s);
  }
  epoll_ctl (p->epfd, EPOLL_CTL_DEL, c->fd, NULL);
  mark_busy (c, false);
  return 0;
 lost:
  epoll_ctl (p->epfd, EPOLL_CTL_DEL, c->fd, NULL);
  tell (s);
  requeue (up, s);
  return -1;
}

static void *
pump_main (void *arg)
{
  struct upstream *up = arg;
  struct up_pump *p = &up->pump;
  char why[256];

  for (;;) {
    struct pollfd pfd = { .fd = p->efd, .events = POLLIN };
    struct uconn *c;
    bool work;
    int rv;

    pthread_mutex_lock (&p->lock);
    work = p->head != NULL;
    pthread_mutex_unlock (&p->lock);
    if (stopping (up)) {
      fail_queued (p, ESHUTDOWN);
      break;
    }
    if (!work) {
      if (poll (&pfd, 1, -1) == 1)
        unkick (p);
      continue;
    }
    pthread_mutex_lock (&up->lock);
    c = up_checkout (up);
    if (c)
      up->pump_holds = true;
    pthread_mutex_unlock (&up->lock);
    if (c == NULL) {
      fail_queued (p, errno ? errno : EIO);
      df_error_clear ();
      continue;
    }
    stream_reset (p->s, c);
    rv = stream (up, p->s, why, sizeof why);
    pthread_mutex_lock (&up->lock);
    up->pump_holds = false;
    if (rv == -1)
      up_round_lost (up, c, why);
    up_checkin (up, c, rv == -1);
    pthread_mutex_unlock (&up->lock);
  }
  return NULL;
}

int
up_pump_init (struct upstream *up)
{
  struct up_pump *p = &up->pump;
  struct epoll_event ev = { .events = EPOLLIN };

  p->s = calloc (1, sizeof *p->s);
  if (p->s == NULL)
    return df_error_errno ("upstream pump");
  p->efd = eventfd (0, EFD_CLOEXEC | EFD_NONBLOCK);
  if (p->efd == -1)
    return df_error_errno ("eventfd");
  p->epfd = epoll_create1 (EPOLL_CLOEXEC);
  if (p->epfd == -1)
    return df_error_errno ("epoll");
  ev.data.fd = p->efd;
  if (epoll_ctl (p->epfd, EPOLL_CTL_ADD, p->efd, &ev) == -1)
    return df_error_errno ("epoll");
  ev.data.fd = up->lost_fd;
  if (epoll_ctl (p->epfd, EPOLL_CTL_ADD, up->lost_fd, &ev) == -1)
    return df_error_errno ("epoll");
  return 0;
}

void
up_pump_kick (struct upstream *up)
{
  kick (&up->pump);
}

int
up_pump_start (struct upstream *up)
{
  int err = pthread_create (&up->pump.thread, NULL, pump_main, up);

  if (err)
    return df_error (err, "upstream pump thread: %m");
  up->pump.running = true;
  return 0;
}

void
up_pump_stop (struct upstream *up)
{
  struct up_pump *p = &up->pump;

  __atomic_store_n (&p->stop, true, __ATOMIC_RELEASE);
  if (p->running) {
    kick (p);
    pthread_join (p->thread, NULL);
    p->running = false;
  }
  fail_queued (p, ESHUTDOWN);
}

void
up_pump_destroy (struct upstream *up)
{
  struct up_pump *p = &up->pump;

  if (p->efd >= 0)
    close (p->efd);
  if (p->epfd >= 0)
    close (p->epfd);
  free (p->s);
  pthread_mutex_destroy (&p->lock);
}
