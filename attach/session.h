/* diskfarm-attach — connecting a device session to one server of the
 * list: TCP, the NBD handshake, as many connections as asked for.
 *
 * Used to attach at boot and, when a connection dies, to find the next
 * server that serves the same export (failover).
 */
#ifndef DISKFARM_ATTACH_SESSION_H
#define DISKFARM_ATTACH_SESSION_H

#include <stddef.h>

#include "handshake.h"
#include "options.h"

struct attach_session {
  const struct attach_options *opts;
  size_t server;                 /* index in opts->servers of the server
                                    the connections go to */
  struct nbd_export_info info;   /* what that server offered */
  uint32_t block_size;
  uint32_t connections;          /* opts->connections, or 1 when the
                                    server forbids several */
};

/* Called with each failure: the server (its index in opts->servers)
 * and df_error_get ()'s text.
 */
typedef void (*session_report_fn) (const struct attach_options *o, size_t k,
                                   const char *message, void *ctx);

/* A session_report_fn that logs a server's failure as a warning only
 * when it differs from its previous one, so that retrying a list for a
 * minute does not flood the console.  ctx: a struct session_log.
 */
struct session_log {
  char last[ATTACH_MAX_SERVERS][256];
};
void session_log_changed (const struct attach_options *o, size_t k,
                          const char *message, void *ctx);

/* Tries each server once, in list order starting at first (wrapping
 * around), until one negotiates the export.  On success fills s (server,
 * info, block size, connections) and fds[0 .. s->connections - 1] with
 * connected sockets the caller owns; fds must have room for
 * opts->connections.  On failure -1, every failure having been
 * reported.
 */
int session_open_any (struct attach_session *s, size_t first, int *fds,
                      session_report_fn report, void *ctx);

/* The same for one given server.  -1 with a message on failure. */
int session_open (struct attach_session *s, size_t server, int *fds);

/* "64 MiB, read-write" and such, into buf. */
const char *session_describe (const struct attach_session *s, char *buf,
                              size_t len);

void session_close_fds (int *fds, size_t n);

#endif
