/* Unit tests: common/http — Range and ETag parsing, routing, text, JSON
 * and file responses, request bodies, over real loopback connections,
 * on libmicrohttpd's threads and inside a df_loop.
 */
#include <config.h>

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <pthread.h>
#include <signal.h>
#include <sys/socket.h>

#include "test-helpers.h"
#include "evloop/evloop.h"
#include "http/http.h"
#include "test-http-client.h"

static void
test_parse_ranges (void **state)
{
  static const struct {
    const char *value;
    uint64_t size;
    int r;
    uint64_t start[3], len[3];
  } cases[] = {
    { NULL, 100, 0, { 0 }, { 0 } },
    { "bytes=0-9", 100, 1, { 0 }, { 10 } },
    { "bytes=10-", 100, 1, { 10 }, { 90 } },
    { "bytes=-10", 100, 1, { 90 }, { 10 } },
    { "bytes=-500", 100, 1, { 0 }, { 100 } },
    { "bytes=90-200", 100, 1, { 90 }, { 10 } },
    { " bytes = 5 - 5 ", 100, 1, { 5 }, { 1 } },
    { "BYTES=1-2", 100, 1, { 1 }, { 2 } },
    { "bytes=100-", 100, -1, { 0 }, { 0 } },
    { "bytes=0-", 0, -1, { 0 }, { 0 } },
    { "bytes=-0", 100, -1, { 0 }, { 0 } },
    { "bytes=0-1,5-6", 100, 2, { 0, 5 }, { 2, 2 } },
    { "bytes=0-1, ,5-6,-3", 100, 3, { 0, 5, 97 }, { 2, 2, 3 } },
    { "bytes=200-300,5-6", 100, 1, { 5 }, { 2 } },    /* one unsatisfiable */
    { "bytes=200-300,400-", 100, -1, { 0 }, { 0 } },
    { "bytes=0-99,0-99", 100, 0, { 0 }, { 0 } },      /* amplification */
    { "bytes=0-1,x", 100, 0, { 0 }, { 0 } },
    { "bytes=0-1;5-6", 100, 0, { 0 }, { 0 } },
    { "bytes=9-3", 100, 0, { 0 }, { 0 } },
    { "items=0-1", 100, 0, { 0 }, { 0 } },
    { "bytes=", 100, 0, { 0 }, { 0 } },
    { "bytes=,", 100, 0, { 0 }, { 0 } },
    { "bytes=-", 100, 0, { 0 }, { 0 } },
    { "bytes=x-1", 100, 0, { 0 }, { 0 } },
    { "bytes=99999999999999999999-", 100, 0, { 0 }, { 0 } },
  };
  char many[1024] = "bytes=0-0";
  struct df_http_range r[DF_HTTP_MAX_RANGES];
  size_t i;
  int j, n;

  (void) state;
  for (i = 0; i < sizeof cases / sizeof cases[0]; i++) {
    n = df_http_parse_ranges (cases[i].value, cases[i].size, r,
                              DF_HTTP_MAX_RANGES);
    if (n != cases[i].r)
      fail_msg ("range \"%s\": %d, expected %d", cases[i].value, n, cases[i].r);
    for (j = 0; j < n; j++)
      if (r[j].start != cases[i].start[j] || r[j].len != cases[i].len[j])
        fail_msg ("range \"%s\" #%d: %llu+%llu", cases[i].value, j,
                  (unsigned long long) r[j].start,
                  (unsigned long long) r[j].len);
  }
  /* More ranges than allowed: the whole resource. */
  for (j = 1; j <= DF_HTTP_MAX_RANGES; j++)
    snprintf (many + strlen (many), sizeof many - strlen (many), ",%d-%d",
              j * 2, j * 2);
  assert_int_equal (df_http_parse_ranges (many, 1000, r, DF_HTTP_MAX_RANGES), 0);
}

static void
test_etag_match (void **state)
{
  (void) state;
  assert_true (df_http_etag_match ("\"a\"", "\"a\""));
  assert_true (df_http_etag_match ("\"b\", \"a\"", "\"a\""));
  assert_true (df_http_etag_match ("W/\"a\"", "\"a\""));
  assert_true (df_http_etag_match ("*", "\"a\""));
  assert_false (df_http_etag_match ("\"ab\"", "\"a\""));
  assert_false (df_http_etag_match ("", "\"a\""));
  assert_false (df_http_etag_match (NULL, "\"a\""));
}

/* ---- a server with a few routes ---- */

static char *file_path;

static int
h_hello (struct df_http_request *req, void *opaque)
{
  (void) opaque;
  return df_http_respond_text (req, 200, "hello %s\n",
                               df_http_query (req, "who") ?: "world");
}

static int
h_item (struct df_http_request *req, void *opaque)
{
  (void) opaque;
  return df_http_respond_json (req, 200,
                               json_pack ("{s:s, s:s}", "item",
                                          df_http_subpath (req), "peer",
                                          df_http_peer (req)));
}

static int
h_file (struct df_http_request *req, void *opaque)
{
  int fd = open (file_path, O_RDONLY | O_CLOEXEC);

  (void) opaque;
  if (fd == -1)
    return df_error_errno ("%s", file_path);
  return df_http_respond_file (req, fd, "application/octet-stream", NULL);
}

static int
h_echo (struct df_http_request *req, void *opaque)
{
  size_t len;
  const char *body = df_http_body (req, &len);

  (void) opaque;
  return df_http_respond (req, 201, "text/plain", body, len);
}

static int
h_fail (struct df_http_request *req, void *opaque)
{
  (void) req;
  (void) opaque;
  return df_error (EIO, "the disk is on fire");
}

static const struct df_http_route routes[] = {
  { .method = "GET", .path = "/hello", .fn = h_hello },
  { .method = "GET", .path = "/items/", .fn = h_item },
  { .method = "GET", .path = "/file", .fn = h_file },
  { .method = "POST", .path = "/echo", .fn = h_echo },
  { .method = "GET", .path = "/fail", .fn = h_fail },
  { NULL },
};

static struct df_http_server *
start (struct df_loop *loop)
{
  struct df_http_config cfg = {
    .listen = "127.0.0.1", .routes = routes, .loop = loop, .max_body = 64,
  };
  struct df_http_server *srv = df_http_server_new (&cfg);

  if (srv == NULL)
    fail_msg ("%s", df_error_get ());
  assert_int_not_equal (df_http_server_port (srv), 0);
  return srv;
}

static void
test_routes (void **state)
{
  struct df_http_server *srv = start (NULL);
  uint16_t port = df_http_server_port (srv);
  struct df_http_stats st;
  struct reply r;

  (void) state;
  get (port, "/hello?who=tester", NULL, &r);
  assert_int_equal (r.status, 200);
  assert_string_equal (r.body, "hello tester\n");
  assert_true (has_header (&r, "Content-Type: text/plain"));
  free (r.body);

  get (port, "/items/abc%20d", NULL, &r);
  assert_int_equal (r.status, 200);
  assert_non_null (strstr (r.body, "\"item\": \"abc d\""));
  assert_non_null (strstr (r.body, "\"peer\": \"127.0.0.1\""));
  assert_true (has_header (&r, "Content-Type: application/json"));
  free (r.body);

  get (port, "/nothing", NULL, &r);
  assert_int_equal (r.status, 404);
  free (r.body);

  get (port, "/echo", NULL, &r);
  assert_int_equal (r.status, 405);
  assert_true (has_header (&r, "Allow: POST"));
  free (r.body);

  get (port, "/fail", NULL, &r);
  assert_int_equal (r.status, 500);
  assert_non_null (strstr (r.body, "the disk is on fire"));
  free (r.body);

  http_do (port, "HEAD /hello HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n", &r);
  assert_int_equal (r.status, 200);
  assert_int_equal (r.body_len, 0);
  free (r.body);

  df_http_server_stats (srv, &st);
  assert_int_equal (st.requests, 6);
  assert_int_equal (st.status_2xx, 3);
  assert_int_equal (st.status_4xx, 2);
  assert_int_equal (st.status_5xx, 1);
  df_http_server_free (srv);
}

static void
test_body (void **state)
{
  struct df_http_server *srv = start (NULL);
  uint16_t port = df_http_server_port (srv);
  struct reply r;

  (void) state;
  http_do (port, "POST /echo HTTP/1.1\r\nHost: t\r\nConnection: close\r\n"
           "Content-Length: 11\r\n\r\nhello there", &r);
  assert_int_equal (r.status, 201);
  assert_string_equal (r.body, "hello there");
  free (r.body);
  http_do (port, "POST /echo HTTP/1.1\r\nHost: t\r\nConnection: close\r\n"
           "Content-Length: 100\r\n\r\n"
           "0123456789012345678901234567890123456789012345678901234567890123456789"
           "012345678901234567890123456789", &r);
  assert_int_equal (r.status, 413);
  free (r.body);
  df_http_server_free (srv);
}

/* The answer to "bytes=10-19, 4990-": two parts in order, each with its
 * headers, exactly the file's bytes, then the closing boundary.
 */
static void
check_multipart (const struct reply *r, const char *data, size_t size)
{
  char boundary[64], expect[512];
  const char *p = strcasestr (r->headers,
                              "Content-Type: multipart/byteranges; boundary=");
  size_t n;

  assert_non_null (p);
  assert_int_equal (sscanf (p + 45, "%63[0-9a-f]", boundary), 1);
  n = snprintf (expect, sizeof expect, "--%s\r\nContent-Type: "
                "application/octet-stream\r\nContent-Range: bytes 10-19/%zu"
                "\r\n\r\n", boundary, size);
  assert_true (r->body_len > n + 10);
  assert_memory_equal (r->body, expect, n);
  assert_memory_equal (r->body + n, data + 10, 10);
  p = r->body + n + 10;
  n = snprintf (expect, sizeof expect, "\r\n--%s\r\nContent-Type: "
                "application/octet-stream\r\nContent-Range: bytes 4990-4999/%zu"
                "\r\n\r\n", boundary, size);
  assert_memory_equal (p, expect, n);
  assert_memory_equal (p + n, data + 4990, 10);
  p += n + 10;
  n = snprintf (expect, sizeof expect, "\r\n--%s--\r\n", boundary);
  assert_int_equal (r->body + r->body_len - p, n);
  assert_memory_equal (p, expect, n);
  snprintf (expect, sizeof expect, "Content-Length: %zu", r->body_len);
  assert_true (has_header (r, expect));
}

static void
test_file (void **state)
{
  char *dir = test_tmpdir ();
  struct df_http_server *srv;
  uint16_t port;
  char data[5000], etag[128], hdr[256];
  uint64_t seed = 42;
  struct reply r;
  const char *p;

  (void) state;
  test_fill (data, sizeof data, &seed);
  file_path = test_path (dir, "blob");
  {
    int fd = open (file_path, O_WRONLY | O_CREAT | O_TRUNC, 0644);
    assert_int_equal (write (fd, data, sizeof data), (ssize_t) sizeof data);
    close (fd);
  }
  srv = start (NULL);
  port = df_http_server_port (srv);

  get (port, "/file", NULL, &r);
  assert_int_equal (r.status, 200);
  assert_int_equal (r.body_len, sizeof data);
  assert_memory_equal (r.body, data, sizeof data);
  assert_true (has_header (&r, "Accept-Ranges: bytes"));
  p = strcasestr (r.headers, "ETag: ");
  assert_non_null (p);
  assert_int_equal (sscanf (p + 6, "%127[^\r]", etag), 1);
  free (r.body);

  get (port, "/file", "Range: bytes=1000-1999\r\n", &r);
  assert_int_equal (r.status, 206);
  assert_int_equal (r.body_len, 1000);
  assert_memory_equal (r.body, data + 1000, 1000);
  assert_true (has_header (&r, "Content-Range: bytes 1000-1999/5000"));
  free (r.body);

  get (port, "/file", "Range: bytes=-100\r\n", &r);
  assert_int_equal (r.status, 206);
  assert_memory_equal (r.body, data + 4900, 100);
  free (r.body);

  get (port, "/file", "Range: bytes=10-19, 4990-\r\n", &r);
  assert_int_equal (r.status, 206);
  check_multipart (&r, data, sizeof data);
  free (r.body);

  get (port, "/file", "Range: bytes=6000-\r\n", &r);
  assert_int_equal (r.status, 416);
  assert_true (has_header (&r, "Content-Range: bytes */5000"));
  free (r.body);

  snprintf (hdr, sizeof hdr, "If-None-Match: %s\r\n", etag);
  get (port, "/file", hdr, &r);
  assert_int_equal (r.status, 304);
  assert_int_equal (r.body_len, 0);
  free (r.body);

  get (port, "/file", "Range: bytes=0-9\r\nIf-Range: \"stale\"\r\n", &r);
  assert_int_equal (r.status, 200);
  assert_int_equal (r.body_len, sizeof data);
  free (r.body);

  snprintf (hdr, sizeof hdr, "Range: bytes=0-9\r\nIf-Range: %s\r\n", etag);
  get (port, "/file", hdr, &r);
  assert_int_equal (r.status, 206);
  assert_int_equal (r.body_len, 10);
  free (r.body);

  df_http_server_free (srv);
  free (file_path);
  test_tmpdir_free (dir);
}

/* ---- inside a df_loop: the client runs on another thread ---- */

struct client {
  uint16_t port;
  struct reply r;
  struct df_loop *loop;
  int done;
};

static void *
client_thread (void *opaque)
{
  struct client *c = opaque;

  get (c->port, "/hello", NULL, &c->r);
  __atomic_store_n (&c->done, 1, __ATOMIC_RELEASE);
  return NULL;
}

static void
test_loop (void **state)
{
  struct df_loop *loop = df_loop_new ();
  struct df_http_server *srv = start (loop);
  struct client c = { .port = df_http_server_port (srv), .loop = loop };
  pthread_t th;
  int i;

  (void) state;
  assert_int_equal (pthread_create (&th, NULL, client_thread, &c), 0);
  for (i = 0; i < 500 && !__atomic_load_n (&c.done, __ATOMIC_ACQUIRE); i++)
    assert_int_equal (df_loop_once (loop, 10), 0);
  pthread_join (th, NULL);
  assert_int_equal (c.r.status, 200);
  assert_string_equal (c.r.body, "hello world\n");
  free (c.r.body);
  df_http_server_free (srv);
  df_loop_free (loop);
}

static void
test_bad_listen (void **state)
{
  struct df_http_config cfg = { .listen = "not-an-address", .routes = routes };
  struct df_http_server *srv = start (NULL);

  (void) state;
  assert_null (df_http_server_new (&cfg));
  assert_error_contains ("not-an-address");
  cfg.listen = "127.0.0.1";
  cfg.port = df_http_server_port (srv);
  assert_null (df_http_server_new (&cfg));
  assert_error_contains ("cannot serve HTTP on 127.0.0.1");
  df_http_server_free (srv);
}

int
main (void)
{
  const struct CMUnitTest tests[] = {
    cmocka_unit_test (test_parse_ranges),
    cmocka_unit_test (test_etag_match),
    cmocka_unit_test (test_routes),
    cmocka_unit_test (test_body),
    cmocka_unit_test (test_file),
    cmocka_unit_test (test_loop),
    cmocka_unit_test (test_bad_listen),
  };

  signal (SIGPIPE, SIG_IGN);
  return cmocka_run_group_tests (tests, NULL, NULL);
}
