/* diskfarm — the block-device stack: telling asynchronous reads done. */
#include <config.h>

#include "bdev/bdev.h"

#define GROUP 64

void
df_bdev_aio_complete (struct df_bdev_aread **a, size_t n)
{
  struct df_bdev_aread *g[GROUP];
  bool taken[GROUP];
  size_t base, i, j, ng;

  /* Usually all have one aio: one call.  Groups keep the reads' order. */
  for (base = 0; base < n; base += GROUP) {
    size_t m = n - base < GROUP ? n - base : GROUP;

    for (i = 0; i < m; i++)
      taken[i] = false;
    for (i = 0; i < m; i++) {
      struct df_bdev_aio *aio;

      if (taken[i])
        continue;
      aio = a[base + i]->aio;
      ng = 0;
      for (j = i; j < m; j++)
        if (!taken[j] && a[base + j]->aio == aio) {
          taken[j] = true;
          g[ng++] = a[base + j];
        }
      aio->done (aio, g, ng);
    }
  }
}
