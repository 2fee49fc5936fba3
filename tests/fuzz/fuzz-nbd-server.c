/* libFuzzer harness: the NBD server's handshake and request parsing.
 *
 * The input is what a client sends: it is served whole by the real
 * connection code (serially, over a RAM device), replies going to
 * /dev/null.
 */
#include <config.h>

#include <fcntl.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <sys/mman.h>
#include <unistd.h>

#include "bdev/bdev.h"
#include "nbd/server.h"

int LLVMFuzzerTestOneInput (const uint8_t *data, size_t size);

int
LLVMFuzzerTestOneInput (const uint8_t *data, size_t size)
{
  static struct df_bdev *mem;
  static int out = -1;
  struct df_nbd_export e;
  int in;

  if (mem == NULL) {
    mem = df_mem_bdev_new (1024 * 1024);
    out = open ("/dev/null", O_WRONLY | O_CLOEXEC);
    if (mem == NULL || out == -1)
      abort ();
  }
  in = memfd_create ("nbd-input", MFD_CLOEXEC);
  if (in == -1 || write (in, data, size) != (ssize_t) size ||
      lseek (in, 0, SEEK_SET) == -1)
    abort ();
  e = (struct df_nbd_export) {
    .bdev = mem, .name = "dev/pc1@s1", .description = "fuzz",
    .multi_conn = true,
  };
  df_nbd_serve_serial (&e, in, out);
  close (in);
  return 0;
}
