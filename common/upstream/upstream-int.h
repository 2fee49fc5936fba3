/* diskfarm — NBD upstream internals shared by its files.
 *
 * A round is the set of connections to the server in use.  A thread
 * with a request checks a connection out of the round, runs the request
 * on it itself (libnbd's aio calls and its own poll, with the I/O
 * timeout), and checks it back in: no other thread touches a checked
 * out connection, so requests take no lock but the upstream's, twice,
 * and wake no other thread.  Asynchronous reads are the exception
 * (pump.c): the pump thread keeps a connection checked out, the threads
 * that submit reads send them on it under the pump's lock, and the pump
 * reads the replies.
 */
#ifndef DISKFARM_UPSTREAM_INT_H
#define DISKFARM_UPSTREAM_INT_H

#include <pthread.h>
#include <stdarg.h>

#include <libnbd.h>

#include "upstream/upstream.h"

enum req_type { R_READ, R_WRITE, R_FLUSH, R_TRIM, R_ZERO };

struct req {
  enum req_type type;
  void *buf;                    /* read into / write from; NULL otherwise */
  uint32_t count;
  uint64_t offset;
  uint32_t flags;               /* DF_FUA, DF_MAY_TRIM, DF_FAST_ZERO */
  bool done;                    /* answered (error is set) */
  int error;                    /* the server's answer: 0 or an errno */
  uint64_t flush_seq;           /* flush: the log's next seq when sent */
  int64_t cookie;               /* libnbd's, while in flight */
};

/* One libnbd connection of a round. */
struct uconn {
  struct nbd_handle *h;
  int fd;                       /* its socket */
  unsigned gen;                 /* its round */
  bool lost;                    /* atomic: its round was lost */
  /* Under the upstream's lock: */
  struct uconn *next_free;
  bool busy;                    /* checked out */
  uint64_t busy_since;          /* monotonic ns, when checked out (the
                                   pump's: when its reads began to wait;
                                   atomic) */
  /* The thread that checked it out (wire.c): */
  uint64_t cookie_base;         /* requests' cookies start here */
  uint8_t *rbuf;                /* replies read ahead */
  size_t rpos, rlen;
};

#define UP_RBUF (256 * 1024)

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

/* A lost server's socket, read until the server closes it (drain.c). */
#define UP_MAX_DRAINS 64
struct up_drain {
  int fd;
  uint64_t since;               /* monotonic ns */
};

/* The pump (pump.c): asynchronous reads, streamed over one connection
 * by a thread of their own.
 */
struct up_pump {
  pthread_mutex_t lock;         /* the queue and kicked */
  struct df_bdev_aread *head, *tail;    /* waiting to be sent */
  bool kicked;                  /* efd was written since the pump last
                                   took the queue */
  int efd;                      /* eventfd: reads were queued, or stop, or
                                   a thread waits for a connection */
  int epfd;                     /* the pump's epoll set */
  struct stream *s;             /* the pump thread's */
  struct stream *live;          /* under lock: s, while submitters may
                                   send on its connection */
  bool stop;                    /* set under lock; read atomically */
  pthread_t thread;
  bool running;
};

struct upstream {
  struct df_bdev bdev;
  struct df_upstream_params p;  /* servers and strings are copies */
  struct df_upstream_info info;
  bool can_fua, can_flush, can_trim, can_zero, can_fast_zero;

  /* Lock order: this lock before libnbd's handle locks; no nbd_* call
   * is made with it held.
   */
  pthread_mutex_t lock;
  pthread_cond_t cond;          /* state or round changed; log shrank */
  pthread_cond_t free_cond;     /* a connection was checked in */
  pthread_cond_t super_cond;    /* the supervisor has work */
  pthread_cond_t drain_cond;    /* a socket to drain */
  int lost_fd;                  /* eventfd: readable while a lost round's
                                   threads must give their connections
                                   back */
  enum up_state state;
  bool any_server, interrupted;
  unsigned gen;
  size_t server;                /* index in p.servers in use */
  struct uconn *conns[DF_UPSTREAM_MAX_CONNECTIONS];
  unsigned nconns;
  struct uconn *free;           /* checked in */
  unsigned out;                 /* checked out */
  unsigned conn_waiters;        /* threads waiting for one (atomic reads
                                   by the pump) */
  bool pump_holds;              /* the pump has one checked out */
  uint64_t down_since;          /* monotonic ns: the loss was noticed */
  uint64_t stall_since;         /* the oldest request then unanswered */
  char down_reason[256];
  /* The replay log, oldest first. */
  struct logged *log_head, *log_tail;
  uint64_t log_seq, log_bytes;
  bool log_flushing;            /* a writer is flushing to shrink it */
  struct df_upstream_stats stats;
  pthread_t supervisor;
  bool supervisor_running;
  struct up_drain drains[UP_MAX_DRAINS];
  unsigned ndrains;
  pthread_t drainer;
  bool drainer_running;
  struct up_pump pump;
};

void up_log (struct upstream *up, enum df_upstream_log level,
             const char *fmt, ...) __attribute__ ((format (printf, 3, 4)));

/* ---- conn.c ---- */
/* Connects to server k within connect_timeout.  The first connection
 * (first true) fills up->info and the can_* flags; later ones must
 * offer the same export.  NULL with a message.
 */
struct uconn *uconn_open (struct upstream *up, size_t k, bool first);
/* drain: the server may still be answering it (a lost round): the
 * socket goes to the drainer instead of being closed.
 */
void uconn_close (struct upstream *up, struct uconn *c, bool drain);
/* ---- wire.c ---- */
int up_errno_of_wire (uint32_t e);
/* Runs the requests of r[0..n-1] not done yet on c (sent together, so
 * they must not overlap) and waits for their answers, no longer than
 * io_timeout without one.  0: every request answered (done, its error
 * 0 or the server's errno); -1: the connection is lost (why says how;
 * the requests not done must be sent again elsewhere).
 */
int uconn_run (struct upstream *up, struct uconn *c, struct req *r, size_t n,
               char *why, size_t whylen);

/* ---- failover.c ---- */
/* Marks the round of c lost (lock held). */
void up_round_lost (struct upstream *up, struct uconn *c, const char *why);
/* Connects a round to server k (all connections); 0 or -1 with a
 * message.
 */
int up_connect_round (struct upstream *up, size_t k, bool first);
int up_supervisor_start (struct upstream *up);
void up_supervisor_stop (struct upstream *up);

/* ---- drain.c ---- */
/* Says we are done (FIN) and reads fd until the server closes it. */
void up_drain_add (struct upstream *up, int fd);
int up_drainer_start (struct upstream *up);
void up_drainer_stop (struct upstream *up);

/* ---- request.c ---- */
/* One request, to its answer (failovers included): 0 or -1 with errno
 * and a message.  Writes are kept for the replay.
 */
int up_request (struct upstream *up, enum req_type type, void *buf,
                uint32_t count, uint64_t offset, uint32_t flags);
int up_flush_all (struct upstream *up);
/* Runs r[0..n-1] (not overlapping; reads: nothing is kept) on a
 * connection of the round until all are answered, sending the
 * unanswered ones again after failovers.  Called and returns with the
 * lock held; -1 with a message when no server serves (dead timeout,
 * detach).
 */
int up_run_round (struct upstream *up, struct req *r, size_t n);
/* Waits for a round that serves and a free connection of it, and
 * checks it out (lock held).  NULL with errno and a message when no
 * server serves (dead timeout, detach).
 */
struct uconn *up_checkout (struct upstream *up);
/* Gives it back; failed: its round is dropped (lock held). */
void up_checkin (struct upstream *up, struct uconn *c, bool failed);

/* ---- pump.c ---- */
struct stream;
void up_pread_async (struct df_bdev *b, struct df_bdev_aread **a, size_t n);
/* The pump's fds and memory (its lock is made by up_new). */
int up_pump_init (struct upstream *up);
void up_pump_kick (struct upstream *up);
int up_pump_start (struct upstream *up);
/* Stops the pump (reads still queued fail with ESHUTDOWN); the state
 * is UP_STOPPING already.
 */
void up_pump_stop (struct upstream *up);
void up_pump_destroy (struct upstream *up);

/* ---- replay.c ---- */
/* Keeps a copy of a write that succeeded (lock held). */
int log_append (struct upstream *up, const struct req *r);
/* A flush sent when the log's next seq was seq succeeded (lock held). */
void log_flushed (struct upstream *up, uint64_t seq);
/* Sends every kept write to the new round, in order; the upstream is
 * down and nothing else uses the round.  0, or -1 with a message.
 */
int log_replay (struct upstream *up);
void log_free (struct upstream *up);

#endif
