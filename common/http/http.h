/* diskfarm — the HTTP server layer every daemon shares (libmicrohttpd).
 *
 * A server is a table of routes.  A route names a method and a path,
 * exact ("/v1/status") or a prefix ending in '/' ("/boot/"); the first
 * route that matches handles the request.  GET routes also answer HEAD.
 * A handler answers with exactly one df_http_respond_* call; if it
 * returns -1 without answering, the client gets 500 and the error
 * (df_error_get) is logged.
 *
 * The server runs inside a df_loop (single-threaded: handlers run on the
 * loop's thread, beside the daemon's other sockets) or, without a loop,
 * on libmicrohttpd's own thread pool (then handlers run concurrently).
 * Each finished request is logged once via df_log (the access log).
 */
#ifndef DISKFARM_HTTP_H
#define DISKFARM_HTTP_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

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
};

struct df_http_config {
  const char *listen;           /* IPv4 or IPv6 address; NULL: every IPv4 one */
  uint16_t port;                /* 0: any free port (see df_http_server_port) */
  struct df_loop *loop;         /* NULL: run on libmicrohttpd's threads */
  unsigned threads;             /* thread pool size without a loop (0: 2) */
  const struct df_http_route *routes;   /* terminated by path == NULL */
  size_t max_body;              /* larger request bodies get 413 (0: 1 MiB) */
  unsigned max_connections;     /* 0: 256 */
  unsigned timeout_s;           /* idle connections are closed (0: 60) */
  bool access_log;              /* log each request at info level, else debug */
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
};
void df_http_server_stats (const struct df_http_server *srv,
                           struct df_http_stats *out);

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

/* ---- responses (exactly one per request) ---- */

/* Adds a header to the response about to be sent (up to 8). */
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
/* A file: takes ownership of fd (closed when sent).  Answers Range
 * (one range; 206 or 416), If-None-Match (304) and If-Range.  etag is
 * the quoted entity tag; NULL derives one from the file's inode, size
 * and modification time.
 */
int df_http_respond_file (struct df_http_request *req, int fd,
                          const char *content_type, const char *etag);

/* ---- helpers, exposed for tests ---- */

/* Parses a Range header value against a resource of size bytes.
 * Returns 1 with *start and *len for one satisfiable range, 0 when the
 * whole resource should be sent (no header, several ranges, a unit
 * other than bytes, bad syntax), -1 when the range is unsatisfiable.
 */
int df_http_parse_range (const char *value, uint64_t size, uint64_t *start,
                         uint64_t *len);
/* True if an If-None-Match value lists etag (or is "*"). */
bool df_http_etag_match (const char *list, const char *etag);

#endif
