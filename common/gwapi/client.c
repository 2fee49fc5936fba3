/* diskfarm — the gateways' HTTP client (see gwclient.h). */
#include <config.h>

#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cleanup.h"
#include "error.h"
#include "gwapi/gwapi.h"
#include "gwapi/gwclient.h"
#include "util.h"

#define BODY_MAX (64 * 1024 * 1024)
#define CONNECT_MS 3000

struct server_url {
  char *name;
  char *url;                    /* NULL: bad address */
};

struct df_gw_client {
  char *ca_file;
  char *auth;                   /* "Authorization: Bearer TOKEN" or NULL */
  long timeout_ms;
  struct server_url *servers;
  size_t nservers;
};

static pthread_once_t curl_once = PTHREAD_ONCE_INIT;

static void
curl_init (void)
{
  curl_global_init (CURL_GLOBAL_DEFAULT);
}

static int
add_servers (struct df_gw_client *c, const struct df_farm *farm,
             const struct df_gw_settings *s)
{
  CLEANUP_FREE const char **names = df_farm_names (farm, DF_KIND_SERVER);
  size_t n, i;

  if (names == NULL)
    return -1;
  for (n = 0; names[n]; n++)
    ;
  c->servers = calloc (n + 1, sizeof *c->servers);
  if (c->servers == NULL)
    return df_error_errno ("gateway client");
  for (i = 0; i < n; i++) {
    c->servers[i].name = strdup (names[i]);
    if (c->servers[i].name == NULL)
      return df_error_errno ("gateway client");
    c->servers[i].url = df_gw_url (farm, s, names[i]);
    c->nservers++;
  }
  df_error_clear ();
  return 0;
}

struct df_gw_client *
df_gw_client_new (const struct df_farm *farm)
{
  struct df_gw_client *c = calloc (1, sizeof *c);
  struct df_gw_settings s;
  CLEANUP_FREE char *token = NULL;

  if (c == NULL) {
    df_error_errno ("gateway client");
    return NULL;
  }
  pthread_once (&curl_once, curl_init);
  c->timeout_ms = 10000;
  if (df_gw_settings (farm, &s) == -1) {
    free (c);
    return NULL;
  }
  /* A CLI user who may not read the token still sees the public parts. */
  if (s.token_file && df_gw_read_token (s.token_file, false, &token) == 0 &&
      asprintf (&c->auth, "Authorization: Bearer %s", token) == -1)
    c->auth = NULL;
  if (token)
    explicit_bzero (token, strlen (token));
  df_error_clear ();
  if (add_servers (c, farm, &s) == -1) {
    df_gw_settings_free (&s);
    df_gw_client_free (c);
    return NULL;
  }
  c->ca_file = TAKE_PTR (s.ca_file);
  df_gw_settings_free (&s);
  return c;
}

void
df_gw_client_free (struct df_gw_client *c)
{
  size_t i;

  if (c == NULL)
    return;
  for (i = 0; i < c->nservers; i++) {
    free (c->servers[i].name);
    free (c->servers[i].url);
  }
  free (c->servers);
  if (c->auth)
    explicit_bzero (c->auth, strlen (c->auth));
  free (c->auth);
  free (c->ca_file);
  free (c);
}

void
df_gw_client_set_timeout (struct df_gw_client *c, long ms)
{
  c->timeout_ms = ms > 0 ? ms : 10000;
}

bool
df_gw_client_has_token (const struct df_gw_client *c)
{
  return c->auth != NULL;
}

const char *
df_gw_client_url (struct df_gw_client *c, const char *server)
{
  size_t i;

  for (i = 0; i < c->nservers; i++)
    if (strcmp (c->servers[i].name, server) == 0)
      return c->servers[i].url;
  return NULL;
}

/* The request's handle state: the body read and its headers. */
struct call {
  CURL *h;
  struct curl_slist *headers;
  char *body;
  size_t len;
  bool too_big;
  char errbuf[CURL_ERROR_SIZE];
};

static size_t
on_body (char *data, size_t size, size_t n, void *opaque)
{
  struct call *call = opaque;
  size_t len = size * n;
  char *nb;

  if (call->len + len > BODY_MAX) {
    call->too_big = true;
    return 0;
  }
  nb = realloc (call->body, call->len + len + 1);
  if (nb == NULL)
    return 0;
  memcpy (nb + call->len, data, len);
  call->body = nb;
  call->len += len;
  call->body[call->len] = '\0';
  return len;
}

int
df_gw_curl_setup (struct df_gw_client *c, CURL *h, const char *server,
                  const char *path)
{
  const char *base = df_gw_client_url (c, server);
  CLEANUP_FREE char *url = NULL;

  if (base == NULL)
    return df_error (ENOENT, "server \"%s\" has no usable gateway address",
                     server);
  if (asprintf (&url, "%s%s", base, path) == -1)
    return df_error_errno ("%s", server);
  if (curl_easy_setopt (h, CURLOPT_URL, url) != CURLE_OK ||
      curl_easy_setopt (h, CURLOPT_NOSIGNAL, 1L) != CURLE_OK ||
      curl_easy_setopt (h, CURLOPT_CONNECTTIMEOUT_MS,
                        c->timeout_ms < CONNECT_MS ? c->timeout_ms : CONNECT_MS)
      != CURLE_OK ||
      curl_easy_setopt (h, CURLOPT_TIMEOUT_MS, c->timeout_ms) != CURLE_OK ||
      curl_easy_setopt (h, CURLOPT_PROTOCOLS_STR, "http,https") != CURLE_OK ||
      (c->ca_file &&
       curl_easy_setopt (h, CURLOPT_CAINFO, c->ca_file) != CURLE_OK))
    return df_error (EINVAL, "cannot set up a request to %s", url);
  return 0;
}

int
df_gw_curl_auth (const struct df_gw_client *c, struct curl_slist **headers)
{
  struct curl_slist *l;

  if (c->auth == NULL)
    return 0;
  l = curl_slist_append (*headers, c->auth);
  if (l == NULL)
    return df_error (ENOMEM, "curl");
  *headers = l;
  return 0;
}

/* A fresh handle for server's path, or -1 with a message. */
static int
call_setup (struct df_gw_client *c, struct call *call, const char *server,
            const char *path)
{
  memset (call, 0, sizeof *call);
  call->h = curl_easy_init ();
  if (call->h == NULL)
    return df_error (ENOMEM, "curl");
  if (df_gw_curl_setup (c, call->h, server, path) == -1)
    return -1;
  if (c->auth && (call->headers = curl_slist_append (NULL, c->auth)) == NULL)
    return df_error (ENOMEM, "curl");
  curl_easy_setopt (call->h, CURLOPT_HTTPHEADER, call->headers);
  curl_easy_setopt (call->h, CURLOPT_WRITEFUNCTION, on_body);
  curl_easy_setopt (call->h, CURLOPT_WRITEDATA, call);
  curl_easy_setopt (call->h, CURLOPT_ERRORBUFFER, call->errbuf);
  return 0;
}

static void
call_free (struct call *call)
{
  curl_easy_cleanup (call->h);
  curl_slist_free_all (call->headers);
  free (call->body);
}

/* Turns a finished call into a result. */
static void
call_result (struct call *call, CURLcode code, const char *server,
             struct df_gw_result *out)
{
  json_error_t je;
  json_t *err;

  memset (out, 0, sizeof *out);
  curl_easy_getinfo (call->h, CURLINFO_RESPONSE_CODE, &out->status);
  if (code != CURLE_OK) {
    out->status = call->too_big ? out->status : 0;
    snprintf (out->error, sizeof out->error, "%.100s: %.150s", server,
              call->too_big ? "answer too large" :
              call->errbuf[0] ? call->errbuf : curl_easy_strerror (code));
    return;
  }
  out->doc = json_loadb (call->body ? call->body : "", call->len, 0, &je);
  if (out->status == 200 && out->doc)
    return;
  err = out->doc ? json_object_get (out->doc, "message") : NULL;
  snprintf (out->error, sizeof out->error, "%s: HTTP %ld%s%s", server,
            out->status, json_is_string (err) ? ": " : "",
            json_is_string (err) ? json_string_value (err) : "");
  if (out->status == 200)
    snprintf (out->error, sizeof out->error, "%s: not JSON: %s", server,
              je.text);
  json_decref (out->doc);
  out->doc = NULL;
}

void
df_gw_result_clear (struct df_gw_result *r)
{
  json_decref (r->doc);
  memset (r, 0, sizeof *r);
}

int
df_gw_get_json (struct df_gw_client *c, const char *server, const char *path,
                struct df_gw_result *out)
{
  return df_gw_get_json_many (c, &server, 1, path, out) == 1 ? 0 :
    df_error (EIO, "%s", out->error);
}

size_t
df_gw_get_json_many (struct df_gw_client *c, const char *const *servers,
                     size_t n, const char *path, struct df_gw_result *out)
{
  CURLM *m = curl_multi_init ();
  struct call *calls = calloc (n ? n : 1, sizeof *calls);
  size_t i, ok = 0;
  int running;
  CURLMsg *msg;

  for (i = 0; i < n; i++) {
    memset (&out[i], 0, sizeof out[i]);
    if (m == NULL || calls == NULL)
      snprintf (out[i].error, sizeof out[i].error, "out of memory");
    else if (call_setup (c, &calls[i], servers[i], path) == -1)
      snprintf (out[i].error, sizeof out[i].error, "%s", df_error_get ());
    else
      curl_multi_add_handle (m, calls[i].h);
  }
  do {
    if (m == NULL || curl_multi_perform (m, &running) != CURLM_OK)
      break;
    if (running)
      curl_multi_poll (m, NULL, 0, 1000, NULL);
  } while (running);
  while (m && (msg = curl_multi_info_read (m, &running)) != NULL)
    for (i = 0; i < n; i++)
      if (msg->msg == CURLMSG_DONE && calls[i].h == msg->easy_handle)
        call_result (&calls[i], msg->data.result, servers[i], &out[i]);
  for (i = 0; i < n && calls; i++) {
    if (calls[i].h) {
      curl_multi_remove_handle (m, calls[i].h);
      call_free (&calls[i]);
    }
    ok += out[i].doc != NULL;
  }
  free (calls);
  curl_multi_cleanup (m);
  df_error_clear ();
  return ok;
}
