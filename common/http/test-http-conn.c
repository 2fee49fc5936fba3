/* Unit tests: common/http defences and plumbing — the guard and JSON
 * errors, per-route body caps, suspended requests resumed from another
 * thread, the request deadline against slow clients, control bytes in
 * paths, answers counted by status.
 */
#include <config.h>

#include <fcntl.h>
#include <pthread.h>
#include <signal.h>

#include "test-helpers.h"
#include "http/http.h"
#include "test-http-client.h"

#define TOKEN_FLAG 1

static int
h_path (struct df_http_request *req, void *opaque)
{
  (void) opaque;
  return df_http_respond_json (req, 200, json_pack ("{s:s}", "path",
                                                    df_http_path (req)));
}

static int
h_body (struct df_http_request *req, void *opaque)
{
  size_t len;

  (void) opaque;
  df_http_body (req, &len);
  return df_http_respond_text (req, 200, "%zu\n", len);
}

/* ---- suspension: a thread answers later ---- */

static int
h_later_cont (struct df_http_request *req, void *opaque)
{
  return df_http_respond_text (req, 200, "later %s\n", (const char *) opaque);
}

static void *
resumer (void *opaque)
{
  usleep (100 * 1000);
  df_http_resume (opaque);
  return NULL;
}

static int
h_later (struct df_http_request *req, void *opaque)
{
  pthread_t th;

  (void) opaque;
  if (pthread_create (&th, NULL, resumer, req) != 0)
    return df_error (EAGAIN, "no thread");
  pthread_detach (th);
  return df_http_suspend (req, h_later_cont, "done");
}

/* Only requests with "X-Token: yes" pass routes flagged TOKEN_FLAG, and
 * unknown paths.
 */
static int
guard (struct df_http_request *req, const struct df_http_route *route,
       void *opaque)
{
  const char *t = df_http_header (req, "X-Token");

  (void) opaque;
  if (route && !(route->flags & TOKEN_FLAG))
    return 0;
  if (t && strcmp (t, "yes") == 0)
    return 0;
  df_http_respond_error (req, 401, "unauthorized", "no token");
  return 1;
}

static const struct df_http_route routes[] = {
  { .method = "GET", .path = "/open/", .fn = h_path },
  { .method = "GET", .path = "/closed", .fn = h_path, .flags = TOKEN_FLAG },
  { .method = "POST", .path = "/small", .fn = h_body, .max_body = 10 },
  { .method = "POST", .path = "/big", .fn = h_body },
  { .method = "GET", .path = "/later", .fn = h_later },
  { NULL },
};

static struct df_http_server *
start (unsigned request_timeout)
{
  struct df_http_config cfg = {
    .listen = "127.0.0.1", .routes = routes, .json_errors = true,
    .guard = guard, .max_body = 1000, .request_timeout_s = request_timeout,
    .threads = 2,
  };
  struct df_http_server *srv = df_http_server_new (&cfg);

  if (srv == NULL)
    fail_msg ("%s", df_error_get ());
  return srv;
}

static void
expect (uint16_t port, const char *request, int status, const char *body)
{
  struct reply r;

  http_do (port, request, &r);
  if (r.status != status || (body && strstr (r.body, body) == NULL))
    fail_msg ("%s: got %d %s", request, r.status, r.body);
  free (r.body);
}

#define GET(path, extra) \
  "GET " path " HTTP/1.1\r\nHost: t\r\n" extra "Connection: close\r\n\r\n"

static void
count_code (unsigned code, uint64_t n, void *opaque)
{
  uint64_t *counts = opaque;

  counts[code] = n;
}

static void
test_guard_and_errors (void **state)
{
  struct df_http_server *srv = start (0);
  uint16_t port = df_http_server_port (srv);
  uint64_t counts[600] = { 0 };

  (void) state;
  expect (port, GET ("/open/x", ""), 200, "\"path\": \"/open/x\"");
  expect (port, GET ("/closed", ""), 401,
          "{\n  \"error\": \"unauthorized\",\n  \"message\": \"no token\"\n}");
  expect (port, GET ("/closed", "X-Token: yes\r\n"), 200, "/closed");
  /* Unknown paths go through the guard first. */
  expect (port, GET ("/nothing", ""), 401, "unauthorized");
  expect (port, GET ("/nothing", "X-Token: yes\r\n"), 404, "\"not-found\"");
  expect (port, GET ("/small", "X-Token: yes\r\n"), 405,
          "\"method-not-allowed\"");
  df_http_server_codes (srv, count_code, counts);
  assert_int_equal (counts[200], 2);
  assert_int_equal (counts[401], 2);
  assert_int_equal (counts[404], 1);
  assert_int_equal (counts[405], 1);
  df_http_server_free (srv);
}

static void
test_body_caps (void **state)
{
  struct df_http_server *srv = start (0);
  uint16_t port = df_http_server_port (srv);
  char req[2048];

  (void) state;
  expect (port, "POST /small HTTP/1.1\r\nHost: t\r\nConnection: close\r\n"
          "Content-Length: 10\r\n\r\n0123456789", 200, "10");
  /* Announced too large: refused before the body is read. */
  expect (port, "POST /small HTTP/1.1\r\nHost: t\r\nConnection: close\r\n"
          "Content-Length: 11\r\n\r\n", 413, "\"too-large\"");
  /* Chunked, no length announced: refused once it grows too large. */
  expect (port, "POST /small HTTP/1.1\r\nHost: t\r\nConnection: close\r\n"
          "Transfer-Encoding: chunked\r\n\r\n6\r\n012345\r\n6\r\n012345\r\n"
          "0\r\n\r\n", 413, "larger than 10 bytes");
  /* Other routes have the server's cap. */
  snprintf (req, sizeof req, "POST /big HTTP/1.1\r\nHost: t\r\nConnection: "
            "close\r\nContent-Length: 900\r\n\r\n%0900d", 0);
  expect (port, req, 200, "900");
  df_http_server_free (srv);
}

static void
test_suspend (void **state)
{
  struct df_http_server *srv = start (0);
  uint16_t port = df_http_server_port (srv);

  (void) state;
  expect (port, GET ("/later", ""), 200, "later done");
  expect (port, GET ("/later", ""), 200, "later done");
  df_http_server_free (srv);
}

/* Paths never carry control bytes: %00 keeps the path encoded. */
static void
test_control_bytes (void **state)
{
  struct df_http_server *srv = start (0);
  uint16_t port = df_http_server_port (srv);

  (void) state;
  expect (port, GET ("/open/a%2fb%2e%2e", ""), 200, "\"/open/a/b..\"");
  expect (port, GET ("/open/a%00.b", ""), 200, "\"/open/a%00.b\"");
  expect (port, GET ("/open/a%0a", ""), 200, "\"/open/a%0a\"");
  expect (port, GET ("/open/%7f", ""), 200, "\"/open/%7f\"");
  df_http_server_free (srv);
}

/* Slow clients: a connection that dribbles its headers is cut off after
 * the request timeout, while others are served at once all along.
 */
static void
test_deadline (void **state)
{
  struct df_http_server *srv = start (2);
  uint16_t port = df_http_server_port (srv);
  struct df_http_stats st;
  const char *part = "GET /open/slow HTTP/1.1\r\nHost: t\r\n";
  int slow[8], i, t;
  uint64_t start_ns = df_now_mono_ns ();
  struct reply r;

  (void) state;
  for (i = 0; i < 8; i++) {
    slow[i] = http_connect (port);
    assert_int_equal (write (slow[i], part, strlen (part)),
                      (ssize_t) strlen (part));
  }
  /* One header line a quarter second: never idle, never complete. */
  for (t = 0; t < 40; t++) {
    df_http_server_stats (srv, &st);
    if (st.cut_off == 8)
      break;
    for (i = 0; i < 8; i++)
      if (write (slow[i], "X: y\r\n", 6) == -1)
        assert_int_equal (errno, EPIPE);
    if (t % 4 == 0)
      expect (port, GET ("/open/fast", ""), 200, "fast");
    usleep (250 * 1000);
  }
  assert_int_equal (st.cut_off, 8);
  /* Cut off between 2 and about 3 seconds (the sweep runs each second). */
  assert_true (df_now_mono_ns () - start_ns >= 2000000000ULL);
  assert_true (df_now_mono_ns () - start_ns < 6000000000ULL);
  for (i = 0; i < 8; i++) {
    http_read_reply_raw (slow[i], &r);
    assert_int_equal (r.body_len, 0);   /* closed without an answer */
    free (r.body);
  }
  df_http_server_free (srv);
}

int
main (void)
{
  const struct CMUnitTest tests[] = {
    cmocka_unit_test (test_guard_and_errors),
    cmocka_unit_test (test_body_caps),
    cmocka_unit_test (test_suspend),
    cmocka_unit_test (test_control_bytes),
    cmocka_unit_test (test_deadline),
  };

  signal (SIGPIPE, SIG_IGN);
  return cmocka_run_group_tests (tests, NULL, NULL);
}
