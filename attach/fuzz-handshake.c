/* libFuzzer harness: the NBD handshake of diskfarm-attach, fed a
 * server's bytes through a socket pair, as a hostile server would.
 */
#include <config.h>

#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>
#include <unistd.h>

#include "handshake.h"
#include "util.h"

int LLVMFuzzerTestOneInput (const uint8_t *data, size_t size);

int
LLVMFuzzerTestOneInput (const uint8_t *data, size_t size)
{
  struct nbd_export_info info;
  uint32_t bs;
  int sv[2];

  /* The whole input must fit in the socket buffer up front. */
  if (size > 65536 || socketpair (AF_UNIX, SOCK_STREAM, 0, sv) == -1)
    return 0;
  if (write (sv[1], data, size) == (ssize_t) size) {
    shutdown (sv[1], SHUT_WR);
    if (nbd_handshake (sv[0], "dev/fuzz@1", df_now_mono_ns () + 1000000000,
                       &info) == 0)
      nbd_pick_block_size (&info, 0, &bs);
  }
  close (sv[0]);
  close (sv[1]);
  return 0;
}
