/* diskfarm-replicator — librsync on this side of a delta transfer.
 *
 * The signature of the local basis file goes to the source's delta
 * endpoint; the delta that comes back is applied as it arrives, reading
 * the basis with pread (no stdio), into a staging file.  Block size and
 * strong-sum length are what rs_sig_args recommends for the basis size
 * (about sqrt(size): 2 GiB gives ~46 KiB blocks), never librsync's
 * 2 KiB default, whose signature of a big layer would be larger than
 * most deltas.  The strong sum is the shortest safe against random
 * collisions for that size; the content hash of the result is checked
 * before it is committed anyway.
 *
 * The output keeps the holes of a sparse file: whole zero pages are not
 * written.
 */
#ifndef DISKFARM_REPL_DELTA_H
#define DISKFARM_REPL_DELTA_H

#include <stddef.h>
#include <stdint.h>

/* The signature of the first size bytes of fd (caller frees *sig).
 * The caller leaves the page cache as it found it: one snapshot of the
 * basis over the signature and the patch (df_cache_snapshot), so that
 * the patch reads what the signature has just read from memory, not
 * from the disk again.
 */
int repl_signature (int fd, uint64_t size, char **sig, size_t *sig_len);
/* The same, signed by up to threads threads, each over a part of whole
 * blocks (repl_signature uses the cores for bases of 64 MiB and more):
 * the signature is the same, byte for byte.
 */
int repl_signature_threads (int fd, uint64_t size, unsigned threads,
                            char **sig, size_t *sig_len);

/* Block length and strong-sum length of a signature (its header). */
int repl_signature_params (const char *sig, size_t len, uint32_t *block_len,
                           uint32_t *strong_len);

struct repl_patch;
struct df_layer_hasher;

/* Applies a delta on basis_fd (basis_size bytes) into out_fd from
 * offset 0; the result may not exceed max bytes.  Caller frees.
 */
struct repl_patch *repl_patch_new (int basis_fd, uint64_t basis_size,
                                   int out_fd, uint64_t max);
/* The next len bytes of the delta; -1 with a message on a corrupt delta
 * or a failed write.
 */
int repl_patch_feed (struct repl_patch *p, const void *data, size_t len);
/* The delta ended: -1 unless it was complete.  Sets the output's length. */
int repl_patch_finish (struct repl_patch *p);
/* Bytes of output so far, and of it, bytes copied from the basis. */
uint64_t repl_patch_written (const struct repl_patch *p);
uint64_t repl_patch_copied (const struct repl_patch *p);
/* Every byte written from now on (zero pages too) also goes to hs, at
 * its file offset: the output is sequential, so a layer's hash is done
 * when the patch is (see df_layer_hasher_new).  hs stays the caller's.
 */
void repl_patch_hash_into (struct repl_patch *p, struct df_layer_hasher *hs);
void repl_patch_free (struct repl_patch *p);      /* NULL is fine */

#endif
