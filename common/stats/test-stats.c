/* Unit tests: common/stats — sessions published and read back (hidden
 * until their identity is), slots found by key and reused, a full
 * table, several publishers, a dead publisher's file removed,
 * identities never torn while counters move; a device-session set
 * published (publish.c): counters counted in place, states followed,
 * sessions opened before publishing started left out.
 */
#include <config.h>

#include <dirent.h>
#include <pthread.h>
#include <signal.h>
#include <sys/stat.h>
#include <sys/wait.h>

#include "test-farm.h"
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

/* ---- a device-session set published ---- */

struct one {
  const char *device;
  struct df_stats_session s;
  size_t n, total;
};

static int
find_device (const struct df_stats_session *s, void *opaque)
{
  struct one *o = opaque;

  o->total++;
  if (strcmp (s->id.device, o->device) == 0) {
    o->s = *s;
    o->n++;
  }
  return 0;
}

/* The published figures of device's session; false if not published. */
static bool
published (const char *dir, const char *device, struct df_stats_session *out,
           size_t *total)
{
  struct one o = { .device = device };

  assert_int_equal (df_stats_read (dir, find_device, &o), 0);
  assert_true (o.n <= 1);
  if (out)
    *out = o.s;
  if (total)
    *total = o.total;
  return o.n == 1;
}

static void
test_publisher (void **state)
{
  char *top = test_path (tmpdir, "publisher");
  char *farm, *dir = test_path (top, "stats");
  struct df_farmstate_params fp = { 0 };
  struct df_sessions_params sp = { .ram_limit = 1 << 20, .linger = 60 };
  struct df_stats_publisher *pub;
  struct df_farmstate *fs;
  struct df_sessions *set;
  struct df_session *early, *s1, *s2;
  struct df_stats_session got;
  char buf[4096];
  size_t total;
  uint64_t deadline;

  (void) state;
  assert_int_equal (df_mkdir_p (top, 0755), 0);
  farm = test_farm_make (top, 1 << 20, 7);
  test_farm_device (farm, "early", "base", "ram", "production");
  test_farm_device (farm, "pc1", "base", "ram", "production");
  test_farm_device (farm, "pc2", "base", "disk:2M", "production");
  fp.dir = farm;
  fs = df_farmstate_new (&fp);
  assert_non_null (fs);
  sp.farm = fs;
  pub = df_stats_publisher_new (NULL, NULL);
  assert_non_null (pub);
  df_stats_publisher_hooks (pub, &sp);
  set = df_sessions_new (&sp);
  assert_non_null (set);

  /* Before publishing starts, a session counts on the heap. */
  early = df_session_open (set, "early", "e", NULL);
  assert_non_null (early);
  assert_int_equal (df_stats_publisher_start (pub, set, dir, 20), 0);
  assert_int_equal (df_stats_publisher_start (pub, set, dir, 20), -1);
  assert_int_equal (errno, EBUSY);
  assert_int_equal (df_bdev_pread (df_session_bdev (early), buf, 4096, 0), 0);

  /* Published at once; counted in place. */
  s1 = df_session_open (set, "pc1", "boot1", "10.0.0.5");
  assert_non_null (s1);
  df_stats_publisher_session (pub, s1);
  assert_true (published (dir, "pc1", &got, NULL));
  assert_string_equal (got.id.export_name, "dev/pc1@boot1");
  assert_string_equal (got.id.session, "boot1");
  assert_string_equal (got.id.client, "10.0.0.5");
  assert_string_equal (got.id.vdisk, "base");
  assert_string_equal (got.id.cache_mode, "ram");
  assert_int_equal (got.id.version, 1);
  assert_int_equal (got.id.connections, 1);
  assert_int_equal (got.id.state, DF_STATS_BOOTING);
  assert_int_equal (got.pid, getpid ());
  assert_int_equal (df_bdev_pread (df_session_bdev (s1), buf, 4096, 8192), 0);
  assert_int_equal (df_bdev_pwrite (df_session_bdev (s1), buf, 4096, 0, 0), 0);
  assert_true (published (dir, "pc1", &got, NULL));
  assert_int_equal (got.words[DF_STATS_READ_BYTES], 4096);
  assert_int_equal (got.words[DF_STATS_READ_REQUESTS], 1);
  assert_int_equal (got.words[DF_STATS_WRITE_BYTES], 4096);
  assert_int_equal (got.words[DF_STATS_WRITE_REQUESTS], 1);

  /* The thread republishes: the cache in use shows, and a session
   * whose user left lingers.
   */
  s2 = df_session_open (set, "pc2", "boot1", NULL);
  assert_non_null (s2);
  assert_int_equal (df_bdev_pwrite (df_session_bdev (s2), buf, 4096, 0, 0), 0);
  deadline = df_now_mono_ns () + UINT64_C (10000000000);
  while (!(published (dir, "pc2", &got, NULL) && got.id.cache_bytes > 0) &&
         df_now_mono_ns () < deadline)
    usleep (10000);
  assert_true (got.id.cache_bytes > 0);
  assert_int_equal (got.id.cache_limit, 2 << 20);
  assert_string_equal (got.id.cache_mode, "disk");
  df_session_close (s1);
  df_stats_publisher_poke (pub);
  while (!(published (dir, "pc1", &got, NULL) &&
           got.id.state == DF_STATS_LINGERING) && df_now_mono_ns () < deadline)
    usleep (10000);
  assert_int_equal (got.id.state, DF_STATS_LINGERING);
  assert_int_equal (got.id.connections, 0);
  assert_int_equal (got.words[DF_STATS_READ_BYTES], 4096);

  /* The session opened before the start never shows. */
  assert_false (published (dir, "early", NULL, &total));
  assert_int_equal (total, 2);
  df_session_close (early);
  df_session_close (s2);

  df_stats_publisher_stop (pub);
  df_sessions_free (set);
  df_stats_publisher_free (pub);
  df_farmstate_free (fs);
  assert_int_equal (df_stats_read (dir, collect, &(struct seen) { 0 }), 0);
  assert_int_equal (rmdir (dir), 0);  /* the file went with the publisher */
  free (farm);
  free (dir);
  free (top);
}

int
main (void)
{
  const struct CMUnitTest tests[] = {
    cmocka_unit_test (test_publish_and_read),
    cmocka_unit_test (test_full),
    cmocka_unit_test (test_several_and_dead),
    cmocka_unit_test (test_torn),
    cmocka_unit_test (test_publisher),
  };

  return cmocka_run_group_tests (tests, tmpdir_setup, tmpdir_teardown);
}
