/* Unit tests of common/http: a raw HTTP/1.1 client over loopback. */
#ifndef DISKFARM_TEST_HTTP_CLIENT_H
#define DISKFARM_TEST_HTTP_CLIENT_H

#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdbool.h>
#include <string.h>
#include <sys/socket.h>

struct reply {
  int status;
  char headers[2048];
  char *body;
  size_t body_len;
};

/* Connects to the server on loopback. */
static inline int
http_connect (uint16_t port)
{
  struct sockaddr_in sa = { .sin_family = AF_INET, .sin_port = htons (port) };
  int fd = socket (AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);

  sa.sin_addr.s_addr = htonl (INADDR_LOOPBACK);
  assert_true (fd >= 0);
  assert_int_equal (connect (fd, (struct sockaddr *) &sa, sizeof sa), 0);
  return fd;
}

/* Reads the whole answer until EOF, and closes fd. */
static inline void
http_read_reply (int fd, struct reply *out)
{
  char *buf = NULL, *end;
  size_t len = 0, cap = 0;
  ssize_t n;

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

/* Reads whatever comes until EOF or a reset, into body; closes fd. */
static inline void
http_read_reply_raw (int fd, struct reply *out)
{
  char buf[4096];
  ssize_t n;

  memset (out, 0, sizeof *out);
  out->body = malloc (1);
  assert_non_null (out->body);
  while ((n = read (fd, buf, sizeof buf)) > 0)
    out->body_len += n;
  assert_true (n == 0 || errno == ECONNRESET);
  close (fd);
}

/* One request over a fresh connection. */
static inline void
http_do (uint16_t port, const char *request, struct reply *out)
{
  int fd = http_connect (port);

  assert_int_equal (write (fd, request, strlen (request)),
                    (ssize_t) strlen (request));
  http_read_reply (fd, out);
}

static inline void
get (uint16_t port, const char *path, const char *extra, struct reply *out)
{
  char req[1024];

  snprintf (req, sizeof req, "GET %s HTTP/1.1\r\nHost: test\r\n%s"
            "Connection: close\r\n\r\n", path, extra ? extra : "");
  http_do (port, req, out);
}

static inline bool
has_header (const struct reply *r, const char *line)
{
  return strcasestr (r->headers, line) != NULL;
}

#endif
