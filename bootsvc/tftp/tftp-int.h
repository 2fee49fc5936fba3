/* diskfarm — TFTP server internals shared by tftp.c (the listening
 * socket, requests, refusals), tftp-transfer.c (one transfer) and
 * tftp-client.c (addresses and per-client rate limits).
 */
#ifndef DISKFARM_TFTP_INT_H
#define DISKFARM_TFTP_INT_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/socket.h>

#include "tftp/tftp.h"
#include "tftp/tftp-packet.h"

/* Most DATA packets sent with one sendmmsg (read with one preadv). */
#define TFTP_BATCH_MAX 64

/* "[2001:db8::1]:65535" fits. */
#define TFTP_PEER_NAME_MAX 64

struct tftp_addr {
  struct sockaddr_storage ss;
  socklen_t len;
};

/* One client address (port ignored): its rate-limit bucket, shared by
 * all its transfers.  Reference-counted by the transfers.
 */
struct tftp_client {
  struct tftp_client *next;
  struct tftp_addr addr;
  unsigned refs;
  double tokens;                /* bytes that may be sent now */
  uint64_t last_ns;             /* when tokens was last refilled */
};

struct tftp_transfer;

struct tftp_server {
  struct df_loop *loop;
  int fd;                       /* listening socket, not owned */
  int family;                   /* its address family */
  struct tftp_addr bound;       /* its address, port 0 */
  int rootfd;                   /* O_PATH of cfg.root, or -1 */
  struct df_watch *watch;
  struct tftp_config cfg;       /* defaults applied; cfg.root unused */
  struct tftp_transfer *transfers;
  struct tftp_client *clients;
  struct tftp_stats stats;
  /* The loop runs on one thread, so one buffer serves every transfer:
   * a batch of DATA packets is read into it and sent at once.
   */
  uint8_t *txbuf;               /* batch_max x (header + max_blksize) */
  unsigned batch_max;
  uint8_t *scratch;             /* cfg.max_blksize: netascii input */
  uint8_t rxbuf[TFTP_REQUEST_MAX + 1];
};

/* tftp-client.c */
const char *tftp_addr_format (const struct tftp_addr *a, char *buf,
                              size_t n);
/* Same address and port. */
bool tftp_addr_equal (const struct tftp_addr *a, const struct tftp_addr *b);
/* The client of addr (created if new) with a reference taken for the
 * caller; NULL on ENOMEM.
 */
struct tftp_client *tftp_client_get (struct tftp_server *srv,
                                     const struct tftp_addr *addr);
/* Drops a reference; frees the client at 0. */
void tftp_client_put (struct tftp_server *srv, struct tftp_client *c);
/* Takes bytes from the client's budget (cfg.rate_limit); if there are
 * not enough, returns false and the wait in *wait_ns.
 */
bool tftp_client_take (struct tftp_server *srv, struct tftp_client *c,
                       size_t bytes, uint64_t *wait_ns);

/* tftp-open.c */
/* tftp_open_in_root without openat2 (kernels before 5.6, valgrind,
 * seccomp filters that do not know it): walks the path one component
 * at a time with O_NOFOLLOW, and refuses "..".
 */
int tftp_open_walk (int dirfd, const char *path);

/* tftp.c */
/* Sends an ERROR packet from sock to addr, best effort. */
void tftp_send_error (int sock, const struct tftp_addr *to, uint16_t code,
                      const char *msg);

/* tftp-transfer.c */
struct tftp_transfer_args {
  const struct tftp_request *req;
  const char *path;             /* as requested, for logs */
  int fd;                       /* the file; owned by the transfer even
                                   when starting fails */
  int64_t size;
  const struct tftp_addr *peer, *local;
};
/* Starts sending (OACK or the first window).  -1 with a message if the
 * transfer could not be set up (its socket, memory).
 */
int tftp_transfer_start (struct tftp_server *srv,
                         const struct tftp_transfer_args *args);
/* The transfer to this peer (address and port), or NULL. */
struct tftp_transfer *tftp_transfer_find (struct tftp_server *srv,
                                          const struct tftp_addr *peer);
/* True if t has not gone past its first block and serves path: a
 * request repeated by an impatient client, to be ignored.
 */
bool tftp_transfer_is_repeat (const struct tftp_transfer *t,
                              const char *path);
/* The client asked again from the same port: it is done with t.  If
 * all the data was sent (only the last ACK is missing), t counts as
 * completed, else as failed; no ERROR is sent either way (it would look
 * like the answer to the new request).  Frees t.
 */
void tftp_transfer_supersede (struct tftp_transfer *t);
/* Ends t with an ERROR to its client, counted as failed; frees t. */
void tftp_transfer_abort (struct tftp_transfer *t, const char *why);

#endif
