/* diskfarm-replicator — whole-file downloads with resume (see task.h). */
#include <config.h>

#include <endian.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include "cleanup.h"
#include "error.h"
#include "io.h"
#include "layer/layer.h"
#include "pagecache.h"
#include "task-int.h"
#include "util.h"

#define PAGE 4096
#define PIECE_MAX (64 * 1024 * 1024)    /* bytes per Range request */
#define GAP_MAX (256 * 1024)            /* absent blocks fetched, not split */
#define HEAD_FIRST DF_LAYER_HEADER_SIZE  /* then the map, then data */
#define WBUF (1024 * 1024)
#define WRITEBACK (32 * 1024 * 1024)    /* start writeback this often */
#define RECV_BUF (512 * 1024)           /* curl's receive buffer */

/* One Range request, writing what arrives into the staged file. */
struct piece {
  struct repl_task *t;
  CURL *h;
  uint64_t start, end, pos;     /* pos: file offset of buf[0] */
  char *buf;
  size_t fill;
  bool checked;                 /* status and Content-Range looked at */
  bool refused;                 /* not a 206: the body is an error */
  char err[300];                /* the start of an error body */
  size_t errlen;
};

static int pass (struct repl_task *t);

/* Writes buf[0..n) at pos, leaving whole zero pages as holes. */
static int
write_pages (struct repl_task *t, const char *buf, size_t n, uint64_t pos)
{
  size_t i = 0;

  while (i < n) {
    size_t len = n - i < PAGE ? n - i : PAGE, j = i;
    if (df_is_zero (buf + i, len)) {
      i += len;
      continue;
    }
    while (j < n && !df_is_zero (buf + j, n - j < PAGE ? n - j : PAGE))
      j += n - j < PAGE ? n - j : PAGE;
    if (df_pwrite_full (t->fd, buf + i, j - i, pos + i) == -1) {
      if (errno == ENOSPC || errno == EDQUOT) {
        t->fatal = t->discard = true;   /* free the space it took */
      }
      repl_task_fail (t, "writing %s: %m", t->spath);
      return -1;
    }
    t->since_writeback += j - i;
    i = j;
  }
  if (t->since_writeback >= WRITEBACK) {
    /* Start writeback now, so the commit's fsync has little left, and
     * drop what earlier rounds wrote back (DONTNEED leaves dirty pages
     * and pages under writeback alone): the copy holds a few windows of
     * the page cache, not the whole file, and the commit's drop has
     * little left either.  Nothing reads the staged file back: its
     * hash is taken as it arrives.  On the sink's thread if there is
     * one: sync_file_range waits whenever the disk's queue is full.
     */
    if (t->sink)
      repl_sink_writeback (t->sink);
    else {
      sync_file_range (t->fd, 0, 0, SYNC_FILE_RANGE_WRITE);
      df_cache_drop (t->fd);
    }
    t->since_writeback = 0;
  }
  return 0;
}

/* The n bytes at the start of p->buf are written: they go to the
 * hasher, on the sink's thread with the buffer itself (the rest of it
 * moves to a new one), or here.
 */
static void
hash_written (struct piece *p, size_t n)
{
  struct repl_task *t = p->t;
  char *nb = t->sink ? repl_sink_buffer (t->sink) : NULL;

  if (nb) {
    memcpy (nb, p->buf + n, p->fill - n);
    repl_sink_written (t->sink, p->pos, p->buf, n);
    p->buf = nb;
  }
  else {
    if (t->sink)
      repl_sink_drain (t->sink);        /* in order; the hasher is ours */
    if (t->hasher)
      df_layer_hasher_data (t->hasher, p->pos, p->buf, n);
    memmove (p->buf, p->buf + n, p->fill - n);
  }
  p->fill -= n;
}

/* Writes what can go out in whole pages (all of it when last). */
static int
piece_flush (struct piece *p, bool last)
{
  size_t n = p->fill;

  if (!last)
    n = ((p->pos + p->fill) & ~(uint64_t) (PAGE - 1)) > p->pos
      ? ((p->pos + p->fill) & ~(uint64_t) (PAGE - 1)) - p->pos : 0;
  if (n == 0)
    return 0;
  if (write_pages (p->t, p->buf, n, p->pos) == -1)
    return -1;
  repl_relay_note (p->t, p->pos, p->pos + n);
  hash_written (p, n);
  p->pos += n;
  return 0;
}

static int
piece_check (struct piece *p)
{
  long status = 0;

  p->checked = true;
  curl_easy_getinfo (p->h, CURLINFO_RESPONSE_CODE, &status);
  if (status == 206)
    return 0;
  p->refused = true;
  if (status == 200) {
    /* If-Range did not match: the source has another file now. */
    p->t->fatal = p->t->discard = true;
    repl_task_fail (p->t, "its file changed since its manifest was read");
    return -1;
  }
  return 0;                     /* keep the error body for the message */
}

static int
piece_data (void *opaque, const char *data, size_t n)
{
  struct piece *p = opaque;

  if (!p->checked && piece_check (p) == -1)
    return -1;
  if (p->refused) {
    size_t room = sizeof p->err - 1 - p->errlen;
    memcpy (p->err + p->errlen, data, n < room ? n : room);
    p->errlen += n < room ? n : room;
    return 0;
  }
  if (p->pos + p->fill + n > p->end) {
    repl_task_fail (p->t, "more data than the range asked for");
    return -1;
  }
  while (n > 0) {
    size_t take = WBUF - p->fill < n ? WBUF - p->fill : n;
    memcpy (p->buf + p->fill, data, take);
    p->fill += take;
    data += take;
    n -= take;
    p->t->wire += take;
    if (p->fill >= WBUF / 2 && piece_flush (p, false) == -1)
      return -1;
  }
  return 0;
}

static void
piece_header (void *opaque, const char *line, size_t n)
{
  struct piece *p = opaque;

  if (repl_task_etag_matches (p->t, line, n) == 0) {
    p->t->fatal = p->t->discard = true;
    repl_task_fail (p->t, "it now serves another file (ETag %.*s)",
                    (int) (n > 80 ? 80 : n), line);
  }
}

static void step_done (struct repl_task *t);

static void
piece_done (void *opaque, CURLcode code, long status, const char *errbuf)
{
  struct piece *p = opaque;
  struct repl_task *t = p->t;

  if (code == CURLE_OK && status == 206 && p->pos + p->fill != p->end)
    repl_task_fail (t, "a range ended short");
  else if (code == CURLE_OK && status == 206)
    piece_flush (p, true);
  else if (!t->error) {
    const struct repl_gw *gw = repl_run_gw (t->run, repl_task_server (t));
    if (repl_gw_check (gw, NULL, code, errbuf,
                       status, p->err, p->errlen) == -1)
      repl_task_fail (t, "%s", df_error_get ());
    else
      repl_task_fail (t, "unexpected HTTP %ld", status);
    if (status == 401 || status == 403)
      t->fatal = true;
    /* Not offered (any more) by this source: if no other holder has it
     * either, what arrived of it is of no use.
     */
    if (status == 404 || status == 410 || status == 416)
      t->discard = true;
  }
  if (t->error)
    t->pass_failed = true;
  free (p->buf);
  free (p);
  if (--t->active == 0)
    step_done (t);
}

static int
fetch (struct repl_task *t, uint64_t start, uint64_t end)
{
  const struct repl_gw *gw = repl_run_gw (t->run, repl_task_server (t));
  static const struct repl_xfer_ops ops = { piece_data, piece_header,
                                            piece_done };
  CLEANUP_FREE char *url = repl_relay_url (t);
  char errbuf[CURL_ERROR_SIZE], range[64], ifrange[80], hex[2 * DF_HASH_LEN + 1];
  struct curl_slist *headers;
  struct piece *p;

  if (gw == NULL || url == NULL)
    return df_error (ENOENT, "no gateway for server %s", repl_task_server (t));
  p = calloc (1, sizeof *p);
  if (p == NULL || (p->buf = malloc (WBUF)) == NULL) {
    free (p);
    return df_error_errno ("%s", t->f->path);
  }
  p->t = t;
  p->start = p->pos = start;
  p->end = end;
  p->h = repl_gw_handle (gw, url, &headers, errbuf);
  if (p->h == NULL) {
    free (p->buf);
    free (p);
    return -1;
  }
  snprintf (range, sizeof range, "%" PRIu64 "-%" PRIu64, start, end - 1);
  curl_easy_setopt (p->h, CURLOPT_RANGE, range);
  /* Fewer, bigger reads (curl's default is 16 KiB a read). */
  curl_easy_setopt (p->h, CURLOPT_BUFFERSIZE, (long) RECV_BUF);
  df_hex (t->f->hash, DF_HASH_LEN, hex);
  snprintf (ifrange, sizeof ifrange, "If-Range: \"%s\"", hex);
  headers = curl_slist_append (headers, ifrange);
  curl_easy_setopt (p->h, CURLOPT_HTTPHEADER, headers);
  t->active++;
  if (repl_engine_add (t->run->e, p->h, headers, &ops, p, end - start) == -1) {
    t->active--;
    free (p->buf);
    free (p);
    return -1;
  }
  return 0;
}

/* Where a piece that starts at off and may reach end ends: PIECE_MAX
 * at most, cut at a hash region's boundary (grid_base + k * REGION;
 * grid_base is a layer's data offset) when it can be, so that each
 * region arrives in one piece, in order, and is hashed as it comes.
 */
static uint64_t
piece_end (uint64_t off, uint64_t end, uint64_t grid_base)
{
  uint64_t cut;

  if (end - off <= PIECE_MAX)
    return end;
  cut = off + PIECE_MAX;
  if (cut > grid_base) {
    uint64_t aligned = grid_base + (cut - grid_base) / DF_HASH_REGION * DF_HASH_REGION;
    if (aligned > off)
      cut = aligned;
  }
  return cut;
}

/* Adds to v the parts of [start, end) that are holes in the staged file
 * (nothing has arrived there yet), split into pieces (see piece_end).
 */
static int
missing (struct repl_task *t, uint64_t start, uint64_t end, uint64_t grid_base,
         struct repl_range **v, size_t *n, size_t *cap)
{
  uint64_t off = start;

  while (off < end) {
    off_t d = t->run->resume_ok ? lseek (t->fd, off, SEEK_DATA) : -1;
    uint64_t hole_end = d == -1 || (uint64_t) d > end ? end : (uint64_t) d;

    while (off < hole_end) {
      uint64_t len = piece_end (off, hole_end, grid_base) - off;
      if (*n == *cap) {
        struct repl_range *nv = realloc (*v, (*cap = *cap ? *cap * 2 : 64) *
                                         sizeof **v);
        if (nv == NULL)
          return df_error_errno ("%s", t->f->path);
        *v = nv;
      }
      (*v)[(*n)++] = (struct repl_range) { off, off + len };
      off += len;
    }
    if (d == -1 || (uint64_t) d >= end)
      break;
    off = lseek (t->fd, d, SEEK_HOLE);
    if ((off_t) off == -1)
      return df_error_errno ("%s", t->spath);
  }
  return 0;
}

/* The byte ranges of a staged layer's present blocks, gaps of absent
 * blocks up to GAP_MAX included.
 */
static int
layer_ranges (struct repl_task *t, struct repl_range **v, size_t *n,
              size_t *cap)
{
  struct df_layer *l = df_layer_open (t->spath, false);
  const struct df_layer_info *info;
  uint64_t b = 0, run_start = 0, run_end = 0;
  int r = 0;

  if (l == NULL) {
    repl_task_fail (t, "its header and map do not make a layer: %s",
                    df_error_get ());
    t->fatal = t->discard = true;
    return -1;
  }
  info = df_layer_info (l);
  for (b = 0; b <= info->nblocks && r == 0; b++) {
    uint64_t bs, be;
    if (b < info->nblocks && df_layer_block (l, b) != DF_BLOCK_PRESENT)
      continue;
    bs = info->data_offset + b * info->block_size;
    be = bs + info->block_size;
    if (be > t->f->size)
      be = t->f->size;
    if (b < info->nblocks && run_end && bs <= run_end + GAP_MAX) {
      run_end = be;
      continue;
    }
    if (run_end)
      r = missing (t, run_start, run_end, info->data_offset, v, n, cap);
    run_start = bs;
    run_end = b < info->nblocks ? be : 0;
  }
  df_layer_close (l);
  return r;
}

/* Is the layer at path a base, and how much data does it hold? */
static int
layer_shape (const char *path, bool *base, uint64_t *present)
{
  struct df_layer *l = df_layer_open (path, false);
  const struct df_layer_info *info;

  if (l == NULL)
    return -1;
  info = df_layer_info (l);
  *base = df_is_zero (info->parent_id, DF_LAYER_ID_LEN);
  *present = df_layer_count (l, DF_BLOCK_PRESENT) * info->block_size;
  df_layer_close (l);
  return 0;
}

/* A new base (a merge) that holds data, with a base here to start
 * from: a delta on it moves what changed, not the whole disk.  A child
 * never: its holes would not match the basis's data.  1 if the task is
 * a delta now.
 */
static int
maybe_delta (struct repl_task *t)
{
  CLEANUP_FREE char *basis = NULL;
  bool new_base, old_base;
  uint64_t present, old_present;

  if (t->a->basis == NULL || t->delta_tried)
    return 0;
  t->delta_tried = true;
  basis = repl_stage_live_path (t->run->st, t->a->basis);
  if (basis == NULL || layer_shape (t->spath, &new_base, &present) == -1 ||
      layer_shape (basis, &old_base, &old_present) == -1) {
    df_error_clear ();
    return 0;
  }
  if (!new_base || !old_base || present < REPL_DELTA_MIN_DATA ||
      old_present < REPL_DELTA_MIN_DATA)
    return 0;
  repl_relay_stop (t);
  repl_sink_free (t->sink);
  t->sink = NULL;
  close (t->fd);                /* the partial download stays for later */
  t->fd = -1;
  df_layer_hasher_free (t->hasher);
  t->hasher = NULL;
  free (t->spath);
  t->spath = NULL;
  if (repl_delta_begin (t) == -1) {
    repl_task_fail (t, "%s", df_error_get ());
    return -1;
  }
  return 1;
}

/* The data pass: fetch every piece still missing from the current
 * source, all queued at once.
 */
static int
pass (struct repl_task *t)
{
  CLEANUP_FREE struct repl_range *v = NULL;
  size_t n = 0, cap = 0, i;
  int r;

  if (t->f->kind == REPL_KIND_LAYER) {
    r = maybe_delta (t);
    if (r != 0)
      return r == 1 ? 0 : -1;
  }
  t->step = DL_DATA;
  if (t->f->kind == REPL_KIND_LAYER)
    r = layer_ranges (t, &v, &n, &cap);
  else
    r = missing (t, 0, t->f->size, 0, &v, &n, &cap);
  if (r == -1)
    return -1;
  for (i = 0; i < n; i++)
    if (fetch (t, v[i].start, v[i].end) == -1) {
      repl_task_fail (t, "%s", df_error_get ());
      t->pass_failed = true;
      break;
    }
  if (t->active == 0)
    step_done (t);              /* nothing was missing, or nothing started */
  return 0;
}

/* The header is here: fetch the rest of the map, if any. */
static int
after_head (struct repl_task *t)
{
  unsigned char h[DF_LAYER_HEADER_SIZE];
  uint64_t data_offset;

  if (df_pread_full (t->fd, h, sizeof h, 0) != sizeof h ||
      memcmp (h, "DFLAYER", 8) != 0) {
    t->fatal = t->discard = true;
    repl_task_fail (t, "it does not start with a layer header");
    return -1;
  }
  memcpy (&data_offset, h + 112, 8);
  data_offset = le64toh (data_offset);
  if (data_offset > t->f->size || data_offset < DF_LAYER_HEADER_SIZE) {
    t->fatal = t->discard = true;
    repl_task_fail (t, "its header has data offset %" PRIu64, data_offset);
    return -1;
  }
  t->step = DL_MAP;
  if (data_offset <= t->head_end)
    return pass (t);
  if (fetch (t, t->head_end, data_offset) == -1) {
    repl_task_fail (t, "%s", df_error_get ());
    return -1;
  }
  return 0;
}

/* All transfers of a step ended: next step, next source, or the end. */
static void
step_done (struct repl_task *t)
{
  if (t->pass_failed) {
    if (t->fatal || t->src + 1 >= t->a->nsources) {
      repl_task_finish (t, -1);
      return;
    }
    /* The next source; what arrived stays, and the operator hears
     * why the first one failed.
     */
    t->src++;
    t->pass_failed = false;
    if (t->note == NULL)
      t->note = t->error;
    else
      free (t->error);
    t->error = NULL;
    if (repl_download_begin (t) == -1)
      repl_task_finish (t, -1);
    return;
  }
  if (t->step == DL_DATA)
    repl_task_finish (t, 0);
  else if (t->step == DL_HEAD ? after_head (t) == -1 : pass (t) == -1)
    repl_task_finish (t, -1);
}

static int
open_staged (struct repl_task *t)
{
  struct stat sb;

  if (t->fd >= 0)
    return 0;
  /* A hasher belongs to the file it saw written (a delta's output that
   * fell back to this download is another file).
   */
  repl_sink_free (t->sink);
  t->sink = NULL;
  df_layer_hasher_free (t->hasher);
  t->hasher = NULL;
  free (t->spath);
  t->spath = repl_stage_file_path (t->run->st, t->f, "part");
  if (t->spath == NULL)
    return -1;
  t->fd = open (t->spath, O_RDWR | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0600);
  if (t->fd == -1 || fstat (t->fd, &sb) == -1)
    return df_error_errno ("%s", t->spath);
  /* Without hole reporting a partial file cannot tell what it lacks. */
  if ((!t->run->resume_ok || (uint64_t) sb.st_size != t->f->size) &&
      ftruncate (t->fd, 0) == -1)
    return df_error_errno ("%s", t->spath);
  if (ftruncate (t->fd, t->f->size) == -1) {
    int e = errno;
    unlink (t->spath);
    errno = e;
    return df_error_errno ("%s", t->spath);
  }
  return 0;
}

int
repl_download_begin (struct repl_task *t)
{
  t->delta = false;
  if (open_staged (t) == -1)
    return -1;
  repl_relay_open (t);
  if (t->f->kind != REPL_KIND_LAYER || t->f->size < DF_LAYER_HEADER_SIZE)
    return pass (t) == -1 ? -1 : 0;
  /* Hashed as it arrives; kept when another source takes over, since
   * what arrived stays.
   */
  if (t->hasher == NULL && (t->hasher = df_layer_hasher_new ()) == NULL)
    df_error_clear ();          /* the commit hashes the file instead */
  /* Hashed and written back beside the transfers, not in their way. */
  if (t->hasher && t->sink == NULL &&
      (t->sink = repl_sink_new (t->fd, t->hasher, WBUF)) == NULL)
    df_error_clear ();          /* then here, as it arrives */
  t->step = DL_HEAD;
  t->head_end = t->f->size < HEAD_FIRST ? t->f->size : HEAD_FIRST;
  if (fetch (t, 0, t->head_end) == -1)
    return -1;
  return 0;
}
