/* diskfarm — layer internals shared by layer.c and layer-hash.c. */
#ifndef DISKFARM_LAYER_INT_H
#define DISKFARM_LAYER_INT_H

#include <endian.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>
#include <string.h>

#include "layer/layer.h"

struct bulk_hasher;

struct df_layer {
  char *path;
  int fd;
  bool writable;
  bool bulk;                    /* DF_LAYER_BULK: map written at seal */
  struct df_layer_info info;
  uint8_t *map;                 /* map_length bytes */
  uint8_t *dirty;               /* 1 bit per 4 KiB page of the map */
  bool any_dirty;
  bool saved;                   /* the park record holds the map */
  bool park_present;            /* the file has one (layer-park.c) */
  uint8_t *disk_map;            /* the map in place, as last written */
  uint64_t map_gen;             /* map changes (under map_lock) */
  uint64_t flush_gen;           /* maps written in place (under map_lock) */
  /* Lock order: park_lock, then punch_lock, then map_lock.  park_lock
   * makes one save at a time (layer-park.c); a flush does not take it.
   * Writers of blocks hold punch_lock shared from their data write to
   * their map update; zeroing and trimming hold it exclusive from their
   * map update to the hole punch, or a hole punched late would take data
   * a racing write had already marked present.
   */
  pthread_rwlock_t punch_lock;
  pthread_mutex_t map_lock;     /* map, dirty bits and map writes */
  pthread_mutex_t park_lock;
  struct bulk_hasher *hasher;   /* DF_LAYER_BULK only */
  /* layer-mem.c: the file mapped read-only (sealed layers), made once
   * under map_lock; mem_state is read without it.
   */
  char *mem;
  size_t mem_len;
  int mem_state;
};

static inline uint32_t get32 (const uint8_t *p) { uint32_t v; memcpy (&v, p, 4); return le32toh (v); }
static inline uint64_t get64 (const uint8_t *p) { uint64_t v; memcpy (&v, p, 8); return le64toh (v); }
static inline void put32 (uint8_t *p, uint32_t v) { v = htole32 (v); memcpy (p, &v, 4); }
static inline void put64 (uint8_t *p, uint64_t v) { v = htole64 (v); memcpy (p, &v, 8); }

/* Map bytes are read without the lock (a reader sees a byte before or
 * after a change) and changed under it, hence relaxed atomics.
 */
static inline enum df_block_state
map_get (const uint8_t *map, uint64_t block)
{
  return (__atomic_load_n (&map[block / 4], __ATOMIC_RELAXED) >>
          ((block % 4) * 2)) & 3;
}

static inline void
map_put (uint8_t *map, uint64_t block, enum df_block_state s)
{
  unsigned shift = (block % 4) * 2;
  uint8_t v = __atomic_load_n (&map[block / 4], __ATOMIC_RELAXED);

  v = (v & ~(3u << shift)) | (unsigned) s << shift;
  __atomic_store_n (&map[block / 4], v, __ATOMIC_RELAXED);
}

/* df_pread_full where a short read is EIO: the file must hold it all. */
int layer_pread_all (int fd, void *buf, size_t len, uint64_t off);
/* Bytes of blocks [first, first+count) inside the virtual size. */
size_t layer_blocks_bytes (const struct df_layer *l, uint64_t first,
                           uint64_t count);

/* layer-park.c: the park record of df_layer_save.  save with no lock
 * held (0, or -1 with a message: the caller flushes instead); drop with
 * map_lock held (or before the layer is shared); load at open, after
 * the map in place was read and copied to disk_map.
 */
int layer_park_save (struct df_layer *l);
int layer_park_load (struct df_layer *l, uint64_t file_size);
int layer_park_drop (struct df_layer *l);

/* Decode and check a header, and a map for it (layer.c).  Messages
 * have no file name; callers prefix it.
 */
int layer_decode_header (const uint8_t *h, struct df_layer_info *info);
int layer_check_map (const struct df_layer_info *info, const uint8_t *map);

/* layer-hash.c: the leaf of one 4 MiB region (the SHA-256 of its
 * present data) read from the file; buf holds DF_HASH_REGION bytes.
 */
int layer_hash_region (const struct df_layer *l, uint64_t region, uint8_t *buf,
                       uint8_t leaf[DF_HASH_LEN]);
/* The leaves of regions[0..n) into leaves[0..n), on up to threads
 * threads (0: 8).  -1 with errno.
 */
int layer_hash_leaves (const struct df_layer *l, const uint64_t *regions,
                       size_t n, uint8_t (*leaves)[DF_HASH_LEN],
                       unsigned threads);
/* The content hash from the leaves: header (read from the file), map,
 * then each region of regions[0..n) (ascending) with its leaf, which is
 * leaves[regions[i]] when by_region, else leaves[i].
 */
int layer_combine_leaves (const struct df_layer *l, size_t n,
                          const uint64_t *regions,
                          const uint8_t (*leaves)[DF_HASH_LEN], bool by_region,
                          uint8_t hash[DF_HASH_LEN]);

/* layer-hash.c: a bulk layer hashes regions as the writer leaves them
 * behind, so that sealing has little left to hash.
 */
int layer_bulk_hasher_start (struct df_layer *l);
void layer_bulk_hasher_note (struct df_layer *l, uint64_t first, uint64_t count);
void layer_bulk_hasher_stop (struct df_layer *l);
/* The content hash, from the bulk hasher's leaves when it saw every
 * write in order, else by hashing the file.
 */
int layer_seal_hash (struct df_layer *l, uint8_t hash[DF_HASH_LEN]);

/* layer-mem.c: unmaps the file (at close). */
void layer_mem_unmap (struct df_layer *l);

#endif
