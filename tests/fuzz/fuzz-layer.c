/* libFuzzer harness: layer header and allocation map checks. */
#include <config.h>

#include <stddef.h>
#include <stdint.h>

#include "layer/layer.h"

int LLVMFuzzerTestOneInput (const uint8_t *data, size_t size);

int
LLVMFuzzerTestOneInput (const uint8_t *data, size_t size)
{
  df_layer_check_image (data, size);
  return 0;
}
