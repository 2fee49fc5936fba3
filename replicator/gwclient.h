/* diskfarm-replicator — requests to a server's gateway, over the
 * gateways' client of common/gwapi (URL, token, CA as docs/farm.md
 * says).  Transfers take as long as they take: there is no whole-request
 * timeout, but one that moves less than a byte a second for 30 seconds
 * has stalled (a source stopped mid-file without closing).
 */
#ifndef DISKFARM_REPL_GWCLIENT_H
#define DISKFARM_REPL_GWCLIENT_H

#include <stdbool.h>
#include <stddef.h>

#include <curl/curl.h>

#include "gwapi/gwclient.h"

struct repl_gw {
  char *server;                 /* the server's name */
  const char *base;             /* "http[s]://HOST:PORT" (the client's) */
  struct df_gw_client *client;  /* not owned */
};

/* The gateway of server.  Clear with repl_gw_clear. */
int repl_gw_resolve (struct df_gw_client *client, const char *server,
                     struct repl_gw *out);
void repl_gw_clear (struct repl_gw *gw);

/* A new easy handle for base+path with the token, CA, stall detection
 * and error buffer (errbuf: CURL_ERROR_SIZE bytes).  *headers must be
 * freed (curl_slist_free_all) after the transfer; more headers may be
 * appended (then set CURLOPT_HTTPHEADER again).
 */
CURL *repl_gw_handle (const struct repl_gw *gw, const char *path,
                      struct curl_slist **headers, char *errbuf);

/* After a transfer: -1 with a message for a transport error or an HTTP
 * status outside 200-299 (with the gateway's JSON error message, if
 * body holds one).  The message starts "WHAT from server S: " unless
 * what is NULL (the caller names both itself).
 */
int repl_gw_check (const struct repl_gw *gw, const char *what, CURLcode code,
                   const char *errbuf, long status, const char *body,
                   size_t len);

/* GET path; the body (NUL-terminated, at most max bytes) is malloc'd. */
int repl_gw_get (const struct repl_gw *gw, const char *path, size_t max,
                 char **body, size_t *len);

#endif
