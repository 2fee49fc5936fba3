/* diskfarm — NBD server: sending replies, and the queue of those the
 * client's socket does not take at once.
 *
 * Replies to reads the device runs asynchronously are sent from the
 * device's own thread (the NBD upstream's pump), which serves every
 * connection: it must never wait for a client.  So on a socket, with
 * such a device, a reply goes out without blocking, and what the socket
 * does not take waits in the connection's queue for its writer thread,
 * which sends it blocking; every reply sent meanwhile joins the queue.
 * A client that stops reading then holds up its own replies only, and
 * the reads they belong to stay counted (async_jobs) until sent, which
 * keeps the reader's bound.  Other replies queue up to OQ_RECS /
 * OQ_BYTES; past them the thread that replies waits for the client.
 */
#include <config.h>

#include <errno.h>
#include <inttypes.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>

#include "nbd/server-int.h"

#define IOV_RECS 32             /* replies per sendmsg */

static size_t
rec_len (const struct outrec *o)
{
  return sizeof o->h + o->len;
}

/* What is left to send of the records from o on, into iov. */
static int
rec_iov (const struct outrec *o, struct iovec *iov)
{
  int n = 0, k;

  for (k = 0; o && k < IOV_RECS; o = o->next, k++) {
    size_t off = o->sent;

    if (off < sizeof o->h) {
      iov[n++] = (struct iovec) { (void *) (o->h + off), sizeof o->h - off };
      off = 0;
    }
    else
      off -= sizeof o->h;
    if (o->len > off)
      iov[n++] = (struct iovec) { (char *) o->data + off, o->len - off };
  }
  return n;
}

/* Record o is sent or dropped (send_lock held): counted now, freed by
 * free_recs after the lock (its job may be the last thing that keeps
 * the connection), or its small job given back now.
 */
static void
rec_done (struct conn *c, struct outrec *o, struct outrec **gone)
{
  if (o->job) {
    __atomic_sub_fetch (&c->async_jobs, 1, __ATOMIC_RELAXED);
    __atomic_sub_fetch (&c->async_bytes, o->job->req.count,
                        __ATOMIC_RELAXED);
    if (o->job->small) {        /* back to the reader */
      struct job *j = o->job;
      j->spare_next = __atomic_load_n (&c->returned, __ATOMIC_RELAXED);
      while (!__atomic_compare_exchange_n (&c->returned, &j->spare_next, j,
                                           true, __ATOMIC_RELEASE,
                                           __ATOMIC_RELAXED))
        ;
      return;
    }
  }
  if (o->counted) {
    c->oq_recs--;
    c->oq_bytes -= o->len;
  }
  o->next = *gone;
  *gone = o;
}

static void
free_recs (struct outrec *o)
{
  while (o) {
    struct outrec *next = o->next;
    free (o->job ? (void *) o->job : (void *) o);
    o = next;
  }
}

/* Takes len sent bytes off the list at *head (send_lock held). */
static void
advance (struct conn *c, struct outrec **head, size_t len,
         struct outrec **gone)
{
  while (len > 0 && *head) {
    struct outrec *o = *head;
    size_t rest = rec_len (o) - o->sent;

    if (len < rest) {
      o->sent += len;
      return;
    }
    len -= rest;
    *head = o->next;
    rec_done (c, o, gone);
  }
}

/* Sends from the list at *head without blocking (send_lock held), until
 * the socket is full or the list is empty.  A broken connection sets
 * send_failed (the reader notices the client left at its next read).
 */
static void
send_some (struct conn *c, struct outrec **head, struct outrec **gone)
{
  while (*head && !c->send_failed) {
    struct iovec iov[2 * IOV_RECS];
    struct msghdr msg = { .msg_iov = iov };
    ssize_t r;

    msg.msg_iovlen = rec_iov (*head, iov);
    r = sendmsg (c->out, &msg, MSG_NOSIGNAL | MSG_DONTWAIT);
    if (r == -1 && errno == EINTR)
      continue;
    if (r == -1 && (errno == EAGAIN || errno == EWOULDBLOCK))
      return;
    if (r == -1)
      c->send_failed = true;
    else
      advance (c, head, r, gone);
  }
}

/* Drops every record of the list (send_lock held). */
static void
drop_all (struct conn *c, struct outrec **head, struct outrec **gone)
{
  while (*head) {
    struct outrec *o = *head;
    *head = o->next;
    rec_done (c, o, gone);
  }
}

/* Sends the list from first to last, or queues what the socket does not
 * take (send_lock held).
 */
static void
send_or_queue (struct conn *c, struct outrec *first, struct outrec *last,
               struct outrec **gone)
{
  last->next = NULL;
  if (c->send_failed) {
    drop_all (c, &first, gone);
    return;
  }
  if (c->oq_head) {             /* the writer is at it: after the others */
    c->oq_tail->next = first;
    c->oq_tail = last;
    return;
  }
  send_some (c, &first, gone);
  if (c->send_failed)
    drop_all (c, &first, gone);
  if (first) {
    c->oq_head = first;
    c->oq_tail = last;
    pthread_cond_signal (&c->out_cond);
  }
}

void
nbd_send_reply (struct conn *c, const struct nbd_request *r, uint32_t error,
                const void *data, uint32_t len)
{
  struct outrec *gone = NULL, *o;
  uint8_t h[NBD_SIMPLE_REPLY_SIZE];
  size_t sent = 0;

  nbd_simple_reply_encode (h, error, r->cookie);
  if (error)
    len = 0;
  if (!c->queued_replies) {
    pthread_mutex_lock (&c->send_lock);
    if (!c->send_failed && nbd_send_all (c, h, sizeof h, data, len) == -1)
      /* The client is gone; the reader notices at its next read. */
      c->send_failed = true;
    pthread_mutex_unlock (&c->send_lock);
    return;
  }
  pthread_mutex_lock (&c->send_lock);
  if (c->send_failed) {
    pthread_mutex_unlock (&c->send_lock);
    return;
  }
  if (c->oq_head == NULL) {     /* the usual case: straight out */
    struct outrec tmp = { .len = len, .data = data }, *head = &tmp;
    memcpy (tmp.h, h, sizeof h);
    send_some (c, &head, &gone);
    if (head == NULL || c->send_failed) {
      pthread_mutex_unlock (&c->send_lock);
      return;                   /* gone holds tmp: nothing to free */
    }
    sent = tmp.sent;
  }
  /* The rest in a record of its own, with a copy of the data: the
   * caller's buffer does not wait for the queue.
   */
  o = malloc (sizeof *o + len);
  if (o == NULL) {
    nbd_conn_log (c, "out of memory for a reply: dropping the connection");
    c->send_failed = true;
    pthread_cond_broadcast (&c->async_cond);    /* no more waiting */
    shutdown (c->in, SHUT_RDWR);        /* the reader sees the end */
  }
  else {
    *o = (struct outrec) {
      .len = len, .data = o + 1, .sent = sent, .counted = true,
    };
    memcpy (o->h, h, sizeof h);
    if (len)
      memcpy (o + 1, data, len);
    c->oq_recs++;
    c->oq_bytes += len;
    send_or_queue (c, o, o, &gone);
    /* A client that reads no replies: wait for it, as a blocking send
     * would, rather than queue without end (the writer broadcasts as
     * it sends, and when the client is gone).
     */
    while (!c->send_failed &&
           (c->oq_recs > OQ_RECS || c->oq_bytes > OQ_BYTES))
      pthread_cond_wait (&c->async_cond, &c->send_lock);
  }
  pthread_mutex_unlock (&c->send_lock);
  free_recs (gone);
}

/* Replies to reads the device ran asynchronously (on the device's
 * thread).
 */
void
nbd_reads_done (struct df_bdev_aio *aio, struct df_bdev_aread **a, size_t n)
{
  struct conn *c = (struct conn *) ((char *) aio - offsetof (struct conn, aio));
  struct outrec *first = NULL, *last = NULL, *gone = NULL;
  size_t i;

  for (i = 0; i < n; i++) {
    struct job *j = (struct job *) ((char *) a[i]
                                    - offsetof (struct job, aread));
    uint32_t error = j->aread.error ? nbd_errno_to_wire (j->aread.error) : 0;

    if (j->aread.error)
      nbd_conn_log (c, "read of %" PRIu32 " bytes at %" PRIu64 ": %s",
                    j->req.count, j->req.offset, strerror (j->aread.error));
    j->out = (struct outrec) {
      .job = j, .data = j->data, .len = error ? 0 : j->req.count,
    };
    nbd_simple_reply_encode (j->out.h, error, j->req.cookie);
    if (last)
      last->next = &j->out;
    else
      first = &j->out;
    last = &j->out;
  }
  if (first == NULL)
    return;
  last->next = NULL;
  /* Reads are only submitted with the queue there (conn.c). */
  pthread_mutex_lock (&c->send_lock);
  send_or_queue (c, first, last, &gone);
  /* The last touch of c: the connection may end once they are counted. */
  pthread_cond_broadcast (&c->async_cond);
  pthread_mutex_unlock (&c->send_lock);
  free_recs (gone);
}

/* The writer: sends the queue, blocking, without the lock. */
static void *
writer_main (void *arg)
{
  struct conn *c = arg;

  pthread_mutex_lock (&c->send_lock);
  for (;;) {
    struct outrec *gone = NULL;
    struct iovec iov[2 * IOV_RECS];
    struct msghdr msg = { .msg_iov = iov };
    ssize_t r;

    while (c->oq_head == NULL && !c->writer_stop)
      pthread_cond_wait (&c->out_cond, &c->send_lock);
    if (c->oq_head == NULL)
      break;
    if (c->send_failed)
      drop_all (c, &c->oq_head, &gone);
    else {
      /* The records sent here are the writer's alone: others only
       * append after the tail.
       */
      msg.msg_iovlen = rec_iov (c->oq_head, iov);
      pthread_mutex_unlock (&c->send_lock);
      r = sendmsg (c->out, &msg, MSG_NOSIGNAL);
      pthread_mutex_lock (&c->send_lock);
      if (r == -1 && errno != EINTR)
        c->send_failed = true;
      else if (r > 0)
        advance (c, &c->oq_head, r, &gone);
    }
    if (c->oq_head == NULL)
      c->oq_tail = NULL;
    pthread_cond_broadcast (&c->async_cond);
    pthread_mutex_unlock (&c->send_lock);
    free_recs (gone);
    pthread_mutex_lock (&c->send_lock);
  }
  pthread_mutex_unlock (&c->send_lock);
  return NULL;
}

void
nbd_conn_start_writer (struct conn *c)
{
  struct stat st;

  if (!(c->e->bdev->flags & DF_BDEV_ASYNC) || fstat (c->out, &st) == -1 ||
      !S_ISSOCK (st.st_mode))
    return;
  if (pthread_create (&c->writer, NULL, writer_main, c) == 0)
    c->queued_replies = true;
}

void
nbd_conn_drain (struct conn *c)
{
  pthread_mutex_lock (&c->send_lock);
  while (__atomic_load_n (&c->async_jobs, __ATOMIC_RELAXED) > 0)
    pthread_cond_wait (&c->async_cond, &c->send_lock);
  c->writer_stop = true;
  pthread_cond_signal (&c->out_cond);
  pthread_mutex_unlock (&c->send_lock);
  if (c->queued_replies)
    pthread_join (c->writer, NULL);
  c->queued_replies = false;
}
