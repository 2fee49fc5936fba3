/* diskfarm — NBD upstream: asynchronous reads, streamed.
 *
 * A batch run by up_run_round goes out, and its caller waits for all of
 * its answers before it can answer its own client, which only then sends
 * more: the client, the attach and the server take turns.  Reads that
 * come through pread_async are streamed instead, over a connection the
 * pump thread has checked out: the thread that submits them sends their
 * requests at once (or queues them, when the pump has no connection or
 * no free slot), and the pump tells each read done as soon as its reply
 * is in.  So the client's next requests travel while the server still
 * works on the earlier ones, and a request wakes no other thread on its
 * way out.
 *
 * The connection is the round's as for any request.  The pump keeps it
 * while idle, and gives it back when another thread waits for one (a
 * writer, on a one-connection export) once its reads are answered.  A
 * lost connection is lost for the round (up_round_lost): the reads in
 * flight go back to the queue and are sent again once the supervisor
 * has a new round, as up_run_round does.  When no server serves any
 * more (dead timeout, detach, close) the queued reads fail.
 *
 * Locking: the pump's lock guards the queue and the stream's slots and
 * send buffer; the pump alone reads replies, and finds their reads
 * through the slots with atomic loads.
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

/* The pump's connection and what is on it. */
struct stream {
  struct uconn *c;
  /* Under the pump's lock (slot entries: stored atomically too): */
  struct df_bdev_aread *slot[SLOTS];    /* in flight, by cookie */
  uint64_t sent[SLOTS];         /* monotonic ns: when each was queued out */
  uint16_t free[SLOTS];         /* free slots, a stack */
  unsigned nfree;
  uint64_t serial;              /* the cookies' upper bits */
  uint8_t out[SLOTS * NBD_REQUEST_SIZE];        /* requests to send */
  size_t outpos, outlen;
  uint64_t last;                /* atomic: monotonic ns of the last
                                   progress */
  /* The pump thread's: */
  struct df_bdev_aread *cur;    /* a payload coming in */
  uint32_t cur_got;
  struct df_bdev_aread *done[SLOTS];    /* answered, to be told */
  size_t ndone;
  uint16_t freed[SLOTS];        /* their slots, to give back */
  size_t nfreed;
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

static void
touch (struct stream *s)
{
  __atomic_store_n (&s->last, df_now_mono_ns (), __ATOMIC_RELAXED);
}

static unsigned
in_flight (const struct stream *s)
{
  return SLOTS - s->nfree;
}

/* Appends a list of reads to the queue, at its front or its back (lock
 * held).  True if the pump must be kicked.
 */
static bool
enqueue (struct up_pump *p, struct df_bdev_aread *first,
         struct df_bdev_aread *last, bool front)
{
  bool wake;

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
  return wake;
}

/* Gives read a a slot and puts its request in out (lock held; a free
 * slot and room are there); now: the time.
 */
static void
assign (struct stream *s, struct df_bdev_aread *a, uint64_t now)
{
  uint16_t k = s->free[--s->nfree];
  uint8_t *h = s->out + s->outlen;

  if (s->nfree == SLOTS - 1)    /* the first in flight */
    __atomic_store_n (&s->last, now, __ATOMIC_RELAXED);
  s->sent[k] = now;
  a->cookie = (s->serial++ << 16) | k;
  __atomic_store_n (&s->slot[k], a, __ATOMIC_RELEASE);
  nbd_put32 (h, NBD_REQUEST_MAGIC);
  nbd_put16 (h + 4, 0);
  nbd_put16 (h + 6, NBD_CMD_READ);
  nbd_put64 (h + 8, a->cookie);
  nbd_put64 (h + 16, a->offset);
  nbd_put32 (h + 24, a->count);
  s->outlen += NBD_REQUEST_SIZE;
}

/* What is still to send goes to the start of out (lock held): out then
 * has room for a request per free slot.
 */
static void
compact (struct stream *s)
{
  if (s->outpos > 0) {
    memmove (s->out, s->out + s->outpos, s->outlen - s->outpos);
    s->outlen -= s->outpos;
    s->outpos = 0;
  }
}

/* Sends what the socket takes (lock held): 0 (the rest waits for
 * EPOLLOUT) or -1 (nothing more is sent; the pump finds the loss).
 */
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
      if (why)
        snprintf (why, len, "sending: %s", strerror (errno));
      return -1;
    }
    s->outpos += n;
  }
  return 0;
}

void
up_pread_async (struct df_bdev *b, struct df_bdev_aread **a, size_t n)
{
  struct upstream *up = (struct upstream *) b;
  struct up_pump *p = &up->pump;
  struct df_bdev_aread *first = NULL, *last = NULL;
  struct stream *s;
  size_t i, k = 0;
  bool wake = false;

  for (i = 0; i < n; i++) {
    if (a[i]->count > CHUNK || a[i]->count == 0) {
      a[i]->error = a[i]->count &&
        df_bdev_pread (b, a[i]->buf, a[i]->count, a[i]->offset) == -1
        ? errno : 0;
      df_error_clear ();
      df_bdev_aio_complete (&a[i], 1);
      continue;
    }
    a[k++] = a[i];
  }
  if (k == 0)
    return;
  pthread_mutex_lock (&p->lock);
  if (p->stop) {                /* closed: nobody would send them */
    pthread_mutex_unlock (&p->lock);
    for (i = 0; i < k; i++)
      a[i]->error = ESHUTDOWN;
    df_bdev_aio_complete (a, k);
    return;
  }
  s = p->live;
  if (s && p->head == NULL && s->nfree >= k) {
    /* Straight out on the pump's connection. */
    uint64_t now = df_now_mono_ns ();
    compact (s);
    for (i = 0; i < k; i++)
      assign (s, a[i], now);
    /* The pump watches a request that did not go out whole.  It need
     * not wake for the first one in flight: while idle it waits at most
     * --io-timeout, which ends before this one's would.
     */
    if (push (s, NULL, 0) == -1 || s->outpos < s->outlen)
      wake = true;
  }
  else {
    for (i = 0; i < k; i++) {
      a[i]->next = NULL;
      if (last)
        last->next = a[i];
      else
        first = a[i];
      last = a[i];
    }
    wake = enqueue (p, first, last, false);
  }
  pthread_mutex_unlock (&p->lock);
  if (wake)
    kick (p);
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

/* Moves queued reads into free slots (lock held). */
static void
take (struct up_pump *p, struct stream *s)
{
  struct df_bdev_aread *a;
  uint64_t now;

  p->kicked = false;
  if (p->head == NULL || s->nfree == 0)
    return;
  compact (s);
  now = df_now_mono_ns ();
  while (s->nfree > 0 && (a = p->head) != NULL) {
    p->head = a->next;
    assign (s, a, now);
  }
  if (p->head == NULL)
    p->tail = NULL;
}

/* Read a is answered: out of its slot, into done. */
static void
answered (struct stream *s, struct df_bdev_aread *a)
{
  uint16_t k = a->cookie & 0xffff;

  __atomic_store_n (&s->slot[k], NULL, __ATOMIC_RELAXED);
  s->freed[s->nfreed++] = k;
  s->done[s->ndone++] = a;
  touch (s);
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
    a = (cookie & 0xffff) < SLOTS
      ? __atomic_load_n (&s->slot[cookie & 0xffff], __ATOMIC_ACQUIRE) : NULL;
    if (nbd_get32 (p) != NBD_SIMPLE_REPLY_MAGIC || a == NULL ||
        a->cookie != cookie) {
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
    if (c->rpos == c->rlen)
      c->rpos = c->rlen = 0;
    if (s->cur && c->rlen == 0 &&
        s->cur->count - s->cur_got >= UP_RBUF / 2) {
      /* A big payload: straight into place. */
      struct df_bdev_aread *a = s->cur;
      n = recv (c->fd, (char *) a->buf + s->cur_got, a->count - s->cur_got,
                MSG_DONTWAIT);
      if (n > 0) {
        touch (s);
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
        touch (s);
        c->rlen += n;
        if ((size_t) n < room)  /* the socket is empty: wait next */
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

/* Gives the answered reads' slots back (lock held). */
static void
release (struct stream *s)
{
  while (s->nfreed > 0)
    s->free[s->nfree++] = s->freed[--s->nfreed];
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

/* When the oldest read in flight went out (lock held), or UINT64_MAX. */
static uint64_t
oldest_sent (const struct stream *s)
{
  uint64_t oldest = UINT64_MAX;
  unsigned k;

  for (k = 0; k < SLOTS; k++)
    if (s->slot[k] && s->sent[k] < oldest)
      oldest = s->sent[k];
  return oldest;
}

/* The pump lets the connection go (lock held): submitters queue from
 * now on; after a loss, the reads in flight go back to the front of the
 * queue, to be sent again.
 */
static void
end_stream (struct up_pump *p, struct stream *s)
{
  struct df_bdev_aread *first = NULL, *last = NULL;
  unsigned k;

  /* For the pause (up_round_lost): since the oldest read unanswered. */
  __atomic_store_n (&s->c->busy_since, oldest_sent (s), __ATOMIC_RELAXED);
  p->live = NULL;
  release (s);
  for (k = 0; k < SLOTS; k++)
    if (s->slot[k]) {
      struct df_bdev_aread *a = s->slot[k];
      __atomic_store_n (&s->slot[k], NULL, __ATOMIC_RELAXED);
      s->free[s->nfree++] = k;
      a->next = first;
      first = a;
      if (last == NULL)
        last = a;
    }
  s->outpos = s->outlen = 0;
  if (first)
    enqueue (p, first, last, true);     /* the pump looks at the queue */
}

static void
start_stream (struct up_pump *p, struct stream *s, struct uconn *c)
{
  unsigned k;

  pthread_mutex_lock (&p->lock);
  s->c = c;
  s->nfree = 0;
  for (k = SLOTS; k > 0; k--) {
    s->free[s->nfree++] = k - 1;
    s->slot[k - 1] = NULL;
  }
  s->outpos = s->outlen = 0;
  s->cur = NULL;
  s->ndone = s->nfreed = 0;
  touch (s);
  /* Its reads' times are in sent[]: end_stream tells the pause. */
  __atomic_store_n (&c->busy_since, UINT64_MAX, __ATOMIC_RELAXED);
  p->live = s;
  pthread_mutex_unlock (&p->lock);
}

static bool
stopping (struct upstream *up)
{
  return __atomic_load_n (&up->pump.stop, __ATOMIC_ACQUIRE);
}

/* Streams over c, waiting on it while idle, until another thread wants
 * a connection or the pump stops (0; nothing in flight), or the
 * connection is lost (-1, why; the reads in flight are queued again).
 * One epoll set holds the socket, the pump's eventfd and the lost-round
 * eventfd: cheaper than a poll of the three per wait.
 */
static int
stream (struct upstream *up, struct stream *s, char *why, size_t len)
{
  uint64_t limit = (uint64_t) up->p.io_timeout * 1000000000;
  struct up_pump *p = &up->pump;
  struct uconn *c = s->c;
  struct epoll_event ev = { .events = EPOLLIN, .data.fd = c->fd };
  bool out_watched = false, skipped = false;

  if (epoll_ctl (p->epfd, EPOLL_CTL_ADD, c->fd, &ev) == -1) {
    snprintf (why, len, "epoll: %s", strerror (errno));
    goto lost;
  }
  for (;;) {
    struct epoll_event evs[3];
    bool yield = __atomic_load_n (&up->conn_waiters, __ATOMIC_RELAXED) > 0;
    bool pending;
    unsigned flying;
    int timeout = -1, n, i, rv;

    if (stopping (up)) {        /* close: nobody waits for these */
      snprintf (why, len, "the device is being closed");
      goto lost;
    }
    /* A submitter that holds the lock is sending its reads: rather than
     * sleep until it is done, this turn only reads replies (one turn:
     * the next waits for the lock).
     */
    if (yield || skipped)
      pthread_mutex_lock (&p->lock);
    else if (pthread_mutex_trylock (&p->lock) != 0) {
      skipped = true;
      pending = out_watched;
      timeout = 0;              /* what came, and back for the lock */
      goto wait;
    }
    skipped = false;
    release (s);
    if (yield)
      p->live = NULL;
    else {
      p->live = s;              /* again, after a yield that passed */
      take (p, s);
    }
    rv = push (s, why, len);
    flying = in_flight (s);
    pending = s->outpos < s->outlen;
    pthread_mutex_unlock (&p->lock);
    if (rv == -1)
      goto lost;
    if (flying == 0) {
      if (yield)
        break;
      /* Reads sent meanwhile do not wake this thread: it finds them
       * in flight when their time is up, at the latest.
       */
      if (limit)
        timeout = limit / 1000000;
    }
    else {
      uint64_t now = df_now_mono_ns ();
      uint64_t last = __atomic_load_n (&s->last, __ATOMIC_RELAXED);
      if (limit) {
        if (now - last >= limit) {
          uint64_t since;
          /* Replies may wait unread (this thread was held up): the
           * server is silent only if none came.
           */
          if (pull (s, why, len) == -1)
            goto lost;
          if (__atomic_load_n (&s->last, __ATOMIC_RELAXED) != last) {
            tell (s);           /* bytes came: pull touched last */
            continue;
          }
          /* ... and the oldest read in flight went out before it. */
          pthread_mutex_lock (&p->lock);
          since = oldest_sent (s);
          pthread_mutex_unlock (&p->lock);
          if (since == UINT64_MAX)        /* none left in flight */
            since = now;
          else if (since < last)
            since = last;
          if (now - since >= limit) {
            snprintf (why, len, "no reply for %u s", up->p.io_timeout);
            goto lost;
          }
          last = since;
        }
        timeout = (last + limit - now) / 1000000 + 1;
      }
    }
  wait:
    if (out_watched != pending) {
      out_watched = pending;
      ev.events = EPOLLIN | (pending ? EPOLLOUT : 0);
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
  pthread_mutex_lock (&p->lock);
  end_stream (p, s);
  pthread_mutex_unlock (&p->lock);
  return 0;
 lost:
  epoll_ctl (p->epfd, EPOLL_CTL_DEL, c->fd, NULL);
  tell (s);
  pthread_mutex_lock (&p->lock);
  end_stream (p, s);
  pthread_mutex_unlock (&p->lock);
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
    /* Threads waiting for a connection go first: the one the pump just
     * gave back is theirs, not its own again.
     */
    while (__atomic_load_n (&up->conn_waiters, __ATOMIC_RELAXED) > 0 &&
           up->state == UP_UP && !stopping (up))
      pthread_cond_wait (&up->free_cond, &up->lock);
    c = up_checkout (up);
    if (c)
      up->pump_holds = true;
    pthread_mutex_unlock (&up->lock);
    if (c == NULL) {
      fail_queued (p, errno ? errno : EIO);
      df_error_clear ();
      continue;
    }
    start_stream (p, p->s, c);
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

  pthread_mutex_lock (&p->lock);
  __atomic_store_n (&p->stop, true, __ATOMIC_RELEASE);
  pthread_mutex_unlock (&p->lock);
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
