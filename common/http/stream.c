/* diskfarm — HTTP responses made while they are sent (see http.h). */
#include <config.h>

#include <errno.h>
#include <stdlib.h>

#include "error.h"
#include "http-internal.h"

#define STREAM_BLOCK (256 * 1024)

struct df_http_stream {
  struct df_http_server *srv;
  struct MHD_Connection *conn;
  df_http_stream_read_fn read;
  df_http_stream_free_fn free;
  void *opaque;
};

static ssize_t
stream_read (void *cls, uint64_t pos, char *buf, size_t max)
{
  struct df_http_stream *s = cls;
  ssize_t r = s->read (s->opaque, s, pos, buf, max);

  if (r == DF_HTTP_STREAM_END)
    return MHD_CONTENT_READER_END_OF_STREAM;
  if (r < 0)
    return MHD_CONTENT_READER_END_WITH_ERROR;   /* no last chunk */
  return r;
}

static void
stream_free (void *cls)
{
  struct df_http_stream *s = cls;

  if (s->free)
    s->free (s->opaque);
  free (s);
}

int
df_http_respond_stream (struct df_http_request *req, unsigned status,
                        const char *content_type, df_http_stream_read_fn read,
                        df_http_stream_free_fn free_fn, void *opaque)
{
  struct df_http_stream *s = calloc (1, sizeof *s);
  struct MHD_Response *resp;

  if (s == NULL) {
    if (free_fn)
      free_fn (opaque);
    return df_error (ENOMEM, "cannot create a response");
  }
  *s = (struct df_http_stream) { .srv = req->srv, .conn = req->conn,
                                 .read = read, .free = free_fn,
                                 .opaque = opaque };
  resp = MHD_create_response_from_callback (MHD_SIZE_UNKNOWN, STREAM_BLOCK,
                                            stream_read, s, stream_free);
  if (resp == NULL) {
    stream_free (s);
    return df_error (ENOMEM, "cannot create a response");
  }
  if (content_type)
    MHD_add_response_header (resp, MHD_HTTP_HEADER_CONTENT_TYPE, content_type);
  return http_queue (req, status, resp, 0);
}

void
df_http_stream_wait (struct df_http_stream *s)
{
  http_conn_suspend (s->srv, s->conn, true);
}

void
df_http_stream_wake (struct df_http_stream *s)
{
  http_conn_suspend (s->srv, s->conn, false);
}
