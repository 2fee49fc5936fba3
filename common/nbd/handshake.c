/* diskfarm — NBD server: the fixed newstyle handshake (options). */
#include <config.h>

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "cleanup.h"
#include "nbd/server-int.h"

static uint16_t
transmission_flags (const struct df_nbd_export *e)
{
  uint16_t f = NBD_FLAG_HAS_FLAGS | NBD_FLAG_SEND_FLUSH | NBD_FLAG_SEND_FUA
    | NBD_FLAG_SEND_TRIM | NBD_FLAG_SEND_WRITE_ZEROES | NBD_FLAG_SEND_CACHE;

  if (e->readonly || (e->bdev->flags & DF_BDEV_RDONLY))
    f |= NBD_FLAG_READ_ONLY;
  if (e->multi_conn)
    f |= NBD_FLAG_CAN_MULTI_CONN;
  return f;
}

static int
reply (struct conn *c, uint32_t opt, uint32_t type, const void *data,
       uint32_t len)
{
  uint8_t h[NBD_OPTION_REPLY_HEADER_SIZE];

  nbd_put64 (h, NBD_REP_MAGIC);
  nbd_put32 (h + 8, opt);
  nbd_put32 (h + 12, type);
  nbd_put32 (h + 16, len);
  return nbd_send_all (c, h, sizeof h, data, len);
}

/* An NBD_REP_INFO of type with the given payload. */
static int
reply_info (struct conn *c, uint32_t opt, uint16_t type, const void *data,
            size_t len)
{
  uint8_t buf[2 + NBD_MAX_NAME_LEN];

  if (len > NBD_MAX_NAME_LEN)
    len = NBD_MAX_NAME_LEN;
  nbd_put16 (buf, type);
  memcpy (buf + 2, data, len);
  return reply (c, opt, NBD_REP_INFO, buf, 2 + len);
}

/* The default name "" and the export's own name are served. */
static bool
name_served (const struct conn *c, const char *name, uint32_t len)
{
  return len == 0 || (strlen (c->e->name) == len &&
                      memcmp (c->e->name, name, len) == 0);
}

static int
opt_export_name (struct conn *c, const uint8_t *data, uint32_t len)
{
  uint8_t buf[10 + 124] = { 0 };

  if (!name_served (c, (const char *) data, len)) {
    /* NBD_OPT_EXPORT_NAME has no error reply: the connection ends. */
    nbd_conn_log (c, "client asked for an unknown export (%u bytes)", len);
    return -1;
  }
  nbd_put64 (buf, c->limits.size);
  nbd_put16 (buf + 8, c->limits.tflags);
  if (nbd_send_all (c, buf, c->no_zeroes ? 10 : sizeof buf, NULL, 0) == -1)
    return -1;
  return 1;
}

static int
opt_list (struct conn *c, uint32_t len)
{
  const char *desc = c->e->description ? c->e->description : "";
  size_t nlen = strlen (c->e->name), dlen = strlen (desc);
  CLEANUP_FREE uint8_t *buf = NULL;

  if (len != 0)
    return reply (c, NBD_OPT_LIST, NBD_REP_ERR_INVALID, NULL, 0);
  buf = malloc (4 + nlen + dlen);
  if (buf == NULL)
    return -1;
  nbd_put32 (buf, nlen);
  memcpy (buf + 4, c->e->name, nlen);
  memcpy (buf + 4 + nlen, desc, dlen);
  if (reply (c, NBD_OPT_LIST, NBD_REP_SERVER, buf, 4 + nlen + dlen) == -1)
    return -1;
  return reply (c, NBD_OPT_LIST, NBD_REP_ACK, NULL, 0);
}

static int
send_requested_info (struct conn *c, uint32_t opt, uint16_t type)
{
  uint8_t bs[12];

  switch (type) {
  case NBD_INFO_NAME:
    return reply_info (c, opt, type, c->e->name, strlen (c->e->name));
  case NBD_INFO_DESCRIPTION:
    if (c->e->description == NULL)
      return 0;
    return reply_info (c, opt, type, c->e->description,
                       strlen (c->e->description));
  case NBD_INFO_BLOCK_SIZE:
    nbd_put32 (bs, 1);
    nbd_put32 (bs + 4, 4096);
    nbd_put32 (bs + 8, NBD_MAX_REQUEST);
    return reply_info (c, opt, type, bs, sizeof bs);
  default:
    return 0;                   /* unknown requests are ignored */
  }
}

/* NBD_OPT_INFO and NBD_OPT_GO: 1 to enter transmission (GO). */
static int
opt_info (struct conn *c, uint32_t opt, const uint8_t *data, uint32_t len)
{
  struct nbd_info_request ir;
  uint8_t ex[10];
  uint16_t i;

  if (nbd_info_request_parse (data, len, &ir) == -1)
    return reply (c, opt, NBD_REP_ERR_INVALID, NULL, 0);
  if (!name_served (c, ir.name, ir.name_len))
    return reply (c, opt, NBD_REP_ERR_UNKNOWN, NULL, 0);
  nbd_put64 (ex, c->limits.size);
  nbd_put16 (ex + 8, c->limits.tflags);
  if (reply_info (c, opt, NBD_INFO_EXPORT, ex, sizeof ex) == -1)
    return -1;
  for (i = 0; i < ir.ninfos; i++)
    if (send_requested_info (c, opt, nbd_get16 (ir.infos + 2 * i)) == -1)
      return -1;
  if (reply (c, opt, NBD_REP_ACK, NULL, 0) == -1)
    return -1;
  return opt == NBD_OPT_GO ? 1 : 0;
}

/* 1: transmission; 0: next option; 2: the client aborted; -1: error. */
static int
option (struct conn *c, uint32_t opt, const uint8_t *data, uint32_t len)
{
  switch (opt) {
  case NBD_OPT_EXPORT_NAME:
    return opt_export_name (c, data, len);
  case NBD_OPT_ABORT:
    reply (c, opt, NBD_REP_ACK, NULL, 0);   /* the client may be gone */
    return 2;
  case NBD_OPT_LIST:
    return opt_list (c, len);
  case NBD_OPT_INFO:
  case NBD_OPT_GO:
    return opt_info (c, opt, data, len);
  case NBD_OPT_STARTTLS:
    return reply (c, opt, NBD_REP_ERR_POLICY, NULL, 0);
  default:
    return reply (c, opt, NBD_REP_ERR_UNSUP, NULL, 0);
  }
}

static int
greet (struct conn *c)
{
  uint8_t g[18], cf[4];
  uint32_t flags;

  nbd_put64 (g, NBD_MAGIC);
  nbd_put64 (g + 8, NBD_IHAVEOPT);
  nbd_put16 (g + 16, NBD_FLAG_FIXED_NEWSTYLE | NBD_FLAG_NO_ZEROES);
  if (nbd_send_all (c, g, sizeof g, NULL, 0) == -1)
    return -1;
  if (nbd_read_full (c->in, cf, sizeof cf) == -1)
    return -1;
  flags = nbd_get32 (cf);
  if (flags & ~(NBD_FLAG_C_FIXED_NEWSTYLE | NBD_FLAG_C_NO_ZEROES)) {
    nbd_conn_log (c, "client sent unknown flags 0x%x", flags);
    errno = EPROTO;
    return -1;
  }
  c->no_zeroes = flags & NBD_FLAG_C_NO_ZEROES;
  return 0;
}

int
nbd_handshake (struct conn *c)
{
  unsigned n;

  c->limits.size = c->e->bdev->size;
  c->limits.tflags = transmission_flags (c->e);
  if (greet (c) == -1)
    return errno == 0 ? 0 : -1;
  for (n = 0; n < NBD_MAX_OPTIONS; n++) {
    uint8_t h[NBD_OPTION_HEADER_SIZE];
    CLEANUP_FREE uint8_t *data = NULL;
    uint32_t opt, len;
    int r;

    if (nbd_read_full (c->in, h, sizeof h) == -1)
      return errno == 0 ? 0 : -1;
    if (nbd_get64 (h) != NBD_IHAVEOPT) {
      nbd_conn_log (c, "bad option magic from the client");
      return -1;
    }
    opt = nbd_get32 (h + 8);
    len = nbd_get32 (h + 12);
    if (len > NBD_MAX_OPTION_LEN) {
      nbd_conn_log (c, "option %u of %u bytes is too long", opt, len);
      return -1;
    }
    data = malloc (len ? len : 1);
    if (data == NULL || nbd_read_full (c->in, data, len) == -1)
      return -1;
    r = option (c, opt, data, len);
    if (r != 0)
      return r == 2 ? 0 : r;
  }
  nbd_conn_log (c, "client sent more than %d options", NBD_MAX_OPTIONS);
  return -1;
}
