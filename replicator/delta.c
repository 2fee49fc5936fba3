/* diskfarm-replicator — signatures and patches with librsync (see
 * delta.h).
 */
#include <config.h>

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <librsync.h>

#include "cleanup.h"
#include "delta.h"
#include "error.h"
#include "io.h"
#include "layer/layer.h"
#include "util.h"

#define CHUNK (1024 * 1024)             /* reads and output flushes */
#define PAGE 4096
#define WRITEBACK (32 * 1024 * 1024)    /* start writeback this often */
#define SIG_HEADER 12                   /* magic, block and strong length */
#define SIG_MAX_THREADS 4
#define SIG_SPLIT_MIN (64 * 1024 * 1024) /* smaller bases sign in one go */

/* librsync logs to stderr by default; library code does not print, and
 * every failure here becomes a message of our own.
 */
static void
quiet (rs_loglevel level, char const *msg)
{
  (void) level;
  (void) msg;
}

static void
set_quiet (void)
{
  rs_trace_to (quiet);
}

static void
quiet_librsync (void)
{
  static pthread_once_t once = PTHREAD_ONCE_INIT;

  pthread_once (&once, set_quiet);
}

/* ---- signature ---- */

struct sig_out {
  char *buf;
  size_t len, cap;
};

static int
sig_drain (struct sig_out *o, const char *out, size_t n)
{
  if (o->len + n > o->cap) {
    size_t cap = o->cap ? o->cap : 64 * 1024;
    char *nb;
    while (cap < o->len + n)
      cap *= 2;
    if ((nb = realloc (o->buf, cap)) == NULL)
      return df_error_errno ("signature");
    o->buf = nb;
    o->cap = cap;
  }
  memcpy (o->buf + o->len, out, n);
  o->len += n;
  return 0;
}

/* Signs [off, end) of fd. */
static int
sig_run (rs_job_t *job, int fd, uint64_t off, uint64_t end, struct sig_out *o)
{
  CLEANUP_FREE char *in = malloc (CHUNK), *out = malloc (CHUNK);
  rs_buffers_t b = { 0 };
  rs_result res;

  if (in == NULL || out == NULL)
    return df_error_errno ("signature");
  do {
    if (b.avail_in == 0 && !b.eof_in) {
      ssize_t r = df_pread_full (fd, in, end - off < CHUNK ? end - off : CHUNK,
                                 off);
      if (r == -1)
        return df_error_errno ("read");
      off += r;
      b.next_in = in;
      b.avail_in = r;
      b.eof_in = off >= end || r == 0;
    }
    b.next_out = out;
    b.avail_out = CHUNK;
    res = rs_job_iter (job, &b);
    if (res != RS_DONE && res != RS_BLOCKED)
      return df_error (EIO, "librsync: %s", rs_strerror (res));
    if (sig_drain (o, out, CHUNK - b.avail_out) == -1)
      return -1;
  } while (res != RS_DONE);
  return 0;
}

/* One part of a signature: whole blocks of the file, signed alone.  A
 * signature is a header and then one entry per block, each depending on
 * its block only, so the parts' entries concatenated (one header) are
 * the signature of the whole file, byte for byte.
 */
struct sig_part {
  int fd;
  uint64_t off, end;
  size_t block_len, strong_len;
  rs_magic_number magic;
  struct sig_out o;
  int r, err;
  char *msg;                    /* the failure of a thread */
  pthread_t thread;
};

static int
sig_part_run (struct sig_part *p)
{
  rs_job_t *job = rs_sig_begin (p->block_len, p->strong_len, p->magic);
  int r;

  if (job == NULL)
    return df_error (ENOMEM, "librsync signature");
  r = sig_run (job, p->fd, p->off, p->end, &p->o);
  rs_job_free (job);
  return r;
}

static void *
sig_part_thread (void *opaque)
{
  struct sig_part *p = opaque;

  p->r = sig_part_run (p);
  if (p->r == -1) {
    p->err = errno;
    p->msg = strdup (df_error_get ());
  }
  return NULL;
}

/* Joins the parts' entries after the first part's output (its header
 * and entries) in parts[0].o.
 */
static int
sig_join (struct sig_part *parts, unsigned n)
{
  unsigned i;

  for (i = 1; i < n; i++) {
    if (parts[i].o.len < SIG_HEADER)
      return df_error (EIO, "librsync: a signature without its header");
    if (sig_drain (&parts[0].o, parts[i].o.buf + SIG_HEADER,
                   parts[i].o.len - SIG_HEADER) == -1)
      return -1;
  }
  return 0;
}

int
repl_signature_threads (int fd, uint64_t size, unsigned threads, char **sig,
                        size_t *sig_len)
{
  struct sig_part parts[SIG_MAX_THREADS] = { { 0 } };
  rs_magic_number magic = 0;
  size_t block_len = 0, strong_len = (size_t) -1;
  uint64_t nblocks, per;
  unsigned i, started = 0;
  int r = 0;

  quiet_librsync ();
  if (rs_sig_args (size, &magic, &block_len, &strong_len) != RS_DONE)
    return df_error (EINVAL, "librsync has no signature parameters for %llu "
                     "bytes", (unsigned long long) size);
  nblocks = (size + block_len - 1) / block_len;
  threads = threads < 1 ? 1 : threads > SIG_MAX_THREADS ? SIG_MAX_THREADS : threads;
  if (nblocks < threads)
    threads = 1;
  per = nblocks / threads;
  for (i = 0; i < threads; i++)
    parts[i] = (struct sig_part) {
      .fd = fd, .off = i * per * block_len,
      .end = i + 1 < threads ? (i + 1) * per * block_len : size,
      .block_len = block_len, .strong_len = strong_len, .magic = magic,
    };
  for (i = 1; i < threads; i++, started++)
    if (pthread_create (&parts[i].thread, NULL, sig_part_thread, &parts[i])) {
      r = df_error (EAGAIN, "cannot start a signature thread");
      break;
    }
  if (r == 0)
    r = sig_part_run (&parts[0]);
  for (i = 1; i <= started; i++) {
    pthread_join (parts[i].thread, NULL);
    if (r == 0 && parts[i].r == -1)
      r = df_error (parts[i].err, "%s", parts[i].msg ? parts[i].msg : "failed");
  }
  if (r == 0)
    r = sig_join (parts, threads);
  for (i = 1; i < threads; i++) {
    free (parts[i].o.buf);
    free (parts[i].msg);
  }
  if (r == -1) {
    free (parts[0].o.buf);
    df_error_prefix ("signature");
    return -1;
  }
  *sig = parts[0].o.buf;
  *sig_len = parts[0].o.len;
  return 0;
}

int
repl_signature (int fd, uint64_t size, char **sig, size_t *sig_len)
{
  long cpus = sysconf (_SC_NPROCESSORS_ONLN);
  unsigned threads = size < SIG_SPLIT_MIN || cpus < 2 ? 1
    : cpus > SIG_MAX_THREADS ? SIG_MAX_THREADS : (unsigned) cpus;

  return repl_signature_threads (fd, size, threads, sig, sig_len);
}

static uint32_t
be32 (const char *p)
{
  const unsigned char *u = (const unsigned char *) p;

  return (uint32_t) u[0] << 24 | u[1] << 16 | u[2] << 8 | u[3];
}

int
repl_signature_params (const char *sig, size_t len, uint32_t *block_len,
                       uint32_t *strong_len)
{
  if (len < 12)
    return df_error (EINVAL, "a signature of %zu bytes has no header", len);
  *block_len = be32 (sig + 4);
  *strong_len = be32 (sig + 8);
  return 0;
}

/* ---- patch ---- */

struct repl_patch {
  rs_job_t *job;
  int basis_fd, out_fd;
  uint64_t basis_size, max;
  char *out;                    /* CHUNK bytes, flushed when full */
  size_t fill;
  uint64_t out_off;             /* file offset of out[0] */
  uint64_t since_writeback;
  struct df_layer_hasher *hasher;       /* the caller's, or NULL */
  char *pending;                /* input librsync has not taken yet */
  size_t npending;
  bool done;
};

static rs_result
basis_read (void *opaque, rs_long_t pos, size_t *len, void **buf)
{
  struct repl_patch *p = opaque;
  ssize_t r;

  if (pos < 0 || (uint64_t) pos >= p->basis_size)
    return RS_CORRUPT;          /* a delta for another basis */
  if (*len > p->basis_size - pos)
    *len = p->basis_size - pos;
  r = df_pread_full (p->basis_fd, *buf, *len, pos);
  if (r <= 0)
    return RS_IO_ERROR;
  *len = r;
  return RS_DONE;
}

struct repl_patch *
repl_patch_new (int basis_fd, uint64_t basis_size, int out_fd, uint64_t max)
{
  struct repl_patch *p = calloc (1, sizeof *p);

  quiet_librsync ();
  if (p == NULL || (p->out = malloc (CHUNK)) == NULL) {
    df_error_errno ("patch");
    repl_patch_free (p);
    return NULL;
  }
  p->basis_fd = basis_fd;
  p->basis_size = basis_size;
  p->out_fd = out_fd;
  p->max = max;
  p->job = rs_patch_begin (basis_read, p);
  if (p->job == NULL) {
    df_error (ENOMEM, "librsync patch");
    repl_patch_free (p);
    return NULL;
  }
  return p;
}

void
repl_patch_hash_into (struct repl_patch *p, struct df_layer_hasher *hs)
{
  p->hasher = hs;
}

/* Writes out[0..fill) at out_off, skipping whole zero pages. */
static int
flush (struct repl_patch *p)
{
  size_t i = 0;

  if (p->hasher)
    df_layer_hasher_data (p->hasher, p->out_off, p->out, p->fill);
  while (i < p->fill) {
    size_t j = i;
    while (j < p->fill && !df_is_zero (p->out + j, p->fill - j < PAGE ? p->fill - j : PAGE))
      j += PAGE;
    if (j > p->fill)
      j = p->fill;
    if (j > i && df_pwrite_full (p->out_fd, p->out + i, j - i,
                                   p->out_off + i) == -1)
      return df_error_errno ("write");
    i = j + PAGE;                       /* j is a zero page (or the end) */
  }
  p->out_off += p->fill;
  p->since_writeback += p->fill;
  p->fill = 0;
  if (p->since_writeback >= WRITEBACK) {
    /* Start writeback now, so the commit's fsync has little left. */
    sync_file_range (p->out_fd, 0, 0, SYNC_FILE_RANGE_WRITE);
    p->since_writeback = 0;
  }
  return 0;
}

/* Runs the job over in (len bytes; eof: the delta ended). */
static int
run (struct repl_patch *p, const char *in, size_t len, bool eof)
{
  rs_buffers_t b = { .next_in = (char *) in, .avail_in = len, .eof_in = eof };
  rs_result res;

  for (;;) {
    size_t before_in = b.avail_in, before_fill = p->fill;

    b.next_out = p->out + p->fill;
    b.avail_out = CHUNK - p->fill;
    res = rs_job_iter (p->job, &b);
    p->fill = CHUNK - b.avail_out;
    if (p->out_off + p->fill > p->max)
      return df_error (EFBIG, "the delta makes more than the %llu bytes "
                       "expected", (unsigned long long) p->max);
    if (p->fill == CHUNK && flush (p) == -1)
      return -1;
    if (res == RS_DONE) {
      p->done = true;
      if (b.avail_in > 0)
        return df_error (EINVAL, "data after the end of the delta");
      return 0;
    }
    if (res == RS_INPUT_ENDED)
      return df_error (EIO, "the delta is truncated");
    if (res != RS_BLOCKED)
      return df_error (EINVAL, "the delta is corrupt (librsync: %s)",
                       rs_strerror (res));
    if (b.avail_in == 0 && !eof)
      return 0;
    if (b.avail_in == before_in && p->fill == before_fill && b.avail_out > 0) {
      if (eof)
        return df_error (EIO, "the delta is truncated");
      break;                            /* librsync wants more input */
    }
  }
  /* Keep what librsync left for the next call. */
  if (b.next_in != p->pending) {
    char *keep = malloc (b.avail_in);
    if (keep == NULL)
      return df_error_errno ("patch");
    memcpy (keep, b.next_in, b.avail_in);
    free (p->pending);
    p->pending = keep;
  }
  else
    memmove (p->pending, b.next_in, b.avail_in);
  p->npending = b.avail_in;
  return 0;
}

int
repl_patch_feed (struct repl_patch *p, const void *data, size_t len)
{
  char *buf;

  if (p->done)
    return len ? df_error (EINVAL, "data after the end of the delta") : 0;
  if (p->npending == 0)
    return run (p, data, len, false);
  buf = realloc (p->pending, p->npending + len);
  if (buf == NULL)
    return df_error_errno ("patch");
  memcpy (buf + p->npending, data, len);
  p->pending = buf;
  len += p->npending;
  p->npending = 0;
  return run (p, buf, len, false);
}

int
repl_patch_finish (struct repl_patch *p)
{
  if (!p->done && run (p, p->pending, p->npending, true) == -1)
    return -1;
  if (!p->done)
    return df_error (EIO, "the delta is truncated");
  if (flush (p) == -1)
    return -1;
  if (ftruncate (p->out_fd, p->out_off) == -1)
    return df_error_errno ("truncate");
  return 0;
}

uint64_t
repl_patch_written (const struct repl_patch *p)
{
  return p->out_off + p->fill;
}

uint64_t
repl_patch_copied (const struct repl_patch *p)
{
  return rs_job_statistics (p->job)->copy_bytes;
}

void
repl_patch_free (struct repl_patch *p)
{
  if (p == NULL)
    return;
  if (p->job)
    rs_job_free (p->job);
  free (p->pending);
  free (p->out);
  free (p);
}
