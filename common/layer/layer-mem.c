/* diskfarm — a sealed layer's data straight from the page cache, for a
 * front end that sends from memory without copying it first (the FUSE
 * view replies with writev from here: one copy instead of two).
 *
 * The file is mapped read-only on first use.  Memory is handed out only
 * when mincore says all of it is in the page cache: the sender's copy
 * then does not fault on I/O, whose error could not be answered as one
 * request's EIO.  Data that is not cached is read with pread instead,
 * which caches it for next time.
 */
#include <config.h>

#include <errno.h>
#include <inttypes.h>
#include <sys/mman.h>
#include <unistd.h>

#include "error.h"
#include "layer/layer-int.h"

#define MEM_UNTRIED 0
#define MEM_MAPPED 1
#define MEM_FAILED 2

/* Maps the file once (mmap is no file I/O: fine under the lock);
 * later calls see the mapping or the failure without the lock.
 */
static const char *
layer_mem (struct df_layer *l)
{
  int state = __atomic_load_n (&l->mem_state, __ATOMIC_ACQUIRE);

  if (state == MEM_UNTRIED) {
    pthread_mutex_lock (&l->map_lock);
    if (l->mem_state == MEM_UNTRIED) {
      size_t len = l->info.data_offset + l->info.size;
      void *p = mmap (NULL, len, PROT_READ, MAP_SHARED, l->fd, 0);

      if (p != MAP_FAILED) {
        l->mem = p;
        l->mem_len = len;
      }
      __atomic_store_n (&l->mem_state, p == MAP_FAILED ? MEM_FAILED
                        : MEM_MAPPED, __ATOMIC_RELEASE);
    }
    state = l->mem_state;
    pthread_mutex_unlock (&l->map_lock);
  }
  return state == MEM_MAPPED ? l->mem : NULL;
}

/* True if every page of [p, p+len) is in the page cache. */
static bool
all_cached (const char *p, size_t len)
{
  const size_t page = sysconf (_SC_PAGESIZE);
  uintptr_t start = (uintptr_t) p & ~(page - 1);
  uintptr_t end = ((uintptr_t) p + len + page - 1) & ~(page - 1);
  unsigned char vec[256];

  while (start < end) {
    size_t n = (end - start) / page < sizeof vec ? (end - start) / page
                                                  : sizeof vec;
    size_t i;

    if (mincore ((void *) start, n * page, vec) == -1)
      return false;
    for (i = 0; i < n; i++)
      if (!(vec[i] & 1))
        return false;
    start += n * page;
  }
  return true;
}

int
df_layer_peek (const struct df_layer *cl, uint64_t offset, size_t len,
               const void **data)
{
  struct df_layer *l = (struct df_layer *) cl;
  const char *mem;

  *data = NULL;
  if (!l->info.sealed || l->writable || len == 0 ||
      offset + len > l->info.size)
    return 0;
  mem = layer_mem (l);
  if (mem && all_cached (mem + l->info.data_offset + offset, len))
    *data = mem + l->info.data_offset + offset;
  return 0;
}

void
layer_mem_unmap (struct df_layer *l)
{
  if (__atomic_load_n (&l->mem_state, __ATOMIC_ACQUIRE) == MEM_MAPPED)
    munmap (l->mem, l->mem_len);
  l->mem = NULL;
  l->mem_state = MEM_UNTRIED;
}
