/* diskfarm — content hashes (SHA-256).
 *
 * Replica identity and the binding of a layer to its parent use the
 * SHA-256 of a layer's content (see docs/layer-format.md).  Text form:
 * "sha256:" followed by 64 lower-case hex digits.
 */
#ifndef DISKFARM_HASH_H
#define DISKFARM_HASH_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define DF_HASH_LEN 32
#define DF_HASH_TEXT_LEN (7 + 2 * DF_HASH_LEN)   /* without the NUL */

struct df_hash;                 /* running hash; opaque */

struct df_hash *df_hash_new (void);
int df_hash_update (struct df_hash *h, const void *data, size_t len);
/* Writes the digest and frees h.  h may be NULL (then returns -1). */
int df_hash_final (struct df_hash *h, uint8_t out[DF_HASH_LEN]);
void df_hash_free (struct df_hash *h);

/* buf must hold DF_HASH_TEXT_LEN + 1 bytes. */
const char *df_hash_format (const uint8_t hash[DF_HASH_LEN], char *buf);
int df_hash_parse (const char *text, uint8_t hash[DF_HASH_LEN]);
bool df_hash_is_zero (const uint8_t hash[DF_HASH_LEN]);

#endif
