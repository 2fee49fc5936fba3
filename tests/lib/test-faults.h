/* diskfarm — failure injection for cmocka unit tests.
 *
 * The test executable is linked with -Wl,--wrap=NAME for the calls below
 * (common/meson.build, unit_test_wraps): calls from the library then go
 * through __wrap_NAME, which fails when the test armed a fault, and
 * otherwise calls the real function.  Include this header in one test
 * file only.
 *
 *   fault_arm (&fault_pwrite, 0, 1, EIO, false);   the next pwrite of
 *                                                  this thread fails
 *   fault_arm (&fault_alloc, 2, -1, ENOMEM, true); every allocation of
 *                                                  any thread after two
 *   fault_disarm_all ();
 */
#ifndef DISKFARM_TEST_FAULTS_H
#define DISKFARM_TEST_FAULTS_H

#include <errno.h>
#include <pthread.h>
#include <stdbool.h>
#include <stddef.h>
#include <sys/mman.h>
#include <sys/types.h>

struct fault {
  int after;                    /* calls let through first */
  int times;                    /* failures left; -1 forever; 0 disarmed */
  int err;
  bool any_thread;              /* else only the thread that armed it */
  pthread_t thread;
  unsigned hits;                /* failures produced */
};

static pthread_mutex_t fault_lock = PTHREAD_MUTEX_INITIALIZER;
static struct fault fault_alloc;        /* malloc, calloc, realloc, mmap */
static struct fault fault_pread;
static struct fault fault_pwrite;
static struct fault fault_sync;         /* fsync, fdatasync */

static inline void
fault_arm (struct fault *f, int after, int times, int err, bool any_thread)
{
  pthread_mutex_lock (&fault_lock);
  *f = (struct fault) { after, times, err, any_thread, pthread_self (), 0 };
  pthread_mutex_unlock (&fault_lock);
}

static inline unsigned
fault_hits (struct fault *f)
{
  unsigned n;

  pthread_mutex_lock (&fault_lock);
  n = f->hits;
  pthread_mutex_unlock (&fault_lock);
  return n;
}

static inline void
fault_disarm_all (void)
{
  fault_arm (&fault_alloc, 0, 0, 0, false);
  fault_arm (&fault_pread, 0, 0, 0, false);
  fault_arm (&fault_pwrite, 0, 0, 0, false);
  fault_arm (&fault_sync, 0, 0, 0, false);
}

/* True (errno set) if this call is to fail. */
static inline bool
fault_now (struct fault *f)
{
  bool fail = false;
  int err = 0;

  pthread_mutex_lock (&fault_lock);
  if (f->times != 0 && (f->any_thread || pthread_equal (f->thread, pthread_self ()))) {
    if (f->after > 0)
      f->after--;
    else {
      fail = true;
      err = f->err;
      f->hits++;
      if (f->times > 0)
        f->times--;
    }
  }
  pthread_mutex_unlock (&fault_lock);
  if (fail)
    errno = err;
  return fail;
}

void *__real_malloc (size_t n);
void *__real_calloc (size_t n, size_t size);
void *__real_realloc (void *p, size_t n);
void *__real_mmap64 (void *addr, size_t len, int prot, int flags, int fd,
                     off_t off);
ssize_t __real_pread64 (int fd, void *buf, size_t n, off_t off);
ssize_t __real_pwrite64 (int fd, const void *buf, size_t n, off_t off);
int __real_fsync (int fd);
int __real_fdatasync (int fd);
void *__wrap_malloc (size_t n);
void *__wrap_calloc (size_t n, size_t size);
void *__wrap_realloc (void *p, size_t n);
void *__wrap_mmap64 (void *addr, size_t len, int prot, int flags, int fd,
                     off_t off);
ssize_t __wrap_pread64 (int fd, void *buf, size_t n, off_t off);
ssize_t __wrap_pwrite64 (int fd, const void *buf, size_t n, off_t off);
int __wrap_fsync (int fd);
int __wrap_fdatasync (int fd);

void *
__wrap_malloc (size_t n)
{
  return fault_now (&fault_alloc) ? NULL : __real_malloc (n);
}

void *
__wrap_calloc (size_t n, size_t size)
{
  return fault_now (&fault_alloc) ? NULL : __real_calloc (n, size);
}

void *
__wrap_realloc (void *p, size_t n)
{
  return fault_now (&fault_alloc) ? NULL : __real_realloc (p, n);
}

void *
__wrap_mmap64 (void *addr, size_t len, int prot, int flags, int fd, off_t off)
{
  if (fault_now (&fault_alloc))
    return MAP_FAILED;
  return __real_mmap64 (addr, len, prot, flags, fd, off);
}

ssize_t
__wrap_pread64 (int fd, void *buf, size_t n, off_t off)
{
  return fault_now (&fault_pread) ? -1 : __real_pread64 (fd, buf, n, off);
}

/* A gate that holds every pwrite of other threads while it is closed:
 * fault_gate_close (); ... fault_gate_wait (1) (one is held) ...
 * fault_gate_open ().
 */
static pthread_cond_t fault_gate_cond = PTHREAD_COND_INITIALIZER;
static bool fault_gate_closed;
static pthread_t fault_gate_owner;
static unsigned fault_gate_held;

static inline void
fault_gate_close (void)
{
  pthread_mutex_lock (&fault_lock);
  fault_gate_closed = true;
  fault_gate_owner = pthread_self ();
  pthread_mutex_unlock (&fault_lock);
}

static inline void
fault_gate_wait (unsigned held)
{
  pthread_mutex_lock (&fault_lock);
  while (fault_gate_held < held)
    pthread_cond_wait (&fault_gate_cond, &fault_lock);
  pthread_mutex_unlock (&fault_lock);
}

static inline void
fault_gate_open (void)
{
  pthread_mutex_lock (&fault_lock);
  fault_gate_closed = false;
  pthread_cond_broadcast (&fault_gate_cond);
  pthread_mutex_unlock (&fault_lock);
}

static inline void
fault_gate_pass (void)
{
  pthread_mutex_lock (&fault_lock);
  if (fault_gate_closed && !pthread_equal (fault_gate_owner, pthread_self ())) {
    fault_gate_held++;
    pthread_cond_broadcast (&fault_gate_cond);
    while (fault_gate_closed)
      pthread_cond_wait (&fault_gate_cond, &fault_lock);
    fault_gate_held--;
  }
  pthread_mutex_unlock (&fault_lock);
}

ssize_t
__wrap_pwrite64 (int fd, const void *buf, size_t n, off_t off)
{
  fault_gate_pass ();
  return fault_now (&fault_pwrite) ? -1 : __real_pwrite64 (fd, buf, n, off);
}

/* Called after each fsync or fdatasync that worked (what a crash test
 * takes as durable), if set; and a count of them.
 */
static void (*fault_synced) (int fd);
static unsigned fault_syncs;

static int
fault_sync_done (int fd, int r)
{
  if (r == 0) {
    __atomic_add_fetch (&fault_syncs, 1, __ATOMIC_RELAXED);
    if (fault_synced)
      fault_synced (fd);
  }
  return r;
}

int
__wrap_fsync (int fd)
{
  return fault_now (&fault_sync) ? -1 : fault_sync_done (fd, __real_fsync (fd));
}

int
__wrap_fdatasync (int fd)
{
  return fault_now (&fault_sync) ? -1
    : fault_sync_done (fd, __real_fdatasync (fd));
}

#endif
