/* diskfarm-replicator — HTTP to the gateways (see gwclient.h). */
#include <config.h>

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "cleanup.h"
#include "error.h"
#include "gwclient.h"
#include "util.h"

/* A transfer that moves less than a byte a second for this long has
 * stalled (a source stopped mid-file without closing the connection).
 */
#define STALL_S 30L

int
repl_gw_resolve (struct df_gw_client *client, const char *server,
                 struct repl_gw *out)
{
  memset (out, 0, sizeof *out);
  out->client = client;
  out->base = df_gw_client_url (client, server);
  if (out->base == NULL)
    return df_error (ENOENT, "server \"%s\" has no usable gateway address "
                     "(its gateway or address key)", server);
  if ((out->server = strdup (server)) == NULL)
    return df_error_errno ("%s", server);
  return 0;
}

void
repl_gw_clear (struct repl_gw *gw)
{
  free (gw->server);
  memset (gw, 0, sizeof *gw);
}

CURL *
repl_gw_handle (const struct repl_gw *gw, const char *path,
                struct curl_slist **headers, char *errbuf)
{
  CURL *h = curl_easy_init ();

  *headers = NULL;
  errbuf[0] = '\0';
  if (h == NULL) {
    df_error (ENOMEM, "curl");
    return NULL;
  }
  if (df_gw_curl_setup (gw->client, h, gw->server, path) == -1 ||
      df_gw_curl_auth (gw->client, headers) == -1) {
    curl_easy_cleanup (h);
    curl_slist_free_all (*headers);
    *headers = NULL;
    return NULL;
  }
  curl_easy_setopt (h, CURLOPT_HTTPHEADER, *headers);
  curl_easy_setopt (h, CURLOPT_ERRORBUFFER, errbuf);
  /* A big layer takes as long as it takes; a stall does not. */
  curl_easy_setopt (h, CURLOPT_TIMEOUT_MS, 0L);
  curl_easy_setopt (h, CURLOPT_LOW_SPEED_LIMIT, 1L);
  curl_easy_setopt (h, CURLOPT_LOW_SPEED_TIME, STALL_S);
  curl_easy_setopt (h, CURLOPT_USERAGENT, "diskfarm-replicator/" PACKAGE_VERSION);
  return h;
}

/* The message of a gateway's JSON error answer, or NULL. */
static char *
error_message (const char *body, size_t len)
{
  json_t *root = body ? json_loadb (body, len, 0, NULL) : NULL;
  const char *msg = json_string_value (json_object_get (root, "message"));
  char *copy = msg ? strndup (msg, 300) : NULL;

  json_decref (root);
  return copy;
}

int
repl_gw_check (const struct repl_gw *gw, const char *what, CURLcode code,
               const char *errbuf, long status, const char *body, size_t len)
{
  CLEANUP_FREE char *msg = NULL, *head = NULL;
  const char *err = errbuf && errbuf[0] ? errbuf : curl_easy_strerror (code);

  /* "WHAT from server S: " unless the caller says that itself. */
  if (what && asprintf (&head, "%s from server %s: ", what, gw->server) == -1)
    head = NULL;
  if (code != CURLE_OK)
    return df_error (code == CURLE_OPERATION_TIMEDOUT ? ETIMEDOUT : EIO,
                     "%s%s (%s)", head ? head : "", err, gw->base);
  if (status >= 200 && status < 300)
    return 0;
  msg = error_message (body, len);
  if (status == 401 || status == 403)
    return df_error (EACCES, "%sthe gateway refused the token (HTTP %ld%s%s); "
                     "check [gateway] token-file", head ? head : "", status,
                     msg ? ": " : "", msg ? msg : "");
  return df_error (status == 404 ? ENOENT : EIO, "%sHTTP %ld%s%s",
                   head ? head : "", status, msg ? ": " : "", msg ? msg : "");
}

struct body {
  char *data;
  size_t len, max;
  bool too_big;
};

static size_t
body_write (char *ptr, size_t size, size_t n, void *opaque)
{
  struct body *b = opaque;
  size_t len = size * n;
  char *nd;

  if (b->len + len > b->max) {
    b->too_big = true;
    return 0;
  }
  nd = realloc (b->data, b->len + len + 1);
  if (nd == NULL)
    return 0;
  memcpy (nd + b->len, ptr, len);
  b->data = nd;
  b->len += len;
  b->data[b->len] = '\0';
  return len;
}

int
repl_gw_get (const struct repl_gw *gw, const char *path, size_t max,
             char **body, size_t *len)
{
  char errbuf[CURL_ERROR_SIZE];
  struct curl_slist *headers;
  struct body b = { .max = max };
  CURL *h = repl_gw_handle (gw, path, &headers, errbuf);
  CURLcode code;
  long status = 0;
  int r;

  if (h == NULL)
    return -1;
  curl_easy_setopt (h, CURLOPT_WRITEFUNCTION, body_write);
  curl_easy_setopt (h, CURLOPT_WRITEDATA, &b);
  code = curl_easy_perform (h);
  curl_easy_getinfo (h, CURLINFO_RESPONSE_CODE, &status);
  curl_easy_cleanup (h);
  curl_slist_free_all (headers);
  if (b.too_big) {
    free (b.data);
    return df_error (EFBIG, "GET %s from server %s: more than %zu bytes",
                     path, gw->server, max);
  }
  r = repl_gw_check (gw, path, code, errbuf, status, b.data, b.len);
  if (r == -1) {
    free (b.data);
    return -1;
  }
  *body = b.data ? b.data : strdup ("");
  *len = b.len;
  return *body ? 0 : df_error_errno ("GET %s", path);
}
