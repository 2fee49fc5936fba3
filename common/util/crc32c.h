/* diskfarm — CRC-32C (Castagnoli), as used for layer header checksums. */
#ifndef DISKFARM_CRC32C_H
#define DISKFARM_CRC32C_H

#include <stddef.h>
#include <stdint.h>

/* crc32c("123456789") == 0xe3069283.  Pass 0 to start; chainable. */
uint32_t df_crc32c (uint32_t crc, const void *data, size_t len);

#endif
