/* Unit tests: common/stats — sessions published and read back (hidden
 * until their identity is), slots found by key and reused, a full
 * table, several publishers, a dead publisher's file removed,
 * identities never torn while counters move.
 */
#include <config.h>

#include <dirent.h>
#include <pthread.h>
#include <signal.h>
#include <sys/stat.h>
#include <sys/wait.h>

#include "test-helpers.h"
#include "stats/stats.h"

struct seen {
  size_t n;
  struct df_stats_session s[8];
  pid_t pids[8];
};

static int
collect (const struct df_stats_session *s, void *opaque)
{
  struct seen *seen = opaque;

  if (seen->n < 8)
    seen->s[seen->n] = *s;
  seen->n++;
  return 0;
}

static struct df_stats_identity
identity (const char *device, const char *session)
{
  struct df_stats_identity id = { .version = 3, .since_ns = df_now_real_ns (),
                                  .connections = 1, .state = DF_STATS_ACTIVE };

  snprintf (id.device, sizeof id.device, "%s", device);
  snprintf (id.session, sizeof id.session, "%s", session);
  snprintf (id.export_name, sizeof id.export_name, "dev/%s@%s", device,
            session);
  snprintf (id.client, sizeof id.client, "10.0.0.5");
  snprintf (id.vdisk, sizeof id.vdisk, "base");
  snprintf (id.cache_mode, sizeof id.cache_mode, "ram+disk");
  return id;
}

static void
test_publish_and_read (void **state)
{
  char *dir = test_path (tmpdir, "one");
  struct df_stats_pub *pub = df_stats_pub_open (dir);
  struct df_stats_identity id = identity ("pc1", "s1");
  struct seen seen = { 0 };
  uint64_t *w;

  (void) state;
  assert_non_null (pub);
  assert_int_equal (df_stats_read (dir, collect, &seen), 0);
  assert_int_equal (seen.n, 0);
  w = df_stats_claim (pub, 77);
  assert_non_null (w);
  assert_ptr_equal (df_stats_find (pub, 77), w);
  assert_null (df_stats_find (pub, 78));
  __atomic_fetch_add (&w[DF_STATS_READ_BYTES], 4096, __ATOMIC_RELAXED);
  /* Claimed but not described yet: not shown. */
  assert_int_equal (df_stats_read (dir, collect, &seen), 0);
  assert_int_equal (seen.n, 0);
  df_stats_update (pub, w, &id);
  __atomic_fetch_add (&w[DF_STATS_READ_REQUESTS], 1, __ATOMIC_RELAXED);
  assert_int_equal (df_stats_read (dir, collect, &seen), 0);
  assert_int_equal (seen.n, 1);
  assert_string_equal (seen.s[0].id.device, "pc1");
  assert_string_equal (seen.s[0].id.export_name, "dev/pc1@s1");
  assert_string_equal (seen.s[0].id.cache_mode, "ram+disk");
  assert_int_equal (seen.s[0].id.version, 3);
  assert_int_equal (seen.s[0].id.connections, 1);
  assert_int_equal (seen.s[0].words[DF_STATS_READ_BYTES], 4096);
  assert_int_equal (seen.s[0].words[DF_STATS_READ_REQUESTS], 1);
  assert_int_equal (seen.s[0].pid, getpid ());
  /* A new identity replaces the old one. */
  id.connections = 0;
  id.state = DF_STATS_LINGERING;
  df_stats_update (pub, w, &id);
  seen.n = 0;
  assert_int_equal (df_stats_read (dir, collect, &seen), 0);
  assert_int_equal (seen.s[0].id.state, DF_STATS_LINGERING);
  assert_string_equal (df_stats_state_name (seen.s[0].id.state), "lingering");
  df_stats_release (pub, w);
  assert_null (df_stats_find (pub, 77));
  seen.n = 0;
  assert_int_equal (df_stats_read (dir, collect, &seen), 0);
  assert_int_equal (seen.n, 0);
  df_stats_pub_close (pub);
  /* The file goes with the publisher. */
  assert_int_equal (df_stats_read (dir, collect, &seen), 0);
  assert_int_equal (seen.n, 0);
  free (dir);
}

static void
test_full (void **state)
{
  char *dir = test_path (tmpdir, "full");
  struct df_stats_pub *pub = df_stats_pub_open (dir);
  struct df_stats_identity id = identity ("pc", "s");
  uint64_t *w[DF_STATS_SLOTS], *extra;
  struct seen seen = { 0 };
  size_t i;

  (void) state;
  for (i = 0; i < DF_STATS_SLOTS; i++) {
    w[i] = df_stats_claim (pub, i);
    assert_non_null (w[i]);
    df_stats_update (pub, w[i], &id);
  }
  extra = df_stats_claim (pub, 5000);
  assert_null (extra);
  assert_int_equal (errno, ENOSPC);
  w[17][DF_STATS_ERRORS] = 5;
  df_stats_release (pub, w[17]);
  w[17] = df_stats_claim (pub, 17);
  assert_non_null (w[17]);
  assert_int_equal (w[17][DF_STATS_ERRORS], 0);
  df_stats_update (pub, w[17], &id);
  assert_int_equal (df_stats_read (dir, collect, &seen), 0);
  assert_int_equal (seen.n, DF_STATS_SLOTS);
  for (i = 0; i < DF_STATS_SLOTS; i++)
    df_stats_release (pub, w[i]);
  df_stats_pub_close (pub);
  free (dir);
}

/* A child publishes; it dies (no cleanup), or it stays until told. */
static pid_t
child_publisher (const char *dir, const char *device, bool die, int *go)
{
  int ready[2], wait_fd[2];
  pid_t pid;
  char c;

  assert_int_equal (pipe (ready), 0);
  assert_int_equal (pipe (wait_fd), 0);
  pid = fork ();
  assert_true (pid >= 0);
  if (pid == 0) {
    struct df_stats_pub *pub = df_stats_pub_open (dir);
    struct df_stats_identity id = identity (device, "x");
    uint64_t *w = pub ? df_stats_claim (pub, 1) : NULL;
    if (w == NULL)
      _exit (1);
    df_stats_update (pub, w, &id);
    if (write (ready[1], "r", 1) != 1)
      _exit (1);
    if (!die && read (wait_fd[0], &c, 1) < 0)
      _exit (1);
    _exit (0);                  /* no df_stats_pub_close: a crash */
  }
  close (ready[1]);
  close (wait_fd[0]);
  assert_int_equal (read (ready[0], &c, 1), 1);
  close (ready[0]);
  *go = wait_fd[1];
  return pid;
}

static void
test_several_and_dead (void **state)
{
  char *dir = test_path (tmpdir, "several");
  struct df_stats_pub *pub = df_stats_pub_open (dir);
  struct df_stats_identity id = identity ("mine", "s");
  struct seen seen = { 0 };
  int go_alive, go_dead, status, n = 0;
  pid_t alive, dead;
  DIR *d;
  struct dirent *de;

  (void) state;
  df_stats_update (pub, df_stats_claim (pub, 1), &id);
  alive = child_publisher (dir, "alive", false, &go_alive);
  dead = child_publisher (dir, "dead", true, &go_dead);
  assert_int_equal (waitpid (dead, &status, 0), dead);
  assert_int_equal (WEXITSTATUS (status), 0);
  assert_int_equal (df_stats_read (dir, collect, &seen), 0);
  assert_int_equal (seen.n, 2);
  assert_true ((strcmp (seen.s[0].id.device, "mine") == 0 &&
                strcmp (seen.s[1].id.device, "alive") == 0) ||
               (strcmp (seen.s[1].id.device, "mine") == 0 &&
                strcmp (seen.s[0].id.device, "alive") == 0));
  /* The dead one's file was removed by the reader. */
  d = opendir (dir);
  while ((de = readdir (d)) != NULL)
    n += de->d_name[0] != '.';
  closedir (d);
  assert_int_equal (n, 2);
  assert_int_equal (write (go_alive, "g", 1), 1);
  assert_int_equal (waitpid (alive, &status, 0), alive);
  close (go_alive);
  close (go_dead);
  seen.n = 0;
  assert_int_equal (df_stats_read (dir, collect, &seen), 0);
  assert_int_equal (seen.n, 1);
  assert_string_equal (seen.s[0].id.device, "mine");
  df_stats_pub_close (pub);
  free (dir);
}

/* Sessions come and go on one thread while I/O counts on another and a
 * reader checks that every identity it sees is whole.
 */
struct churn {
  struct df_stats_pub *pub;
  bool stop;
};

static void *
churner (void *opaque)
{
  struct churn *ch = opaque;
  unsigned i = 0;

  while (!__atomic_load_n (&ch->stop, __ATOMIC_RELAXED)) {
    char name[32];
    struct df_stats_identity id;
    uint64_t *w;
    int k;

    snprintf (name, sizeof name, "dev%u", i++ % 1000);
    id = identity (name, name);
    w = df_stats_claim (ch->pub, i);
    assert_non_null (w);
    df_stats_update (ch->pub, w, &id);
    for (k = 0; k < 100; k++) {
      __atomic_fetch_add (&w[DF_STATS_READ_REQUESTS], 1, __ATOMIC_RELAXED);
      if (k == 50) {
        snprintf (name, sizeof name, "dev%u", i % 1000 + 1000);
        id = identity (name, name);
        df_stats_update (ch->pub, w, &id);
      }
    }
    df_stats_release (ch->pub, w);
  }
  return NULL;
}

static int
check_whole (const struct df_stats_session *s, void *opaque)
{
  char want[200];

  (void) opaque;
  snprintf (want, sizeof want, "dev/%s@%s", s->id.device, s->id.device);
  if (strcmp (s->id.session, s->id.device) != 0 ||
      strcmp (s->id.export_name, want) != 0)
    fail_msg ("torn identity: %s %s %s", s->id.device, s->id.session,
              s->id.export_name);
  return 0;
}

static void
test_torn (void **state)
{
  char *dir = test_path (tmpdir, "torn");
  struct churn ch = { .pub = df_stats_pub_open (dir) };
  pthread_t th[2];
  int i;

  (void) state;
  assert_non_null (ch.pub);
  assert_int_equal (pthread_create (&th[0], NULL, churner, &ch), 0);
  assert_int_equal (pthread_create (&th[1], NULL, churner, &ch), 0);
  for (i = 0; i < 300; i++)
    assert_int_equal (df_stats_read (dir, check_whole, NULL), 0);
  __atomic_store_n (&ch.stop, true, __ATOMIC_RELAXED);
  pthread_join (th[0], NULL);
  pthread_join (th[1], NULL);
  df_stats_pub_close (ch.pub);
  free (dir);
}

int
main (void)
{
  const struct CMUnitTest tests[] = {
    cmocka_unit_test (test_publish_and_read),
    cmocka_unit_test (test_full),
    cmocka_unit_test (test_several_and_dead),
    cmocka_unit_test (test_torn),
  };

  return cmocka_run_group_tests (tests, tmpdir_setup, tmpdir_teardown);
}
