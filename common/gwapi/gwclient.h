/* diskfarm — the HTTP client of the gateways (libcurl): the farm's token
 * and CA, timeouts, JSON documents.  One implementation for the CLI
 * (diskfarm status), the replicator and the attach.
 *
 * Thread safety: a client may be used by several threads at once (each
 * call has its own curl handle).
 */
#ifndef DISKFARM_GWCLIENT_H
#define DISKFARM_GWCLIENT_H

#include <stddef.h>

#include <curl/curl.h>
#include <jansson.h>

#include "farm/farm.h"

struct df_gw_client;

/* A client for the gateways of farm: the [gateway] settings, the token
 * (if the farm names a token file this process can read: otherwise
 * requests go without, and only the public endpoints answer) and the CA.
 * NULL with a message.  The client keeps copies: farm may be freed.
 */
struct df_gw_client *df_gw_client_new (const struct df_farm *farm);
void df_gw_client_free (struct df_gw_client *c);
/* Whole-request timeout in milliseconds (default 10000; connecting at
 * most 3000 of them).
 */
void df_gw_client_set_timeout (struct df_gw_client *c, long ms);
/* True if the client has a token to send. */
bool df_gw_client_has_token (const struct df_gw_client *c);

/* The base URL of server's gateway ("http[s]://HOST:PORT"), or NULL if
 * the server is not in the farm or its address is bad.  Valid for the
 * client's life.
 */
const char *df_gw_client_url (struct df_gw_client *c, const char *server);

/* Prepares h (a fresh or reset easy handle) for a request of path on
 * server's gateway: URL, token, CA, timeouts, no signals.  -1 with a
 * message.  For downloads and POSTs (replicator, attach).
 */
int df_gw_curl_setup (struct df_gw_client *c, CURL *h, const char *server,
                      const char *path);

/* Appends the token header ("Authorization: Bearer ...") to *headers,
 * if the client has a token; the caller sets CURLOPT_HTTPHEADER and
 * frees the list.  -1 with a message if out of memory.  With
 * df_gw_curl_setup, for requests the caller runs itself (replicator).
 */
int df_gw_curl_auth (const struct df_gw_client *c, struct curl_slist **headers);

/* The answer of one gateway. */
struct df_gw_result {
  json_t *doc;                  /* the JSON document (200), else NULL */
  long status;                  /* HTTP status; 0: not reached */
  char error[256];              /* why doc is NULL */
};

/* GET path from server's gateway.  -1 (with a message, also in
 * out->error) unless a 200 with a JSON document came back.
 */
int df_gw_get_json (struct df_gw_client *c, const char *server,
                    const char *path, struct df_gw_result *out);
/* The same from n servers at once (one timeout for all); out[i] for
 * servers[i].  Returns how many answered with a document.
 */
size_t df_gw_get_json_many (struct df_gw_client *c, const char *const *servers,
                            size_t n, const char *path,
                            struct df_gw_result *out);
void df_gw_result_clear (struct df_gw_result *r);

#endif
