/* diskfarm — layer files: one version of a vDisk, or a disk write cache.
 *
 * The format is specified in docs/layer-format.md.  In short: a 4 KiB
 * header with a CRC-32C, an allocation map of 2 bits per block (absent,
 * present, zero) and block data at fixed offsets (block i at
 * data_offset + i * block_size), the file sparse where blocks are not
 * present.
 *
 * A layer is opened read-only or writable.  A sealed layer (flag in the
 * header) is never opened writable again.  Writes put the data in place
 * first and then the map entries, so a process killed at any point leaves
 * each block with its old or its new content.  FLUSH (df_layer_flush)
 * makes everything written so far durable; the map is written in place
 * only there, after the data is durable (df_layer_save keeps it apart).
 *
 * Thread safety: reads and writes of different blocks may run in
 * parallel; map changes are serialised inside.
 */
#ifndef DISKFARM_LAYER_H
#define DISKFARM_LAYER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "hash/hash.h"

#define DF_LAYER_ID_LEN 16
#define DF_LAYER_HEADER_SIZE 4096
#define DF_LAYER_FORMAT_VERSION 1
#define DF_LAYER_MIN_BLOCK 4096
#define DF_LAYER_MAX_BLOCK (1024 * 1024)
#define DF_LAYER_DEFAULT_BLOCK 4096
#define DF_LAYER_MAX_SIZE (UINT64_C (1) << 56)

enum df_block_state {
  DF_BLOCK_ABSENT = 0,          /* read through to the parent */
  DF_BLOCK_PRESENT = 1,         /* data stored in this layer */
  DF_BLOCK_ZERO = 2,            /* reads as zeros, hides the parent */
};

struct df_layer_info {
  uint32_t format_version;
  uint32_t block_size;
  uint64_t size;                /* virtual size in bytes */
  uint64_t nblocks;
  bool sealed;
  uint8_t id[DF_LAYER_ID_LEN];
  uint8_t parent_id[DF_LAYER_ID_LEN];   /* all zero for a base layer */
  uint8_t parent_hash[DF_HASH_LEN];
  uint64_t map_offset, map_length, data_offset;
  uint64_t created_ns;
};

struct df_layer;

/* Flags for df_layer_create. */
#define DF_LAYER_BULK 1         /* a writer that fills the layer and seals
                                   it (import, merge): the map is kept in
                                   memory and written at seal */

/* The content hash covers 4 MiB regions of the virtual disk separately
 * (see docs/layer-format.md), so it can be computed in parallel.
 */
#define DF_HASH_REGION (4 * 1024 * 1024)

/* Creates a new writable layer at path (which must not exist).
 * parent_id/parent_hash may be NULL for a base layer.  Returns NULL with
 * a message on error.  Caller closes.
 */
struct df_layer *df_layer_create (const char *path, uint64_t size,
                                  uint32_t block_size,
                                  const uint8_t *parent_id,
                                  const uint8_t *parent_hash, int flags);

/* Opens and checks a layer: header, checksum, map, file length.  A
 * damaged file gives NULL with a message saying what is wrong.
 */
struct df_layer *df_layer_open (const char *path, bool writable);

/* Same checks on a layer image in memory (for the fuzzer and for
 * verify): header and map only.  Returns 0 or -1 with a message.
 */
int df_layer_check_image (const void *data, size_t len);

void df_layer_close (struct df_layer *l);   /* NULL is fine */

const struct df_layer_info *df_layer_info (const struct df_layer *l);
const char *df_layer_path (const struct df_layer *l);
bool df_layer_writable (const struct df_layer *l);

enum df_block_state df_layer_block (const struct df_layer *l, uint64_t block);
uint64_t df_layer_count (const struct df_layer *l, enum df_block_state s);

/* Raw data of present blocks: len bytes at virtual offset. */
int df_layer_pread (const struct df_layer *l, void *buf, size_t len,
                    uint64_t offset);

/* Writes count whole blocks from first (the last block of the disk may
 * be short: only the bytes inside the virtual size are taken from buf)
 * and marks them present.
 */
int df_layer_write_blocks (struct df_layer *l, const void *buf,
                           uint64_t first, uint64_t count);

/* The len bytes of present blocks at virtual offset, in memory, for a
 * sender that can write from there without copying them first: *data
 * points at them (valid until the layer is closed) when the layer is
 * sealed and they are all in the page cache; else *data is NULL and
 * they are read with df_layer_pread.  Returns 0, or -1 with a message.
 */
int df_layer_peek (const struct df_layer *l, uint64_t offset, size_t len,
                   const void **data);

/* Marks blocks zero or absent and frees their data. */
int df_layer_set_blocks (struct df_layer *l, uint64_t first, uint64_t count,
                         enum df_block_state state);

int df_layer_flush (struct df_layer *l);

/* For a server stop, which must not wait for the writeback of all that
 * was written since the last flush: writes the current map into a park
 * record past the layer's data, tagged with the kernel's boot id, with
 * no fsync; the map in place stays the one of the last flush.  An open
 * in the same boot (a restarted process) reads the layer as it was at
 * the save; after a reboot, each block as of the last flush or newer
 * (layer-park.c says why that is safe).  Without a boot id, or if the
 * record cannot be made, it flushes instead.  A close right after it
 * does not flush.
 */
int df_layer_save (struct df_layer *l);

/* Makes the layer immutable: sets the sealed flag, writes everything,
 * fsyncs, and returns the content hash.  The layer stays open read-only.
 */
int df_layer_seal (struct df_layer *l, uint8_t hash[DF_HASH_LEN]);

/* Computes the content hash from the file (header, map, present data). */
int df_layer_hash (const struct df_layer *l, uint8_t hash[DF_HASH_LEN]);
/* The same in the background: on at most threads threads (0: a thread
 * per core), giving up with ECANCELED once *cancel (may be NULL) is
 * true.
 */
int df_layer_hash_bg (const struct df_layer *l, uint8_t hash[DF_HASH_LEN],
                      unsigned threads, const bool *cancel);

/* ---- the content hash of a layer file as its bytes arrive ----
 *
 * A receiver that writes a layer file (a replica downloaded in pieces,
 * or rebuilt by a delta patch) gives each range of bytes to a hasher as
 * it writes it, at its file offset.  The hasher learns the header and
 * the map from the bytes at offset 0 onwards, then hashes each 4 MiB
 * region's present data as it arrives.  A region whose data arrives in
 * order (each byte after the one before, in any number of calls; holes
 * of absent blocks between them are fine) and only once is hashed from
 * memory; any other (arriving out of order, twice, or partly before the
 * hasher existed, as after a resume) is read back from the file at the
 * end.  So the result is always exactly df_layer_hash of the file as it
 * is then, whatever the order: ranges given to different regions may
 * come in any order, and pieces that arrive concurrently only cost the
 * regions they split.
 *
 * The bytes given must be the bytes written at that offset (zeros left
 * as holes included).  Not thread-safe: one caller at a time.
 */
struct df_layer_hasher;

/* NULL with a message if out of memory. */
struct df_layer_hasher *df_layer_hasher_new (void);
void df_layer_hasher_free (struct df_layer_hasher *hs);   /* NULL is fine */

/* Bytes written at file offset off.  Never fails: what it cannot use is
 * read back from the file by df_layer_hasher_final.
 */
void df_layer_hasher_data (struct df_layer_hasher *hs, uint64_t off,
                           const void *buf, size_t len);

/* Bytes of present data df_layer_hasher_final would read back from the
 * file now (all of it while the map is not known).
 */
uint64_t df_layer_hasher_pending (const struct df_layer_hasher *hs);

/* The content hash of l, the file the bytes were written to (opened
 * after the last write): the regions hashed on the way, the others read
 * from l.  If l's header or map differ from what the hasher learnt, the
 * whole file is hashed.  The same result as df_layer_hash (l); hs stays
 * usable (free it afterwards).
 */
int df_layer_hasher_final (struct df_layer_hasher *hs,
                           const struct df_layer *l,
                           uint8_t hash[DF_HASH_LEN]);

#endif
