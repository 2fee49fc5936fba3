/* Unit tests: common/evloop (fd watches, timer order, freeing in callbacks). */
#include <config.h>

#include "test-helpers.h"
#include "evloop/evloop.h"

static int order[8], norder;

static void
timer_fn (void *opaque)
{
  order[norder++] = (int) (intptr_t) opaque;
}

static void
test_timers (void **state)
{
  struct df_loop *loop = df_loop_new ();
  struct df_timer *t[4];
  int i;

  (void) state;
  for (i = 0; i < 4; i++)
    t[i] = df_loop_timer (loop, timer_fn, (void *) (intptr_t) i);
  df_timer_arm (t[0], 30000000);
  df_timer_arm (t[1], 10000000);
  df_timer_arm (t[2], 20000000);
  df_timer_arm (t[3], 5000000);
  df_timer_disarm (t[3]);
  df_timer_arm (t[1], 40000000);        /* re-arming moves it */
  assert_true (df_timer_armed (t[1]));
  assert_false (df_timer_armed (t[3]));
  while (norder < 3)
    assert_int_equal (df_loop_once (loop, 1000), 0);
  assert_int_equal (order[0], 2);
  assert_int_equal (order[1], 0);
  assert_int_equal (order[2], 1);
  for (i = 0; i < 4; i++)
    df_timer_free (t[i]);
  df_loop_free (loop);
}

struct pipe_state {
  struct df_watch *w;
  int reads;
};

static void
read_fn (void *opaque, int fd, unsigned events)
{
  struct pipe_state *ps = opaque;
  char c;

  assert_true (events & DF_LOOP_READ);
  assert_int_equal (read (fd, &c, 1), 1);
  ps->reads++;
  df_watch_free (ps->w);                /* freeing inside the callback */
}

static void
test_watch (void **state)
{
  struct df_loop *loop = df_loop_new ();
  struct pipe_state ps = { 0 };
  int p[2];

  (void) state;
  assert_int_equal (pipe (p), 0);
  ps.w = df_loop_watch (loop, p[0], DF_LOOP_READ, read_fn, &ps);
  assert_non_null (ps.w);
  assert_int_equal (write (p[1], "ab", 2), 2);
  assert_int_equal (df_loop_once (loop, 1000), 0);
  assert_int_equal (df_loop_once (loop, 10), 0);
  assert_int_equal (ps.reads, 1);
  close (p[0]);
  close (p[1]);
  df_loop_free (loop);
}

int
main (void)
{
  const struct CMUnitTest tests[] = {
    cmocka_unit_test (test_timers),
    cmocka_unit_test (test_watch),
  };

  return cmocka_run_group_tests (tests, NULL, NULL);
}
