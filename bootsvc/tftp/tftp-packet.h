/* diskfarm — TFTP packets: parsing and building.
 *
 * RFC 1350 (TFTP), 2347 (options, OACK), 2348 (blksize), 2349 (timeout,
 * tsize) and 7440 (windowsize).  Pure functions over byte buffers, no
 * I/O and no logging, so that they can be unit-tested and fuzzed alone.
 * Parsers return -1 with a message (see error.h) on a malformed packet.
 */
#ifndef DISKFARM_TFTP_PACKET_H
#define DISKFARM_TFTP_PACKET_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#define TFTP_HEADER_SIZE 4              /* opcode + block number */
#define TFTP_BLKSIZE_DEFAULT 512
#define TFTP_BLKSIZE_MIN 8              /* RFC 2348 */
#define TFTP_BLKSIZE_MAX 65464
#define TFTP_WINDOWSIZE_MAX 65535       /* RFC 7440 */
#define TFTP_TIMEOUT_MIN 1              /* seconds, RFC 2349 */
#define TFTP_TIMEOUT_MAX 255
/* Longest file name accepted: boot file names are short (the DHCP
 * file field holds 128 bytes), and a bound keeps logs readable.
 */
#define TFTP_PATH_MAX 255
/* Longest request packet read; RFC 2347 keeps requests within 512. */
#define TFTP_REQUEST_MAX 2048

enum tftp_opcode {
  TFTP_RRQ = 1,
  TFTP_WRQ = 2,
  TFTP_DATA = 3,
  TFTP_ACK = 4,
  TFTP_ERROR = 5,
  TFTP_OACK = 6,
};

enum tftp_error {
  TFTP_EUNDEF = 0,              /* see the message */
  TFTP_ENOTFOUND = 1,
  TFTP_EACCESS = 2,
  TFTP_ENOSPACE = 3,
  TFTP_EBADOP = 4,              /* illegal TFTP operation */
  TFTP_EBADID = 5,              /* unknown transfer ID */
  TFTP_EEXISTS = 6,
  TFTP_ENOUSER = 7,
  TFTP_EOPTNEG = 8,             /* option negotiation refused (RFC 2347) */
};

enum tftp_mode { TFTP_MODE_OCTET, TFTP_MODE_NETASCII };

/* Bits of tftp_options.present. */
#define TFTP_OPT_BLKSIZE 1u
#define TFTP_OPT_TIMEOUT 2u
#define TFTP_OPT_TSIZE 4u
#define TFTP_OPT_WINDOWSIZE 8u

/* The options of a request, or of an OACK.  A value counts only when
 * its bit is in present.
 */
struct tftp_options {
  unsigned present;
  unsigned blksize;             /* >= 8; values over 65464 read as 65464 */
  unsigned timeout;             /* 1..255 seconds */
  unsigned windowsize;          /* 1..65535 */
  uint64_t tsize;
};

/* A parsed RRQ or WRQ.  The strings point into the packet. */
struct tftp_request {
  enum tftp_opcode opcode;
  const char *path;             /* as sent; may be empty */
  const char *mode_name;        /* as sent */
  enum tftp_mode mode;
  struct tftp_options opts;
  unsigned ignored;             /* unknown options and invalid values */
  enum tftp_error error;        /* when parsing fails: the code to answer */
};

/* The opcode of a packet, or -1 if it is shorter than 2 bytes. */
int tftp_packet_opcode (const void *pkt, size_t len);

/* An RRQ or WRQ: filename, mode (octet or netascii, any case) and
 * options.  Unknown options and invalid values are ignored (counted in
 * ignored) as RFC 2347 asks; a known option given twice makes the
 * request ambiguous and refused (error TFTP_EOPTNEG).  On failure
 * req->error holds the TFTP error code to answer with.
 */
int tftp_parse_request (const void *pkt, size_t len, struct tftp_request *req);

/* An OACK's options (for clients and tests); unknown options fail. */
int tftp_parse_oack (const void *pkt, size_t len, struct tftp_options *opts);

int tftp_parse_ack (const void *pkt, size_t len, uint16_t *block);

/* *data points into pkt. */
int tftp_parse_data (const void *pkt, size_t len, uint16_t *block,
                     const uint8_t **data, size_t *datalen);

/* The error code and message, copied into msg (size msgsize, cut and
 * NUL-terminated; the packet's own terminator may be missing).
 */
int tftp_parse_error (const void *pkt, size_t len, uint16_t *code,
                      char *msg, size_t msgsize);

/* What the server grants: the requested options within these limits. */
struct tftp_limits {
  unsigned max_blksize;
  unsigned max_windowsize;
};

/* Fills ack with the options to put in an OACK (ack->present == 0: no
 * OACK, send data at once).  size is the file size, or -1 when unknown.
 * tsize and windowsize are granted in octet mode only: a netascii
 * transfer's length is not known in advance, and it runs lock-step.
 * tsize is not sent for an empty file either: curl takes "tsize 0" for
 * an error.
 */
void tftp_negotiate (const struct tftp_request *req,
                     const struct tftp_limits *lim, int64_t size,
                     struct tftp_options *ack);

/* Builders return the packet length, or -1 (ENOBUFS) if size is too
 * small.
 */
ssize_t tftp_build_oack (void *buf, size_t size,
                         const struct tftp_options *opts);
ssize_t tftp_build_error (void *buf, size_t size, uint16_t code,
                          const char *msg);
ssize_t tftp_build_request (void *buf, size_t size, enum tftp_opcode op,
                            const char *path, const char *mode,
                            const struct tftp_options *opts);

static inline void
tftp_put_header (void *buf, uint16_t opcode, uint16_t block)
{
  uint8_t *p = buf;

  p[0] = opcode >> 8;
  p[1] = opcode & 0xff;
  p[2] = block >> 8;
  p[3] = block & 0xff;
}

/* The standard message for an error code. */
const char *tftp_error_message (uint16_t code);

/* Checks a client's file name before it reaches a resolver: not empty,
 * at most TFTP_PATH_MAX bytes, no control characters, no ".."
 * component.  Leading slashes are allowed and skipped: *rel is the name
 * relative to the served root.  Returns -1 (EINVAL, ENAMETOOLONG,
 * EACCES) with a message.
 */
int tftp_path_check (const char *path, const char **rel);

/* Netascii (RFC 764 line endings): LF becomes CR LF, CR becomes CR NUL.
 * Converts in[0..inlen) into out (outlen bytes of room).  *pending is
 * the byte owed after a CR that ended the previous output (-1: none);
 * it is written first and updated.  Returns the bytes written and sets
 * *consumed to the input bytes used.
 */
size_t tftp_netascii_encode (const uint8_t *in, size_t inlen,
                             size_t *consumed, uint8_t *out, size_t outlen,
                             int *pending);

#endif
