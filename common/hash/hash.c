/* diskfarm — content hashes over OpenSSL's SHA-256 (see hash.h). */
#include <config.h>

#include <errno.h>
#include <string.h>

#include <openssl/evp.h>

#include "error.h"
#include "util.h"
#include "hash/hash.h"

struct df_hash {
  EVP_MD_CTX *ctx;
};

struct df_hash *
df_hash_new (void)
{
  struct df_hash *h = calloc (1, sizeof *h);

  if (h == NULL) {
    df_error_errno ("hash");
    return NULL;
  }
  h->ctx = EVP_MD_CTX_new ();
  if (h->ctx == NULL || EVP_DigestInit_ex (h->ctx, EVP_sha256 (), NULL) != 1) {
    df_hash_free (h);
    df_error (ENOMEM, "cannot start a SHA-256 hash");
    return NULL;
  }
  return h;
}

int
df_hash_update (struct df_hash *h, const void *data, size_t len)
{
  if (EVP_DigestUpdate (h->ctx, data, len) != 1)
    return df_error (EIO, "SHA-256 update failed");
  return 0;
}

int
df_hash_final (struct df_hash *h, uint8_t out[DF_HASH_LEN])
{
  unsigned len = 0;
  int r;

  if (h == NULL)
    return -1;
  r = EVP_DigestFinal_ex (h->ctx, out, &len) == 1 && len == DF_HASH_LEN;
  df_hash_free (h);
  if (!r)
    return df_error (EIO, "SHA-256 final failed");
  return 0;
}

void
df_hash_free (struct df_hash *h)
{
  if (h == NULL)
    return;
  EVP_MD_CTX_free (h->ctx);
  free (h);
}

const char *
df_hash_format (const uint8_t hash[DF_HASH_LEN], char *buf)
{
  memcpy (buf, "sha256:", 7);
  df_hex (hash, DF_HASH_LEN, buf + 7);
  return buf;
}

int
df_hash_parse (const char *text, uint8_t hash[DF_HASH_LEN])
{
  if (text == NULL || strncmp (text, "sha256:", 7) != 0 ||
      df_unhex (text + 7, hash, DF_HASH_LEN) == -1)
    return df_error (EINVAL, "\"%.80s\" is not a content hash (sha256:HEX)",
                     text ? text : "");
  return 0;
}

bool
df_hash_is_zero (const uint8_t hash[DF_HASH_LEN])
{
  return df_is_zero (hash, DF_HASH_LEN);
}
