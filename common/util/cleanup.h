/* diskfarm — scoped cleanup helpers.
 *
 * CLEANUP_FREE char *p = ...;   freed when p leaves scope.
 * CLEANUP_CLOSE int fd = ...;   closed when fd leaves scope (if >= 0).
 * Hand ownership away with TAKE_PTR(p) / TAKE_FD(fd).
 */
#ifndef DISKFARM_CLEANUP_H
#define DISKFARM_CLEANUP_H

#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>
#include <pthread.h>

static inline void
cleanup_free (void *ptr)
{
  free (*(void **) ptr);
}
#define CLEANUP_FREE __attribute__ ((cleanup (cleanup_free)))

static inline void
cleanup_close (int *fd)
{
  if (*fd >= 0)
    close (*fd);
}
#define CLEANUP_CLOSE __attribute__ ((cleanup (cleanup_close)))

static inline void
cleanup_fclose (FILE **fp)
{
  if (*fp)
    fclose (*fp);
}
#define CLEANUP_FCLOSE __attribute__ ((cleanup (cleanup_fclose)))

static inline void
cleanup_unlock (pthread_mutex_t **m)
{
  pthread_mutex_unlock (*m);
}
#define DF_CONCAT_(a, b) a##b
#define DF_CONCAT(a, b) DF_CONCAT_ (a, b)
/* Holds the mutex until the end of the enclosing scope. */
#define SCOPED_LOCK(mutex)                                              \
  __attribute__ ((cleanup (cleanup_unlock), unused))                    \
  pthread_mutex_t *DF_CONCAT (scoped_lock_, __LINE__) = (mutex);        \
  pthread_mutex_lock (DF_CONCAT (scoped_lock_, __LINE__))

#define TAKE_PTR(p) ({ __typeof__ (p) take_ptr_ = (p); (p) = NULL; take_ptr_; })
#define TAKE_FD(fd) ({ int take_fd_ = (fd); (fd) = -1; take_fd_; })

#endif
