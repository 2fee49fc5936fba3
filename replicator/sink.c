/* diskfarm-replicator — hashing and writeback off the receiving thread
 * (see sink.h).
 */
#include <config.h>

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdlib.h>
#include <unistd.h>

#include "error.h"
#include "layer/layer.h"
#include "pagecache.h"
#include "sink.h"

/* Bytes queued before the receiver waits: enough to ride out a
 * sync_file_range that waits for the disk's queue.
 */
#define QUEUE_MAX (64 * 1024 * 1024)

struct item {
  struct item *next;
  uint64_t off;
  char *buf;                    /* NULL: a writeback */
  size_t n;
};

/* A hashed buffer, kept for repl_sink_buffer: the same few buffers go
 * round, instead of a fresh megabyte (and its page faults) each time.
 */
struct spare {
  struct spare *next;
};
#define SPARES_MAX 80           /* QUEUE_MAX of 1 MiB buffers, and some */

struct repl_sink {
  int fd;                       /* our own: a dup */
  struct df_layer_hasher *hs;   /* the thread's until drained */
  pthread_t thread;
  /* lock covers the queue and the flags; a leaf lock, never held while
   * hashing or doing I/O.
   */
  pthread_mutex_t lock;
  pthread_cond_t work;          /* the thread: something queued, or stop */
  pthread_cond_t room;          /* the owner: room in the queue, or idle */
  struct item *head, *tail;
  size_t queued;                /* bytes in the queue */
  bool busy;                    /* the thread works on an item */
  bool stop;
  size_t buf_size;              /* of the buffers given to written */
  struct spare *spares;         /* buffers of buf_size, for reuse */
  size_t nspares;
};

static void
run_item (struct repl_sink *s, struct item *it)
{
  if (it->buf == NULL) {
    sync_file_range (s->fd, 0, 0, SYNC_FILE_RANGE_WRITE);
    df_cache_drop (s->fd);
    return;
  }
  if (s->hs)
    df_layer_hasher_data (s->hs, it->off, it->buf, it->n);
}

static void *
sink_thread (void *opaque)
{
  struct repl_sink *s = opaque;
  struct item *it;

  pthread_mutex_lock (&s->lock);
  for (;;) {
    while (s->head == NULL && !s->stop)
      pthread_cond_wait (&s->work, &s->lock);
    if (s->head == NULL)
      break;                    /* stop, and nothing left */
    it = s->head;
    s->head = it->next;
    if (s->head == NULL)
      s->tail = NULL;
    s->busy = true;
    pthread_mutex_unlock (&s->lock);
    run_item (s, it);
    pthread_mutex_lock (&s->lock);
    s->busy = false;
    s->queued -= it->n;
    pthread_cond_broadcast (&s->room);
    if (it->buf && s->nspares < SPARES_MAX) {
      struct spare *sp = (struct spare *) it->buf;
      sp->next = s->spares;
      s->spares = sp;
      s->nspares++;
    }
    else
      free (it->buf);
    free (it);
  }
  pthread_mutex_unlock (&s->lock);
  return NULL;
}

struct repl_sink *
repl_sink_new (int fd, struct df_layer_hasher *hs, size_t buf_size)
{
  struct repl_sink *s = calloc (1, sizeof *s);
  int e;

  if (s == NULL) {
    df_error_errno ("sink");
    return NULL;
  }
  s->fd = fcntl (fd, F_DUPFD_CLOEXEC, 0);
  if (s->fd == -1) {
    df_error_errno ("sink");
    free (s);
    return NULL;
  }
  s->hs = hs;
  s->buf_size = buf_size;
  pthread_mutex_init (&s->lock, NULL);
  pthread_cond_init (&s->work, NULL);
  pthread_cond_init (&s->room, NULL);
  e = pthread_create (&s->thread, NULL, sink_thread, s);
  if (e) {
    pthread_cond_destroy (&s->room);
    pthread_cond_destroy (&s->work);
    pthread_mutex_destroy (&s->lock);
    close (s->fd);
    free (s);
    df_error (e, "cannot start a thread: %m");
    return NULL;
  }
  return s;
}

/* Queues it, or runs it here if there is no memory for the item. */
static void
queue (struct repl_sink *s, uint64_t off, char *buf, size_t n)
{
  struct item *it = malloc (sizeof *it);

  if (it == NULL) {
    struct item here = { .off = off, .buf = buf, .n = n };
    repl_sink_drain (s);        /* in order: the hasher is ours now */
    run_item (s, &here);
    free (buf);
    return;
  }
  *it = (struct item) { .off = off, .buf = buf, .n = n };
  pthread_mutex_lock (&s->lock);
  while (s->queued > 0 && s->queued + n > QUEUE_MAX)
    pthread_cond_wait (&s->room, &s->lock);
  if (s->tail)
    s->tail->next = it;
  else
    s->head = it;
  s->tail = it;
  s->queued += n;
  pthread_cond_signal (&s->work);
  pthread_mutex_unlock (&s->lock);
}

char *
repl_sink_buffer (struct repl_sink *s)
{
  struct spare *sp;

  pthread_mutex_lock (&s->lock);
  sp = s->spares;
  if (sp) {
    s->spares = sp->next;
    s->nspares--;
  }
  pthread_mutex_unlock (&s->lock);
  return sp ? (char *) sp : malloc (s->buf_size);
}

void
repl_sink_written (struct repl_sink *s, uint64_t off, char *buf, size_t n)
{
  queue (s, off, buf, n);
}

void
repl_sink_writeback (struct repl_sink *s)
{
  queue (s, 0, NULL, 0);
}

void
repl_sink_drain (struct repl_sink *s)
{
  pthread_mutex_lock (&s->lock);
  while (s->head || s->busy)
    pthread_cond_wait (&s->room, &s->lock);
  pthread_mutex_unlock (&s->lock);
}

void
repl_sink_free (struct repl_sink *s)
{
  if (s == NULL)
    return;
  pthread_mutex_lock (&s->lock);
  s->stop = true;
  pthread_cond_signal (&s->work);
  pthread_mutex_unlock (&s->lock);
  pthread_join (s->thread, NULL);       /* it empties the queue first */
  while (s->spares) {
    struct spare *sp = s->spares;
    s->spares = sp->next;
    free (sp);
  }
  pthread_cond_destroy (&s->room);
  pthread_cond_destroy (&s->work);
  pthread_mutex_destroy (&s->lock);
  close (s->fd);
  free (s);
}
