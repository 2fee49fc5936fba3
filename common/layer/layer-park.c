/* diskfarm — a writable layer's park record (docs/layer-format.md,
 * "Park records").
 *
 * A server stop must not wait for the disk to write back everything the
 * sessions wrote since their clients' last FLUSH (minutes at random
 * places on a slow disk), and it must not write the map in place before
 * that data is durable either: the kernel writes dirty pages back in any
 * order, so a crash of the host could find a map entry that says present
 * over a block whose data never reached the disk, and the block would
 * read as zeros, neither its old nor its new content.
 *
 * So a park (df_layer_save) leaves the map in place as of the last flush
 * and writes the current map into a record past the layer's data, with
 * no fsync, tagged with the kernel's boot id and the CRC-32C of the map
 * in place it is based on, and listing the CRC-32C of the data of every
 * block the record has present and the map in place has not, read back
 * at the park (the unflushed data is in the page cache: writes pay
 * nothing for it).  (Blocks present in both are overwrites in place, which a
 * crash may leave old or new like any unflushed write; blocks the record
 * has zero or absent need no data.)
 *
 * An open in the same boot trusts the record whole: the process that
 * wrote it is gone but the kernel that holds its writes (page cache or
 * disk) is the same, so every block reads as written, and nothing is
 * read to check it.  Any other open (after a reboot, which may have been
 * a crash; or on another server sharing the cache directory) starts from
 * the map in place, the one of the last flush, whose blocks were durable
 * at that flush, and takes each change the record makes: a block the
 * record adds is taken only if its data reads back with its CRC, so a
 * block whose data did not reach the disk keeps its state of the last
 * flush.  After a crash each block thus reads as of the last flush or
 * newer, never as zeros it never held; after a clean stop, on any server
 * that sees the file, as written.
 *
 * The next flush drops the record (truncates it) before it writes the
 * map in place, and its fdatasync commits both: a flush that returned
 * leaves no record behind, even after a crash.  A record that is left
 * over all the same (the truncate failed, or another program put it
 * back) is not based on the map in place once a flush changed it, and
 * every open ignores it; so a leftover record never undoes a flush.
 *
 * Layout at park_offset (the layer's end rounded up to 4096):
 *   0 magic "DFPARK\0\0" | 8 layer id (16) | 24 boot id (40, NUL padded)
 *   64 map length (8) | 72 CRC-32C of the map (4) | 80 entries (8)
 *   88 CRC-32C of the entries (4) | 92 CRC-32C of the map in place
 *   it is based on (4) | ... zeros ... | 4092 CRC-32C of
 *   bytes 0-4091; at park_offset + 4096 the map, then the entries, 12
 *   bytes each in ascending block order: block (8), CRC-32C of its data
 *   (4; the bytes inside the virtual size of a short last block).
 * Map and entries go first and the header last, so a process killed
 * while writing it leaves a record whose checksums fail, and is ignored.
 */
#include <config.h>

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "cleanup.h"
#include "crc32c.h"
#include "error.h"
#include "util.h"
#include "layer/layer.h"
#include "layer/layer-int.h"

#define PARK_MAGIC "DFPARK"     /* 8 bytes with the NULs */
#define PARK_HEADER 4096
#define ENTRY 12
#define RUN_BYTES (1 << 20)     /* read back in runs of up to this */
enum { P_MAGIC = 0, P_ID = 8, P_BOOT = 24, P_MAP_LENGTH = 64, P_MAP_CRC = 72,
       P_ENTRIES = 80, P_ENTRIES_CRC = 88, P_BASE_CRC = 92,
       P_CRC = PARK_HEADER - 4 };

static uint64_t
park_offset (const struct df_layer *l)
{
  return df_round_up (l->info.data_offset + l->info.size, 4096);
}

/* Whether the record adds block b: present in map, not in disk. */
static bool
added (const uint8_t *map, const uint8_t *disk, uint64_t b)
{
  return map_get (map, b) == DF_BLOCK_PRESENT &&
    map_get (disk, b) != DF_BLOCK_PRESENT;
}

static int
entries_grow (const struct df_layer *l, uint8_t **e, uint64_t *cap,
              uint64_t need)
{
  uint8_t *m;

  if (need <= *cap)
    return 0;
  *cap = need > *cap * 2 ? need : *cap * 2;
  if ((m = realloc (*e, *cap * ENTRY)) == NULL)
    return df_error_errno ("park record of %s", l->path);
  *e = m;
  return 0;
}

/* The record's entries: each block map has present and disk (the map in
 * place) has not, with the CRC-32C of its data, read back from the file
 * in runs of adjacent blocks.  Unflushed data is in the page cache (a
 * dirty page stays until written back), so this is cheap.  NULL with a
 * message if a read fails or out of memory.
 */
static uint8_t *
entries_make (const struct df_layer *l, const uint8_t *map,
              const uint8_t *disk, uint64_t *n)
{
  uint32_t bs = l->info.block_size;
  uint64_t max = RUN_BYTES > bs ? RUN_BYTES / bs : 1, b = 0, run, i, cap = 0;
  CLEANUP_FREE uint8_t *buf = malloc (max * bs);
  uint8_t *e = NULL;

  *n = 0;
  if (buf == NULL || entries_grow (l, &e, &cap, 1) == -1) {
    df_error_errno ("park record of %s", l->path);
    free (e);
    return NULL;
  }
  while (b < l->info.nblocks) {
    if (b % 4 == 0 && map[b / 4] == disk[b / 4]) {
      b += 4;
      continue;
    }
    if (!added (map, disk, b)) {
      b++;
      continue;
    }
    for (run = 1; run < max && b + run < l->info.nblocks &&
           added (map, disk, b + run); run++)
      ;
    if (entries_grow (l, &e, &cap, *n + run) == -1)
      goto fail;
    if (layer_pread_all (l->fd, buf, layer_blocks_bytes (l, b, run),
                         l->info.data_offset + b * bs) == -1) {
      df_error_errno ("read %s for its park record", l->path);
      goto fail;
    }
    for (i = 0; i < run; i++, ++*n) {
      put64 (e + *n * ENTRY, b + i);
      put32 (e + *n * ENTRY + 8,
             df_crc32c (0, buf + i * bs, layer_blocks_bytes (l, b + i, 1)));
    }
    b += run;
  }
  return e;

 fail:
  free (e);
  return NULL;
}

/* Writes the record of map (disk: the map in place it is based on).
 * No fsync.  0 or -1 with a message.
 */
static int
park_write (struct df_layer *l, const uint8_t *map, const uint8_t *disk,
            const char *boot)
{
  uint8_t h[PARK_HEADER];
  CLEANUP_FREE uint8_t *e = NULL;
  uint64_t off = park_offset (l) + PARK_HEADER, len = l->info.map_length, n;

  if ((e = entries_make (l, map, disk, &n)) == NULL)
    return -1;
  memset (h, 0, sizeof h);
  memcpy (h + P_MAGIC, PARK_MAGIC, sizeof PARK_MAGIC);
  memcpy (h + P_ID, l->info.id, DF_LAYER_ID_LEN);
  memcpy (h + P_BOOT, boot, DF_BOOT_ID_LEN);
  put64 (h + P_MAP_LENGTH, len);
  put32 (h + P_MAP_CRC, df_crc32c (0, map, len));
  put64 (h + P_ENTRIES, n);
  put32 (h + P_ENTRIES_CRC, df_crc32c (0, e, n * ENTRY));
  put32 (h + P_BASE_CRC, df_crc32c (0, disk, len));
  put32 (h + P_CRC, df_crc32c (0, h, P_CRC));
  if (df_pwrite_full (l->fd, map, len, off) == -1 ||
      df_pwrite_full (l->fd, e, n * ENTRY, off + len) == -1 ||
      df_pwrite_full (l->fd, h, sizeof h, off - PARK_HEADER) == -1)
    return df_error_errno ("write park record of %s", l->path);
  return 0;
}

/* df_layer_save: the record of a snapshot of the map, taken under
 * map_lock and written without it.  One save at a time (park_lock).
 */
int
layer_park_save (struct df_layer *l)
{
  char boot[DF_BOOT_ID_LEN + 1];
  CLEANUP_FREE uint8_t *map = NULL;
  CLEANUP_FREE uint8_t *disk = NULL;
  uint64_t map_gen, flush_gen;
  int r;

  if (df_boot_id (boot) == -1)
    return -1;
  map = malloc (l->info.map_length);
  disk = malloc (l->info.map_length);
  if (map == NULL || disk == NULL)
    return df_error_errno ("park record of %s", l->path);
  SCOPED_LOCK (&l->park_lock);
  {
    SCOPED_LOCK (&l->map_lock);
    if (!l->any_dirty || l->saved)
      return 0;
    memcpy (map, l->map, l->info.map_length);
    memcpy (disk, l->disk_map, l->info.map_length);
    map_gen = l->map_gen;
    flush_gen = l->flush_gen;
    /* Whatever part of it gets written goes at the next drop. */
    l->park_present = true;
  }
  r = park_write (l, map, disk, boot);
  SCOPED_LOCK (&l->map_lock);
  l->park_present = true;
  if (r == 0 && l->flush_gen != flush_gen)
    /* A flush wrote the map in place meanwhile, and may have dropped the
     * record before this one was written: this one is older than that
     * map, and goes (its base CRC would not match anyway, unless the
     * flush wrote the same map).  The map is not saved: close flushes.
     */
    return layer_park_drop (l);
  if (r == 0 && l->map_gen == map_gen)
    l->saved = true;
  return r;
}

struct park {
  bool same_boot;
  uint8_t *map;
  uint8_t *entries;
  uint64_t n;
};

static void
park_clear (struct park *pk)
{
  free (pk->map);
  free (pk->entries);
}

/* The record into pk if it is whole, of this layer and based on the map
 * in place (disk_map): 1, else 0 (also if it cannot be read: a writer
 * then drops it).  -1 with a message if out of memory.
 */
static int
park_read (struct df_layer *l, uint64_t size, struct park *pk)
{
  uint8_t h[PARK_HEADER];
  char boot[DF_BOOT_ID_LEN + 1];
  uint64_t off = park_offset (l) + PARK_HEADER, len = l->info.map_length;

  if (size > l->info.data_offset + l->info.size)
    l->park_present = true;
  if (size < off + len)
    return 0;
  if (layer_pread_all (l->fd, h, sizeof h, off - PARK_HEADER) == -1) {
    df_error_clear ();
    return 0;
  }
  pk->n = get64 (h + P_ENTRIES);
  if (memcmp (h + P_MAGIC, PARK_MAGIC, sizeof PARK_MAGIC) != 0 ||
      get32 (h + P_CRC) != df_crc32c (0, h, P_CRC) ||
      memcmp (h + P_ID, l->info.id, DF_LAYER_ID_LEN) != 0 ||
      get64 (h + P_MAP_LENGTH) != len || pk->n > l->info.nblocks ||
      size < off + len + pk->n * ENTRY ||
      get32 (h + P_BASE_CRC) != df_crc32c (0, l->disk_map, len))
    return 0;
  /* Without a boot id no record is of this boot. */
  pk->same_boot = df_boot_id (boot) == 0 &&
    memcmp (h + P_BOOT, boot, DF_BOOT_ID_LEN) == 0;
  df_error_clear ();
  pk->map = malloc (len);
  pk->entries = malloc (pk->n * ENTRY + 1);
  if (pk->map == NULL || pk->entries == NULL)
    return df_error_errno ("park record of %s", l->path);
  if (layer_pread_all (l->fd, pk->map, len, off) == -1 ||
      layer_pread_all (l->fd, pk->entries, pk->n * ENTRY, off + len) == -1 ||
      get32 (h + P_MAP_CRC) != df_crc32c (0, pk->map, len) ||
      get32 (h + P_ENTRIES_CRC) != df_crc32c (0, pk->entries, pk->n * ENTRY) ||
      layer_check_map (&l->info, pk->map) != 0) {
    df_error_clear ();
    return 0;
  }
  return 1;
}

/* Whether block b's data reads back with the CRC entry e gives (not if
 * it cannot be read: the block keeps its state of the last flush).
 */
static bool
data_matches (struct df_layer *l, uint64_t b, const uint8_t *e, uint8_t *buf)
{
  size_t len = layer_blocks_bytes (l, b, 1);

  if (layer_pread_all (l->fd, buf, len, l->info.data_offset +
                      b * l->info.block_size) == -1) {
    df_error_clear ();
    return false;
  }
  return df_crc32c (0, buf, len) == get32 (e + 8);
}

/* Another boot's record: the map in place (l->map now), and each change
 * the record makes that can be checked.  0 or -1.
 */
static int
park_take (struct df_layer *l, const struct park *pk)
{
  uint8_t *buf = malloc (l->info.block_size);
  uint64_t b, k = 0;

  if (buf == NULL)
    return df_error_errno ("park record of %s", l->path);
  for (b = 0; b < l->info.nblocks; b++) {
    enum df_block_state s = map_get (pk->map, b);

    if ((b % 4 == 0 && pk->map[b / 4] == l->map[b / 4]) ||
        s == map_get (l->map, b)) {
      b += b % 4 == 0 && pk->map[b / 4] == l->map[b / 4] ? 3 : 0;
      continue;
    }
    if (s != DF_BLOCK_PRESENT || map_get (l->map, b) == DF_BLOCK_PRESENT) {
      map_put (l->map, b, s);
      continue;
    }
    while (k < pk->n && get64 (pk->entries + k * ENTRY) < b)
      k++;
    if (k == pk->n || get64 (pk->entries + k * ENTRY) != b)
      continue;
    if (data_matches (l, b, pk->entries + k * ENTRY, buf))
      map_put (l->map, b, DF_BLOCK_PRESENT);
  }
  free (buf);
  return 0;
}

/* At open of an unsealed layer, after its map in place was read (and
 * copied to disk_map).  A writer then has every map page dirty, so the
 * next flush writes them in place; saved if the map is the record's (a
 * close without changes need not flush).  0 or -1.
 */
int
layer_park_load (struct df_layer *l, uint64_t file_size)
{
  struct park pk = { 0 };
  uint64_t pages = (l->info.map_length + 4095) / 4096, p;
  int r = park_read (l, file_size, &pk);
  bool took = r == 1;

  if (took && pk.same_boot) {
    free (l->map);
    l->map = pk.map;
    pk.map = NULL;
  }
  else if (took && park_take (l, &pk) == -1)
    r = -1, took = false;
  if (took) {
    if (l->writable && memcmp (l->map, l->disk_map, l->info.map_length)) {
      for (p = 0; p < pages; p++)
        l->dirty[p / 8] |= 1 << (p % 8);
      l->any_dirty = true;
      l->saved = pk.same_boot;
    }
    r = 0;
  }
  park_clear (&pk);
  /* A writer drops a record it could not take (torn, unreadable, of
   * another layer, or not based on the map in place); one it took stays
   * until the next flush.
   */
  if (r == 0 && !took && l->writable && l->park_present)
    return layer_park_drop (l);
  return r;
}

/* Once the data is durable, before the map in place is written (or
 * before a seal): the record is not needed.  Not synced here: the
 * caller's fdatasync commits it.
 */
int
layer_park_drop (struct df_layer *l)
{
  if (!l->park_present)
    return 0;
  if (ftruncate (l->fd, l->info.data_offset + l->info.size) == -1)
    return df_error_errno ("truncate %s", l->path);
  l->park_present = false;
  return 0;
}
