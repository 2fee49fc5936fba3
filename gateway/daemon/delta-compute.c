/* diskfarm-gateway serve — computing a librsync delta (see
 * gw_delta_compute in gw.h): the signature loaded and indexed, the file
 * scanned, the delta written to an unlinked file as librsync makes it,
 * each write announced so that requests can send it on at once.
 */
#include <config.h>

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <librsync.h>

#include "cleanup.h"
#include "error.h"
#include "gw.h"
#include "pagecache.h"
#include "rsig.h"
#include "util.h"

#define IO_BUF (1024 * 1024)

/* Feeds an rs job and drains what it makes.  The input comes from in
 * (or the memory data when in < 0), read IO_BUF at a time but handed to
 * librsync feed bytes per call: given megabytes at once, its delta scan
 * runs a third slower than given a block or so (rdiff feeds it one
 * signature block at a time).
 */
struct feeder {
  int in;
  const char *data;
  size_t len;
  size_t feed;
  char *ibuf, *obuf;            /* IO_BUF each */
  size_t obuf_len;
  int out;                      /* -1: nothing comes out */
  gw_delta_progress_fn progress;
  void *opaque;
};

static int
drain (struct feeder *f, const char *p, size_t n, uint64_t *written)
{
  if (df_write_full (f->out, p, n) == -1)
    return df_error_errno ("write the delta");
  *written += n;
  if (f->progress)
    f->progress (f->opaque, *written);
  return 0;
}

/* Refills f->ibuf after the n bytes still unread at *p (moved to its
 * start); -1 on a read error.
 */
static int
refill (struct feeder *f, const char **p, size_t n, uint64_t *off,
        size_t *len, bool *eof)
{
  ssize_t r;

  if (n > 0)
    memmove (f->ibuf, *p, n);
  r = df_pread_full (f->in, f->ibuf + n, IO_BUF - n, *off);
  if (r == -1)
    return df_error_errno ("read");
  *p = f->ibuf;
  *len = n + r;
  *eof = r == 0;
  *off += r;
  return 0;
}

static int
run_job (const bool *stop, rs_job_t *job, struct feeder *f, uint64_t *written)
{
  rs_buffers_t b = { .next_in = (char *) f->data };
  const char *end = f->data + f->len;   /* of what is in memory */
  uint64_t off = 0;
  bool eof = f->in < 0;
  size_t len = 0;
  rs_result r;

  do {
    const char *in = b.next_in;
    if (__atomic_load_n (stop, __ATOMIC_RELAXED))
      return df_error (ECANCELED, "the gateway is stopping");
    /* Unread input stays where it is; a slice more when it is short. */
    if (b.avail_in < f->feed && in + b.avail_in == end && !eof) {
      if (refill (f, &in, b.avail_in, &off, &len, &eof) == -1)
        return -1;
      end = in + len;
    }
    b.next_in = (char *) in;
    b.avail_in = (size_t) (end - in) < f->feed ? (size_t) (end - in) : f->feed;
    b.eof_in = eof && in + b.avail_in == end;
    b.next_out = f->obuf;
    b.avail_out = f->obuf_len;
    r = rs_job_iter (job, &b);
    if (r != RS_DONE && r != RS_BLOCKED)
      return df_error (EINVAL, "librsync: %s", rs_strerror (r));
    if (f->out >= 0 && b.next_out > f->obuf &&
        drain (f, f->obuf, b.next_out - f->obuf, written) == -1)
      return -1;
  } while (r != RS_DONE);
  return 0;
}

/* A file to write a delta into: unlinked from the start. */
int
gw_delta_file (const char *dir)
{
  CLEANUP_FREE char *tmpl = NULL;
  int fd = open (dir, O_TMPFILE | O_RDWR | O_CLOEXEC, 0600);

  if (fd >= 0 || (errno != EOPNOTSUPP && errno != EISDIR))
    return fd >= 0 ? fd : df_error_errno ("delta file in %s", dir);
  if (asprintf (&tmpl, "%s/.diskfarm-delta.XXXXXX", dir) == -1)
    return df_error_errno ("%s", dir);
  fd = mkostemp (tmpl, O_CLOEXEC);
  if (fd == -1)
    return df_error_errno ("delta file in %s", dir);
  unlink (tmpl);
  return fd;
}

int
gw_delta_compute (const bool *stop, const char *sig_data, size_t sig_len,
                  int in, const struct stat *in_st, int out,
                  gw_delta_progress_fn progress, void *opaque, uint64_t *size)
{
  CLEANUP_FREE char *ibuf = malloc (IO_BUF), *obuf = malloc (IO_BUF);
  struct feeder f = { .in = -1, .data = sig_data, .len = sig_len,
                      .feed = IO_BUF, .ibuf = ibuf, .obuf = obuf,
                      .obuf_len = IO_BUF, .out = -1 };
  rs_signature_t *sig = NULL;
  struct gw_rsig info;
  rs_job_t *job;
  struct stat st;
  int r;

  *size = 0;
  if (ibuf == NULL || obuf == NULL)
    return df_error (ENOMEM, "delta buffers");
  if (gw_rsig_check (sig_data, sig_len, &info) == -1)
    return -1;
  job = rs_loadsig_begin (&sig);
  r = run_job (stop, job, &f, size);
  rs_job_free (job);
  if (r == 0 && rs_build_hash_table (sig) != RS_DONE)
    r = df_error (ENOMEM, "librsync: cannot index the signature");
  if (r == 0) {
    /* As rdiff does: a block in, four blocks of room out. */
    f = (struct feeder) { .in = in, .feed = info.block_len, .ibuf = ibuf,
                          .obuf = obuf, .out = out, .progress = progress,
                          .opaque = opaque,
                          .obuf_len = 10 + 4 * (size_t) info.block_len };
    if (f.obuf_len > IO_BUF)
      f.obuf_len = IO_BUF;
    /* The whole file is read: the server's devices keep their cache. */
    struct df_cache_snap *snap = df_cache_snapshot (in, 0, in_st->st_size);
    job = rs_delta_begin (sig);
    r = run_job (stop, job, &f, size);
    rs_job_free (job);
    df_cache_release (snap);
  }
  rs_free_sumset (sig);
  /* A sealed file never changes; one that did gives no delta. */
  if (r == 0 && (fstat (in, &st) == -1 || st.st_size != in_st->st_size ||
                 gw_mtime_ns (&st) != gw_mtime_ns (in_st) ||
                 st.st_ctim.tv_sec != in_st->st_ctim.tv_sec ||
                 st.st_ctim.tv_nsec != in_st->st_ctim.tv_nsec))
    r = df_error (ESTALE, "the file changed while its delta was computed");
  return r;
}

