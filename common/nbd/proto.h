/* diskfarm — the NBD protocol on the wire (the parts the server speaks).
 *
 * The reference is the NBD protocol document (doc/proto.md of the NBD
 * project).  All integers are big-endian on the wire.  Pure functions:
 * no I/O, so that the parsers can be tested and fuzzed on their own.
 */
#ifndef DISKFARM_NBD_PROTO_H
#define DISKFARM_NBD_PROTO_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define NBD_MAGIC            UINT64_C (0x4e42444d41474943)   /* "NBDMAGIC" */
#define NBD_IHAVEOPT         UINT64_C (0x49484156454F5054)   /* "IHAVEOPT" */
#define NBD_REP_MAGIC        UINT64_C (0x0003e889045565a9)
#define NBD_REQUEST_MAGIC    UINT32_C (0x25609513)
#define NBD_SIMPLE_REPLY_MAGIC UINT32_C (0x67446698)

/* Handshake flags (server) and client flags. */
#define NBD_FLAG_FIXED_NEWSTYLE   1u
#define NBD_FLAG_NO_ZEROES        2u
#define NBD_FLAG_C_FIXED_NEWSTYLE 1u
#define NBD_FLAG_C_NO_ZEROES      2u

/* Options. */
#define NBD_OPT_EXPORT_NAME       1u
#define NBD_OPT_ABORT             2u
#define NBD_OPT_LIST              3u
#define NBD_OPT_STARTTLS          5u
#define NBD_OPT_INFO              6u
#define NBD_OPT_GO                7u

/* Option replies. */
#define NBD_REP_ACK               1u
#define NBD_REP_SERVER            2u
#define NBD_REP_INFO              3u
#define NBD_REP_ERR_UNSUP         (0x80000000u | 1)
#define NBD_REP_ERR_POLICY        (0x80000000u | 2)
#define NBD_REP_ERR_INVALID       (0x80000000u | 3)
#define NBD_REP_ERR_UNKNOWN       (0x80000000u | 6)
#define NBD_REP_ERR_SHUTDOWN      (0x80000000u | 7)
#define NBD_REP_ERR_TOO_BIG       (0x80000000u | 9)

#define NBD_INFO_EXPORT           0u
#define NBD_INFO_NAME             1u
#define NBD_INFO_DESCRIPTION      2u
#define NBD_INFO_BLOCK_SIZE       3u

/* Transmission flags. */
#define NBD_FLAG_HAS_FLAGS        (1u << 0)
#define NBD_FLAG_READ_ONLY        (1u << 1)
#define NBD_FLAG_SEND_FLUSH       (1u << 2)
#define NBD_FLAG_SEND_FUA         (1u << 3)
#define NBD_FLAG_SEND_TRIM        (1u << 5)
#define NBD_FLAG_SEND_WRITE_ZEROES (1u << 6)
#define NBD_FLAG_CAN_MULTI_CONN   (1u << 8)
#define NBD_FLAG_SEND_CACHE       (1u << 10)
#define NBD_FLAG_SEND_FAST_ZERO   (1u << 11)

/* Commands and their flags. */
#define NBD_CMD_READ              0u
#define NBD_CMD_WRITE             1u
#define NBD_CMD_DISC              2u
#define NBD_CMD_FLUSH             3u
#define NBD_CMD_TRIM              4u
#define NBD_CMD_CACHE             5u
#define NBD_CMD_WRITE_ZEROES      6u

#define NBD_CMD_FLAG_FUA          (1u << 0)
#define NBD_CMD_FLAG_NO_HOLE      (1u << 1)
#define NBD_CMD_FLAG_FAST_ZERO    (1u << 4)

/* Errors on the wire. */
#define NBD_EPERM       1
#define NBD_EIO         5
#define NBD_ENOMEM      12
#define NBD_EINVAL      22
#define NBD_ENOSPC      28
#define NBD_EOVERFLOW   75
#define NBD_ENOTSUP     95
#define NBD_ESHUTDOWN   108

/* Limits of this server. */
#define NBD_MAX_NAME_LEN   4096          /* protocol limit on names */
#define NBD_MAX_OPTION_LEN (64 * 1024)   /* longer options are refused */
#define NBD_MAX_OPTIONS    256           /* per handshake */
#define NBD_MAX_REQUEST    (32 * 1024 * 1024)   /* read/write payload */

#define NBD_REQUEST_SIZE      28
#define NBD_SIMPLE_REPLY_SIZE 16
#define NBD_OPTION_HEADER_SIZE 16
#define NBD_OPTION_REPLY_HEADER_SIZE 20

static inline uint16_t nbd_get16 (const uint8_t *p)
{
  return (uint16_t) (p[0] << 8 | p[1]);
}
static inline uint32_t nbd_get32 (const uint8_t *p)
{
  return (uint32_t) p[0] << 24 | (uint32_t) p[1] << 16
    | (uint32_t) p[2] << 8 | p[3];
}
static inline uint64_t nbd_get64 (const uint8_t *p)
{
  return (uint64_t) nbd_get32 (p) << 32 | nbd_get32 (p + 4);
}
static inline void nbd_put16 (uint8_t *p, uint16_t v)
{
  p[0] = v >> 8;
  p[1] = v;
}
static inline void nbd_put32 (uint8_t *p, uint32_t v)
{
  p[0] = v >> 24;
  p[1] = v >> 16;
  p[2] = v >> 8;
  p[3] = v;
}
static inline void nbd_put64 (uint8_t *p, uint64_t v)
{
  nbd_put32 (p, v >> 32);
  nbd_put32 (p + 4, v);
}

/* A request of the transmission phase. */
struct nbd_request {
  uint16_t flags;
  uint16_t type;
  uint64_t cookie;
  uint64_t offset;
  uint32_t count;
};

/* Decodes a request header; -1 if the magic is wrong (the connection
 * cannot be trusted any more and must be dropped).
 */
int nbd_request_decode (const uint8_t buf[NBD_REQUEST_SIZE],
                        struct nbd_request *r);

/* Encodes a simple reply's header. */
static inline void
nbd_simple_reply_encode (uint8_t h[NBD_SIMPLE_REPLY_SIZE], uint32_t error,
                         uint64_t cookie)
{
  nbd_put32 (h, NBD_SIMPLE_REPLY_MAGIC);
  nbd_put32 (h + 4, error);
  nbd_put64 (h + 8, cookie);
}

/* True if a request of this type carries count bytes of payload. */
static inline bool
nbd_request_has_payload (const struct nbd_request *r)
{
  return r->type == NBD_CMD_WRITE;
}

/* What the export allows, for nbd_request_check. */
struct nbd_limits {
  uint64_t size;
  uint16_t tflags;              /* the transmission flags sent */
};

/* Checks a decoded request against the export: 0 if it may run, else
 * the NBD error to reply with (the payload of a refused write must
 * still be read off the connection).  A payload longer than
 * NBD_MAX_REQUEST cannot be skipped safely: -1 (drop the connection).
 */
int nbd_request_check (const struct nbd_request *r,
                       const struct nbd_limits *l);

/* The NBD error for an errno value (anything unknown is EIO). */
uint32_t nbd_errno_to_wire (int err);

/* Parsed option data of NBD_OPT_INFO and NBD_OPT_GO. */
struct nbd_info_request {
  const char *name;             /* points into the option data, not NUL
                                   terminated */
  uint32_t name_len;
  uint16_t ninfos;
  const uint8_t *infos;         /* ninfos big-endian u16 */
};

/* Parses the data of NBD_OPT_INFO/GO; -1 if malformed. */
int nbd_info_request_parse (const uint8_t *data, uint32_t len,
                            struct nbd_info_request *out);

#endif
