/* diskfarm — a small NBD server over a block device (df_bdev).
 *
 * Serves one export to local clients (qemu's nbd driver, nbd-client,
 * nbdcopy, nbdinfo, libnbd): the fixed newstyle handshake with
 * NBD_OPT_GO/INFO (export size and flags, name, description, block
 * sizes), NBD_OPT_EXPORT_NAME, NBD_OPT_LIST and NBD_OPT_ABORT; simple
 * replies; READ, WRITE, FLUSH, TRIM, WRITE_ZEROES (FUA, NO_HOLE,
 * FAST_ZERO) and CACHE (reads ahead through the stack and discards).
 * Structured replies, block status and TLS are not offered (clients
 * fall back to simple replies).  The export is accepted under its name
 * and under the default name "".
 *
 * Threads: each connection has its own (as nbdkit does): in turn, one
 * reads a request, then runs it against the device and writes the
 * reply while the next one reads, so a slow request does not hold up
 * the others (replies go out in completion order, as NBD allows) and a
 * request wakes no other thread.  A device that reads asynchronously
 * (DF_BDEV_ASYNC), on a socket: the reader hands it each batch of reads
 * and reads on; their replies go out from the device's thread without
 * blocking, and what the socket does not take, a writer thread of the
 * connection sends.
 *
 * The library does not print: protocol errors and failed requests are
 * handed to export->log if set.  Writes use MSG_NOSIGNAL, so a client
 * that goes away does not raise SIGPIPE.
 */
#ifndef DISKFARM_NBD_SERVER_H
#define DISKFARM_NBD_SERVER_H

#include <stdbool.h>
#include <sys/types.h>

#include "bdev/bdev.h"

#define DF_NBD_DEFAULT_THREADS 16  /* per connection */
#define DF_NBD_MAX_THREADS 64

struct df_nbd_export {
  struct df_bdev *bdev;         /* not owned; must outlive the server */
  const char *name;             /* copied */
  const char *description;      /* copied; NULL: none */
  bool readonly;                /* also when bdev has DF_BDEV_RDONLY */
  bool multi_conn;              /* connections see each other's writes
                                   and a FLUSH on one covers all */
  /* Called (from any thread) with a message for the log; may be NULL. */
  void (*log) (void *opaque, const char *message);
  void *opaque;
};

struct df_nbd_server;

/* A server with threads per connection (0: DF_NBD_DEFAULT_THREADS):
 * as many requests of a connection run at once.  NULL with a message
 * on failure.
 */
struct df_nbd_server *df_nbd_server_new (const struct df_nbd_export *e,
                                         unsigned threads);

/* Listens on a unix socket at path (a socket file left there by an
 * earlier run is replaced; any other file, and a socket a live process
 * accepts connections on, is refused: EEXIST, EADDRINUSE) with the given
 * permissions, and accepts connections in a background thread.
 */
int df_nbd_server_listen_unix (struct df_nbd_server *s, const char *path,
                               mode_t mode);

/* Serves one connected socket (taken over) in the background. */
int df_nbd_server_add_fd (struct df_nbd_server *s, int fd);

/* Connections open now. */
unsigned df_nbd_server_connections (struct df_nbd_server *s);

/* Stops accepting (and removes the socket file), lets every connection
 * finish the requests it has read and closes it, then frees.  A client
 * that reads no replies is cut off after 10 s.  NULL is fine.
 */
void df_nbd_server_free (struct df_nbd_server *s);

/* Serves one connection in the calling thread, one request at a time,
 * reading from in and writing to out (neither is closed).  Returns when
 * the client leaves or breaks the protocol.  For the fuzzer and tests.
 */
void df_nbd_serve_serial (const struct df_nbd_export *e, int in, int out);

#endif
