/* diskfarm — a small single-threaded event loop (epoll + timers).
 *
 * Daemons that juggle many sockets (the boot service: DHCP, TFTP) run
 * one loop: watch fds for reading or writing, arm one-shot timers, and
 * call df_loop_run until df_loop_stop.  Callbacks run on the loop's
 * thread and must not block.
 */
#ifndef DISKFARM_EVLOOP_H
#define DISKFARM_EVLOOP_H

#include <stdbool.h>
#include <stdint.h>

struct df_loop;
struct df_watch;
struct df_timer;

#define DF_LOOP_READ 1u
#define DF_LOOP_WRITE 2u

typedef void (*df_watch_fn) (void *opaque, int fd, unsigned events);
typedef void (*df_timer_fn) (void *opaque);

struct df_loop *df_loop_new (void);
/* Frees the loop; watches and timers still registered are freed too. */
void df_loop_free (struct df_loop *loop);

/* Watches fd (not owned) for events; returns NULL with a message. */
struct df_watch *df_loop_watch (struct df_loop *loop, int fd, unsigned events,
                                df_watch_fn fn, void *opaque);
int df_watch_set_events (struct df_watch *w, unsigned events);
/* Stops watching; safe inside the watch's own callback.  NULL is fine. */
void df_watch_free (struct df_watch *w);

/* A one-shot timer, not armed until df_timer_arm. */
struct df_timer *df_loop_timer (struct df_loop *loop, df_timer_fn fn,
                                void *opaque);
/* Fires once, ns nanoseconds from now (re-arming moves it). */
void df_timer_arm (struct df_timer *t, uint64_t ns);
void df_timer_disarm (struct df_timer *t);
bool df_timer_armed (const struct df_timer *t);
/* Safe inside the timer's own callback.  NULL is fine. */
void df_timer_free (struct df_timer *t);

/* Runs until df_loop_stop; returns 0, or -1 if epoll fails. */
int df_loop_run (struct df_loop *loop);
/* Runs one iteration, waiting at most timeout_ms (-1: until something
 * happens).  For tests.
 */
int df_loop_once (struct df_loop *loop, int timeout_ms);
void df_loop_stop (struct df_loop *loop);

#endif
