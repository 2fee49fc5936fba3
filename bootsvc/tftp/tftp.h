/* diskfarm — the boot service's TFTP server (read-only).
 *
 * RFC 1350 with option negotiation (RFC 2347), blksize (2348), timeout
 * and tsize (2349) and windowsize (7440).  One server runs inside the
 * daemon's event loop and serves many transfers at once, each from its
 * own ephemeral UDP socket as the RFC asks.  Files larger than 65535
 * blocks are sent with the block number rolling over to 0 (as tftp-hpa,
 * iPXE and curl expect).  Nothing is ever written: WRQ is refused.
 *
 * Refused requests are logged (df_log_warning, with the client and the
 * quoted name), finished transfers at info level, and every packet with
 * df_debug ("tftp", ...).
 */
#ifndef DISKFARM_TFTP_H
#define DISKFARM_TFTP_H

#include <stdint.h>
#include <sys/socket.h>

struct df_loop;
struct tftp_server;

/* Opens a file a client asked for.  path is the client's name, already
 * checked to be non-empty and NUL-free; in this implementation it has
 * also passed tftp_path_check (tftp-packet.h): at most 255 bytes, no
 * control characters, no ".." component, leading slashes removed.
 * Returns an fd open for reading, or -1 with errno (ENOENT, EACCES...).
 * The fd must allow pread and fstat must give its size: a regular file
 * or a memfd (for generated content).  The server owns and closes it.
 * The default (open == NULL) resolves path inside cfg->root with
 * openat2(RESOLVE_IN_ROOT | RESOLVE_NO_SYMLINKS | RESOLVE_NO_MAGICLINKS),
 * regular files only.
 */
typedef int (*tftp_open_fn) (void *opaque, const char *path);

/* Like tftp_open_fn, and told who asks: the client's address and port
 * (an IPv4 client of a dual-stack socket as a v4-mapped IPv6 address).
 * Valid during the call only.
 */
typedef int (*tftp_open_client_fn) (void *opaque, const char *path,
                                    const struct sockaddr *client,
                                    socklen_t client_len);

struct tftp_config {
  const char *root;             /* directory served read-only; opened
                                   once, in tftp_server_new; unused (may
                                   be NULL) when a resolver is set */
  tftp_open_fn open; void *opaque;  /* optional resolver (the daemon maps
                                       vdisk boot files) */
  unsigned max_blksize;         /* largest blksize granted; default 1468
                                   (an Ethernet frame); 512..65464 */
  unsigned max_windowsize;      /* largest windowsize granted (RFC 7440);
                                   default 64 */
  unsigned timeout_ms;          /* retransmission timeout when the client
                                   asks none; default 1000 */
  unsigned max_retries;         /* default 5 */
  uint64_t rate_limit;          /* bytes per second per client address,
                                   0 = none */
  unsigned max_transfers;       /* concurrent transfers, default 1024 */
  tftp_open_client_fn open_client;  /* optional; used instead of open when
                                       set, with the same opaque */
};

/* bytes: DATA payload bytes sent, retransmissions included.  refused:
 * requests answered with an ERROR (WRQ, bad name, not found, busy...).
 * failed: transfers started that did not complete (timeout, client
 * error, read error, server shut down).
 */
struct tftp_stats {
  uint64_t started, completed, failed, refused, bytes;
  unsigned active;
};

/* fd: a bound UDP socket (port 69 in production; any port in tests);
 * not owned, and it must stay open until tftp_server_free.  IPv4 or
 * IPv6 (dual-stack too).  The server enables IP_PKTINFO /
 * IPV6_RECVPKTINFO on it so that each transfer answers from the address
 * the client wrote to.  Returns NULL with a message (error.h).
 * cfg is copied; cfg->root and the resolver's opaque must outlive the
 * server only as far as the resolver uses them.
 */
struct tftp_server *tftp_server_new (struct df_loop *loop, int fd,
                                     const struct tftp_config *cfg);
/* NULL ok; aborts transfers (their clients get an ERROR). */
void tftp_server_free (struct tftp_server *srv);
void tftp_server_stats (const struct tftp_server *srv, struct tftp_stats *out);

/* The default resolver's open, for resolvers that serve some names from
 * a directory of their own: path inside dirfd (a directory fd, O_PATH is
 * fine) with openat2 (RESOLVE_IN_ROOT | RESOLVE_NO_SYMLINKS |
 * RESOLVE_NO_MAGICLINKS), read-only and non-blocking.  Returns the fd,
 * or -1 with errno and a message.  The server checks that the result is
 * a regular file.
 */
int tftp_open_in_root (int dirfd, const char *path);

#endif
