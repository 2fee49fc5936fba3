/* diskfarm-attach — NBD generic netlink, without libnl (see nbd-nl.h).
 *
 * A request is one message: nlmsghdr, genlmsghdr, then attributes.
 * Every request asks for an ack, and the replies are read until it.
 * Events come on a second socket, so that a multicast message can
 * never be mistaken for (or lost among) the replies to a request.
 */
#include <config.h>

#include <errno.h>
#include <linux/genetlink.h>
#include <linux/nbd-netlink.h>
#include <linux/netlink.h>
#include <poll.h>
#include <stdalign.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

#include "cleanup.h"
#include "error.h"
#include "nbd-nl.h"

#ifndef SOL_NETLINK
#define SOL_NETLINK 270
#endif

#define MSG_MAX 4096
#define RECV_MAX 16384

struct nbd_nl {
  int fd;                       /* requests and their replies */
  int evfd;                     /* multicast events, or -1 */
  uint16_t family;
  uint32_t group;               /* "nbd_mc_group", 0 if absent */
  uint32_t seq;
};

struct msg {
  alignas (NLMSG_ALIGNTO) char buf[MSG_MAX];
  size_t len;
};

static struct nlmsghdr *
msg_init (struct msg *m, uint16_t type, uint8_t cmd)
{
  struct nlmsghdr *h = (struct nlmsghdr *) m->buf;
  struct genlmsghdr *g;

  memset (m->buf, 0, NLMSG_HDRLEN + GENL_HDRLEN);
  h->nlmsg_type = type;
  h->nlmsg_flags = NLM_F_REQUEST | NLM_F_ACK;
  g = NLMSG_DATA (h);
  g->cmd = cmd;
  g->version = NBD_GENL_VERSION;
  m->len = NLMSG_HDRLEN + GENL_HDRLEN;
  return h;
}

static int
msg_put (struct msg *m, uint16_t type, const void *data, size_t len)
{
  struct nlattr *a;
  size_t total = NLA_ALIGN (NLA_HDRLEN + len);

  if (m->len + total > sizeof m->buf)
    return df_error (EMSGSIZE, "netlink message too long");
  a = (struct nlattr *) (m->buf + m->len);
  a->nla_type = type;
  a->nla_len = NLA_HDRLEN + len;
  if (len)
    memcpy ((char *) a + NLA_HDRLEN, data, len);
  memset ((char *) a + NLA_HDRLEN + len, 0, total - NLA_HDRLEN - len);
  m->len += total;
  return 0;
}

static int
msg_put_u32 (struct msg *m, uint16_t type, uint32_t v)
{
  return msg_put (m, type, &v, sizeof v);
}

static int
msg_put_u64 (struct msg *m, uint16_t type, uint64_t v)
{
  return msg_put (m, type, &v, sizeof v);
}

/* Opens a nested attribute; close it with msg_nest_end (m, offset). */
static int
msg_nest_start (struct msg *m, uint16_t type, size_t *offset)
{
  *offset = m->len;
  return msg_put (m, type | NLA_F_NESTED, NULL, 0);
}

static void
msg_nest_end (struct msg *m, size_t offset)
{
  ((struct nlattr *) (m->buf + offset))->nla_len = m->len - offset;
}

/* Attribute iteration over [start, start + len), bounds-checked. */
static const struct nlattr *
attr_next (const void *start, size_t len, const struct nlattr *a)
{
  const char *end = (const char *) start + len;
  const char *p;

  p = a ? (const char *) a + NLA_ALIGN (a->nla_len) : start;
  if (p + NLA_HDRLEN > end)
    return NULL;
  a = (const struct nlattr *) p;
  if (a->nla_len < NLA_HDRLEN || p + a->nla_len > end)
    return NULL;
  return a;
}

#define attr_foreach(a, start, len) \
  for (a = attr_next (start, len, NULL); a; a = attr_next (start, len, a))

static const void *
attr_data (const struct nlattr *a)
{
  return (const char *) a + NLA_HDRLEN;
}

static size_t
attr_len (const struct nlattr *a)
{
  return a->nla_len - NLA_HDRLEN;
}

static int
attr_u32 (const struct nlattr *a, uint32_t *v)
{
  if (attr_len (a) < sizeof *v)
    return -1;
  memcpy (v, attr_data (a), sizeof *v);
  return 0;
}

/* The attributes of a generic netlink message. */
static const void *
genl_attrs (const struct nlmsghdr *h, size_t *len)
{
  if (h->nlmsg_len < NLMSG_HDRLEN + GENL_HDRLEN) {
    *len = 0;
    return NULL;
  }
  *len = h->nlmsg_len - NLMSG_HDRLEN - GENL_HDRLEN;
  return (const char *) NLMSG_DATA (h) + GENL_HDRLEN;
}

typedef int (*reply_fn) (const struct nlmsghdr *h, void *ctx);

/* Sends m and reads replies up to the ack; each other reply to it goes
 * to cb.  On a kernel error, -1 with errno set and no message (the
 * caller knows what the error means for its request).
 */
static int
transact (struct nbd_nl *nl, struct msg *m, reply_fn cb, void *ctx)
{
  struct nlmsghdr *h = (struct nlmsghdr *) m->buf;
  struct sockaddr_nl sa = { .nl_family = AF_NETLINK };
  alignas (NLMSG_ALIGNTO) char buf[RECV_MAX];

  h->nlmsg_len = m->len;
  h->nlmsg_seq = ++nl->seq;
  if (sendto (nl->fd, m->buf, m->len, 0, (struct sockaddr *) &sa,
              sizeof sa) == -1)
    return df_error_errno ("netlink send");

  for (;;) {
    ssize_t r = recv (nl->fd, buf, sizeof buf, 0);
    size_t left;
    const struct nlmsghdr *rh;

    if (r == -1 && errno == EINTR)
      continue;
    if (r == -1)
      return df_error_errno ("netlink receive");
    left = r;
    for (rh = (const struct nlmsghdr *) buf; NLMSG_OK (rh, left);
         rh = NLMSG_NEXT (rh, left)) {
      if (rh->nlmsg_seq != nl->seq)
        continue;
      if (rh->nlmsg_type == NLMSG_ERROR) {
        const struct nlmsgerr *e = NLMSG_DATA (rh);
        if (rh->nlmsg_len < NLMSG_LENGTH (sizeof *e))
          return df_error (EPROTO, "short netlink error message");
        if (e->error == 0)
          return 0;
        df_error_clear ();
        errno = -e->error;
        return -1;
      }
      if (rh->nlmsg_type == NLMSG_DONE)
        return 0;
      if (cb && cb (rh, ctx) == -1)
        return -1;
    }
  }
}

/* CTRL_CMD_GETFAMILY reply: the family id and the multicast group. */
static int
family_reply (const struct nlmsghdr *h, void *ctx)
{
  struct nbd_nl *nl = ctx;
  const struct nlattr *a, *grp, *ga;
  size_t len;
  const void *attrs = genl_attrs (h, &len);

  attr_foreach (a, attrs, len) {
    if ((a->nla_type & NLA_TYPE_MASK) == CTRL_ATTR_FAMILY_ID &&
        attr_len (a) >= 2)
      memcpy (&nl->family, attr_data (a), 2);
    if ((a->nla_type & NLA_TYPE_MASK) != CTRL_ATTR_MCAST_GROUPS)
      continue;
    attr_foreach (grp, attr_data (a), attr_len (a)) {
      uint32_t id = 0;
      bool ours = false;
      attr_foreach (ga, attr_data (grp), attr_len (grp)) {
        if (ga->nla_type == CTRL_ATTR_MCAST_GRP_ID)
          attr_u32 (ga, &id);
        if (ga->nla_type == CTRL_ATTR_MCAST_GRP_NAME &&
            strncmp (attr_data (ga), NBD_GENL_MCAST_GROUP_NAME,
                     attr_len (ga)) == 0)
          ours = true;
      }
      if (ours)
        nl->group = id;
    }
  }
  return 0;
}

static int
netlink_socket (void)
{
  struct sockaddr_nl sa = { .nl_family = AF_NETLINK };
  /* The kernel always answers; this only bounds a wedged driver. */
  struct timeval tv = { .tv_sec = 60 };
  int fd = socket (AF_NETLINK, SOCK_RAW | SOCK_CLOEXEC, NETLINK_GENERIC);

  if (fd == -1)
    return df_error_errno ("netlink socket");
  if (bind (fd, (struct sockaddr *) &sa, sizeof sa) == -1 ||
      setsockopt (fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv) == -1) {
    df_error_errno ("netlink socket");
    close (fd);
    return -1;
  }
  return fd;
}

static int
resolve_family (struct nbd_nl *nl)
{
  struct msg m;

  msg_init (&m, GENL_ID_CTRL, CTRL_CMD_GETFAMILY);
  if (msg_put (&m, CTRL_ATTR_FAMILY_NAME, NBD_GENL_FAMILY_NAME,
               sizeof NBD_GENL_FAMILY_NAME) == -1)
    return -1;
  if (transact (nl, &m, family_reply, nl) == -1) {
    if (errno == ENOENT)
      return df_error (ENOENT, "the kernel has no NBD driver loaded "
                       "(modprobe nbd)");
    return df_error_errno ("looking up the NBD netlink family");
  }
  if (nl->family == 0)
    return df_error (EPROTO, "no id for the NBD netlink family");
  return 0;
}

struct nbd_nl *
nbd_nl_open (bool watch)
{
  struct nbd_nl *nl = calloc (1, sizeof *nl);

  if (nl == NULL) {
    df_error_errno ("calloc");
    return NULL;
  }
  nl->evfd = -1;
  nl->fd = netlink_socket ();
  if (nl->fd == -1 || resolve_family (nl) == -1)
    goto err;
  if (watch) {
    if (nl->group == 0) {
      df_error (ENOTSUP, "the NBD driver has no multicast group");
      goto err;
    }
    nl->evfd = netlink_socket ();
    if (nl->evfd == -1)
      goto err;
    if (setsockopt (nl->evfd, SOL_NETLINK, NETLINK_ADD_MEMBERSHIP,
                    &nl->group, sizeof nl->group) == -1) {
      df_error_errno ("joining the NBD netlink multicast group");
      goto err;
    }
  }
  return nl;
 err:
  nbd_nl_close (nl);
  return NULL;
}

void
nbd_nl_close (struct nbd_nl *nl)
{
  if (nl == NULL)
    return;
  if (nl->fd >= 0)
    close (nl->fd);
  if (nl->evfd >= 0)
    close (nl->evfd);
  free (nl);
}

static int
put_sockets (struct msg *m, const int *fds, size_t nfds)
{
  size_t socks, item, i;

  if (msg_nest_start (m, NBD_ATTR_SOCKETS, &socks) == -1)
    return -1;
  for (i = 0; i < nfds; i++) {
    if (msg_nest_start (m, NBD_SOCK_ITEM, &item) == -1 ||
        msg_put_u32 (m, NBD_SOCK_FD, fds[i]) == -1)
      return -1;
    msg_nest_end (m, item);
  }
  msg_nest_end (m, socks);
  return 0;
}

/* A kernel error on a device request, in words. */
static int
device_error (const char *what, uint32_t index)
{
  switch (errno) {
  case EBUSY:
    return df_error (EBUSY, "%s /dev/nbd%u: the device is already in use",
                     what, index);
  case EPERM:
    return df_error (EPERM, "%s /dev/nbd%u: not permitted (needs "
                     "CAP_SYS_ADMIN)", what, index);
  case EINVAL:
    return df_error (EINVAL, "%s /dev/nbd%u: the kernel refused the "
                     "configuration (its reason is in dmesg)", what, index);
  default:
    return df_error_errno ("%s /dev/nbd%u", what, index);
  }
}

int
nbd_nl_connect (struct nbd_nl *nl, const struct nbd_nl_config *cfg,
                const int *fds, size_t nfds)
{
  struct msg m;

  msg_init (&m, nl->family, NBD_CMD_CONNECT);
  if (msg_put_u32 (&m, NBD_ATTR_INDEX, cfg->index) == -1 ||
      msg_put_u64 (&m, NBD_ATTR_SIZE_BYTES, cfg->size) == -1 ||
      msg_put_u64 (&m, NBD_ATTR_BLOCK_SIZE_BYTES, cfg->block_size) == -1 ||
      msg_put_u64 (&m, NBD_ATTR_SERVER_FLAGS, cfg->server_flags) == -1 ||
      msg_put_u64 (&m, NBD_ATTR_DEAD_CONN_TIMEOUT, cfg->dead_timeout) == -1)
    return -1;
  if (cfg->io_timeout &&
      msg_put_u64 (&m, NBD_ATTR_TIMEOUT, cfg->io_timeout) == -1)
    return -1;
  if (cfg->backend &&
      msg_put (&m, NBD_ATTR_BACKEND_IDENTIFIER, cfg->backend,
               strlen (cfg->backend) + 1) == -1)
    return -1;
  if (put_sockets (&m, fds, nfds) == -1)
    return -1;
  if (transact (nl, &m, NULL, NULL) == -1)
    return device_error ("connecting", cfg->index);
  return 0;
}

int
nbd_nl_reconfigure (struct nbd_nl *nl, uint32_t index, const char *backend,
                    const int *fds, size_t nfds)
{
  struct msg m;

  msg_init (&m, nl->family, NBD_CMD_RECONFIGURE);
  if (msg_put_u32 (&m, NBD_ATTR_INDEX, index) == -1)
    return -1;
  if (backend &&
      msg_put (&m, NBD_ATTR_BACKEND_IDENTIFIER, backend,
               strlen (backend) + 1) == -1)
    return -1;
  if (put_sockets (&m, fds, nfds) == -1)
    return -1;
  if (transact (nl, &m, NULL, NULL) == -1)
    return device_error ("reconfiguring", index);
  return 0;
}

int
nbd_nl_disconnect (struct nbd_nl *nl, uint32_t index)
{
  struct msg m;

  msg_init (&m, nl->family, NBD_CMD_DISCONNECT);
  if (msg_put_u32 (&m, NBD_ATTR_INDEX, index) == -1)
    return -1;
  if (transact (nl, &m, NULL, NULL) == -1)
    return device_error ("disconnecting", index);
  return 0;
}

struct status_ctx {
  uint32_t index;
  bool connected;
};

static int
status_reply (const struct nlmsghdr *h, void *ctx)
{
  struct status_ctx *st = ctx;
  const struct nlattr *list, *item, *a;
  size_t len;
  const void *attrs = genl_attrs (h, &len);

  attr_foreach (list, attrs, len) {
    if ((list->nla_type & NLA_TYPE_MASK) != NBD_ATTR_DEVICE_LIST)
      continue;
    attr_foreach (item, attr_data (list), attr_len (list)) {
      uint32_t index = UINT32_MAX;
      bool connected = false;
      attr_foreach (a, attr_data (item), attr_len (item)) {
        if ((a->nla_type & NLA_TYPE_MASK) == NBD_DEVICE_INDEX)
          attr_u32 (a, &index);
        if ((a->nla_type & NLA_TYPE_MASK) == NBD_DEVICE_CONNECTED &&
            attr_len (a) >= 1)
          connected = *(const uint8_t *) attr_data (a) != 0;
      }
      if (index == st->index)
        st->connected = connected;
    }
  }
  return 0;
}

int
nbd_nl_status (struct nbd_nl *nl, uint32_t index, bool *connected)
{
  struct msg m;
  struct status_ctx st = { .index = index };

  msg_init (&m, nl->family, NBD_CMD_STATUS);
  if (msg_put_u32 (&m, NBD_ATTR_INDEX, index) == -1)
    return -1;
  if (transact (nl, &m, status_reply, &st) == -1)
    return device_error ("status of", index);
  *connected = st.connected;
  return 0;
}

int
nbd_nl_wait_event (struct nbd_nl *nl, int timeout_ms, uint32_t *index)
{
  alignas (NLMSG_ALIGNTO) char buf[RECV_MAX];
  struct pollfd p = { .fd = nl->evfd, .events = POLLIN };
  const struct nlmsghdr *h;
  ssize_t r;
  size_t left;

  if (nl->evfd < 0)
    return df_error (EINVAL, "netlink socket not opened for events");
  r = poll (&p, 1, timeout_ms);
  if (r == 0 || (r == -1 && errno == EINTR))
    return 0;
  if (r == -1)
    return df_error_errno ("poll");
  r = recv (nl->evfd, buf, sizeof buf, MSG_DONTWAIT);
  if (r == -1 && errno == ENOBUFS) {
    /* Events were dropped: one of them may have been ours. */
    *index = UINT32_MAX;
    return 1;
  }
  if (r == -1)
    return errno == EAGAIN || errno == EINTR ? 0
      : df_error_errno ("netlink receive");
  left = r;
  for (h = (const struct nlmsghdr *) buf; NLMSG_OK (h, left);
       h = NLMSG_NEXT (h, left)) {
    const struct genlmsghdr *g = NLMSG_DATA (h);
    const struct nlattr *a;
    size_t len;
    const void *attrs = genl_attrs (h, &len);

    if (h->nlmsg_type != nl->family || attrs == NULL ||
        g->cmd != NBD_CMD_LINK_DEAD)
      continue;
    attr_foreach (a, attrs, len)
      if ((a->nla_type & NLA_TYPE_MASK) == NBD_ATTR_INDEX &&
          attr_u32 (a, index) == 0)
        return 1;
  }
  return 0;
}
