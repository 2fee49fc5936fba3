/* diskfarm-replicator — what a download does with the bytes it has
 * written, off the receiving thread.
 *
 * The thread that runs curl's transfers writes what arrives into the
 * staged file; hashing it (SHA-256 of every byte of a layer) and
 * starting its writeback (sync_file_range, which waits whenever the
 * disk's queue is full) would stall that thread, and with it every
 * transfer.  A sink does both on a thread of its own, fed by a bounded
 * queue: the receiver never waits for them unless the queue is full.
 *
 * The hasher belongs to the sink's thread from repl_sink_new until
 * repl_sink_drain (or repl_sink_free) returns; only then may the caller
 * read it (df_layer_hasher_final) or free it.  Every call here is made
 * by the one thread that owns the sink.
 */
#ifndef DISKFARM_REPL_SINK_H
#define DISKFARM_REPL_SINK_H

#include <stddef.h>
#include <stdint.h>

struct df_layer_hasher;
struct repl_sink;

/* A sink for the file fd (duplicated: the caller may close fd) that
 * feeds hs (NULL: no hashing), with buffers of buf_size bytes.  NULL
 * with a message if it cannot start.
 */
struct repl_sink *repl_sink_new (int fd, struct df_layer_hasher *hs,
                                 size_t buf_size);

/* A buffer of buf_size bytes (one that went round already, or a new
 * one), or NULL if out of memory.  The caller's until given to
 * repl_sink_written (or freed).
 */
char *repl_sink_buffer (struct repl_sink *s);

/* buf[0..n) were written at file offset off: hashes them later.  Takes
 * buf (malloc'd, of buf_size bytes: reused once hashed).  Waits while
 * the queue is full.
 */
void repl_sink_written (struct repl_sink *s, uint64_t off, char *buf,
                        size_t n);

/* Starts writeback of what was written so far, and drops from the page
 * cache what earlier writebacks finished (see download.c).
 */
void repl_sink_writeback (struct repl_sink *s);

/* Waits until everything queued is done. */
void repl_sink_drain (struct repl_sink *s);

/* Drains, stops the thread, frees.  NULL is fine. */
void repl_sink_free (struct repl_sink *s);

#endif
