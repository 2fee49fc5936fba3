/* diskfarm — NBD server internals shared by its files. */
#ifndef DISKFARM_NBD_SERVER_INT_H
#define DISKFARM_NBD_SERVER_INT_H

#include <pthread.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/uio.h>

#include "nbd/proto.h"
#include "nbd/server.h"

struct conn;

#define BATCH 32                /* reads read ahead and run together */

/* A connection's reads out with an asynchronous device at most, and
 * their bytes (conn.c): past them its reader waits for replies.
 */
#define ASYNC_JOBS 512
#define ASYNC_BYTES (64 * 1024 * 1024)

/* Other replies a connection's queue holds at most, and their data: past
 * them the thread that replies waits for the client, as a blocking send
 * would (replies.c).
 */
#define OQ_RECS 1024
#define OQ_BYTES (64 * 1024 * 1024)

/* A reply waiting in a connection's queue (conn.c: the writer). */
struct outrec {
  struct outrec *next;
  struct job *job;              /* an asynchronous read's reply: the job is
                                   counted and freed once it is sent;
                                   NULL: a record of its own (malloc'd) */
  size_t sent;                  /* bytes of h and data gone */
  uint8_t h[NBD_SIMPLE_REPLY_SIZE];
  const void *data;
  uint32_t len;                 /* of data */
  bool counted;                 /* in the connection's oq_recs/oq_bytes */
};

/* Jobs with a payload up to this size are allocated this size, and an
 * asynchronous read's job goes back to its connection once its reply is
 * out, for the reader to reuse: the device's thread would otherwise
 * free, into the reader's malloc arena, what the reader allocates.
 */
#define JOB_SMALL 4096

/* A request read off a connection. */
struct job {
  struct conn *conn;
  struct nbd_request req;
  uint32_t error;               /* NBD error decided before running */
  struct df_bdev_aread aread;   /* a read run asynchronously */
  struct outrec out;            /* and its reply, when it has to wait */
  bool small;                   /* room for JOB_SMALL bytes: reused */
  struct job *spare_next;       /* in a list of jobs to reuse */
  char data[];                  /* read or write payload */
};

struct conn {
  struct df_nbd_server *srv;    /* NULL: served serially */
  const struct df_nbd_export *e;
  int in, out;
  bool no_zeroes;               /* the client sent NBD_FLAG_C_NO_ZEROES */
  struct nbd_limits limits;
  pthread_mutex_t send_lock;    /* a reply goes out whole */
  bool send_failed;             /* under send_lock */
  /* Reads the device runs asynchronously (DF_BDEV_ASYNC): their
   * replies go out from aio.done.  The counts are atomic: the reader
   * role adds to them without a lock (the device's thread holds
   * send_lock while it sends replies, which the reader must not wait
   * for); they go down under send_lock, and async_cond is broadcast
   * under it after.
   */
  struct df_bdev_aio aio;
  unsigned async_jobs;          /* reads submitted, not replied to */
  uint64_t async_bytes;
  pthread_cond_t async_cond;    /* they went down */
  /* With asynchronous reads on a socket, no thread waits for the client
   * to read with the send lock held (the device's thread replies):
   * replies the socket does not take at once wait in this queue, and
   * the connection's writer thread sends them.  Under send_lock:
   */
  bool queued_replies;          /* the queue is in use (writer running) */
  struct outrec *oq_head, *oq_tail;
  unsigned oq_recs;             /* its records of their own (counted) */
  uint64_t oq_bytes;            /* and their data */
  pthread_cond_t out_cond;      /* the queue has work; stop */
  bool writer_stop;
  pthread_t writer;
  bool plain_write;             /* out is no socket: write(), not send() */
  /* The reader role (conn.c): one thread reads requests at a time,
   * and runs reads holding it.  Lock order: read_lock, then send_lock,
   * then the block device's locks.
   */
  pthread_mutex_t read_lock;
  bool eof;                     /* under read_lock: the client left */
  uint8_t *rbuf;                /* under read_lock: bytes read ahead */
  size_t rpos, rlen;
  struct job *spare;            /* under read_lock: small jobs to reuse */
  struct job *returned;         /* atomic: small jobs given back (pushed
                                   under send_lock, taken all at once) */
  unsigned nthreads;            /* threads serving the connection */
  pthread_t thread;             /* the first of them */
  struct conn *next;            /* the server's list */
};

/* ---- io.c ---- */
/* Reads exactly len bytes: 0, or -1 with errno (0 at a clean EOF
 * before the first byte, EPIPE at one in the middle).
 */
int nbd_read_full (int fd, void *buf, size_t len);
/* Writes the iovecs whole (send with MSG_NOSIGNAL on sockets). */
int nbd_send_all (struct conn *c, const void *a, size_t alen,
                  const void *b, size_t blen);
int nbd_send_iov (struct conn *c, struct iovec *iov, int n);
/* The transmission phase reads through a buffer (read_lock held):
 * exactly len bytes, as nbd_read_full.  nbd_conn_buffered tells what
 * is there already, at *p.
 */
int nbd_conn_read (struct conn *c, void *buf, size_t len);
size_t nbd_conn_buffered (const struct conn *c, const uint8_t **p);
void nbd_log (const struct df_nbd_export *e, const char *fmt, ...)
  __attribute__ ((format (printf, 2, 3)));
#define nbd_conn_log(c, ...) nbd_log ((c)->e, __VA_ARGS__)

/* ---- replies.c ---- */
/* A reply (data: a read's, len bytes) goes out whole. */
void nbd_send_reply (struct conn *c, const struct nbd_request *r,
                     uint32_t error, const void *data, uint32_t len);
/* The aio's done: replies to reads run asynchronously. */
void nbd_reads_done (struct df_bdev_aio *aio, struct df_bdev_aread **a,
                     size_t n);

/* ---- handshake.c ---- */
/* The handshake: 1 when the client enters transmission, 0 when it
 * leaves (NBD_OPT_ABORT, EOF), -1 on a protocol error (logged).
 */
int nbd_handshake (struct conn *c);

/* ---- conn.c ---- */
void nbd_conn_init (struct conn *c, const struct df_nbd_export *e, int in,
                    int out);
void nbd_conn_destroy (struct conn *c);
/* The transmission phase, run by each of the connection's threads: in
 * turn, a thread reads a request, then runs it and sends its reply
 * while the next thread reads.  Returns when the client has left.
 */
void nbd_transmission (struct conn *c);
/* Waits until every asynchronous read is replied to (the threads are
 * done): before the connection's socket is closed.
 */
void nbd_conn_drain (struct conn *c);
/* Starts the reply queue's writer when the device reads asynchronously
 * and out is a socket (nothing otherwise); nbd_conn_drain stops it.
 */
void nbd_conn_start_writer (struct conn *c);

#endif
