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

static void
test_parse_range (void **state)
{
  static const struct {
    const char *value;
    uint64_t size;
    int r;
    uint64_t start, len;
  } cases[] = {
    { NULL, 100, 0, 0, 0 },
    { "bytes=0-9", 100, 1, 0, 10 },
    { "bytes=10-", 100, 1, 10, 90 },
    { "bytes=-10", 100, 1, 90, 10 },
    { "bytes=-500", 100, 1, 0, 100 },
    { "bytes=90-200", 100, 1, 90, 10 },
    { " bytes = 5 - 5 ", 100, 1, 5, 1 },
    { "BYTES=1-2", 100, 1, 1, 2 },
    { "bytes=100-", 100, -1, 0, 0 },
    { "bytes=0-", 0, -1, 0, 0 },
    { "bytes=-0", 100, -1, 0, 0 },
    { "bytes=0-1,5-6", 100, 0, 0, 0 },        /* several: send it all */
    { "bytes=9-3", 100, 0, 0, 0 },
    { "items=0-1", 100, 0, 0, 0 },
    { "bytes=", 100, 0, 0, 0 },
    { "bytes=-", 100, 0, 0, 0 },
    { "bytes=x-1", 100, 0, 0, 0 },
    { "bytes=99999999999999999999-", 100, 0, 0, 0 },
  };
  size_t i;

  (void) state;
  for (i = 0; i < sizeof cases / sizeof cases[0]; i++) {
    uint64_t start = 7, len = 7;
    int r = df_http_parse_range (cases[i].value, cases[i].size, &start, &len);
    if (r != cases[i].r)
      fail_msg ("range \"%s\": %d, expected %d", cases[i].value, r, cases[i].r);
    if (r == 1 && (start != cases[i].start || len != cases[i].len))
      fail_msg ("range \"%s\": %llu+%llu", cases[i].value,
                (unsigned long long) start, (unsigned long long) len);
  }
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
  { "GET", "/hello", h_hello, NULL },
  { "GET", "/items/", h_item, NULL },
  { "GET", "/file", h_file, NULL },
  { "POST", "/echo", h_echo, NULL },
  { "GET", "/fail", h_fail, NULL },
  { NULL, NULL, NULL, NULL },
};

struct reply {
  int status;
  char headers[2048];
  char *body;
  size_t body_len;
};

/* One request over a fresh connection; the whole answer until EOF. */
static void
http_do (uint16_t port, const char *request, struct reply *out)
{
  struct sockaddr_in sa = { .sin_family = AF_INET, .sin_port = htons (port) };
  char *buf = NULL, *end;
  size_t len = 0, cap = 0;
  ssize_t n;
  int fd = socket (AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);

  sa.sin_addr.s_addr = htonl (INADDR_LOOPBACK);
  assert_true (fd >= 0);
  assert_int_equal (connect (fd, (struct sockaddr *) &sa, sizeof sa), 0);
  assert_int_equal (write (fd, request, strlen (request)), (ssize_t) strlen (request));
  for (;;) {
    if (len + 4096 > cap) {
      cap = cap * 2 + 8192;
      buf = realloc (buf, cap);
      assert_non_null (buf);
    }
    n = read (fd, buf + len, cap - len - 1);
    assert_true (n >= 0);
    if (n == 0)
      break;
    len += n;
  }
  close (fd);
  buf[len] = '\0';
  end = strstr (buf, "\r\n\r\n");
  assert_non_null (end);
  assert_true ((size_t) (end - buf) < sizeof out->headers);
  memcpy (out->headers, buf, end - buf);
  out->headers[end - buf] = '\0';
  assert_int_equal (sscanf (buf, "HTTP/1.1 %d", &out->status), 1);
  out->body_len = len - (end + 4 - buf);
  out->body = malloc (out->body_len + 1);
  memcpy (out->body, end + 4, out->body_len);
  out->body[out->body_len] = '\0';
  free (buf);
}

static void
get (uint16_t port, const char *path, const char *extra, struct reply *out)
{
  char req[1024];

  snprintf (req, sizeof req, "GET %s HTTP/1.1\r\nHost: test\r\n%s"
            "Connection: close\r\n\r\n", path, extra ? extra : "");
  http_do (port, req, out);
}

static bool
has_header (const struct reply *r, const char *line)
{
  return strcasestr (r->headers, line) != NULL;
}

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
    cmocka_unit_test (test_parse_range),
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
