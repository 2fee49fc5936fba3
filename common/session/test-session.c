/* Unit tests: common/session (device sessions) on a real farm, vDisk and
 * write caches in a temporary directory.
 */
#include <config.h>

#include <errno.h>
#include <pthread.h>
#include <sys/file.h>
#include <sys/stat.h>

#include "test-farm.h"
#include "session/session-int.h"

#define SIZE (4 * 1024 * 1024)

static char *dir, *farm;
static struct df_farmstate *fs;
static struct df_sessions *set;

/* ---- what the library logs ---- */

static pthread_mutex_t log_lock = PTHREAD_MUTEX_INITIALIZER;
static char log_text[16384];

static void
log_hook (void *opaque, enum df_log_level level, const char *msg)
{
  (void) opaque;
  (void) level;
  pthread_mutex_lock (&log_lock);
  if (strlen (log_text) + strlen (msg) + 2 < sizeof log_text) {
    strcat (log_text, msg);
    strcat (log_text, "\n");
  }
  pthread_mutex_unlock (&log_lock);
}

static unsigned
logged (const char *needle)
{
  unsigned n = 0;
  const char *p;

  pthread_mutex_lock (&log_lock);
  for (p = log_text; (p = strstr (p, needle)) != NULL; p++)
    n++;
  pthread_mutex_unlock (&log_lock);
  return n;
}

/* ---- counters: the allocator hook, which can hold one device's open ---- */

static pthread_mutex_t hold_lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t hold_cond = PTHREAD_COND_INITIALIZER;
static char held_device[DF_NAME_MAX + 1];
static char held_session[DF_NAME_MAX + 1];     /* "": any session */
static bool holding;
static unsigned held, allocs, frees;

static struct df_session_counters *
counters_alloc (void *opaque, const char *device, const char *session)
{
  (void) opaque;
  pthread_mutex_lock (&hold_lock);
  allocs++;
  if (strcmp (device, held_device) == 0 &&
      (held_session[0] == '\0' || strcmp (session, held_session) == 0)) {
    held++;
    pthread_cond_broadcast (&hold_cond);
    while (holding)
      pthread_cond_wait (&hold_cond, &hold_lock);
  }
  pthread_mutex_unlock (&hold_lock);
  return calloc (1, sizeof (struct df_session_counters));
}

static void
counters_free (void *opaque, struct df_session_counters *c)
{
  (void) opaque;
  pthread_mutex_lock (&hold_lock);
  frees++;
  pthread_mutex_unlock (&hold_lock);
  free (c);
}

static void
hold (const char *device)
{
  pthread_mutex_lock (&hold_lock);
  snprintf (held_device, sizeof held_device, "%s", device);
  holding = true;
  held = 0;
  pthread_mutex_unlock (&hold_lock);
}

/* Waits until the held device's open reached the hook. */
static void
wait_held (void)
{
  pthread_mutex_lock (&hold_lock);
  while (held == 0)
    pthread_cond_wait (&hold_cond, &hold_lock);
  pthread_mutex_unlock (&hold_lock);
}

static void
release (void)
{
  pthread_mutex_lock (&hold_lock);
  holding = false;
  held_device[0] = '\0';
  held_session[0] = '\0';
  pthread_cond_broadcast (&hold_cond);
  pthread_mutex_unlock (&hold_lock);
}

/* ---- flock, wrapped (-Wl,--wrap=flock): can hold a lock taken on a
 * chosen file for a while, to open the window of a race wide ----
 */

int __real_flock (int fd, int op);
int __wrap_flock (int fd, int op);

static const char widen_suffix[] = "/old.layer";
static bool widen_on;               /* hold locks on such a path */
static bool widened;                /* such a lock is being held */

int
__wrap_flock (int fd, int op)
{
  char link[64], path[1024];
  ssize_t n;
  int r = __real_flock (fd, op);

  if (r == 0 && op == (LOCK_EX | LOCK_NB) &&
      __atomic_load_n (&widen_on, __ATOMIC_ACQUIRE)) {
    snprintf (link, sizeof link, "/proc/self/fd/%d", fd);
    n = readlink (link, path, sizeof path - 1);
    path[n > 0 ? n : 0] = '\0';
    if (n > 0 && (size_t) n >= strlen (widen_suffix) &&
        strcmp (path + n - strlen (widen_suffix), widen_suffix) == 0) {
      __atomic_store_n (&widened, true, __ATOMIC_RELEASE);
      usleep (500000);
      __atomic_store_n (&widened, false, __ATOMIC_RELEASE);
    }
  }
  return r;
}

/* ---- fixture ---- */

static void
new_set (unsigned linger)
{
  struct df_farmstate_params fp = { .dir = farm, .log = log_hook };
  struct df_sessions_params sp = {
    .ram_limit = 64 * 1024, .linger = linger, .log = log_hook,
    .counters_alloc = counters_alloc, .counters_free = counters_free,
  };

  fs = df_farmstate_new (&fp);
  assert_non_null (fs);
  sp.farm = fs;
  set = df_sessions_new (&sp);
  assert_non_null (set);
}

static void
free_set (void)
{
  df_sessions_free (set);
  df_farmstate_free (fs);
  set = NULL;
  fs = NULL;
}

static int
setup (void **state)
{
  (void) state;
  dir = test_tmpdir ();
  farm = test_farm_make (dir, SIZE, 1);
  test_farm_device (farm, "pc1", "base", "disk", "production");
  test_farm_device (farm, "pc2", "base", "ram", "production");
  test_farm_device (farm, "pc3", "base", "persistent", "production");
  test_farm_device (farm, "ghost", "nosuch", "disk", "production");
  log_text[0] = '\0';
  new_set (3600);
  return 0;
}

static int
teardown (void **state)
{
  (void) state;
  free_set ();
  free (farm);
  test_tmpdir_free (dir);
  return 0;
}

/* ---- helpers ---- */

static struct df_session *
open_ok (const char *device, const char *name)
{
  struct df_session *s = df_session_open (set, device, name, "192.0.2.1");

  if (s == NULL)
    fail_msg ("open %s@%s: %s", device, name, df_error_get ());
  return s;
}

static void
put (struct df_session *s, uint64_t offset, char c)
{
  char buf[4096];

  memset (buf, c, sizeof buf);
  assert_int_equal (df_bdev_pwrite (df_session_bdev (s), buf, sizeof buf,
                                    offset, 0), 0);
}

static char
get (struct df_session *s, uint64_t offset)
{
  char buf[4096];

  assert_int_equal (df_bdev_pread (df_session_bdev (s), buf, sizeof buf,
                                   offset), 0);
  return buf[0];
}

static bool
exists (const char *rel)
{
  char path[1024];
  struct stat st;

  snprintf (path, sizeof path, "%s/store/caches/%s", farm, rel);
  return stat (path, &st) == 0;
}

static int
count_fn (void *opaque, const struct df_session_figures *f)
{
  (void) f;
  (*(unsigned *) opaque)++;
  return 0;
}

static unsigned
nsessions (void)
{
  unsigned n = 0;

  assert_int_equal (df_sessions_foreach (set, count_fn, &n), 0);
  return n;
}

struct find {
  const char *export_name;
  struct df_session_figures f;
  bool found;
};

static int
find_fn (void *opaque, const struct df_session_figures *f)
{
  struct find *q = opaque;

  if (strcmp (f->export_name, q->export_name) == 0) {
    q->f = *f;
    q->found = true;
  }
  return 0;
}

static bool
figures_of (const char *export_name, struct df_session_figures *out)
{
  struct find q = { .export_name = export_name };

  assert_int_equal (df_sessions_foreach (set, find_fn, &q), 0);
  if (q.found)
    *out = q.f;
  return q.found;
}

/* ---- tests ---- */

static void
test_open_join_close (void **state)
{
  struct df_session *a, *b;
  struct df_session_figures f;
  char *d;

  (void) state;
  a = open_ok ("pc1", "s1");
  b = open_ok ("pc1", "s1");
  assert_ptr_equal (a, b);
  put (a, 8192, 'A');
  assert_int_equal (get (b, 8192), 'A');
  assert_true (figures_of ("dev/pc1@s1", &f));
  assert_int_equal (f.connections, 2);
  assert_string_equal (f.client, "192.0.2.1");
  assert_string_equal (f.vdisk, "base");
  assert_int_equal (f.version, 1);
  assert_int_equal (f.cache_mode, DF_CACHE_DISK);
  assert_int_equal (f.state, DF_SESSION_BOOTING);
  assert_int_equal (f.counters.write_requests, 1);
  assert_int_equal (f.counters.write_bytes, 4096);
  assert_int_equal (f.counters.read_requests, 1);
  assert_int_equal (f.cache_used, 4096);
  d = df_session_describe (a);
  assert_non_null (strstr (d, "device pc1 session s1: vdisk base version 1, "
                           "write cache disk vdisk=base version=1 hash="));
  assert_int_equal (strlen (strstr (d, "hash=") + 5), 64);
  free (d);
  df_session_close (a);
  assert_true (figures_of ("dev/pc1@s1", &f));
  assert_int_equal (f.connections, 1);
  df_session_close (b);
  /* Parked: lingering, its file closed and kept. */
  assert_true (figures_of ("dev/pc1@s1", &f));
  assert_int_equal (f.state, DF_SESSION_LINGERING);
  assert_true (exists ("pc1/sessions/s1.layer"));
  /* Resumed. */
  a = open_ok ("pc1", "s1");
  assert_int_equal (get (a, 8192), 'A');
  df_session_close (a);
  df_session_close (NULL);
}

struct opener {
  const char *device, *name;
  struct df_session *s;
  int err;
  char msg[256];
  bool done;
};

static void *
opener_main (void *opaque)
{
  struct opener *o = opaque;

  o->s = df_session_open (set, o->device, o->name, NULL);
  o->err = o->s ? 0 : errno;
  snprintf (o->msg, sizeof o->msg, "%s", df_error_get ());
  __atomic_store_n (&o->done, true, __ATOMIC_RELEASE);
  return NULL;
}

static bool
done (struct opener *o)
{
  return __atomic_load_n (&o->done, __ATOMIC_ACQUIRE);
}

/* Waits (at most 60 s) until n openers hold the listed DEVICE@NAME: the
 * first one, and those waiting for it.
 */
static void
wait_openers (const char *device, const char *name, unsigned n)
{
  unsigned refs = 0, i;

  for (i = 0; i < 60000 && refs < n; i++) {
    struct df_session *s;

    if (i > 0)
      usleep (1000);
    pthread_mutex_lock (&set->lock);
    for (s = set->list; s; s = s->next)
      if (strcmp (s->device, device) == 0 && strcmp (s->name, name) == 0)
        refs = s->refs;
    pthread_mutex_unlock (&set->lock);
  }
  assert_int_equal (refs, n);
}

static void
test_opening_waits_only_for_itself (void **state)
{
  struct opener first = { .device = "pc1", .name = "slow" };
  struct opener second = { .device = "pc1", .name = "slow" };
  struct opener other = { .device = "pc2", .name = "fast" };
  pthread_t t1, t2, t3;

  (void) state;
  hold ("pc1");
  pthread_create (&t1, NULL, opener_main, &first);
  wait_held ();
  pthread_create (&t2, NULL, opener_main, &second);
  /* Somebody else's session opens while pc1@slow is held... */
  pthread_create (&t3, NULL, opener_main, &other);
  pthread_join (t3, NULL);
  assert_non_null (other.s);
  assert_int_equal (nsessions (), 1);     /* an opening one is not listed */
  /* ...and the second opener of pc1@slow waits for the first. */
  wait_openers ("pc1", "slow", 2);
  assert_false (done (&second));
  assert_false (done (&first));
  release ();
  pthread_join (t1, NULL);
  pthread_join (t2, NULL);
  assert_non_null (first.s);
  assert_ptr_equal (first.s, second.s);
  assert_int_equal (nsessions (), 2);
  df_session_close (first.s);
  df_session_close (second.s);
  df_session_close (other.s);
}

static void
test_failed_open_reaches_waiters (void **state)
{
  struct opener first = { .device = "ghost", .name = "x" };
  struct opener second = { .device = "ghost", .name = "x" };
  pthread_t t1, t2;
  unsigned before;

  (void) state;
  pthread_mutex_lock (&hold_lock);
  before = frees;
  pthread_mutex_unlock (&hold_lock);
  hold ("ghost");
  pthread_create (&t1, NULL, opener_main, &first);
  wait_held ();
  pthread_create (&t2, NULL, opener_main, &second);
  wait_openers ("ghost", "x", 2);
  release ();
  pthread_join (t1, NULL);
  pthread_join (t2, NULL);
  assert_null (first.s);
  assert_null (second.s);
  assert_int_equal (first.err, ENOENT);
  assert_int_equal (second.err, ENOENT);
  assert_non_null (strstr (first.msg, "\"nosuch\" is not in any store"));
  assert_string_equal (first.msg, second.msg);
  /* The failed session is gone, its counters freed. */
  pthread_mutex_lock (&hold_lock);
  assert_int_equal (frees, before + 1);
  pthread_mutex_unlock (&hold_lock);
  assert_int_equal (nsessions (), 0);
}

static void
test_errors (void **state)
{
  static const char *const bad[] = {
    "", ".", "..", "../pc1", "pc1/x", "pc1@x", "a b", "x\n",
    "12345678901234567890123456789012345678901234567890123456789012345",
  };
  size_t i;

  (void) state;
  for (i = 0; i < sizeof bad / sizeof bad[0]; i++) {
    assert_null (df_session_open (set, bad[i], "s", NULL));
    assert_int_equal (errno, EINVAL);
    assert_null (df_session_open (set, "pc1", bad[i], NULL));
    assert_int_equal (errno, EINVAL);
    assert_error_contains ("session name");
  }
  assert_null (df_session_open (set, "nobody", "s", NULL));
  assert_int_equal (errno, ENOENT);
  assert_error_contains ("nobody");
  assert_int_equal (nsessions (), 0);
}

static void
test_supersede (void **state)
{
  struct df_session *s;

  (void) state;
  s = open_ok ("pc1", "a");
  put (s, 0, 'a');
  df_session_close (s);
  assert_true (exists ("pc1/sessions/a.layer"));
  /* A tool's session "0" leaves the boot session alone. */
  s = open_ok ("pc1", "0");
  df_session_close (s);
  assert_true (exists ("pc1/sessions/a.layer"));
  s = open_ok ("pc1", "a");
  assert_int_equal (get (s, 0), 'a');
  df_session_close (s);
  /* A new boot session discards it, and its file. */
  s = open_ok ("pc1", "b");
  assert_false (exists ("pc1/sessions/a.layer"));
  df_session_close (s);
  s = open_ok ("pc1", "a");
  assert_int_not_equal (get (s, 0), 'a');
  df_session_close (s);
}

static void
test_superseded_while_open (void **state)
{
  struct df_session *a, *b;

  (void) state;
  a = open_ok ("pc1", "a");
  put (a, 0, 'a');
  b = open_ok ("pc1", "b");
  /* a's user goes on with its data until it leaves. */
  assert_int_equal (get (a, 0), 'a');
  assert_true (exists ("pc1/sessions/a.layer"));
  df_session_close (a);
  assert_false (exists ("pc1/sessions/a.layer"));
  df_session_close (b);
}

/* A session whose open was slow finishes after a newer one of the same
 * device (the device rebooted meanwhile): the newer one stays the
 * device's, the older one ends with its users.
 */
static void
test_slow_open_superseded (void **state)
{
  struct opener old = { .device = "pc1", .name = "old" };
  struct df_session *fresh;
  pthread_t t;

  (void) state;
  hold ("pc1");
  snprintf (held_session, sizeof held_session, "old");
  pthread_create (&t, NULL, opener_main, &old);
  wait_held ();
  fresh = open_ok ("pc1", "new");
  put (fresh, 0, 'n');
  release ();
  pthread_join (t, NULL);
  assert_non_null (old.s);
  df_session_close (old.s);
  assert_false (exists ("pc1/sessions/old.layer"));
  assert_int_equal (get (fresh, 0), 'n');
  df_session_close (fresh);
  assert_true (exists ("pc1/sessions/new.layer"));
}

static void
test_linger_and_expiry (void **state)
{
  struct df_session *s;
  unsigned i;

  (void) state;
  free_set ();
  new_set (1);
  assert_int_equal (df_sessions_start (set), 0);
  s = open_ok ("pc2", "r");       /* ram: lingers in memory */
  put (s, 0, 'r');
  df_session_close (s);
  s = open_ok ("pc2", "r");
  assert_int_equal (get (s, 0), 'r');
  df_session_close (s);
  s = open_ok ("pc1", "d");
  put (s, 0, 'd');
  df_session_close (s);
  /* A session being ended is no longer counted, but its file goes
   * only as it ends: wait for both.
   */
  for (i = 0; i < 100 && (nsessions () > 0 ||
                           exists ("pc1/sessions/d.layer")); i++)
    usleep (100000);
  assert_int_equal (nsessions (), 0);
  assert_false (exists ("pc1/sessions/d.layer"));
  assert_true (logged ("session pc2@r expired") >= 1);
  s = open_ok ("pc2", "r");
  assert_int_not_equal (get (s, 0), 'r');
  df_session_close (s);
}

static void
test_resume_on_another_server (void **state)
{
  struct df_session *s;
  char old[1024], now[1024];

  (void) state;
  s = open_ok ("pc1", "m");
  put (s, 4096, 'm');
  df_session_close (s);
  /* The server stops: the parked cache stays on disk. */
  free_set ();
  new_set (3600);
  s = open_ok ("pc1", "m");
  assert_int_equal (get (s, 4096), 'm');
  df_session_close (s);
  /* A session cache where an older layout kept it is adopted. */
  free_set ();
  snprintf (now, sizeof now, "%s/store/caches/pc1/sessions/m.layer", farm);
  snprintf (old, sizeof old, "%s/store/caches/pc1/m.layer", farm);
  assert_int_equal (rename (now, old), 0);
  new_set (3600);
  s = open_ok ("pc1", "m");
  assert_int_equal (get (s, 4096), 'm');
  assert_true (exists ("pc1/sessions/m.layer"));
  assert_false (exists ("pc1/m.layer"));
  df_session_close (s);
}

/* A parked session whose file went (an operator, another server's new
 * session of the device) says so instead of resuming empty.
 */
static void
test_cache_file_gone (void **state)
{
  struct df_session *s;
  char path[1024];

  (void) state;
  s = open_ok ("pc1", "g");
  put (s, 0, 'g');
  df_session_close (s);
  snprintf (path, sizeof path, "%s/store/caches/pc1/sessions/g.layer", farm);
  assert_int_equal (unlink (path), 0);
  assert_null (df_session_open (set, "pc1", "g", NULL));
  assert_int_equal (errno, ESTALE);
  assert_error_contains ("is gone");
}

/* A new session sweeps the device's other sessions' files while one of
 * them is being opened again (here: resumed after a restart): the
 * opener must not find the file locked by the sweep's check, but wait
 * for the sweep.
 */
static void
test_open_during_sweep (void **state)
{
  struct opener sweeper = { .device = "pc1", .name = "new" };
  struct df_session *s;
  pthread_t t;
  unsigned i;

  (void) state;
  s = open_ok ("pc1", "old");
  put (s, 0, 'o');
  df_session_close (s);
  free_set ();                  /* a restart: the file stays, unlisted */
  new_set (3600);
  assert_true (exists ("pc1/sessions/old.layer"));

  __atomic_store_n (&widen_on, true, __ATOMIC_RELEASE);
  pthread_create (&t, NULL, opener_main, &sweeper);
  for (i = 0; i < 60000 && !__atomic_load_n (&widened, __ATOMIC_ACQUIRE); i++)
    usleep (1000);
  /* The sweep holds old.layer's lock now. */
  assert_true (__atomic_load_n (&widened, __ATOMIC_ACQUIRE));
  s = open_ok ("pc1", "old");
  __atomic_store_n (&widen_on, false, __ATOMIC_RELEASE);
  pthread_join (t, NULL);
  assert_non_null (sweeper.s);
  /* Superseded by "new": it started afresh. */
  assert_int_not_equal (get (s, 0), 'o');
  df_session_close (s);
  df_session_close (sweeper.s);
}

/* Sessions named like the persistent cache never reach it, and are
 * cleaned up like any other.
 */
static void
test_persistent_names (void **state)
{
  static const char *const names[] = {
    "persistent", "persistent.layer", "persistent2", "sessions", "-", "_",
    ".persistent", "PERSISTENT",
  };
  struct df_session *s;
  size_t i;

  (void) state;
  s = open_ok ("pc3", "boot1");
  put (s, 0, 'P');
  df_session_close (s);
  assert_true (exists ("pc3/persistent.layer"));

  test_farm_device (farm, "pc3", "base", "disk", "production");
  for (i = 0; i < sizeof names / sizeof names[0]; i++) {
    char rel[128];
    s = open_ok ("pc3", names[i]);
    assert_int_not_equal (get (s, 0), 'P');
    put (s, 0, 'a' + i);
    snprintf (rel, sizeof rel, "pc3/sessions/%s.layer", names[i]);
    assert_true (exists (rel));
    df_session_close (s);
  }
  /* Each new session superseded the one before; only the last stays. */
  assert_false (exists ("pc3/sessions/persistent.layer"));
  assert_false (exists ("pc3/sessions/persistent2.layer"));
  assert_true (exists ("pc3/sessions/PERSISTENT.layer"));
  s = open_ok ("pc3", "final");
  df_session_close (s);
  assert_false (exists ("pc3/sessions/PERSISTENT.layer"));

  /* Back to persistent: the device's cache is still there. */
  test_farm_device (farm, "pc3", "base", "persistent", "production");
  s = open_ok ("pc3", "persistent");
  assert_int_equal (get (s, 0), 'P');
  df_session_close (s);
}

/* The device boots a new version: its persistent cache, made on the old
 * one, is kept aside (a second time beside the first, not over it) and
 * a new one starts.
 */
static void
test_persistent_new_version (void **state)
{
  char *store = test_path (farm, "store");
  struct df_session *s;
  unsigned num, round;

  (void) state;
  for (round = 0; round < 2; round++) {
    s = open_ok ("pc3", "boot");
    put (s, 0, 'A' + round);
    df_session_close (s);
    assert_int_equal (df_version_new (store, "base", &num), 0);
    assert_int_equal (df_version_promote (store, "base", num,
                                          DF_STATE_PRODUCTION), 0);
    s = open_ok ("pc3", "boot2");
    assert_int_not_equal (get (s, 0), 'A' + round);
    df_session_close (s);
  }
  assert_true (exists ("pc3/persistent.layer.old"));
  assert_true (exists ("pc3/persistent.layer.old.1"));
  free (store);
}

static void
test_cache_full (void **state)
{
  struct df_session *s;
  struct df_session_figures f;
  char buf[4096] = { 1 };

  (void) state;
  test_farm_device (farm, "small", "base", "ram:8K", "production");
  s = open_ok ("small", "x");
  put (s, 0, 'x');
  put (s, 4096, 'y');
  assert_int_equal (df_bdev_pwrite (df_session_bdev (s), buf, sizeof buf,
                                    8192, 0), -1);
  assert_int_equal (errno, ENOSPC);
  assert_int_equal (df_bdev_pwrite (df_session_bdev (s), buf, sizeof buf,
                                    12288, 0), -1);
  assert_int_equal (get (s, 0), 'x');
  assert_true (figures_of ("dev/small@x", &f));
  assert_int_equal (f.counters.cache_full, 2);
  assert_int_equal (f.counters.errors, 2);
  assert_int_equal (f.cache_limit, 8192);
  assert_int_equal (logged ("device small session x: write cache full"), 1);
  df_session_close (s);
}

static void
test_private (void **state)
{
  struct df_session *s;
  char *d;

  (void) state;
  test_farm_device (farm, "editor", "base", "ram", "maintenance");
  /* No maintenance version yet: the maintenance device boots version 1
   * like a production one would, through its cache.
   */
  s = open_ok ("editor", "e");
  df_session_close (s);
  {
    char *store = test_path (farm, "store");
    unsigned num;
    assert_int_equal (df_version_new (store, "base", &num), 0);
    assert_int_equal (num, 2);
    free (store);
  }
  s = open_ok ("editor", "e2");
  assert_false (df_session_readonly (s));
  put (s, 0, 'E');
  d = df_session_describe (s);
  assert_non_null (strstr (d, "version 2, write cache none vdisk=base "
                           "version=2"));
  assert_null (strstr (d, "hash="));
  free (d);
  /* One writer: another device of that type is refused. */
  test_farm_device (farm, "editor2", "base", "ram", "maintenance");
  assert_null (df_session_open (set, "editor2", "e", NULL));
  assert_int_equal (errno, EBUSY);
  assert_error_contains ("in use by another device");
  df_session_close (s);
  s = open_ok ("editor2", "e");
  assert_int_equal (get (s, 0), 'E');
  df_session_close (s);
}

static void
test_device_mode (void **state)
{
  struct df_session *s;
  char buf[4096] = { 0 };

  (void) state;
  test_farm_device (farm, "ro", "base", "device", "production");
  s = open_ok ("ro", "x");
  assert_true (df_session_readonly (s));
  assert_true (df_session_bdev (s)->flags & DF_BDEV_RDONLY);
  assert_int_equal (df_bdev_pread (df_session_bdev (s), buf, sizeof buf, 0), 0);
  df_session_close (s);
}

/* Many users opening, using and closing the same sessions at once, with
 * linger 0: joins, parks, resumes, expiries and supersedes interleave.
 * Each user checks what it wrote while it holds the session.
 */
struct churner {
  unsigned n;
  unsigned failures;
};

static void *
churn_main (void *opaque)
{
  struct churner *ch = opaque;
  uint64_t seed = ch->n + 1;
  char buf[4096], back[4096];
  unsigned i;

  for (i = 0; i < 40; i++) {
    const char *name = test_rand (&seed) % 8 == 0 ? "c2" : "c1";
    struct df_session *s = df_session_open (set, "pc1", name, NULL);
    uint64_t off = (uint64_t) ch->n * 4096;

    if (s == NULL) {
      fprintf (stderr, "churn %u: open %s: %s\n", ch->n, name, df_error_get ());
      ch->failures++;
      continue;
    }
    memset (buf, 'a' + (i + ch->n) % 26, sizeof buf);
    if (df_bdev_pwrite (df_session_bdev (s), buf, sizeof buf, off, 0) == -1 ||
        df_bdev_pread (df_session_bdev (s), back, sizeof back, off) == -1 ||
        memcmp (buf, back, sizeof buf) != 0) {
      fprintf (stderr, "churn %u: %s: %s\n", ch->n, name, df_error_get ());
      ch->failures++;
    }
    df_session_close (s);
  }
  return NULL;
}

static void
test_churn (void **state)
{
  struct churner ch[8];
  pthread_t t[8];
  unsigned i, n;

  (void) state;
  free_set ();
  new_set (0);
  assert_int_equal (df_sessions_start (set), 0);
  for (i = 0; i < 8; i++) {
    ch[i] = (struct churner) { .n = i };
    pthread_create (&t[i], NULL, churn_main, &ch[i]);
  }
  for (i = 0; i < 8; i++) {
    pthread_join (t[i], NULL);
    assert_int_equal (ch[i].failures, 0);
  }
  /* All linger 0: the reaper ends them within its next rounds. */
  for (n = 0; n < 300 && nsessions () > 0; n++)
    usleep (100000);
  assert_int_equal (nsessions (), 0);
}

int
main (void)
{
  const struct CMUnitTest tests[] = {
    cmocka_unit_test_setup_teardown (test_open_join_close, setup, teardown),
    cmocka_unit_test_setup_teardown (test_opening_waits_only_for_itself,
                                     setup, teardown),
    cmocka_unit_test_setup_teardown (test_failed_open_reaches_waiters, setup,
                                     teardown),
    cmocka_unit_test_setup_teardown (test_open_during_sweep, setup, teardown),
    cmocka_unit_test_setup_teardown (test_errors, setup, teardown),
    cmocka_unit_test_setup_teardown (test_supersede, setup, teardown),
    cmocka_unit_test_setup_teardown (test_superseded_while_open, setup,
                                     teardown),
    cmocka_unit_test_setup_teardown (test_slow_open_superseded, setup,
                                     teardown),
    cmocka_unit_test_setup_teardown (test_linger_and_expiry, setup, teardown),
    cmocka_unit_test_setup_teardown (test_resume_on_another_server, setup,
                                     teardown),
    cmocka_unit_test_setup_teardown (test_cache_file_gone, setup, teardown),
    cmocka_unit_test_setup_teardown (test_persistent_names, setup, teardown),
    cmocka_unit_test_setup_teardown (test_persistent_new_version, setup,
                                     teardown),
    cmocka_unit_test_setup_teardown (test_cache_full, setup, teardown),
    cmocka_unit_test_setup_teardown (test_private, setup, teardown),
    cmocka_unit_test_setup_teardown (test_device_mode, setup, teardown),
    cmocka_unit_test_setup_teardown (test_churn, setup, teardown),
  };

  return cmocka_run_group_tests (tests, NULL, NULL);
}
