/* diskfarm — HTTP layer internals shared by its files:
 *   server.c    the libmicrohttpd daemon, TLS, running in a df_loop, stats
 *   dispatch.c  requests: routing, guard, bodies, suspension, access log
 *   conn.c      connections: the request deadline (slow clients)
 *   response.c, file.c, range.c, stream.c   answers
 */
#ifndef DISKFARM_HTTP_INTERNAL_H
#define DISKFARM_HTTP_INTERNAL_H

#include <arpa/inet.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>

#include <microhttpd.h>

#include "http/http.h"
#include "pagecache.h"

#define HTTP_MAX_HEADERS 16
#define HTTP_MAX_CODE 600

struct http_conn;

struct df_http_server {
  struct MHD_Daemon *mhd;
  const struct df_http_route *routes;
  size_t max_body;
  bool access_log, json_errors, tls;
  uint64_t request_timeout_ns;
  df_http_guard guard;
  void *guard_opaque;
  uint16_t port;
  char *tls_cert, *tls_key;     /* PEM text while starting */
  struct df_watch *watch;       /* loop mode: the MHD epoll fd */
  struct df_timer *timer;       /* loop mode: MHD's next timeout */
  struct df_http_stats stats;   /* updated atomically */
  uint64_t codes[HTTP_MAX_CODE];        /* answers by status, atomically */
  char last_log[256];           /* libmicrohttpd's last complaint */

  /* conn.c: open connections and their deadlines.  conns_lock covers the
   * list; it is a leaf lock (nothing else is taken while holding it).
   */
  pthread_mutex_t conns_lock;
  struct http_conn *conns;
  struct df_timer *sweep_timer; /* loop mode */
  pthread_t sweeper;            /* thread mode */
  bool sweeper_running, stopping;
  bool closing;                 /* df_http_server_free has begun */
  pthread_cond_t stop_cond;     /* with conns_lock */
  pthread_t waker;              /* http_conn_wait's, once started */
  bool waker_running;
  size_t nwaiting;              /* under conns_lock */
};

struct df_http_request {
  struct df_http_server *srv;
  struct MHD_Connection *conn;
  const struct df_http_route *route;    /* NULL: none matched */
  const struct df_http_route *path_only;        /* matched but for the method */
  char *method, *path;          /* owned copies */
  const char *subpath;          /* into path */
  char *body;                   /* NUL-terminated, owned */
  size_t body_len, max_body;
  bool body_too_large;
  bool responded;
  df_http_handler cont;         /* set while suspended */
  void *cont_opaque;
  unsigned status;              /* 0 until a response is queued */
  uint64_t size;                /* body size queued */
  uint64_t start_ns;
  char peer[INET6_ADDRSTRLEN];
  struct {
    char *name, *value;
  } headers[HTTP_MAX_HEADERS];
  size_t nheaders;
  bool leave_cache;             /* df_http_request_leave_cache */
  struct df_cache_snap *cache_snap;     /* released when the request ends */
  struct df_http_rate *rate;    /* df_http_request_throttle, or NULL */
};

/* Queues resp with the pending headers and accounts for it; destroys
 * resp.  Returns 0, or -1 with a message.
 */
int http_queue (struct df_http_request *req, unsigned status,
                struct MHD_Response *resp, uint64_t size);

/* stream.c: a range of fd (taken) as a streamed, paced body. */
int http_respond_fd_paced (struct df_http_request *req, unsigned status,
                           int fd, const char *content_type, uint64_t start,
                           uint64_t len);

/* dispatch.c: the callbacks given to libmicrohttpd. */
enum MHD_Result http_on_request (void *cls, struct MHD_Connection *conn,
                                 const char *url, const char *method,
                                 const char *version, const char *upload,
                                 size_t *upload_size, void **con_cls);
void http_on_completed (void *cls, struct MHD_Connection *conn,
                        void **con_cls, enum MHD_RequestTerminationCode toe);
size_t http_unescape (void *cls, struct MHD_Connection *conn, char *s);

/* conn.c */
void http_on_connection (void *cls, struct MHD_Connection *conn,
                         void **socket_context,
                         enum MHD_ConnectionNotificationCode code);
/* The connection's request deadline: now + request_timeout, or none
 * (while a request is being answered).
 */
void http_conn_deadline (struct df_http_server *srv,
                         struct MHD_Connection *conn, bool set);
/* Suspends or resumes the connection, noting it for
 * http_conns_resume_all (which df_http_server_free calls: libmicrohttpd
 * must not be stopped with a connection suspended).
 */
void http_conn_suspend (struct df_http_server *srv,
                        struct MHD_Connection *conn, bool suspend);
void http_conns_resume_all (struct df_http_server *srv);
/* stream.c: suspends conn (from its content reader) until the waker
 * resumes it, within HTTP_WAKE_NS.  False if it cannot (the server
 * stops, or the connection is untracked).
 */
#define HTTP_WAKE_NS (10 * 1000000L)
bool http_conn_wait (struct df_http_server *srv, struct MHD_Connection *conn);
/* A response that leaves the page cache as it found it is done (takes
 * s): the pages of its file that were not cached are dropped now, and
 * again at the connection's next response, or its end: pages the
 * kernel's readahead was still reading at the first drop cannot be
 * dropped before.  Called by the connection's thread.
 */
void http_conn_sent (struct MHD_Connection *conn, struct df_cache_snap *s);
int http_sweeper_start (struct df_http_server *srv, struct df_loop *loop);
void http_sweeper_stop (struct df_http_server *srv);

static inline void
http_count (uint64_t *field, uint64_t n)
{
  __atomic_fetch_add (field, n, __ATOMIC_RELAXED);
}

#endif
