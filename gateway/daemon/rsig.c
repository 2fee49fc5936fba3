/* diskfarm-gateway serve — librsync signatures the delta endpoint takes
 * (see rsig.h).
 *
 * A signature is a 12-byte header (magic, block length, strong sum
 * length, big-endian 32-bit each) and, per block of the basis, a 4-byte
 * weak sum and the strong sum.
 */
#include <config.h>

#include <errno.h>
#include <stdio.h>
#include <string.h>

#include <librsync.h>

#include "error.h"
#include "rsig.h"

#define HEADER 12
#define MIN_BLOCK 256

static uint32_t
get32 (const unsigned char *p)
{
  return (uint32_t) p[0] << 24 | (uint32_t) p[1] << 16 | (uint32_t) p[2] << 8 |
    p[3];
}

int
gw_rsig_check (const void *sig, size_t len, struct gw_rsig *out)
{
  const unsigned char *p = sig;
  rs_magic_number magic;
  size_t rec_block = 0, rec_strong = 0, min_strong = (size_t) -1;
  size_t max_strong, entry;

  memset (out, 0, sizeof *out);
  if (len < HEADER)
    return df_error (EINVAL, "not a librsync signature: %zu bytes", len);
  out->magic = get32 (p);
  out->block_len = get32 (p + 4);
  out->strong_len = get32 (p + 8);
  switch (out->magic) {
  case RS_MD4_SIG_MAGIC: case RS_RK_MD4_SIG_MAGIC:
    max_strong = RS_MD4_SUM_LENGTH;
    break;
  case RS_BLAKE2_SIG_MAGIC: case RS_RK_BLAKE2_SIG_MAGIC:
    max_strong = RS_BLAKE2_SUM_LENGTH;
    break;
  default:
    return df_error (EINVAL, "not a librsync signature (magic %#x)",
                     out->magic);
  }
  if (out->strong_len < 1 || out->strong_len > max_strong)
    return df_error (EINVAL, "strong sum length %u out of range",
                     out->strong_len);
  if (out->block_len < MIN_BLOCK || out->block_len > (1u << 30))
    return df_error (EINVAL, "block length %u out of range (%d to 1 GiB)",
                     out->block_len, MIN_BLOCK);
  entry = 4 + out->strong_len;
  if ((len - HEADER) % entry != 0)
    return df_error (EINVAL, "truncated signature: %zu bytes after the "
                     "header are not whole blocks of %zu", len - HEADER,
                     entry);
  out->blocks = (len - HEADER) / entry;
  out->basis = out->blocks * out->block_len;
  magic = out->magic;
  if (rs_sig_args (out->basis, &magic, &rec_block, &rec_strong) != RS_DONE)
    return df_error (EINVAL, "librsync refuses these signature arguments");
  if ((uint64_t) out->block_len * 2 < rec_block)
    return df_error (EINVAL, "blocks of %u bytes are too small for a basis of "
                     "%llu bytes: make the signature with the block length "
                     "rs_sig_args recommends (%zu)", out->block_len,
                     (unsigned long long) out->basis, rec_block);
  rec_block = out->block_len;
  if (rs_sig_args (out->basis, &magic, &rec_block, &min_strong) != RS_DONE)
    return df_error (EINVAL, "librsync refuses these signature arguments");
  if (out->strong_len < min_strong)
    return df_error (EINVAL, "strong sums of %u bytes are too short for a "
                     "basis of %llu bytes (at least %zu)", out->strong_len,
                     (unsigned long long) out->basis, min_strong);
  return 0;
}
