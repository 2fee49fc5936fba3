/* diskfarm — TFTP client addresses and per-client rate limits. */
#include <config.h>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "util.h"
#include "tftp/tftp-int.h"

const char *
tftp_addr_format (const struct tftp_addr *a, char *buf, size_t n)
{
  char host[INET6_ADDRSTRLEN];

  if (a->ss.ss_family == AF_INET) {
    const struct sockaddr_in *in = (const struct sockaddr_in *) &a->ss;
    inet_ntop (AF_INET, &in->sin_addr, host, sizeof host);
    snprintf (buf, n, "%s:%u", host, ntohs (in->sin_port));
  }
  else if (a->ss.ss_family == AF_INET6) {
    const struct sockaddr_in6 *in6 = (const struct sockaddr_in6 *) &a->ss;
    /* IPv4 clients of a dual-stack socket read as IPv4. */
    if (IN6_IS_ADDR_V4MAPPED (&in6->sin6_addr)) {
      inet_ntop (AF_INET, &in6->sin6_addr.s6_addr[12], host, sizeof host);
      snprintf (buf, n, "%s:%u", host, ntohs (in6->sin6_port));
    }
    else {
      inet_ntop (AF_INET6, &in6->sin6_addr, host, sizeof host);
      snprintf (buf, n, "[%s]:%u", host, ntohs (in6->sin6_port));
    }
  }
  else
    snprintf (buf, n, "(address family %d)", a->ss.ss_family);
  return buf;
}

/* Compares addresses, and ports too if with_port. */
static bool
addr_match (const struct tftp_addr *a, const struct tftp_addr *b,
            bool with_port)
{
  if (a->ss.ss_family != b->ss.ss_family)
    return false;
  if (a->ss.ss_family == AF_INET) {
    const struct sockaddr_in *x = (const void *) &a->ss, *y = (const void *) &b->ss;
    return x->sin_addr.s_addr == y->sin_addr.s_addr
      && (!with_port || x->sin_port == y->sin_port);
  }
  if (a->ss.ss_family == AF_INET6) {
    const struct sockaddr_in6 *x = (const void *) &a->ss, *y = (const void *) &b->ss;
    return memcmp (&x->sin6_addr, &y->sin6_addr, sizeof x->sin6_addr) == 0
      && x->sin6_scope_id == y->sin6_scope_id
      && (!with_port || x->sin6_port == y->sin6_port);
  }
  return false;
}

bool
tftp_addr_equal (const struct tftp_addr *a, const struct tftp_addr *b)
{
  return addr_match (a, b, true);
}

struct tftp_client *
tftp_client_get (struct tftp_server *srv, const struct tftp_addr *addr)
{
  struct tftp_client *c;

  for (c = srv->clients; c; c = c->next)
    if (addr_match (&c->addr, addr, false)) {
      c->refs++;
      return c;
    }
  c = calloc (1, sizeof *c);
  if (c == NULL)
    return NULL;
  c->refs = 1;
  c->addr = *addr;
  c->last_ns = df_now_mono_ns ();
  c->tokens = 1e30;             /* full: cut to the burst at first use */
  c->next = srv->clients;
  srv->clients = c;
  return c;
}

void
tftp_client_put (struct tftp_server *srv, struct tftp_client *c)
{
  struct tftp_client **pp;

  if (c == NULL || --c->refs > 0)
    return;
  for (pp = &srv->clients; *pp; pp = &(*pp)->next)
    if (*pp == c) {
      *pp = c->next;
      break;
    }
  free (c);
}

/* A token bucket: refilled at rate_limit bytes per second, holding at
 * most a tenth of a second's worth (and at least one full packet).
 */
bool
tftp_client_take (struct tftp_server *srv, struct tftp_client *c,
                  size_t bytes, uint64_t *wait_ns)
{
  double rate = (double) srv->cfg.rate_limit, burst;
  uint64_t now;

  if (srv->cfg.rate_limit == 0)
    return true;
  now = df_now_mono_ns ();
  burst = rate / 10;
  if (burst < TFTP_HEADER_SIZE + srv->cfg.max_blksize)
    burst = TFTP_HEADER_SIZE + srv->cfg.max_blksize;
  c->tokens += (double) (now - c->last_ns) * rate / 1e9;
  if (c->tokens > burst)
    c->tokens = burst;
  c->last_ns = now;
  if (c->tokens >= (double) bytes) {
    c->tokens -= (double) bytes;
    return true;
  }
  *wait_ns = (uint64_t) (((double) bytes - c->tokens) * 1e9 / rate) + 1;
  return false;
}
