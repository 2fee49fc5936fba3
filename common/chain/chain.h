/* diskfarm — a version's chain of layers as one block device.
 *
 * layers[0] is the base, layers[n-1] the version itself.  A read of a
 * block goes to the top-most layer that has it (present or zero); an
 * index built once at open makes that one lookup per block, whatever
 * the chain length.  If the top layer is writable (a maintenance
 * version), writes go to it; otherwise the device is read-only.  Zeroing
 * whole blocks marks them; with DF_FAST_ZERO, zeroing a part of a block
 * fails with ENOTSUP rather than write zeros.
 */
#ifndef DISKFARM_CHAIN_H
#define DISKFARM_CHAIN_H

#include <stddef.h>

#include "bdev/bdev.h"
#include "layer/layer.h"

#define DF_CHAIN_MAX 254

/* Takes ownership of the layers (and of the array's entries) in every
 * case: on failure they are closed.  Checks that each layer's parent id
 * is the id of the one below it, that sizes and block sizes agree and
 * that only the top is writable.  Returns NULL with a message on error.
 */
struct df_bdev *df_chain_open (struct df_layer **layers, size_t n);

/* The top layer (owned by the chain). */
struct df_layer *df_chain_top (struct df_bdev *chain);
size_t df_chain_length (struct df_bdev *chain);

#endif
