/* diskfarm — HTTP responses: buffers, text, JSON and JSON errors (see
 * http.h; files are in file.c).
 */
#include <config.h>

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cleanup.h"
#include "error.h"
#include "http-internal.h"
#include "util.h"

int
df_http_add_header (struct df_http_request *req, const char *name,
                    const char *value)
{
  size_t i = req->nheaders;

  if (i >= HTTP_MAX_HEADERS)
    return df_error (E2BIG, "too many response headers");
  req->headers[i].name = strdup (name);
  req->headers[i].value = strdup (value);
  if (req->headers[i].name == NULL || req->headers[i].value == NULL) {
    free (req->headers[i].name);
    free (req->headers[i].value);
    return df_error_errno ("response header");
  }
  req->nheaders++;
  return 0;
}

int
df_http_respond (struct df_http_request *req, unsigned status,
                 const char *content_type, const void *data, size_t len)
{
  struct MHD_Response *resp =
    MHD_create_response_from_buffer (len, (void *) data, MHD_RESPMEM_MUST_COPY);

  if (resp == NULL)
    return df_error (ENOMEM, "cannot create a response");
  if (content_type)
    MHD_add_response_header (resp, MHD_HTTP_HEADER_CONTENT_TYPE, content_type);
  return http_queue (req, status, resp, len);
}

int
df_http_respond_text (struct df_http_request *req, unsigned status,
                      const char *fmt, ...)
{
  CLEANUP_FREE char *text = NULL;
  va_list ap;
  int n;

  va_start (ap, fmt);
  n = vasprintf (&text, fmt, ap);
  va_end (ap);
  if (n == -1) {
    text = NULL;
    return df_error (ENOMEM, "cannot format a response");
  }
  return df_http_respond (req, status, "text/plain; charset=utf-8", text, n);
}

int
df_http_respond_json (struct df_http_request *req, unsigned status, json_t *v)
{
  CLEANUP_FREE char *text = NULL;
  struct MHD_Response *resp;
  size_t n;

  if (v == NULL)
    return df_error (ENOMEM, "no JSON value to send");
  text = json_dumps (v, JSON_INDENT (2) | JSON_PRESERVE_ORDER);
  json_decref (v);
  if (text == NULL)
    return df_error (ENOMEM, "cannot encode JSON");
  n = strlen (text);
  text[n] = '\n';               /* json_dumps leaves room: replace the NUL */
  resp = MHD_create_response_from_buffer (n + 1, text, MHD_RESPMEM_MUST_FREE);
  if (resp == NULL)
    return df_error (ENOMEM, "cannot create a response");
  text = NULL;                  /* libmicrohttpd frees it */
  MHD_add_response_header (resp, MHD_HTTP_HEADER_CONTENT_TYPE,
                           "application/json");
  return http_queue (req, status, resp, n + 1);
}


int
df_http_respond_error (struct df_http_request *req, unsigned status,
                       const char *error, const char *fmt, ...)
{
  CLEANUP_FREE char *msg = NULL;
  va_list ap;
  int n;

  va_start (ap, fmt);
  n = vasprintf (&msg, fmt, ap);
  va_end (ap);
  if (n == -1) {
    msg = NULL;
    return df_error (ENOMEM, "cannot format a response");
  }
  return df_http_respond_json (req, status,
                               json_pack ("{s:s, s:s}", "error", error,
                                          "message", msg));
}
