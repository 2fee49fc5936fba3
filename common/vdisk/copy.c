/* diskfarm — sparse copy between images (see copy.h). */
#include <config.h>

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <jansson.h>
#include <libnbd.h>

#include "cleanup.h"
#include "error.h"
#include "run.h"
#include "util.h"
#include "layer/layer.h"
#include "vdisk/copy.h"

#define CHUNK (4 * 1024 * 1024)
#define EXTENT_QUERY (UINT32_C (1) << 30)

/* ---- sources ---- */

static int
fd_next_data (struct copy_src *s, uint64_t off, uint64_t *start, uint64_t *end)
{
  off_t d = lseek (s->fd, off, SEEK_DATA), h;

  if (d == -1 && errno == ENXIO) {
    *start = s->size;
    return 0;
  }
  if (d == -1) {
    /* No SEEK_DATA on this file system: everything is data. */
    *start = off;
    *end = s->size;
    return 0;
  }
  h = lseek (s->fd, d, SEEK_HOLE);
  *start = d;
  *end = h == -1 || (uint64_t) h > s->size ? s->size : (uint64_t) h;
  return 0;
}

static int
fd_read (struct copy_src *s, void *buf, uint32_t len, uint64_t off)
{
  ssize_t r = df_pread_full (s->fd, buf, len, off);

  if (r == -1)
    return df_error_errno ("read at %" PRIu64, off);
  /* The file shrank: the rest reads as zeros. */
  memset ((char *) buf + r, 0, len - r);
  return 0;
}

void
copy_src_fd (struct copy_src *s, int fd, uint64_t size)
{
  memset (s, 0, sizeof *s);
  s->fd = fd;
  s->size = size;
  s->next_data = fd_next_data;
  s->read = fd_read;
}

struct nbd_extent_state {
  uint64_t off, start, end;
  bool found;
};

static int
nbd_extent_cb (void *opaque, const char *metacontext, uint64_t offset,
               uint32_t *entries, size_t nr, int *error)
{
  struct nbd_extent_state *st = opaque;
  size_t i;

  (void) error;
  if (strcmp (metacontext, LIBNBD_CONTEXT_BASE_ALLOCATION) != 0)
    return 0;
  for (i = 0; i + 1 < nr; i += 2) {
    uint64_t len = entries[i];
    bool zero = entries[i + 1] & LIBNBD_STATE_ZERO;
    if (!zero && !st->found) {
      st->found = true;
      st->start = offset;
      st->end = offset + len;
    }
    else if (!zero && st->found && st->end == offset)
      st->end = offset + len;
    else if (st->found)
      break;
    offset += len;
  }
  st->off = offset;
  return 0;
}

static int
nbd_next_data (struct copy_src *s, uint64_t off, uint64_t *start, uint64_t *end)
{
  if (!nbd_can_meta_context (s->nbd, LIBNBD_CONTEXT_BASE_ALLOCATION)) {
    *start = off;
    *end = s->size;
    return 0;
  }
  while (off < s->size) {
    struct nbd_extent_state st = { .off = off };
    uint64_t count = s->size - off < EXTENT_QUERY ? s->size - off : EXTENT_QUERY;

    if (nbd_block_status (s->nbd, count, off,
                          (nbd_extent_callback) { .callback = nbd_extent_cb,
                                                  .user_data = &st }, 0) == -1)
      return df_error (EIO, "block status: %s", nbd_get_error ());
    if (st.found) {
      *start = st.start;
      *end = st.end > s->size ? s->size : st.end;
      return 0;
    }
    if (st.off <= off)
      return df_error (EIO, "block status made no progress at %" PRIu64, off);
    off = st.off;
  }
  *start = s->size;
  return 0;
}

static int
nbd_read (struct copy_src *s, void *buf, uint32_t len, uint64_t off)
{
  if (nbd_pread (s->nbd, buf, len, off, 0) == -1)
    return df_error (EIO, "read at %" PRIu64 ": %s", off, nbd_get_error ());
  return 0;
}

void
copy_src_nbd (struct copy_src *s, struct nbd_handle *nbd, uint64_t size)
{
  memset (s, 0, sizeof *s);
  s->fd = -1;
  s->nbd = nbd;
  s->size = size;
  s->next_data = nbd_next_data;
  s->read = nbd_read;
}

struct bdev_extent_state {
  uint64_t start, end;
  bool found, done;
};

static int
bdev_extent_cb (void *opaque, uint64_t offset, uint64_t length, uint32_t type)
{
  struct bdev_extent_state *st = opaque;

  if (st->done)
    return 0;
  if (!(type & DF_EXTENT_ZERO)) {
    if (!st->found) {
      st->found = true;
      st->start = offset;
    }
    st->end = offset + length;
  }
  else if (st->found)
    st->done = true;
  else
    st->end = offset + length;
  return 0;
}

static int
bdev_next_data (struct copy_src *s, uint64_t off, uint64_t *start,
                uint64_t *end)
{
  while (off < s->size) {
    struct bdev_extent_state st = { 0 };
    uint64_t count = s->size - off < EXTENT_QUERY ? s->size - off : EXTENT_QUERY;

    if (df_bdev_extents (s->bdev, count, off, bdev_extent_cb, &st) == -1)
      return -1;
    if (st.found) {
      *start = st.start;
      *end = st.end;
      return 0;
    }
    if (st.end <= off)
      return df_error (EIO, "extents made no progress at %" PRIu64, off);
    off = st.end;
  }
  *start = s->size;
  return 0;
}

static int
bdev_read (struct copy_src *s, void *buf, uint32_t len, uint64_t off)
{
  return df_bdev_pread (s->bdev, buf, len, off);
}

void
copy_src_bdev (struct copy_src *s, struct df_bdev *bdev)
{
  memset (s, 0, sizeof *s);
  s->fd = -1;
  s->bdev = bdev;
  s->size = bdev->size;
  s->next_data = bdev_next_data;
  s->read = bdev_read;
}

/* ---- destinations ---- */

static int
fd_write (struct copy_dst *d, const void *buf, uint32_t len, uint64_t off)
{
  if (df_pwrite_full (d->fd, buf, len, off) == -1)
    return df_error_errno ("write at %" PRIu64, off);
  return 0;
}

void
copy_dst_fd (struct copy_dst *d, int fd)
{
  memset (d, 0, sizeof *d);
  d->granularity = 4096;
  d->fd = fd;
  d->write = fd_write;
}

static int
nbd_write (struct copy_dst *d, const void *buf, uint32_t len, uint64_t off)
{
  if (nbd_pwrite (d->nbd, buf, len, off, 0) == -1)
    return df_error (EIO, "write at %" PRIu64 ": %s", off, nbd_get_error ());
  return 0;
}

void
copy_dst_nbd (struct copy_dst *d, struct nbd_handle *nbd)
{
  memset (d, 0, sizeof *d);
  d->granularity = 4096;
  d->fd = -1;
  d->nbd = nbd;
  d->write = nbd_write;
}

static int
layer_write (struct copy_dst *d, const void *buf, uint32_t len, uint64_t off)
{
  uint32_t bs = df_layer_info (d->layer)->block_size;

  return df_layer_write_blocks (d->layer, buf, off / bs, (len + bs - 1) / bs);
}

void
copy_dst_layer (struct copy_dst *d, struct df_layer *layer)
{
  memset (d, 0, sizeof *d);
  d->granularity = df_layer_info (layer)->block_size;
  d->fd = -1;
  d->layer = layer;
  d->write = layer_write;
}

/* ---- the copy ---- */

/* Writes the non-zero granules of buf (len bytes at off). */
static int
write_nonzero (struct copy_dst *d, const char *buf, uint32_t len, uint64_t off)
{
  const uint32_t g = d->granularity;
  uint32_t i = 0;

  while (i < len) {
    uint32_t start, n;

    while (i < len && df_is_zero (buf + i, len - i < g ? len - i : g))
      i += g;
    if (i >= len)
      break;
    start = i;
    while (i < len && !df_is_zero (buf + i, len - i < g ? len - i : g))
      i += g;
    n = (i < len ? i : len) - start;
    if (d->write (d, buf + start, n, off + start) == -1)
      return -1;
  }
  return 0;
}

/* A copy hands out the source's data runs in chunks of at most CHUNK,
 * in ascending order, to one or several workers.
 */
struct copy_job {
  struct copy_src *s;
  struct copy_dst *d;
  df_progress_fn progress;
  void *opaque;
  pthread_mutex_t lock;
  uint64_t off;                 /* where the search for data goes on */
  uint64_t run, run_end;        /* what is left of the current run */
  bool failed;
  int err;
  char *msg;                    /* the first failure's message */
};

/* The next chunk: 1 and *start, *len; 0 when the copy is done (or has
 * failed); -1 on error.  Called with the lock held.
 */
static int
next_chunk (struct copy_job *job, uint64_t *start, uint32_t *len)
{
  const uint64_t g = job->d->granularity, size = job->s->size;

  if (job->failed)
    return 0;
  while (job->run >= job->run_end) {
    uint64_t a, b;

    if (job->off >= size)
      return 0;
    if (job->s->next_data (job->s, job->off, &a, &b) == -1)
      return -1;
    if (a >= size) {
      job->off = size;
      return 0;
    }
    /* Whole granules, so every write covers whole blocks. */
    a = a / g * g;
    if (a < job->off)
      a = job->off;
    b = df_round_up (b, g);
    if (b > size)
      b = size;
    job->run = a;
    job->run_end = job->off = b;
  }
  *start = job->run;
  *len = job->run_end - job->run < CHUNK ? job->run_end - job->run : CHUNK;
  job->run += *len;
  return 1;
}

static void
job_fail (struct copy_job *job)
{
  if (!job->failed) {
    job->failed = true;
    job->err = errno ? errno : EIO;
    job->msg = strdup (df_error_get ());
  }
}

static void *
copy_worker (void *opaque)
{
  struct copy_job *job = opaque;
  CLEANUP_FREE char *buf = NULL;
  uint64_t start;
  uint32_t len;
  int r;

  if (posix_memalign ((void **) &buf, 4096, CHUNK) != 0) {
    SCOPED_LOCK (&job->lock);
    df_error (ENOMEM, "copy buffer");
    job_fail (job);
    return NULL;
  }
  for (;;) {
    pthread_mutex_lock (&job->lock);
    r = next_chunk (job, &start, &len);
    if (r == -1)
      job_fail (job);
    pthread_mutex_unlock (&job->lock);
    if (r != 1)
      return NULL;
    if (job->s->read (job->s, buf, len, start) == -1 ||
        write_nonzero (job->d, buf, len, start) == -1) {
      SCOPED_LOCK (&job->lock);
      job_fail (job);
      return NULL;
    }
    if (job->progress) {
      SCOPED_LOCK (&job->lock);
      job->progress (job->opaque, job->run, job->s->size);
    }
  }
}

int
copy_image (struct copy_src *s, struct copy_dst *d, df_progress_fn progress,
            void *opaque)
{
  struct copy_job job = { .s = s, .d = d, .progress = progress,
                          .opaque = opaque };
  int r = 0;

  pthread_mutex_init (&job.lock, NULL);
  /* Files take reads and writes at independent offsets from several
   * threads; one thread copying from the page cache is bound by memcpy.
   * A layer wants its blocks in order, an NBD handle serialises anyway.
   */
  if (s->nbd == NULL && d->fd >= 0)
    df_parallel (4, copy_worker, &job);
  else
    copy_worker (&job);
  pthread_mutex_destroy (&job.lock);
  if (job.failed) {
    r = df_error (job.err, "%s", job.msg ? job.msg : strerror (job.err));
    free (job.msg);
  }
  else if (progress)
    progress (opaque, s->size, s->size);
  return r;
}

/* ---- opening images ---- */

/* The format qemu-img sees, malloc'd. */
static char *
probe_format (const char *path)
{
  char *argv[] = { "qemu-img", "info", "--output=json", "--", (char *) path,
                   NULL };
  CLEANUP_FREE char *out = NULL;
  json_t *root, *fmt;
  json_error_t jerr;
  char *r = NULL;

  if (df_run (argv, &out) == -1)
    return NULL;
  root = json_loads (out, 0, &jerr);
  fmt = root ? json_object_get (root, "format") : NULL;
  if (json_is_string (fmt))
    r = strdup (json_string_value (fmt));
  else
    df_error (EINVAL, "%s: qemu-img info gave no format", path);
  json_decref (root);
  return r;
}

int
copy_src_open_image (struct copy_src *s, const char *path)
{
  CLEANUP_FREE char *fmt = NULL;
  struct nbd_handle *nbd;
  int64_t size;
  struct stat st;

  if (stat (path, &st) == -1)
    return df_error_errno ("%s", path);
  fmt = probe_format (path);
  if (fmt == NULL)
    return -1;
  if (strcmp (fmt, "raw") == 0 && S_ISREG (st.st_mode)) {
    int fd = open (path, O_RDONLY | O_CLOEXEC);
    if (fd == -1)
      return df_error_errno ("%s", path);
    copy_src_fd (s, fd, st.st_size);
    return 0;
  }

  nbd = nbd_create ();
  if (nbd == NULL)
    return df_error (ENOMEM, "%s", nbd_get_error ());
  {
    char *argv[] = { "qemu-nbd", "--read-only", "--format", fmt,
                     "--cache=writeback", "--", (char *) path, NULL };
    if (nbd_add_meta_context (nbd, LIBNBD_CONTEXT_BASE_ALLOCATION) == -1 ||
        nbd_connect_systemd_socket_activation (nbd, argv) == -1)
      goto nbd_fail;
  }
  size = nbd_get_size (nbd);
  if (size == -1)
    goto nbd_fail;
  copy_src_nbd (s, nbd, size);
  return 0;

 nbd_fail:
  df_error (EIO, "%s: qemu-nbd: %s", path, nbd_get_error ());
  nbd_close (nbd);
  return -1;
}

void
copy_src_close (struct copy_src *s)
{
  if (s->fd >= 0)
    close (s->fd);
  if (s->nbd) {
    nbd_shutdown (s->nbd, 0);
    nbd_close (s->nbd);
  }
  s->fd = -1;
  s->nbd = NULL;
}
