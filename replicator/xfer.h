/* diskfarm-replicator — concurrent HTTP transfers over one curl multi
 * handle, in one thread.
 *
 * Transfers queue in the order they are added; at most jobs of them run
 * at once (curl queues the rest).  A bandwidth limit is shared out
 * equally by the transfers that run: each may receive bwlimit / n bytes
 * a second (CURLOPT_MAX_RECV_SPEED_LARGE), n updated as they come and
 * go.  Callbacks run in the thread that
 * calls repl_engine_run and may add transfers.  The engine counts every
 * byte on the wire (headers and bodies, both ways).
 */
#ifndef DISKFARM_REPL_XFER_H
#define DISKFARM_REPL_XFER_H

#include <stdbool.h>
#include <stdint.h>

#include <curl/curl.h>

struct repl_engine;

struct repl_xfer_ops {
  /* Body bytes.  -1 aborts the transfer (the message is the caller's). */
  int (*data) (void *opaque, const char *p, size_t n);
  /* One header line (with its CRLF), optional. */
  void (*header) (void *opaque, const char *line, size_t n);
  /* The end: code is curl's, status the HTTP status (0 if none), errbuf
   * curl's message.  The engine frees the handle afterwards.
   */
  void (*done) (void *opaque, CURLcode code, long status, const char *errbuf);
};

/* Progress: body bytes received so far of those expected. */
typedef void (*repl_progress_fn) (void *opaque, uint64_t done,
                                  uint64_t total);

struct repl_engine *repl_engine_new (unsigned jobs, uint64_t bwlimit);
void repl_engine_free (struct repl_engine *e);   /* NULL is fine */
void repl_engine_set_progress (struct repl_engine *e, repl_progress_fn fn,
                               void *opaque);

/* Queues a transfer on h (the engine owns h and headers from now on,
 * also on failure, and gives h an error buffer of its own).  expect:
 * body bytes it should bring, for progress.
 */
int repl_engine_add (struct repl_engine *e, CURL *h, struct curl_slist *headers,
                     const struct repl_xfer_ops *ops, void *opaque,
                     uint64_t expect);

/* Runs until nothing is queued or running.  -1 only if curl itself
 * fails; transfers report their own outcomes through done.
 */
int repl_engine_run (struct repl_engine *e);

/* Bytes on the wire so far: received and sent, headers included. */
uint64_t repl_engine_wire_in (const struct repl_engine *e);
uint64_t repl_engine_wire_out (const struct repl_engine *e);

#endif
