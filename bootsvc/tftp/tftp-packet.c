/* diskfarm — TFTP packet parsing and building (see tftp-packet.h). */
#include <config.h>

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

#include "error.h"
#include "util.h"
#include "tftp/tftp-packet.h"

static uint16_t
get16 (const uint8_t *p)
{
  return (uint16_t) (p[0] << 8 | p[1]);
}

int
tftp_packet_opcode (const void *pkt, size_t len)
{
  return len < 2 ? -1 : get16 (pkt);
}

/* Decimal digits only (no sign, no space), at most max; false if not. */
static bool
parse_decimal (const char *s, uint64_t max, uint64_t *out)
{
  uint64_t v = 0;

  if (*s == '\0')
    return false;
  for (; *s; s++) {
    if (*s < '0' || *s > '9')
      return false;
    if (v > (UINT64_MAX - 9) / 10)
      return false;
    v = v * 10 + (uint64_t) (*s - '0');
  }
  if (v > max)
    return false;
  *out = v;
  return true;
}

static const struct option_def {
  const char *name;
  unsigned bit;
  uint64_t min, max;
} option_defs[] = {
  /* blksize above 65464 is accepted and granted smaller (RFC 2348). */
  { "blksize", TFTP_OPT_BLKSIZE, TFTP_BLKSIZE_MIN, UINT64_MAX - 1 },
  { "timeout", TFTP_OPT_TIMEOUT, TFTP_TIMEOUT_MIN, TFTP_TIMEOUT_MAX },
  { "tsize", TFTP_OPT_TSIZE, 0, UINT64_MAX - 1 },
  { "windowsize", TFTP_OPT_WINDOWSIZE, 1, TFTP_WINDOWSIZE_MAX },
};

static void
option_store (struct tftp_options *o, unsigned bit, uint64_t v)
{
  switch (bit) {
  case TFTP_OPT_BLKSIZE:
    o->blksize = v > TFTP_BLKSIZE_MAX ? TFTP_BLKSIZE_MAX : (unsigned) v;
    break;
  case TFTP_OPT_TIMEOUT: o->timeout = v; break;
  case TFTP_OPT_TSIZE: o->tsize = v; break;
  case TFTP_OPT_WINDOWSIZE: o->windowsize = v; break;
  }
  o->present |= bit;
}

/* One name/value pair.  Returns 1 if stored, 0 if ignored (unknown
 * name or invalid value), -1 (EEXIST) for a duplicate known name.
 */
static int
option_add (struct tftp_options *o, unsigned *seen, const char *name,
            const char *value)
{
  char q[64];
  size_t i;

  for (i = 0; i < sizeof option_defs / sizeof option_defs[0]; i++) {
    const struct option_def *d = &option_defs[i];
    uint64_t v;

    if (strcasecmp (name, d->name) != 0)
      continue;
    if (*seen & d->bit)
      return df_error (EEXIST, "option \"%s\" given twice",
                       df_quote (name, q, sizeof q));
    *seen |= d->bit;
    if (!parse_decimal (value, d->max, &v) || v < d->min)
      return 0;
    option_store (o, d->bit, v);
    return 1;
  }
  return 0;
}

/* Options from p to end (end[-1] == '\0').  An empty name ends the list:
 * some PXE ROMs pad requests with NULs.
 */
static int
parse_options (const char *p, const char *end, struct tftp_options *o,
               unsigned *ignored)
{
  unsigned seen = 0;

  memset (o, 0, sizeof *o);
  *ignored = 0;
  while (p < end && *p) {
    const char *name = p, *value = p + strlen (p) + 1;
    int r;

    if (value >= end)
      return df_error (EINVAL, "option \"%.32s\" has no value", name);
    p = value + strlen (value) + 1;
    r = option_add (o, &seen, name, value);
    if (r == -1)
      return -1;
    if (r == 0)
      (*ignored)++;
  }
  return 0;
}

static int
request_fail (struct tftp_request *req, enum tftp_error code)
{
  req->error = code;
  return -1;
}

static int
parse_mode (struct tftp_request *req)
{
  char q[40];

  if (strcasecmp (req->mode_name, "octet") == 0)
    req->mode = TFTP_MODE_OCTET;
  else if (strcasecmp (req->mode_name, "netascii") == 0)
    req->mode = TFTP_MODE_NETASCII;
  else {
    df_error (EINVAL, "unsupported transfer mode \"%s\"",
              df_quote (req->mode_name, q, sizeof q));
    return request_fail (req, TFTP_EBADOP);
  }
  return 0;
}

int
tftp_parse_request (const void *pkt, size_t len, struct tftp_request *req)
{
  const char *p = (const char *) pkt + 2, *end = (const char *) pkt + len;
  int op = tftp_packet_opcode (pkt, len);

  memset (req, 0, sizeof *req);
  req->error = TFTP_EBADOP;
  if (op != TFTP_RRQ && op != TFTP_WRQ)
    return df_error (EINVAL, "not a request (opcode %d)", op);
  req->opcode = op;
  /* Every string must be terminated inside the packet. */
  if (len < 4 || end[-1] != '\0')
    return df_error (EINVAL, "request not terminated by a NUL byte");
  req->path = p;
  p += strlen (p) + 1;
  if (p >= end)
    return df_error (EINVAL, "request without a transfer mode");
  req->mode_name = p;
  p += strlen (p) + 1;
  if (parse_mode (req) == -1)
    return -1;
  if (parse_options (p, end, &req->opts, &req->ignored) == -1)
    return request_fail (req, errno == EEXIST ? TFTP_EOPTNEG : TFTP_EBADOP);
  return 0;
}

int
tftp_parse_oack (const void *pkt, size_t len, struct tftp_options *opts)
{
  const char *end = (const char *) pkt + len;
  unsigned ignored;

  if (tftp_packet_opcode (pkt, len) != TFTP_OACK)
    return df_error (EINVAL, "not an OACK");
  if (len > 2 && end[-1] != '\0')
    return df_error (EINVAL, "OACK not terminated by a NUL byte");
  if (parse_options ((const char *) pkt + 2, end, opts, &ignored) == -1)
    return -1;
  if (ignored)
    return df_error (EINVAL, "OACK has unknown options or invalid values");
  return 0;
}

int
tftp_parse_ack (const void *pkt, size_t len, uint16_t *block)
{
  if (tftp_packet_opcode (pkt, len) != TFTP_ACK)
    return df_error (EINVAL, "not an ACK");
  if (len < TFTP_HEADER_SIZE)
    return df_error (EINVAL, "ACK of %zu bytes", len);
  *block = get16 ((const uint8_t *) pkt + 2);
  return 0;
}

int
tftp_parse_data (const void *pkt, size_t len, uint16_t *block,
                 const uint8_t **data, size_t *datalen)
{
  if (tftp_packet_opcode (pkt, len) != TFTP_DATA)
    return df_error (EINVAL, "not a DATA packet");
  if (len < TFTP_HEADER_SIZE)
    return df_error (EINVAL, "DATA packet of %zu bytes", len);
  *block = get16 ((const uint8_t *) pkt + 2);
  *data = (const uint8_t *) pkt + TFTP_HEADER_SIZE;
  *datalen = len - TFTP_HEADER_SIZE;
  return 0;
}

int
tftp_parse_error (const void *pkt, size_t len, uint16_t *code, char *msg,
                  size_t msgsize)
{
  const char *text = (const char *) pkt + TFTP_HEADER_SIZE;
  size_t n = 0;

  if (tftp_packet_opcode (pkt, len) != TFTP_ERROR)
    return df_error (EINVAL, "not an ERROR packet");
  if (len < TFTP_HEADER_SIZE)
    return df_error (EINVAL, "ERROR packet of %zu bytes", len);
  *code = get16 ((const uint8_t *) pkt + 2);
  if (msgsize == 0)
    return 0;
  while (n < len - TFTP_HEADER_SIZE && n + 1 < msgsize && text[n])
    n++;
  memcpy (msg, text, n);
  msg[n] = '\0';
  return 0;
}

static unsigned
min_u (unsigned a, unsigned b)
{
  return a < b ? a : b;
}

void
tftp_negotiate (const struct tftp_request *req, const struct tftp_limits *lim,
                int64_t size, struct tftp_options *ack)
{
  const struct tftp_options *o = &req->opts;
  bool octet = req->mode == TFTP_MODE_OCTET;

  memset (ack, 0, sizeof *ack);
  if (o->present & TFTP_OPT_BLKSIZE) {
    ack->blksize = min_u (o->blksize, lim->max_blksize);
    ack->present |= TFTP_OPT_BLKSIZE;
  }
  if (o->present & TFTP_OPT_TIMEOUT) {
    ack->timeout = o->timeout;
    ack->present |= TFTP_OPT_TIMEOUT;
  }
  /* curl (7.88) fails on "tsize 0": an empty file goes without. */
  if ((o->present & TFTP_OPT_TSIZE) && octet && size > 0) {
    ack->tsize = size;
    ack->present |= TFTP_OPT_TSIZE;
  }
  if ((o->present & TFTP_OPT_WINDOWSIZE) && octet) {
    ack->windowsize = min_u (o->windowsize, lim->max_windowsize);
    ack->present |= TFTP_OPT_WINDOWSIZE;
  }
}

/* Appends s and its NUL at buf[*pos]; false if it does not fit. */
static bool
put_string (uint8_t *buf, size_t size, size_t *pos, const char *s)
{
  size_t n = strlen (s) + 1;

  if (n > size - *pos)
    return false;
  memcpy (buf + *pos, s, n);
  *pos += n;
  return true;
}

static bool
put_option (uint8_t *buf, size_t size, size_t *pos, const char *name,
            uint64_t value)
{
  char v[24];

  snprintf (v, sizeof v, "%" PRIu64, value);
  return put_string (buf, size, pos, name) && put_string (buf, size, pos, v);
}

static bool
put_options (uint8_t *buf, size_t size, size_t *pos,
             const struct tftp_options *o)
{
  return (!(o->present & TFTP_OPT_BLKSIZE)
          || put_option (buf, size, pos, "blksize", o->blksize))
    && (!(o->present & TFTP_OPT_TIMEOUT)
        || put_option (buf, size, pos, "timeout", o->timeout))
    && (!(o->present & TFTP_OPT_TSIZE)
        || put_option (buf, size, pos, "tsize", o->tsize))
    && (!(o->present & TFTP_OPT_WINDOWSIZE)
        || put_option (buf, size, pos, "windowsize", o->windowsize));
}

ssize_t
tftp_build_oack (void *buf, size_t size, const struct tftp_options *opts)
{
  size_t pos = 2;

  if (size < 2 || !put_options (buf, size, &pos, opts))
    return df_error (ENOBUFS, "OACK does not fit in %zu bytes", size);
  ((uint8_t *) buf)[0] = 0;
  ((uint8_t *) buf)[1] = TFTP_OACK;
  return pos;
}

ssize_t
tftp_build_error (void *buf, size_t size, uint16_t code, const char *msg)
{
  size_t pos = TFTP_HEADER_SIZE;

  if (size < TFTP_HEADER_SIZE || !put_string (buf, size, &pos, msg))
    return df_error (ENOBUFS, "ERROR does not fit in %zu bytes", size);
  tftp_put_header (buf, TFTP_ERROR, code);
  return pos;
}

ssize_t
tftp_build_request (void *buf, size_t size, enum tftp_opcode op,
                    const char *path, const char *mode,
                    const struct tftp_options *opts)
{
  size_t pos = 2;

  if (size < 2 || !put_string (buf, size, &pos, path)
      || !put_string (buf, size, &pos, mode)
      || (opts && !put_options (buf, size, &pos, opts)))
    return df_error (ENOBUFS, "request does not fit in %zu bytes", size);
  ((uint8_t *) buf)[0] = 0;
  ((uint8_t *) buf)[1] = op;
  return pos;
}

const char *
tftp_error_message (uint16_t code)
{
  static const char *const msgs[] = {
    "undefined error", "file not found", "access violation",
    "disk full", "illegal TFTP operation", "unknown transfer ID",
    "file already exists", "no such user", "option negotiation refused",
  };

  return code < sizeof msgs / sizeof msgs[0] ? msgs[code] : "unknown error";
}

int
tftp_path_check (const char *path, const char **rel)
{
  size_t len = strlen (path), i;
  const char *p;

  if (len == 0)
    return df_error (EINVAL, "empty file name");
  if (len > TFTP_PATH_MAX)
    return df_error (ENAMETOOLONG, "file name of %zu bytes (at most %d)",
                     len, TFTP_PATH_MAX);
  for (i = 0; i < len; i++)
    if ((unsigned char) path[i] < 0x20 || path[i] == 0x7f)
      return df_error (EACCES, "file name contains control characters");
  for (p = path; *p == '/'; p++)
    ;
  if (*p == '\0')
    return df_error (EACCES, "file name names the root directory");
  *rel = p;
  while (*p) {
    size_t n = strcspn (p, "/");
    if (n == 2 && p[0] == '.' && p[1] == '.')
      return df_error (EACCES, "file name contains a \"..\" component");
    p += n;
    p += strspn (p, "/");
  }
  return 0;
}

size_t
tftp_netascii_encode (const uint8_t *in, size_t inlen, size_t *consumed,
                      uint8_t *out, size_t outlen, int *pending)
{
  size_t i = 0, o = 0;

  if (*pending >= 0 && o < outlen) {
    out[o++] = *pending;
    *pending = -1;
  }
  for (; i < inlen && o < outlen; i++) {
    uint8_t c = in[i];
    if (c != '\n' && c != '\r') {
      out[o++] = c;
      continue;
    }
    out[o++] = '\r';
    if (o < outlen)
      out[o++] = c == '\n' ? '\n' : '\0';
    else
      *pending = c == '\n' ? '\n' : '\0';
  }
  *consumed = i;
  return o;
}
