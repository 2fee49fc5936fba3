/* diskfarm — HTTP layer internals shared by server.c and response.c. */
#ifndef DISKFARM_HTTP_INTERNAL_H
#define DISKFARM_HTTP_INTERNAL_H

#include <arpa/inet.h>
#include <stdbool.h>
#include <stdint.h>

#include <microhttpd.h>

#include "http/http.h"

#define HTTP_MAX_HEADERS 8

struct df_http_request {
  struct df_http_server *srv;
  struct MHD_Connection *conn;
  char *method, *path;          /* owned copies */
  const char *subpath;          /* into path */
  char *body;                   /* NUL-terminated, owned */
  size_t body_len;
  bool body_too_large;
  bool responded;
  unsigned status;              /* 0 until a response is queued */
  uint64_t size;                /* body size queued */
  uint64_t start_ns;
  char peer[INET6_ADDRSTRLEN];
  struct {
    char *name, *value;
  } headers[HTTP_MAX_HEADERS];
  size_t nheaders;
};

/* Queues resp with the pending headers and accounts for it; destroys
 * resp.  Returns 0, or -1 with a message.
 */
int http_queue (struct df_http_request *req, unsigned status,
                struct MHD_Response *resp, uint64_t size);

#endif
