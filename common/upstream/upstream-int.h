/* diskfarm — NBD upstream internals shared by its files. */
#ifndef DISKFARM_UPSTREAM_INT_H
#define DISKFARM_UPSTREAM_INT_H

#include <pthread.h>
#include <stdarg.h>

#include <libnbd.h>

#include "upstream/upstream.h"

enum req_type { R_READ, R_WRITE, R_FLUSH, R_TRIM, R_ZERO };
enum req_state {
  RS_NEW,                       /* not sent */
  RS_INFLIGHT,                  /* sent on conn */
  RS_DONE,                      /* answered: error holds the result */
  RS_RETRY,                     /* its connection died: send it again */
};

struct uconn;

struct req {
  struct upstream *up;
  enum req_type type;
  void *buf;                    /* read into / write from; NULL otherwise */
  uint32_t count;
  uint64_t offset;
  uint32_t flags;               /* DF_FUA, DF_MAY_TRIM, DF_FAST_ZERO */
  /* Under the upstream's lock: */
  enum req_state state;
  int error;
  bool replay;                  /* sent by the replay: not logged again */
  bool completing;              /* a write or flush answered OK whose
                                   caller has not updated the log yet */
  struct uconn *conn;
  uint64_t sent_ns;
  uint64_t flush_seq;           /* flush: the log's next seq when sent */
  struct req *prev, *next;      /* conn's in-flight list, oldest first */
  pthread_cond_t cond;          /* state changed */
};

/* One libnbd connection and the thread that polls it. */
struct uconn {
  struct upstream *up;
  struct nbd_handle *h;         /* used without the upstream's lock */
  int wake_fd;                  /* eventfd: look at the direction again */
  unsigned gen;                 /* the round of connections it is part of */
  pthread_t poller;
  bool poller_running;
  /* Under the upstream's lock: */
  unsigned users;               /* threads inside an nbd_aio_* call */
  bool dead;                    /* no new requests; being dropped */
  struct req *head, *tail;      /* in flight */
};

/* A write kept until a FLUSH covers it (replay.c). */
struct logged {
  uint64_t seq;
  enum req_type type;
  uint64_t offset;
  uint32_t count;
  uint32_t flags;
  struct logged *next;
  char data[];                  /* R_WRITE */
};

enum up_state { UP_UP, UP_DOWN, UP_STOPPING };

struct upstream {
  struct df_bdev bdev;
  struct df_upstream_params p;  /* servers and strings are copies */
  struct df_upstream_info info;
  bool can_fua, can_trim, can_zero, can_fast_zero;

  /* Lock order: libnbd's handle lock, then this one.  No nbd_* call is
   * made with it held.
   */
  pthread_mutex_t lock;
  pthread_cond_t cond;          /* state or round changed; log shrank */
  pthread_cond_t super_cond;    /* the supervisor has work */
  enum up_state state;
  bool any_server;
  bool interrupted;             /* waiting requests fail */
  unsigned gen;
  size_t server;                /* index in p.servers in use */
  struct uconn *conns[DF_UPSTREAM_MAX_CONNECTIONS];
  unsigned nconns, rr;
  uint64_t down_since;          /* monotonic ns: the loss was noticed */
  uint64_t stall_since;         /* the oldest request then unanswered */
  char down_reason[256];
  unsigned completing;          /* requests with completing set */
  /* The replay log, oldest first. */
  struct logged *log_head, *log_tail;
  uint64_t log_seq, log_bytes;
  bool log_flushing;            /* a writer is flushing to shrink it */
  struct df_upstream_stats stats;
  pthread_t supervisor;
  bool supervisor_running;
};

void up_log (struct upstream *up, enum df_upstream_log level,
             const char *fmt, ...) __attribute__ ((format (printf, 3, 4)));

/* ---- conn.c ---- */
/* Connects to server k within connect_timeout.  On the first
 * connection (first true) fills up->info and the can_* flags; later
 * ones must offer the same export.  NULL with a message.
 */
struct uconn *uconn_open (struct upstream *up, size_t k, bool first);
/* Starts its poller thread. */
int uconn_start (struct uconn *c);
/* Sends r on c (r->state INFLIGHT, registered).  -1: c is dead and r
 * was not sent (state RETRY).  Lock not held.
 */
int uconn_submit (struct uconn *c, struct req *r);
/* Drops a connection: no new requests, its thread stopped, the handle
 * closed; its requests in flight become RETRY.  Lock not held.
 */
void uconn_drop (struct uconn *c);
/* Marks c's round as lost (lock held). */
void up_round_lost (struct upstream *up, struct uconn *c, const char *why);

/* ---- failover.c ---- */
/* Connects a round to server k (all connections); 0 or -1 with a
 * message.
 */
int up_connect_round (struct upstream *up, size_t k, bool first);
int up_supervisor_start (struct upstream *up);
void up_supervisor_stop (struct upstream *up);

/* ---- replay.c ---- */
/* Keeps a copy of a write that succeeded (lock held). */
int log_append (struct upstream *up, const struct req *r);
/* A flush sent when the log's next seq was seq succeeded (lock held). */
void log_flushed (struct upstream *up, uint64_t seq);
/* Sends every kept write to the current round, in order.  Lock not
 * held; 0, or -1 when the round died meanwhile.
 */
int log_replay (struct upstream *up);
void log_free (struct upstream *up);

/* ---- upstream.c ---- */
/* Sends r and waits for its answer, sending it again after failovers.
 * Returns 0 or -1 with errno and a message.
 */
int up_run (struct upstream *up, struct req *r);
/* For the replay: sends r on the current round (the upstream may be
 * down), and waits for its answer.  -1 (with a message) if the round
 * died or the server refused it.
 */
int up_start_once (struct upstream *up, struct req *r);
int up_wait_once (struct upstream *up, struct req *r);

#endif
