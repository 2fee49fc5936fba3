/* diskfarm — the HTTP server layer every daemon shares (libmicrohttpd).
 *
 * A server is a table of routes.  A route names a method and a path,
 * exact ("/v1/status") or a prefix ending in '/' ("/boot/"); the first
 * route that matches handles the request.  GET routes also answer HEAD.
 * A handler answers with exactly one df_http_respond_* call; if it
 * returns -1 without answering, the client gets 500 and the error
 * (df_error_get) is logged.  A handler whose answer is computed
 * elsewhere suspends the request instead (df_http_suspend).
 *
 * The server runs inside a df_loop (single-threaded: handlers run on the
 * loop's thread, beside the daemon's other sockets) or, without a loop,
 * on libmicrohttpd's own thread pool (then handlers run concurrently).
 * Each finished request is logged once via df_log (the access log).
 *
 * Defences: at most max_connections connections (max_per_ip from one
 * address), request bodies up to max_body, a connection that sends
 * nothing for timeout_s is closed, and a request whose headers and body
 * have not all arrived request_timeout_s after it started (or after the
 * previous request on the connection ended) is cut off: slow clients
 * cannot hold connections and starve the others.  Decoded paths never
 * hold a NUL or control byte: such a path stays percent-encoded.
 *
 * SIGPIPE: df_http_server_new ignores it (a client that goes away must
 * not kill the daemon), which also lets libmicrohttpd use sendfile.
 */
#ifndef DISKFARM_HTTP_H
#define DISKFARM_HTTP_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include <jansson.h>

struct df_loop;
struct df_http_server;
struct df_http_request;

/* Returns 0 once it has responded, -1 (with df_error) if it has not. */
typedef int (*df_http_handler) (struct df_http_request *req, void *opaque);

struct df_http_route {
  const char *method;           /* "GET", "POST", ... */
  const char *path;             /* exact, or a prefix ending in '/' */
  df_http_handler fn;
  void *opaque;
  size_t max_body;              /* 0: the server's max_body */
  unsigned flags;               /* the application's (see guard) */
};

/* Called before the handler of every request, with the route that
 * matched (NULL when none did, before the 404 or 405): returns 0 to go
 * on, or 1 once it has answered itself (authentication).
 */
typedef int (*df_http_guard) (struct df_http_request *req,
                              const struct df_http_route *route,
                              void *opaque);

struct df_http_config {
  const char *listen;           /* IPv4 or IPv6 address; NULL: every IPv4 one */
  uint16_t port;                /* 0: any free port (see df_http_server_port) */
  struct df_loop *loop;         /* NULL: run on libmicrohttpd's threads */
  unsigned threads;             /* thread pool size without a loop (0: 2) */
  const struct df_http_route *routes;   /* terminated by path == NULL */
  size_t max_body;              /* larger request bodies get 413 (0: 1 MiB) */
  unsigned max_connections;     /* 0: 256 */
  unsigned max_per_ip;          /* connections from one address (0: any) */
  unsigned timeout_s;           /* idle connections are closed (0: 60) */
  unsigned request_timeout_s;   /* to receive a whole request (0: 30) */
  bool access_log;              /* log each request at info level, else debug */
  bool json_errors;             /* the layer's own 404, 405, 413 and 500
                                   answers as JSON errors, else text */
  const char *tls_cert;         /* PEM files: serve HTTPS (NULL: HTTP) */
  const char *tls_key;
  df_http_guard guard;          /* NULL: none */
  void *guard_opaque;
};

/* Starts listening.  The routes table must outlive the server.  Returns
 * NULL with a message (address in use, bad listen address...).
 */
struct df_http_server *df_http_server_new (const struct df_http_config *cfg);
void df_http_server_free (struct df_http_server *srv);
/* The port it listens on (useful after port 0). */
uint16_t df_http_server_port (const struct df_http_server *srv);

struct df_http_stats {
  uint64_t requests, status_2xx, status_3xx, status_4xx, status_5xx;
  uint64_t bytes;               /* response bodies queued */
  uint64_t connections;         /* open now */
  uint64_t cut_off;             /* connections closed by request_timeout_s */
};
void df_http_server_stats (const struct df_http_server *srv,
                           struct df_http_stats *out);
/* Calls fn for every status code answered so far, ascending. */
void df_http_server_codes (const struct df_http_server *srv,
                           void (*fn) (unsigned code, uint64_t n, void *),
                           void *opaque);
/* True if the server speaks HTTPS. */
bool df_http_server_tls (const struct df_http_server *srv);

/* ---- the request (valid during the handler) ---- */

const char *df_http_method (const struct df_http_request *req);
/* The path, percent-decoded, without the query string. */
const char *df_http_path (const struct df_http_request *req);
/* For prefix routes, the part of the path after the prefix; else "". */
const char *df_http_subpath (const struct df_http_request *req);
/* A request header (case-insensitive name) or query argument; NULL if
 * absent.
 */
const char *df_http_header (const struct df_http_request *req,
                            const char *name);
const char *df_http_query (const struct df_http_request *req,
                           const char *name);
/* The client's address as text ("10.0.0.5", "::1"). */
const char *df_http_peer (const struct df_http_request *req);
/* The client's IPv4 address in network order, or false (IPv6 client). */
bool df_http_peer_ipv4 (const struct df_http_request *req, uint32_t *addr);
/* The request body (NUL-terminated; len 0 when there is none). */
const char *df_http_body (const struct df_http_request *req, size_t *len);

/* A handler that has no answer yet calls this and returns 0 without
 * responding.  Some thread later calls df_http_resume (req), once; then
 * cont (req, opaque) runs on the server's thread and answers (it may
 * suspend again).  req stays valid until cont has answered.
 */
int df_http_suspend (struct df_http_request *req, df_http_handler cont,
                     void *opaque);
void df_http_resume (struct df_http_request *req);

/* ---- responses (exactly one per request) ---- */

/* Adds a header to the response about to be sent (up to 16). */
int df_http_add_header (struct df_http_request *req, const char *name,
                        const char *value);
/* Body copied from data. */
int df_http_respond (struct df_http_request *req, unsigned status,
                     const char *content_type, const void *data, size_t len);
/* text/plain; charset=utf-8 */
int df_http_respond_text (struct df_http_request *req, unsigned status,
                          const char *fmt, ...)
  __attribute__ ((format (printf, 3, 4)));
/* application/json; takes the reference to v. */
int df_http_respond_json (struct df_http_request *req, unsigned status,
                          json_t *v);
/* {"error": error, "message": the formatted text} */
int df_http_respond_error (struct df_http_request *req, unsigned status,
                           const char *error, const char *fmt, ...)
  __attribute__ ((format (printf, 4, 5)));
/* A file: takes ownership of fd (closed when sent), sent from the file
 * (sendfile on plain HTTP).  Answers Range (one range: 206 with
 * Content-Range; several: 206 multipart/byteranges; none satisfiable:
 * 416), If-None-Match (304) and If-Range.  etag is the quoted entity
 * tag; NULL derives one from the file's inode, size and modification
 * time.
 */
int df_http_respond_file (struct df_http_request *req, int fd,
                          const char *content_type, const char *etag);
/* A body made while it is sent: len bytes, or DF_HTTP_LEN_UNKNOWN
 * (sent chunked).  read (opaque, s, pos, buf, max) runs on the server's
 * thread whenever the client can take more; it must not block for long.
 * It returns the bytes it put in buf from body offset pos (1..max), or
 *   0: none yet.  After df_http_stream_wait (s), the connection sleeps
 *     until some thread calls df_http_stream_wake (s), once (the
 *     caller's own lock orders the two: the wake must not come before
 *     the wait); without it, the connection sleeps without holding its
 *     thread and read is asked again some 10 ms later;
 *   DF_HTTP_STREAM_END: the body is complete (a body of unknown length);
 *   DF_HTTP_STREAM_ERROR: the body cannot be completed; the connection
 *     is closed short of len or without the last chunk, so the client
 *     sees a failed transfer, never a short body that looks whole.
 * free_fn (opaque) runs once the response is done with (also when this
 * fails).  A connection asleep after df_http_stream_wait is never
 * closed: s stays valid until it is woken.  The body of a throttled
 * request (df_http_request_throttle) goes at the rate's pace.
 */
struct df_http_stream;
#define DF_HTTP_LEN_UNKNOWN UINT64_MAX
#define DF_HTTP_STREAM_END (-1)
#define DF_HTTP_STREAM_ERROR (-2)
typedef ssize_t (*df_http_stream_read_fn) (void *opaque,
                                           struct df_http_stream *s,
                                           uint64_t pos, char *buf,
                                           size_t max);
typedef void (*df_http_stream_free_fn) (void *opaque);
int df_http_respond_stream (struct df_http_request *req, unsigned status,
                            const char *content_type, uint64_t len,
                            df_http_stream_read_fn read,
                            df_http_stream_free_fn free_fn, void *opaque);
void df_http_stream_wait (struct df_http_stream *s);
void df_http_stream_wake (struct df_http_stream *s);

/* The file response of req leaves the page cache as it found it: the
 * pages of the file it sends that were not cached before are dropped
 * once the request ends (replication must not evict what a server's
 * devices read).  Its body is then read and copied, not sent with
 * sendfile: pages handed to a socket stay referenced by it for a while
 * after the client read them, and cannot be dropped.  Call before
 * df_http_respond_file.
 */
void df_http_request_leave_cache (struct df_http_request *req);
/* The same for a streamed response that reads [start, start + len) of
 * fd (the caller's; it may be closed before the request ends): what of
 * it was not cached now is dropped once the request ends.  Call before
 * df_http_respond_stream.
 */
void df_http_request_leave_cache_of (struct df_http_request *req, int fd,
                                     uint64_t start, uint64_t len);

/* ---- the egress cap ---- */

/* A token bucket: bytes a second, shared by every response throttled
 * with it, on any thread (a burst of 100 ms of the rate).
 */
struct df_http_rate;
struct df_http_rate *df_http_rate_new (uint64_t bytes_per_s);
void df_http_rate_free (struct df_http_rate *r);      /* NULL is fine */
uint64_t df_http_rate_bytes_per_s (const struct df_http_rate *r);
/* Takes n bytes from the bucket, sleeping until they are due. */
void df_http_rate_take (struct df_http_rate *r, size_t n);
/* The body of req's response (file or stream, sent after this call)
 * goes out at most as fast as rate allows: file responses are then
 * read and copied instead of sent with sendfile (so are those that
 * leave the page cache).
 */
void df_http_request_throttle (struct df_http_request *req,
                               struct df_http_rate *rate);

/* ---- helpers, exposed for tests ---- */

#define DF_HTTP_MAX_RANGES 32
struct df_http_range {
  uint64_t start, len;
};
/* Parses a Range header value against a resource of size bytes.
 * Returns the number of satisfiable ranges written to out (1..max, in
 * the client's order; unsatisfiable ones are dropped), 0 when the whole
 * resource should be sent (no header, a unit other than bytes, bad
 * syntax, more than max ranges, overlapping ranges adding up to more
 * than the resource), -1 when no range is satisfiable (416).
 */
int df_http_parse_ranges (const char *value, uint64_t size,
                          struct df_http_range *out, size_t max);
/* True if an If-None-Match value lists etag (or is "*"). */
bool df_http_etag_match (const char *list, const char *etag);

#endif
