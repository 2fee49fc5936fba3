/* diskfarm-replicator — relays: pipelined fan-out.
 *
 * A server that fetches a big file keeps a log of what of it has
 * arrived beside its staged copy (the staging files in gwapi.h); its
 * gateway serves that copy to peers as it arrives
 * (GET /v1/stores/STORE/staged/PATH?hash=H).  So a peer that needs the
 * same file takes it from this server while this server still takes it
 * from the source: the file streams down a chain of servers instead of
 * being sent by the source to each (plan.h says who relays for whom).
 *
 * A relay is only a faster way to the bytes: the task checks the
 * content hash before it commits, whoever sent them, and a relay that
 * stops or stalls (its gateway cuts the response off) leaves the task
 * to its next source with what has arrived.
 */
#ifndef DISKFARM_REPL_RELAY_H
#define DISKFARM_REPL_RELAY_H

#include <stdint.h>

#include "stage.h"

struct repl_task;

/* Starts the arrival log of t's staged file (a fresh one; a log left
 * by an earlier run is dropped).  Failing only costs the relaying.
 */
void repl_relay_open (struct repl_task *t);
/* [start, end) of the staged file is written. */
void repl_relay_note (struct repl_task *t, uint64_t start, uint64_t end);
/* The download stops (done, failed, or became a delta): the log goes,
 * and readers that wait for more stop waiting.
 */
void repl_relay_stop (struct repl_task *t);
/* The staged file is about to be committed: a hard link to it stays
 * in staging (H.done) so that peers still reading can finish, until
 * repl_relay_tidy.  repl_relay_undone removes it (the commit failed).
 */
void repl_relay_done (struct repl_task *t);
void repl_relay_undone (struct repl_task *t);
/* Removes the H.done links (the sync that made them ends). */
void repl_relay_tidy (struct repl_stage *st);

/* The URL path to fetch t's file from its current source: the staged
 * endpoint while that source is a relay, else the files endpoint.
 * Caller frees; NULL with a message.
 */
char *repl_relay_url (const struct repl_task *t);
/* Is t's current source a relay? */
bool repl_relay_now (const struct repl_task *t);

#endif
