/* libFuzzer harness: the TFTP packet parsers (requests, OACK, ACK, DATA,
 * ERROR), negotiation, OACK building, path checks and netascii.  Besides
 * "no crash", it checks that a parsed request rebuilds to one that
 * parses the same, and that a granted OACK always fits.
 */
#include <config.h>

#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "tftp/tftp-packet.h"

int LLVMFuzzerTestOneInput (const uint8_t *data, size_t size);

static void
check_request (const struct tftp_request *req)
{
  static const struct tftp_limits lim = { 1468, 64 };
  uint8_t buf[TFTP_REQUEST_MAX + 64];
  struct tftp_request again;
  struct tftp_options ack;
  const char *rel;
  ssize_t n;

  tftp_negotiate (req, &lim, (int64_t) req->opts.tsize & INT64_MAX, &ack);
  if (tftp_build_oack (buf, 128, &ack) == -1)
    abort ();                   /* the server's OACK buffer is 128 bytes */
  if (tftp_path_check (req->path, &rel) == 0
      && (rel < req->path || rel >= req->path + strlen (req->path)))
    abort ();
  n = tftp_build_request (buf, sizeof buf, req->opcode, req->path,
                          req->mode_name, &req->opts);
  if (n == -1)
    return;
  if (tftp_parse_request (buf, n, &again) == -1
      || again.opts.present != req->opts.present
      || again.opts.blksize != req->opts.blksize
      || again.opts.timeout != req->opts.timeout
      || again.opts.windowsize != req->opts.windowsize
      || again.opts.tsize != req->opts.tsize
      || strcmp (again.path, req->path) != 0)
    abort ();
}

static void
check_netascii (const uint8_t *data, size_t size)
{
  uint8_t out[64];
  size_t used, total = 0, n;
  int pending = -1;

  while (total < size) {
    n = tftp_netascii_encode (data + total, size - total, &used, out,
                              1 + data[0] % sizeof out, &pending);
    if (n == 0 || n > sizeof out)
      abort ();
    total += used;
  }
}

int
LLVMFuzzerTestOneInput (const uint8_t *data, size_t size)
{
  struct tftp_request req;
  struct tftp_options opts;
  const uint8_t *payload;
  size_t len;
  uint16_t block, code;
  char msg[64];

  if (tftp_parse_request (data, size, &req) == 0)
    check_request (&req);
  tftp_parse_oack (data, size, &opts);
  tftp_parse_ack (data, size, &block);
  if (tftp_parse_data (data, size, &block, &payload, &len) == 0
      && payload + len != data + size)
    abort ();
  if (tftp_parse_error (data, size, &code, msg, sizeof msg) == 0
      && strlen (msg) >= sizeof msg)
    abort ();
  if (size > 0)
    check_netascii (data, size);
  return 0;
}
