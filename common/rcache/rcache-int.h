/* diskfarm — read cache internals: the shared index (index.c) and the
 * device (rcache.c).
 */
#ifndef DISKFARM_RCACHE_INT_H
#define DISKFARM_RCACHE_INT_H

#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>

#include "rcache/rcache.h"

#define RC_MAGIC "DFRCACH1"
#define RC_BLOCK 4096
#define RC_BLOCKS (DF_RCACHE_CHUNK / RC_BLOCK)  /* 16: one valid bit each */
#define RC_NIL UINT32_MAX

/* One chunk of the data file; entry i is chunk slot i. */
struct rc_entry {
  uint8_t vhash[DF_HASH_LEN];   /* the version */
  uint64_t chunk;               /* chunk number in the version */
  uint32_t hnext;               /* hash chain */
  uint32_t prev, next;          /* LRU list (most recent at the head), or
                                   the free list (next) */
  uint32_t gen;                 /* bumped when the slot is reused */
  uint16_t valid;               /* blocks holding data */
  uint16_t pins;                /* fillers writing to the slot */
  uint32_t keyed;               /* in the hash table */
};

/* The index file: this header, the entries, the hash buckets. */
struct rc_header {
  char magic[8];
  uint32_t chunk_size;
  uint32_t clean;               /* the last user closed it */
  uint64_t nslots, nbuckets;
  char boot_id[48];             /* the boot that last opened it */
  pthread_mutex_t mutex;        /* robust, process-shared: all below and
                                   the entries and buckets */
  uint32_t lru_head, lru_tail, free_head;
  uint32_t pad;
  uint64_t used, evictions;
};

struct rc_index {
  int lock_fd;                  /* DIR/lock: open and close in turn */
  int index_fd;                 /* shared flock while in use */
  struct rc_header *h;
  struct rc_entry *e;
  uint32_t *buckets;
  size_t map_len;
};

/* Opens (making or resetting as needed) the index of dir for nslots
 * chunks.  The first user decides the size.
 */
int rc_index_open (struct rc_index *ix, const char *dir, uint64_t nslots,
                   int data_fd);
/* Closes; the last user marks it clean after syncing data_fd. */
void rc_index_close (struct rc_index *ix, int data_fd);

/* The index's lock; a dead holder's half-done update empties it. */
void rc_lock (struct rc_index *ix);
void rc_unlock (struct rc_index *ix);

/* Lock held for these.  rc_find: the entry of (vhash, chunk) or RC_NIL. */
uint32_t rc_find (struct rc_index *ix, const uint8_t *vhash, uint64_t chunk);
/* A slot for (vhash, chunk), reusing the least recently used unpinned
 * one; RC_NIL if every slot is pinned.
 */
uint32_t rc_claim (struct rc_index *ix, const uint8_t *vhash, uint64_t chunk);
void rc_touch (struct rc_index *ix, uint32_t s);

#endif
