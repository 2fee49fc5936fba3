/* libFuzzer harness: librsync signatures the delta endpoint takes. */
#include <config.h>

#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>

#include "rsig.h"

int LLVMFuzzerTestOneInput (const uint8_t *data, size_t size);

int
LLVMFuzzerTestOneInput (const uint8_t *data, size_t size)
{
  struct gw_rsig info;

  if (gw_rsig_check (data, size, &info) == 0 &&
      (info.block_len < 256 || 12 + info.blocks * (4 + info.strong_len) != size))
    abort ();
  return 0;
}
