/* diskfarm — NBD upstream: the writes kept until a FLUSH covers them,
 * replayed on the next server after a failover.
 *
 * Writes go in the log when they are answered, so a write the client
 * issued after another one's answer comes after it.  The replay keeps
 * that order where it matters: entries go out in batches of requests
 * that do not overlap, each batch after the one before is answered.
 */
#include <config.h>

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "error.h"
#include "upstream/upstream-int.h"

#define BATCH 64
#define ENTRY_COST 64           /* bytes counted for a zero or trim */

static uint64_t
cost (const struct logged *l)
{
  return l->type == R_WRITE ? l->count + ENTRY_COST : ENTRY_COST;
}

int
log_append (struct upstream *up, const struct req *r)
{
  size_t extra = r->type == R_WRITE ? r->count : 0;
  struct logged *l = malloc (sizeof *l + extra);

  if (l == NULL)
    return df_error_errno ("keeping a write for replay");
  l->seq = up->log_seq++;
  l->type = r->type;
  l->offset = r->offset;
  l->count = r->count;
  l->flags = r->flags & ~DF_FUA;
  l->next = NULL;
  if (extra)
    memcpy (l->data, r->buf, extra);
  if (up->log_tail)
    up->log_tail->next = l;
  else
    up->log_head = l;
  up->log_tail = l;
  up->log_bytes += cost (l);
  up->stats.unflushed_bytes = up->log_bytes;
  return 0;
}

void
log_flushed (struct upstream *up, uint64_t seq)
{
  struct logged *l;

  while ((l = up->log_head) != NULL && l->seq < seq) {
    up->log_head = l->next;
    if (up->log_head == NULL)
      up->log_tail = NULL;
    up->log_bytes -= cost (l);
    free (l);
  }
  up->stats.unflushed_bytes = up->log_bytes;
  pthread_cond_broadcast (&up->cond);
}

void
log_free (struct upstream *up)
{
  log_flushed (up, UINT64_MAX);
}

static bool
overlaps (const struct logged *a, const struct logged *b)
{
  return a->offset < b->offset + b->count && b->offset < a->offset + a->count;
}

/* Sends the batch at once on the new round's first connection and
 * waits for every answer.
 */
static int
run_batch (struct upstream *up, struct logged **batch, size_t n)
{
  struct req r[BATCH];
  char why[256];
  size_t i;

  for (i = 0; i < n; i++)
    r[i] = (struct req) {
      .type = batch[i]->type, .count = batch[i]->count,
      .offset = batch[i]->offset, .flags = batch[i]->flags,
      .buf = batch[i]->type == R_WRITE ? batch[i]->data : NULL,
    };
  if (uconn_run (up, up->conns[0], r, n, why, sizeof why) == -1)
    return df_error (ENOTCONN, "%s", why);
  for (i = 0; i < n; i++)
    if (r[i].error)
      return df_error (r[i].error, "the server refused a write of %u bytes "
                       "at %ju: %m", r[i].count, (uintmax_t) r[i].offset);
  pthread_mutex_lock (&up->lock);
  up->stats.replayed += n;
  pthread_mutex_unlock (&up->lock);
  return 0;
}

int
log_replay (struct upstream *up)
{
  struct logged *batch[BATCH], *l;
  size_t n = 0, i;

  /* While the upstream is down and the old round dropped, nothing is
   * added or flushed: the list is stable without the lock.
   */
  pthread_mutex_lock (&up->lock);
  l = up->log_head;
  pthread_mutex_unlock (&up->lock);
  for (; l; l = l->next) {
    bool clash = n == BATCH;
    for (i = 0; i < n && !clash; i++)
      clash = overlaps (batch[i], l);
    if (clash) {
      if (run_batch (up, batch, n) == -1)
        return -1;
      n = 0;
    }
    batch[n++] = l;
  }
  return n ? run_batch (up, batch, n) : 0;
}
