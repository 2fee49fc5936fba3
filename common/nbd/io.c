/* diskfarm — NBD server: whole reads and writes on a connection. */
#include <config.h>

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <unistd.h>

#include "nbd/server-int.h"
#include "util.h"

int
nbd_read_full (int fd, void *buf, size_t len)
{
  ssize_t r = df_read_full (fd, buf, len);

  if (r == -1)
    return -1;
  if ((size_t) r < len) {
    errno = r ? EPIPE : 0;
    return -1;
  }
  return 0;
}

/* Advances iov past n bytes written. */
static void
iov_advance (struct iovec **iov, int *n, size_t done)
{
  while (*n > 0 && done >= (*iov)->iov_len) {
    done -= (*iov)->iov_len;
    (*iov)++;
    (*n)--;
  }
  if (*n > 0) {
    (*iov)->iov_base = (char *) (*iov)->iov_base + done;
    (*iov)->iov_len -= done;
  }
}

#define RBUF (128 * 1024)

int
nbd_conn_read (struct conn *c, void *buf, size_t len)
{
  char *p = buf;
  size_t got = 0;

  if (c->rbuf == NULL && (c->rbuf = malloc (RBUF)) == NULL)
    return -1;
  while (got < len) {
    ssize_t r;
    if (c->rpos < c->rlen) {
      size_t n = c->rlen - c->rpos < len - got ? c->rlen - c->rpos : len - got;
      memcpy (p + got, c->rbuf + c->rpos, n);
      c->rpos += n;
      got += n;
      continue;
    }
    if (len - got >= RBUF) {    /* a big payload: straight in */
      if (nbd_read_full (c->in, p + got, len - got) == 0)
        return 0;
      if (errno == 0 && got)
        errno = EPIPE;
      return -1;
    }
    r = read (c->in, c->rbuf, RBUF);
    if (r == -1 && errno == EINTR)
      continue;
    if (r == -1)
      return -1;
    if (r == 0) {
      errno = got ? EPIPE : 0;
      return -1;
    }
    c->rpos = 0;
    c->rlen = r;
  }
  return 0;
}

size_t
nbd_conn_buffered (const struct conn *c, const uint8_t **p)
{
  *p = c->rbuf + c->rpos;
  return c->rlen - c->rpos;
}

int
nbd_send_all (struct conn *c, const void *a, size_t alen, const void *b,
              size_t blen)
{
  struct iovec vec[2] = {
    { .iov_base = (void *) a, .iov_len = alen },
    { .iov_base = (void *) b, .iov_len = blen },
  };

  return nbd_send_iov (c, vec, blen ? 2 : 1);
}

int
nbd_send_iov (struct conn *c, struct iovec *iov, int n)
{
  while (n > 0) {
    struct msghdr msg = { .msg_iov = iov, .msg_iovlen = n };
    ssize_t r;

    if (c->plain_write)
      r = writev (c->out, iov, n);
    else {
      r = sendmsg (c->out, &msg, MSG_NOSIGNAL);
      if (r == -1 && errno == ENOTSOCK) {
        c->plain_write = true;
        continue;
      }
    }
    if (r == -1 && errno == EINTR)
      continue;
    if (r == -1)
      return -1;
    iov_advance (&iov, &n, r);
  }
  return 0;
}

void
nbd_log (const struct df_nbd_export *e, const char *fmt, ...)
{
  char msg[512];
  va_list ap;

  if (e->log == NULL)
    return;
  va_start (ap, fmt);
  vsnprintf (msg, sizeof msg, fmt, ap);
  va_end (ap);
  e->log (e->opaque, msg);
}
