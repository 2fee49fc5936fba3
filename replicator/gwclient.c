/* diskfarm-replicator — HTTP to the gateways (see gwclient.h). */
#include <config.h>

#include <ctype.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "cleanup.h"
#include "error.h"
#include "gwclient.h"
#include "util.h"

#define TOKEN_MAX 4096
#define CONNECT_TIMEOUT_S 10L
/* A transfer that moves less than a byte a second for this long has
 * stalled (a source stopped mid-file without closing the connection).
 */
#define STALL_S 30L

/* A path of the farm: absolute, or relative to the farm directory. */
static char *
farm_path (const struct df_farm *farm, const char *p)
{
  if (p[0] == '/')
    return strdup (p);
  return df_path_join (df_farm_dir (farm), p);
}

static int
read_token (const struct df_farm *farm, struct repl_gw *gw)
{
  const char *tf = df_farm_setting (farm, "gateway", "token-file");
  CLEANUP_FREE char *path = NULL, *text = NULL;
  size_t len;

  if (tf == NULL)
    return 0;                   /* no token: the gateway will say 401 */
  path = farm_path (farm, tf);
  if (path == NULL)
    return df_error_errno ("[gateway] token-file");
  if (df_read_file (path, TOKEN_MAX, &text, &len) == -1) {
    df_error_prefix ("[gateway] token-file");
    return -1;
  }
  while (len > 0 && isspace ((unsigned char) text[len - 1]))
    text[--len] = '\0';
  if (len == 0 || strpbrk (text, "\r\n"))
    return df_error (EINVAL, "%s: the token must be one non-empty line", path);
  if (asprintf (&gw->auth, "Authorization: Bearer %s", text) == -1) {
    gw->auth = NULL;
    return df_error_errno ("token");
  }
  return 0;
}

static int
base_url (const struct df_farm *farm, const char *server, struct repl_gw *gw)
{
  const char *gwaddr = df_farm_get (farm, DF_KIND_SERVER, server, "gateway");
  const char *ports = df_farm_setting (farm, "gateway", "port");
  uint64_t port = REPL_GATEWAY_PORT;
  struct df_server sv;
  char host[256];
  unsigned p;

  if (ports && df_parse_u64 (ports, &port) == -1) {
    df_error_prefix ("[gateway] port");
    return -1;
  }
  if (gwaddr) {
    if (df_address_split (gwaddr, port, host, sizeof host, &p) == -1)
      return -1;
  }
  else {
    if (df_farm_server (farm, server, &sv) == -1 ||
        df_address_split (sv.address, port, host, sizeof host, &p) == -1)
      return -1;
    p = port;                   /* the address's port is the NBD port */
  }
  if (asprintf (&gw->base, "%s://%s:%u", gw->ca_file ? "https" : "http", host,
                p) == -1) {
    gw->base = NULL;
    return df_error_errno ("%s", server);
  }
  return 0;
}

int
repl_gw_resolve (const struct df_farm *farm, const char *server,
                 struct repl_gw *out)
{
  const char *ca = df_farm_setting (farm, "gateway", "ca-file");

  memset (out, 0, sizeof *out);
  if ((out->server = strdup (server)) == NULL ||
      (ca && (out->ca_file = farm_path (farm, ca)) == NULL)) {
    repl_gw_clear (out);
    return df_error_errno ("%s", server);
  }
  if (base_url (farm, server, out) == -1 || read_token (farm, out) == -1) {
    df_error_prefix ("the gateway of server \"%s\"", server);
    repl_gw_clear (out);
    return -1;
  }
  return 0;
}

void
repl_gw_clear (struct repl_gw *gw)
{
  free (gw->server);
  free (gw->base);
  free (gw->auth);
  free (gw->ca_file);
  memset (gw, 0, sizeof *gw);
}

CURL *
repl_gw_handle (const struct repl_gw *gw, const char *path,
                struct curl_slist **headers, char *errbuf)
{
  CLEANUP_FREE char *url = NULL;
  CURL *h = curl_easy_init ();

  *headers = NULL;
  errbuf[0] = '\0';
  if (h == NULL || asprintf (&url, "%s%s", gw->base, path) == -1) {
    url = NULL;
    if (h)
      curl_easy_cleanup (h);
    df_error (ENOMEM, "curl");
    return NULL;
  }
  if (gw->auth)
    *headers = curl_slist_append (NULL, gw->auth);
  curl_easy_setopt (h, CURLOPT_URL, url);
  curl_easy_setopt (h, CURLOPT_HTTPHEADER, *headers);
  curl_easy_setopt (h, CURLOPT_ERRORBUFFER, errbuf);
  curl_easy_setopt (h, CURLOPT_NOSIGNAL, 1L);
  curl_easy_setopt (h, CURLOPT_CONNECTTIMEOUT, CONNECT_TIMEOUT_S);
  curl_easy_setopt (h, CURLOPT_LOW_SPEED_LIMIT, 1L);
  curl_easy_setopt (h, CURLOPT_LOW_SPEED_TIME, STALL_S);
  curl_easy_setopt (h, CURLOPT_PROTOCOLS_STR, "http,https");
  curl_easy_setopt (h, CURLOPT_USERAGENT, "diskfarm-replicator/" PACKAGE_VERSION);
  if (gw->ca_file) {
    curl_easy_setopt (h, CURLOPT_CAINFO, gw->ca_file);
    curl_easy_setopt (h, CURLOPT_SSL_VERIFYPEER, 1L);
    curl_easy_setopt (h, CURLOPT_SSL_VERIFYHOST, 2L);
  }
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
