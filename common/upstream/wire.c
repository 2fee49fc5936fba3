/* diskfarm — NBD upstream: running requests on a connection, on its
 * socket.
 *
 * libnbd makes the connection (handshake, export facts) and asks for
 * simple replies; the transmission phase is then spoken here: the
 * requests of a batch go out in one sendmsg, and the replies come in
 * through a buffer, many per recv, payloads copied out or read straight
 * into the caller's buffer.  Through libnbd's state machine each
 * request was a send and each read reply a poll and up to four recvs
 * (header parts, offset, payload), most of the attach's time per 4 KiB
 * read.
 */
#include <config.h>

#include <errno.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/uio.h>

#include "error.h"
#include "nbd/proto.h"
#include "upstream/upstream-int.h"

#define GROUP 32                /* requests per sendmsg at most */

/* What uconn_run is doing on a connection. */
struct wire {
  struct uconn *c;
  struct req *r;
  size_t n;
  size_t next;                  /* the next request to put out */
  uint8_t hdr[GROUP][NBD_REQUEST_SIZE];
  struct iovec iov[2 * GROUP];  /* being sent: iov[iovpos..iovn-1] */
  int iovpos, iovn;
  size_t cur;                   /* a read's payload coming: its index */
  uint32_t cur_got;             /*   and how much of it came (cur < n) */
  size_t left;                  /* requests sent and not done */
  uint64_t last;                /* monotonic ns of the last progress */
};

int
up_errno_of_wire (uint32_t e)
{
  switch (e) {
  case NBD_EPERM: return EPERM;
  case NBD_EIO: return EIO;
  case NBD_ENOMEM: return ENOMEM;
  case NBD_EINVAL: return EINVAL;
  case NBD_ENOSPC: return ENOSPC;
  case NBD_EOVERFLOW: return EOVERFLOW;
  case NBD_ENOTSUP: return ENOTSUP;
  case NBD_ESHUTDOWN: return ESHUTDOWN;
  }
  return EINVAL;                /* as libnbd does with unknown ones */
}

static uint16_t
command (const struct req *r, uint16_t *flags)
{
  *flags = (r->flags & DF_FUA) ? NBD_CMD_FLAG_FUA : 0;
  switch (r->type) {
  case R_READ: *flags = 0; return NBD_CMD_READ;
  case R_WRITE: return NBD_CMD_WRITE;
  case R_FLUSH: *flags = 0; return NBD_CMD_FLUSH;
  case R_TRIM: return NBD_CMD_TRIM;
  case R_ZERO:
    if (!(r->flags & DF_MAY_TRIM))
      *flags |= NBD_CMD_FLAG_NO_HOLE;
    if (r->flags & DF_FAST_ZERO)
      *flags |= NBD_CMD_FLAG_FAST_ZERO;
    return NBD_CMD_WRITE_ZEROES;
  }
  abort ();
}

/* A request the export cannot take is answered here, as libnbd did. */
static int
refused (const struct upstream *up, const struct req *r)
{
  if (r->type == R_WRITE || r->type == R_TRIM || r->type == R_ZERO)
    if (up->info.readonly)
      return EPERM;
  if ((r->type == R_FLUSH && !up->can_flush) ||
      (r->type == R_TRIM && !up->can_trim) ||
      (r->type == R_ZERO && !up->can_zero) ||
      ((r->flags & DF_FUA) && r->type != R_READ && r->type != R_FLUSH &&
       !up->can_fua))
    return EINVAL;
  return 0;
}

/* Puts the next requests not done into the iovecs. */
static void
fill (struct upstream *up, struct wire *w)
{
  size_t k = 0;

  w->iovpos = w->iovn = 0;
  for (; w->next < w->n && k < GROUP; w->next++) {
    struct req *r = &w->r[w->next];
    uint16_t flags, type;
    int err;

    if (r->done)
      continue;
    if ((err = refused (up, r)) != 0) {
      r->error = err;
      r->done = true;
      continue;
    }
    type = command (r, &flags);
    r->cookie = (int64_t) (w->c->cookie_base + w->next);
    nbd_put32 (w->hdr[k], NBD_REQUEST_MAGIC);
    nbd_put16 (w->hdr[k] + 4, flags);
    nbd_put16 (w->hdr[k] + 6, type);
    nbd_put64 (w->hdr[k] + 8, (uint64_t) r->cookie);
    nbd_put64 (w->hdr[k] + 16, r->offset);
    nbd_put32 (w->hdr[k] + 24, type == NBD_CMD_FLUSH ? 0 : r->count);
    w->iov[w->iovn++] = (struct iovec) { w->hdr[k], NBD_REQUEST_SIZE };
    if (type == NBD_CMD_WRITE && r->count)
      w->iov[w->iovn++] = (struct iovec) { r->buf, r->count };
    w->left++;
    k++;
  }
}

/* Sends what the socket takes.  0 (the rest waits for POLLOUT) or -1. */
static int
push (struct upstream *up, struct wire *w, char *why, size_t len)
{
  for (;;) {
    struct msghdr msg;
    ssize_t s;

    if (w->iovpos == w->iovn) {
      if (w->next == w->n)
        return 0;
      fill (up, w);
      continue;
    }
    msg = (struct msghdr) {
      .msg_iov = w->iov + w->iovpos, .msg_iovlen = w->iovn - w->iovpos,
    };
    s = sendmsg (w->c->fd, &msg, MSG_NOSIGNAL | MSG_DONTWAIT);
    if (s == -1 && errno == EINTR)
      continue;
    if (s == -1 && (errno == EAGAIN || errno == EWOULDBLOCK))
      return 0;
    if (s == -1) {
      snprintf (why, len, "sending: %s", strerror (errno));
      return -1;
    }
    while (w->iovpos < w->iovn && (size_t) s >= w->iov[w->iovpos].iov_len)
      s -= w->iov[w->iovpos++].iov_len;
    if (w->iovpos < w->iovn) {
      w->iov[w->iovpos].iov_base = (char *) w->iov[w->iovpos].iov_base + s;
      w->iov[w->iovpos].iov_len -= s;
    }
  }
}

static bool
sending (const struct wire *w)
{
  return w->iovpos < w->iovn || w->next < w->n;
}

/* Request i is answered (its payload, if any, all in place). */
static void
answered (struct wire *w, size_t i)
{
  w->r[i].done = true;
  w->left--;
  w->last = df_now_mono_ns ();
  w->cur = w->n;
}

/* Takes the reply headers and payloads in the buffer.  -1: one says
 * the connection is lost (why).  A read is done only once its payload
 * is all in: one cut short is sent again after a failover.
 */
static int
parse (struct wire *w, char *why, size_t len)
{
  struct uconn *c = w->c;

  for (;;) {
    const uint8_t *p = c->rbuf + c->rpos;
    size_t have = c->rlen - c->rpos, i, n;
    uint32_t magic, err;
    struct req *r;

    if (w->cur < w->n) {        /* a payload under way */
      r = &w->r[w->cur];
      n = r->count - w->cur_got < have ? r->count - w->cur_got : have;
      memcpy ((char *) r->buf + w->cur_got, p, n);
      c->rpos += n;
      w->cur_got += n;
      if (w->cur_got < r->count)
        return 0;
      answered (w, w->cur);
      continue;
    }
    if (have < NBD_SIMPLE_REPLY_SIZE)
      return 0;
    magic = nbd_get32 (p);
    err = nbd_get32 (p + 4);
    i = nbd_get64 (p + 8) - c->cookie_base;
    if (magic != NBD_SIMPLE_REPLY_MAGIC || i >= w->n || w->r[i].done) {
      snprintf (why, len, "the server sent a reply that was not asked for");
      return -1;
    }
    c->rpos += NBD_SIMPLE_REPLY_SIZE;
    r = &w->r[i];
    r->error = err ? up_errno_of_wire (err) : 0;
    if (r->error == ESHUTDOWN) {
      snprintf (why, len, "the server is shutting down");
      return -1;
    }
    if (r->type == R_READ && !err && r->count) {
      w->cur = i;
      w->cur_got = 0;
    }
    else
      answered (w, i);
  }
}

/* Reads what came.  0 (more later) or -1: the connection is lost. */
static int
pull (struct wire *w, char *why, size_t len)
{
  struct uconn *c = w->c;

  for (;;) {
    ssize_t s;

    if (parse (w, why, len) == -1)
      return -1;
    if (w->left == 0)
      return 0;
    if (c->rpos == c->rlen)
      c->rpos = c->rlen = 0;
    if (w->cur < w->n && c->rlen == 0 &&
        w->r[w->cur].count - w->cur_got >= UP_RBUF / 2) {
      /* A big payload: straight into place. */
      struct req *r = &w->r[w->cur];
      s = recv (c->fd, (char *) r->buf + w->cur_got, r->count - w->cur_got,
                MSG_DONTWAIT);
      if (s > 0) {
        w->last = df_now_mono_ns ();    /* a big payload is progress */
        w->cur_got += s;
        if (w->cur_got == r->count)
          answered (w, w->cur);
        continue;
      }
    }
    else {
      if (c->rpos > 0) {        /* keep a partial header at the start */
        memmove (c->rbuf, c->rbuf + c->rpos, c->rlen - c->rpos);
        c->rlen -= c->rpos;
        c->rpos = 0;
      }
      size_t room = UP_RBUF - c->rlen;
      s = recv (c->fd, c->rbuf + c->rlen, room, MSG_DONTWAIT);
      if (s > 0) {
        w->last = df_now_mono_ns ();
        c->rlen += s;
        if ((size_t) s < room) {  /* the socket is empty: poll next */
          if (parse (w, why, len) == -1)
            return -1;
          return 0;
        }
        continue;
      }
    }
    if (s == -1 && errno == EINTR)
      continue;
    if (s == -1 && (errno == EAGAIN || errno == EWOULDBLOCK))
      return 0;
    snprintf (why, len, "%s", s == 0 ? "the server closed the connection"
              : strerror (errno));
    return -1;
  }
}

int
uconn_run (struct upstream *up, struct uconn *c, struct req *r, size_t n,
           char *why, size_t len)
{
  uint64_t limit = (uint64_t) up->p.io_timeout * 1000000000;
  struct wire w = {
    .c = c, .r = r, .n = n, .cur = n, .last = df_now_mono_ns (),
  };
  int rv = -1;

  if (push (up, &w, why, len) == -1)
    goto out;
  /* Replies read ahead before these were sent are not asked for. */
  if (c->rpos < c->rlen && pull (&w, why, len) == -1)
    goto out;
  for (;;) {
    struct pollfd pfd[2] = {
      { .fd = c->fd, .events = POLLIN },
      { .fd = up->lost_fd, .events = POLLIN },
    };
    uint64_t now;
    int timeout = -1, pr;

    if (w.left == 0 && !sending (&w)) {
      rv = 0;
      goto out;
    }
    now = df_now_mono_ns ();
    if (limit) {
      if (now - w.last >= limit) {
        snprintf (why, len, "no reply for %u s", up->p.io_timeout);
        goto out;
      }
      timeout = (w.last + limit - now) / 1000000 + 1;
    }
    if (sending (&w))
      pfd[0].events |= POLLOUT;
    pr = poll (pfd, 2, timeout);
    if (pr == -1 && errno != EINTR) {
      snprintf (why, len, "%s", strerror (errno));
      goto out;
    }
    if (pr <= 0)
      continue;
    if (pfd[1].revents && __atomic_load_n (&c->lost, __ATOMIC_ACQUIRE)) {
      snprintf (why, len, "another connection to the server was lost");
      goto out;
    }
    if ((pfd[0].revents & (POLLIN | POLLHUP | POLLERR)) &&
        pull (&w, why, len) == -1)
      goto out;
    if ((pfd[0].revents & (POLLOUT | POLLERR)) && sending (&w) &&
        push (up, &w, why, len) == -1)
      goto out;
  }
 out:
  c->cookie_base += n;
  return rv;
}
