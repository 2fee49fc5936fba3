/* diskfarm-replicator — reaching a server's gateway (docs/farm.md):
 * http[s]://HOST:PORT from its gateway key or its address and
 * [gateway] port, the bearer token from [gateway] token-file, the CA
 * from [gateway] ca-file.  Everything the replicator says over HTTP
 * goes through these few functions.
 */
#ifndef DISKFARM_REPL_GWCLIENT_H
#define DISKFARM_REPL_GWCLIENT_H

#include <stdbool.h>
#include <stddef.h>

#include <curl/curl.h>

#include "farm/farm.h"

#define REPL_GATEWAY_PORT 10811

struct repl_gw {
  char *server;                 /* the server's name */
  char *base;                   /* "http://10.0.0.1:10811" */
  char *auth;                   /* "Authorization: Bearer ..." or NULL */
  char *ca_file;                /* NULL: plain HTTP */
};

/* Resolves server's gateway from the farm (token and CA files are read
 * now).  Clear with repl_gw_clear.
 */
int repl_gw_resolve (const struct df_farm *farm, const char *server,
                     struct repl_gw *out);
void repl_gw_clear (struct repl_gw *gw);

/* A new easy handle for METHOD base+path with the token, CA, timeouts
 * and error buffer (errbuf: CURL_ERROR_SIZE bytes).  *headers must be
 * freed (curl_slist_free_all) after the transfer; extra headers may be
 * appended to it before the transfer starts.
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
