/* diskfarm-replicator — inside a file task (task.c, download.c,
 * deltatask.c); see task.h.
 */
#ifndef DISKFARM_REPL_TASK_INT_H
#define DISKFARM_REPL_TASK_INT_H

#include "delta.h"
#include "layer/layer.h"
#include "relay.h"
#include "sink.h"
#include "task.h"

struct repl_range {
  uint64_t start, end;          /* [start, end) */
};

struct repl_task {
  struct repl_run *run;
  const struct repl_action *a;
  const struct repl_file *f;
  repl_task_done_fn done;
  void *opaque;
  size_t src;                   /* index in a->sources */
  bool delta;                   /* a delta now (else a download) */
  char *spath;                  /* the staged file */
  int fd;
  unsigned active;              /* transfers running */
  bool pass_failed;             /* a transfer of this pass failed */
  bool fatal;                   /* another source will not help */
  bool discard;                 /* the staged file is no use any more */
  char *error;                  /* the first failure */
  char *note;                   /* a warning for the operator, or NULL */
  bool committed;               /* in place already */
  bool delta_tried;             /* a download became a delta once */
  uint64_t wire;                /* body bytes moved for this file */
  /* A layer's content hash as its bytes are written (every write of
   * the staged file goes through it), or NULL: the commit hashes the
   * file then.
   */
  struct df_layer_hasher *hasher;
  /* A download's hashing and writeback, off this thread (sink.h); the
   * hasher is the sink's until it is freed.  NULL: done here.
   */
  struct repl_sink *sink;
  /* download */
  int step;                     /* DL_HEAD, DL_MAP, DL_DATA */
  uint64_t head_end;            /* bytes of header and map fetched */
  uint64_t since_writeback;
  int got_fd;                   /* relay.h: the arrival log, or -1 */
  /* delta */
  int basis_fd;
  uint64_t basis_size;
  struct df_cache_snap *basis_snap;     /* the basis's cache, as found */
  struct repl_patch *patch;
  char *sig;
  size_t sig_len;
  char etag[80];
  uint64_t t_begin, t_sig, t_first, t_last; /* monotonic ns, for --verbose */
};

enum { DL_HEAD, DL_MAP, DL_DATA };

/* Records the first failure: "PATH from SERVER: message". */
void repl_task_fail (struct repl_task *t, const char *fmt, ...)
  __attribute__ ((format (printf, 2, 3)));
/* The server transfers go to now. */
const char *repl_task_server (const struct repl_task *t);
/* Ends the task: commits the staged file (r == 0) or reports. */
void repl_task_finish (struct repl_task *t, int r);
/* Does an ETag header line carry the hash of t's file?  1 yes, 0 it
 * names another, -1 not an ETag line.
 */
int repl_task_etag_matches (const struct repl_task *t, const char *line,
                            size_t n);

int repl_download_begin (struct repl_task *t);
int repl_delta_begin (struct repl_task *t);

#endif
