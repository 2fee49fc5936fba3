/* diskfarm — CRC-32C: the SSE 4.2 instruction where the CPU has it (the
 * park record checksums every block a disk cache writes), else a table.
 */
#include <config.h>

#include <pthread.h>
#include <stdbool.h>
#include <string.h>

#if defined (__x86_64__)
#include <nmmintrin.h>
#endif

#include "crc32c.h"

static uint32_t table[256];
static bool hw;
static pthread_once_t table_once = PTHREAD_ONCE_INIT;

static void
make_table (void)
{
  uint32_t i, j, c;

  for (i = 0; i < 256; i++) {
    c = i;
    for (j = 0; j < 8; j++)
      c = (c & 1) ? (c >> 1) ^ 0x82f63b78 : c >> 1;
    table[i] = c;
  }
#if defined (__x86_64__)
  hw = __builtin_cpu_supports ("sse4.2");
#endif
}

#if defined (__x86_64__)
__attribute__ ((target ("sse4.2")))
static uint32_t
crc_hw (uint32_t crc, const unsigned char *p, size_t len)
{
  uint64_t c = crc;

  for (; len >= 8; p += 8, len -= 8) {
    uint64_t v;
    memcpy (&v, p, 8);
    c = _mm_crc32_u64 (c, v);
  }
  crc = (uint32_t) c;
  while (len--)
    crc = _mm_crc32_u8 (crc, *p++);
  return crc;
}
#endif

uint32_t
df_crc32c (uint32_t crc, const void *data, size_t len)
{
  const unsigned char *p = data;

  pthread_once (&table_once, make_table);
  crc = ~crc;
#if defined (__x86_64__)
  if (hw)
    return ~crc_hw (crc, p, len);
#endif
  while (len--)
    crc = table[(crc ^ *p++) & 0xff] ^ (crc >> 8);
  return ~crc;
}
