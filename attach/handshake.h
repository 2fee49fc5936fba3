/* diskfarm-attach — the client side of the NBD handshake, in userspace,
 * before the connection is handed to the kernel.
 *
 * Fixed newstyle with NBD_OPT_GO (NBD_OPT_EXPORT_NAME for servers that
 * do not know GO); no TLS, no structured replies: the kernel client
 * speaks only simple replies.
 */
#ifndef DISKFARM_ATTACH_HANDSHAKE_H
#define DISKFARM_ATTACH_HANDSHAKE_H

#include <stdint.h>

#include "options.h"

/* Transmission flags (NBD protocol). */
#define NBD_FLAG_HAS_FLAGS (1 << 0)
#define NBD_FLAG_READ_ONLY (1 << 1)
#define NBD_FLAG_SEND_FLUSH (1 << 2)
#define NBD_FLAG_SEND_FUA (1 << 3)
#define NBD_FLAG_SEND_TRIM (1 << 5)
#define NBD_FLAG_CAN_MULTI_CONN (1 << 8)

struct nbd_export_info {
  uint64_t size;                 /* bytes */
  uint16_t flags;                /* transmission flags */
  /* Block size constraints, 0 when the server gave none. */
  uint32_t min_block, pref_block, max_block;
};

/* A TCP connection to srv (TCP_NODELAY, keepalive), or -1 with a
 * message ("connection refused", "timed out after 5 s").  deadline is
 * on the df_now_mono_ns clock.
 */
int nbd_dial (const struct attach_server *srv, uint64_t deadline);

/* Negotiates export on the connected socket fd.  On success the socket
 * is in the transmission phase, ready for the kernel.  On failure -1
 * with a message; errno is ENOENT when the server does not know the
 * export, EACCES when it refuses it, ETIMEDOUT, EPROTO for a server
 * that breaks the protocol.  Error text sent by the server is quoted in
 * the message.
 */
int nbd_handshake (int fd, const char *export, uint64_t deadline,
                   struct nbd_export_info *info);

/* The logical block size to give the kernel: want if non-zero, else the
 * server's minimum, at least 512.  -1 with a message if the server's
 * constraints cannot be met by the kernel (it takes 512 to 4096).
 */
int nbd_pick_block_size (const struct nbd_export_info *info, uint32_t want,
                         uint32_t *out);

#endif
