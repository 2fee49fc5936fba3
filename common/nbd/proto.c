/* diskfarm — NBD wire format helpers (see proto.h). */
#include <config.h>

#include <errno.h>

#include "nbd/proto.h"

int
nbd_request_decode (const uint8_t buf[NBD_REQUEST_SIZE], struct nbd_request *r)
{
  if (nbd_get32 (buf) != NBD_REQUEST_MAGIC)
    return -1;
  r->flags = nbd_get16 (buf + 4);
  r->type = nbd_get16 (buf + 6);
  r->cookie = nbd_get64 (buf + 8);
  r->offset = nbd_get64 (buf + 16);
  r->count = nbd_get32 (buf + 24);
  return 0;
}

/* The flags each command may carry. */
static uint16_t
allowed_flags (uint16_t type, uint16_t tflags)
{
  uint16_t fua = (tflags & NBD_FLAG_SEND_FUA) ? NBD_CMD_FLAG_FUA : 0;

  switch (type) {
  case NBD_CMD_WRITE:
  case NBD_CMD_TRIM:
    return fua;
  case NBD_CMD_WRITE_ZEROES:
    return fua | NBD_CMD_FLAG_NO_HOLE
      | ((tflags & NBD_FLAG_SEND_FAST_ZERO) ? NBD_CMD_FLAG_FAST_ZERO : 0);
  default:
    return 0;
  }
}

/* Is the command one this export advertised? */
static bool
known_command (uint16_t type, uint16_t tflags)
{
  switch (type) {
  case NBD_CMD_READ:
  case NBD_CMD_WRITE:
  case NBD_CMD_DISC:
    return true;
  case NBD_CMD_FLUSH:
    return tflags & NBD_FLAG_SEND_FLUSH;
  case NBD_CMD_TRIM:
    return tflags & NBD_FLAG_SEND_TRIM;
  case NBD_CMD_CACHE:
    return tflags & NBD_FLAG_SEND_CACHE;
  case NBD_CMD_WRITE_ZEROES:
    return tflags & NBD_FLAG_SEND_WRITE_ZEROES;
  default:
    return false;
  }
}

int
nbd_request_check (const struct nbd_request *r, const struct nbd_limits *l)
{
  bool writes = r->type == NBD_CMD_WRITE || r->type == NBD_CMD_TRIM
    || r->type == NBD_CMD_WRITE_ZEROES;

  if (r->type == NBD_CMD_WRITE && r->count > NBD_MAX_REQUEST)
    return -1;
  if (!known_command (r->type, l->tflags))
    return NBD_EINVAL;
  if (r->flags & ~allowed_flags (r->type, l->tflags))
    return NBD_EINVAL;
  if (r->type == NBD_CMD_DISC || r->type == NBD_CMD_FLUSH)
    return 0;
  if (writes && (l->tflags & NBD_FLAG_READ_ONLY))
    return NBD_EPERM;
  if (r->count == 0)
    return NBD_EINVAL;
  if (r->type == NBD_CMD_READ && r->count > NBD_MAX_REQUEST)
    return NBD_EINVAL;
  if (r->offset > l->size || r->count > l->size - r->offset)
    return writes ? NBD_ENOSPC : NBD_EINVAL;
  return 0;
}

uint32_t
nbd_errno_to_wire (int err)
{
  switch (err) {
  case EPERM:
  case EROFS:
    return NBD_EPERM;
  case ENOMEM:
    return NBD_ENOMEM;
  case EINVAL:
    return NBD_EINVAL;
  case ENOSPC:
  case EDQUOT:
  case EFBIG:
    return NBD_ENOSPC;
  case EOVERFLOW:
    return NBD_EOVERFLOW;
  case ENOTSUP:
    return NBD_ENOTSUP;
  case ESHUTDOWN:
    return NBD_ESHUTDOWN;
  default:
    return NBD_EIO;
  }
}

int
nbd_info_request_parse (const uint8_t *data, uint32_t len,
                        struct nbd_info_request *out)
{
  uint32_t name_len;

  if (len < 6)
    return -1;
  name_len = nbd_get32 (data);
  if (name_len > NBD_MAX_NAME_LEN || name_len > len - 6)
    return -1;
  out->name = (const char *) data + 4;
  out->name_len = name_len;
  out->ninfos = nbd_get16 (data + 4 + name_len);
  if ((uint64_t) out->ninfos * 2 != len - 6 - name_len)
    return -1;
  out->infos = data + 6 + name_len;
  return 0;
}
