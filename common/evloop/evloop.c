/* diskfarm — event loop over epoll with a timer heap (see evloop.h). */
#include <config.h>

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <unistd.h>

#include "error.h"
#include "evloop/evloop.h"
#include "util.h"

struct df_watch {
  struct df_loop *loop;
  int fd;
  unsigned events;
  df_watch_fn fn;
  void *opaque;
  bool dead;
  struct df_watch *next_dead;
};

struct df_timer {
  struct df_loop *loop;
  df_timer_fn fn;
  void *opaque;
  uint64_t when;                /* monotonic ns */
  long heap_index;              /* -1 when not armed */
};

struct df_loop {
  int epfd;
  bool stop;
  struct df_timer **heap;
  size_t nheap, heap_cap;
  struct df_watch *dead;        /* freed after the current dispatch */
  size_t nwatches;
};

struct df_loop *
df_loop_new (void)
{
  struct df_loop *loop = calloc (1, sizeof *loop);

  if (loop == NULL) {
    df_error_errno ("event loop");
    return NULL;
  }
  loop->epfd = epoll_create1 (EPOLL_CLOEXEC);
  if (loop->epfd == -1) {
    df_error_errno ("epoll_create1");
    free (loop);
    return NULL;
  }
  return loop;
}

static void
reap (struct df_loop *loop)
{
  while (loop->dead) {
    struct df_watch *w = loop->dead;
    loop->dead = w->next_dead;
    free (w);
  }
}

void
df_loop_free (struct df_loop *loop)
{
  size_t i;

  if (loop == NULL)
    return;
  reap (loop);
  for (i = 0; i < loop->nheap; i++)
    loop->heap[i]->heap_index = -1;
  free (loop->heap);
  close (loop->epfd);
  free (loop);
}

static uint32_t
epoll_bits (unsigned events)
{
  return ((events & DF_LOOP_READ) ? EPOLLIN : 0) |
    ((events & DF_LOOP_WRITE) ? EPOLLOUT : 0);
}

struct df_watch *
df_loop_watch (struct df_loop *loop, int fd, unsigned events, df_watch_fn fn,
               void *opaque)
{
  struct df_watch *w = calloc (1, sizeof *w);
  struct epoll_event ev = { .events = epoll_bits (events) };

  if (w == NULL) {
    df_error_errno ("watch");
    return NULL;
  }
  w->loop = loop;
  w->fd = fd;
  w->events = events;
  w->fn = fn;
  w->opaque = opaque;
  ev.data.ptr = w;
  if (epoll_ctl (loop->epfd, EPOLL_CTL_ADD, fd, &ev) == -1) {
    df_error_errno ("epoll_ctl add fd %d", fd);
    free (w);
    return NULL;
  }
  loop->nwatches++;
  return w;
}

int
df_watch_set_events (struct df_watch *w, unsigned events)
{
  struct epoll_event ev = { .events = epoll_bits (events), .data.ptr = w };

  if (w->events == events)
    return 0;
  if (epoll_ctl (w->loop->epfd, EPOLL_CTL_MOD, w->fd, &ev) == -1)
    return df_error_errno ("epoll_ctl mod fd %d", w->fd);
  w->events = events;
  return 0;
}

void
df_watch_free (struct df_watch *w)
{
  if (w == NULL || w->dead)
    return;
  epoll_ctl (w->loop->epfd, EPOLL_CTL_DEL, w->fd, NULL);
  w->dead = true;
  w->next_dead = w->loop->dead;
  w->loop->dead = w;
  w->loop->nwatches--;
}

/* ---- timers: a binary min-heap on `when` ---- */

static void
heap_swap (struct df_loop *loop, size_t a, size_t b)
{
  struct df_timer *t = loop->heap[a];

  loop->heap[a] = loop->heap[b];
  loop->heap[b] = t;
  loop->heap[a]->heap_index = a;
  loop->heap[b]->heap_index = b;
}

static void
heap_up (struct df_loop *loop, size_t i)
{
  while (i > 0 && loop->heap[(i - 1) / 2]->when > loop->heap[i]->when) {
    heap_swap (loop, i, (i - 1) / 2);
    i = (i - 1) / 2;
  }
}

static void
heap_down (struct df_loop *loop, size_t i)
{
  for (;;) {
    size_t l = 2 * i + 1, r = l + 1, m = i;
    if (l < loop->nheap && loop->heap[l]->when < loop->heap[m]->when)
      m = l;
    if (r < loop->nheap && loop->heap[r]->when < loop->heap[m]->when)
      m = r;
    if (m == i)
      return;
    heap_swap (loop, i, m);
    i = m;
  }
}

static void
heap_remove (struct df_loop *loop, struct df_timer *t)
{
  size_t i = t->heap_index;

  t->heap_index = -1;
  loop->nheap--;
  if (i == loop->nheap)
    return;
  loop->heap[i] = loop->heap[loop->nheap];
  loop->heap[i]->heap_index = i;
  heap_down (loop, i);
  heap_up (loop, i);
}

struct df_timer *
df_loop_timer (struct df_loop *loop, df_timer_fn fn, void *opaque)
{
  struct df_timer *t = calloc (1, sizeof *t);

  if (t == NULL) {
    df_error_errno ("timer");
    return NULL;
  }
  t->loop = loop;
  t->fn = fn;
  t->opaque = opaque;
  t->heap_index = -1;
  return t;
}

void
df_timer_arm (struct df_timer *t, uint64_t ns)
{
  struct df_loop *loop = t->loop;

  if (t->heap_index >= 0)
    heap_remove (loop, t);
  if (loop->nheap == loop->heap_cap) {
    size_t cap = loop->heap_cap ? loop->heap_cap * 2 : 64;
    struct df_timer **h = realloc (loop->heap, cap * sizeof *h);
    if (h == NULL)
      abort ();                 /* a timer that cannot be armed is a hang */
    loop->heap = h;
    loop->heap_cap = cap;
  }
  t->when = df_now_mono_ns () + ns;
  t->heap_index = loop->nheap;
  loop->heap[loop->nheap++] = t;
  heap_up (loop, t->heap_index);
}

void
df_timer_disarm (struct df_timer *t)
{
  if (t->heap_index >= 0)
    heap_remove (t->loop, t);
}

bool
df_timer_armed (const struct df_timer *t)
{
  return t->heap_index >= 0;
}

void
df_timer_free (struct df_timer *t)
{
  if (t == NULL)
    return;
  df_timer_disarm (t);
  free (t);
}

static void
run_timers (struct df_loop *loop)
{
  uint64_t now = df_now_mono_ns ();

  while (loop->nheap > 0 && loop->heap[0]->when <= now && !loop->stop) {
    struct df_timer *t = loop->heap[0];
    heap_remove (loop, t);
    t->fn (t->opaque);          /* may free or re-arm t */
  }
}

int
df_loop_once (struct df_loop *loop, int timeout_ms)
{
  struct epoll_event evs[64];
  int n, i;

  if (loop->nheap > 0) {
    uint64_t now = df_now_mono_ns (), when = loop->heap[0]->when;
    int64_t ms = when > now ? (int64_t) ((when - now + 999999) / 1000000) : 0;
    if (timeout_ms < 0 || ms < timeout_ms)
      timeout_ms = ms;
  }
  n = epoll_wait (loop->epfd, evs, 64, timeout_ms);
  if (n == -1 && errno != EINTR)
    return df_error_errno ("epoll_wait");
  for (i = 0; i < n && !loop->stop; i++) {
    struct df_watch *w = evs[i].data.ptr;
    unsigned events = 0;

    if (w->dead)
      continue;
    if (evs[i].events & (EPOLLIN | EPOLLERR | EPOLLHUP))
      events |= DF_LOOP_READ;
    if (evs[i].events & EPOLLOUT)
      events |= DF_LOOP_WRITE;
    w->fn (w->opaque, w->fd, events);
  }
  run_timers (loop);
  reap (loop);
  return 0;
}

int
df_loop_run (struct df_loop *loop)
{
  loop->stop = false;
  while (!loop->stop)
    if (df_loop_once (loop, -1) == -1)
      return -1;
  return 0;
}

void
df_loop_stop (struct df_loop *loop)
{
  loop->stop = true;
}
