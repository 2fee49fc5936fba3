/* diskfarm — CRC-32C, table driven; only small headers are checksummed. */
#include <config.h>

#include <pthread.h>

#include "crc32c.h"

static uint32_t table[256];
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
}

uint32_t
df_crc32c (uint32_t crc, const void *data, size_t len)
{
  const unsigned char *p = data;

  pthread_once (&table_once, make_table);
  crc = ~crc;
  while (len--)
    crc = table[(crc ^ *p++) & 0xff] ^ (crc >> 8);
  return ~crc;
}
