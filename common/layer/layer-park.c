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
 * no fsync, tagged with the kernel's boot id and listing the CRC-32C of
 * the data of every block the record has present and the map in place
 * has not.  (Blocks present in both are overwrites in place, which a
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
 * that sees the file, as written.  The next flush writes the map in
 * place and drops the record.
 *
 * Layout at park_offset (the layer's end rounded up to 4096):
 *   0 magic "DFPARK\0\0" | 8 layer id (16) | 24 boot id (40, NUL padded)
 *   64 map length (8) | 72 CRC-32C of the map (4) | 80 entries (8)
 *   88 CRC-32C of the entries (4) | ... zeros ... | 4092 CRC-32C of
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

#include "crc32c.h"
#include "error.h"
#include "util.h"
#include "layer/layer.h"
#include "layer/layer-int.h"

#define PARK_MAGIC "DFPARK"     /* 8 bytes with the NULs */
#define PARK_HEADER 4096
#define ENTRY 12
enum { P_MAGIC = 0, P_ID = 8, P_BOOT = 24, P_MAP_LENGTH = 64, P_MAP_CRC = 72,
       P_ENTRIES = 80, P_ENTRIES_CRC = 88, P_CRC = PARK_HEADER - 4 };

#define CRC_SPAN 4096           /* blocks per chunk */
struct park_crcs {
  uint64_t valid[CRC_SPAN / 64];
  uint32_t crc[CRC_SPAN];
};

static uint64_t
park_offset (const struct df_layer *l)
{
  return df_round_up (l->info.data_offset + l->info.size, 4096);
}

static uint64_t
nchunks (const struct df_layer *l)
{
  return (l->info.nblocks + CRC_SPAN - 1) / CRC_SPAN;
}

void
layer_crc_compute (const struct df_layer *l, const void *buf, uint64_t first,
                   uint64_t count, uint32_t *crc)
{
  const uint8_t *p = buf;
  uint64_t i;

  for (i = 0; i < count; i++, p += l->info.block_size)
    crc[i] = df_crc32c (0, p, layer_blocks_bytes (l, first + i, 1));
}

/* The chunk of block b, made if needed (map_lock held, or the layer not
 * shared yet): NULL if out of memory.
 */
static struct park_crcs *
chunk_get (struct df_layer *l, uint64_t b)
{
  if (l->crcs == NULL && (l->crcs = calloc (nchunks (l), sizeof *l->crcs)) == NULL)
    return NULL;
  if (l->crcs[b / CRC_SPAN] == NULL)
    l->crcs[b / CRC_SPAN] = calloc (1, sizeof **l->crcs);
  return l->crcs[b / CRC_SPAN];
}

static void
crc_set (struct df_layer *l, uint64_t b, const uint32_t *crc)
{
  struct park_crcs *c = chunk_get (l, b);
  uint64_t i = b % CRC_SPAN;

  if (c == NULL)
    return;
  if (crc) {
    c->crc[i] = *crc;
    c->valid[i / 64] |= UINT64_C (1) << (i % 64);
  }
  else
    c->valid[i / 64] &= ~(UINT64_C (1) << (i % 64));
}

void
layer_crc_note (struct df_layer *l, uint64_t first, uint64_t count,
                const uint32_t *crc)
{
  uint64_t i;

  for (i = 0; i < count; i++)
    crc_set (l, first + i, crc ? &crc[i] : NULL);
}

/* The CRC of block b, if known (map_lock held). */
static bool
crc_get (const struct df_layer *l, uint64_t b, uint32_t *crc)
{
  const struct park_crcs *c = l->crcs ? l->crcs[b / CRC_SPAN] : NULL;
  uint64_t i = b % CRC_SPAN;

  if (c == NULL || !(c->valid[i / 64] & (UINT64_C (1) << (i % 64))))
    return false;
  *crc = c->crc[i];
  return true;
}

void
layer_park_free (struct df_layer *l)
{
  uint64_t i;

  if (l->crcs == NULL)
    return;
  for (i = 0; i < nchunks (l); i++)
    free (l->crcs[i]);
  free (l->crcs);
  l->crcs = NULL;
}

/* Blocks present in the map and not in the map in place, with their
 * CRC: the record's entries (map_lock held).  A block whose CRC is not
 * known is left out: another boot will not take it.
 */
static uint8_t *
entries_make (const struct df_layer *l, uint64_t *n)
{
  uint64_t i, b, cap = 0;
  uint8_t *e = NULL;

  *n = 0;
  for (i = 0; i < l->info.map_length; i++) {
    if (l->map[i] == l->disk_map[i])
      continue;
    for (b = i * 4; b < i * 4 + 4 && b < l->info.nblocks; b++) {
      uint32_t crc;
      if (map_get (l->map, b) != DF_BLOCK_PRESENT ||
          map_get (l->disk_map, b) == DF_BLOCK_PRESENT ||
          !crc_get (l, b, &crc))
        continue;
      if (*n == cap) {
        uint8_t *m = realloc (e, (cap = cap ? cap * 2 : 256) * ENTRY);
        if (m == NULL) {
          free (e);
          df_error_errno ("%s", l->path);
          return NULL;
        }
        e = m;
      }
      put64 (e + *n * ENTRY, b);
      put32 (e + *n * ENTRY + 8, crc);
      ++*n;
    }
  }
  return e ? e : malloc (1);
}

/* Writes the record of the current map (map_lock held).  No fsync. */
int
layer_park_write (struct df_layer *l)
{
  uint8_t h[PARK_HEADER], *e;
  char boot[DF_BOOT_ID_LEN + 1];
  uint64_t off = park_offset (l), n;
  int r = 0;

  if (df_boot_id (boot) == -1 || (e = entries_make (l, &n)) == NULL)
    return -1;
  memset (h, 0, sizeof h);
  memcpy (h + P_MAGIC, PARK_MAGIC, sizeof PARK_MAGIC);
  memcpy (h + P_ID, l->info.id, DF_LAYER_ID_LEN);
  memcpy (h + P_BOOT, boot, DF_BOOT_ID_LEN);
  put64 (h + P_MAP_LENGTH, l->info.map_length);
  put32 (h + P_MAP_CRC, df_crc32c (0, l->map, l->info.map_length));
  put64 (h + P_ENTRIES, n);
  put32 (h + P_ENTRIES_CRC, df_crc32c (0, e, n * ENTRY));
  put32 (h + P_CRC, df_crc32c (0, h, P_CRC));
  off += PARK_HEADER;
  if (df_pwrite_full (l->fd, l->map, l->info.map_length, off) == -1 ||
      df_pwrite_full (l->fd, e, n * ENTRY, off + l->info.map_length) == -1 ||
      df_pwrite_full (l->fd, h, sizeof h, off - PARK_HEADER) == -1)
    r = df_error_errno ("write park record of %s", l->path);
  else
    l->park_present = true;
  free (e);
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

/* The record into pk if it is whole and of this layer: 1, else 0.  -1
 * with a message on a read error or out of memory.
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
  if (layer_pread_all (l->fd, h, sizeof h, off - PARK_HEADER) == -1)
    return df_error_errno ("read park record of %s", l->path);
  pk->n = get64 (h + P_ENTRIES);
  if (memcmp (h + P_MAGIC, PARK_MAGIC, sizeof PARK_MAGIC) != 0 ||
      get32 (h + P_CRC) != df_crc32c (0, h, P_CRC) ||
      memcmp (h + P_ID, l->info.id, DF_LAYER_ID_LEN) != 0 ||
      get64 (h + P_MAP_LENGTH) != len || pk->n > l->info.nblocks ||
      size < off + len + pk->n * ENTRY)
    return 0;
  /* Without a boot id no record is of this boot. */
  pk->same_boot = df_boot_id (boot) == 0 &&
    memcmp (h + P_BOOT, boot, DF_BOOT_ID_LEN) == 0;
  df_error_clear ();
  pk->map = malloc (len);
  pk->entries = malloc (pk->n * ENTRY + 1);
  if (pk->map == NULL || pk->entries == NULL)
    return df_error_errno ("%s", l->path);
  if (layer_pread_all (l->fd, pk->map, len, off) == -1 ||
      layer_pread_all (l->fd, pk->entries, pk->n * ENTRY, off + len) == -1)
    return df_error_errno ("read park record of %s", l->path);
  if (get32 (h + P_MAP_CRC) != df_crc32c (0, pk->map, len) ||
      get32 (h + P_ENTRIES_CRC) != df_crc32c (0, pk->entries, pk->n * ENTRY) ||
      layer_check_map (&l->info, pk->map) != 0) {
    df_error_clear ();
    return 0;
  }
  return 1;
}

/* Whether block b's data reads back with the CRC entry e gives. */
static int
data_matches (struct df_layer *l, uint64_t b, const uint8_t *e, uint8_t *buf)
{
  size_t len = layer_blocks_bytes (l, b, 1);

  if (layer_pread_all (l->fd, buf, len, l->info.data_offset +
                      b * l->info.block_size) == -1)
    return df_error_errno ("read %s", l->path);
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
    return df_error_errno ("%s", l->path);
  for (b = 0; b < l->info.nblocks; b++) {
    enum df_block_state s = map_get (pk->map, b);
    int ok;

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
    ok = data_matches (l, b, pk->entries + k * ENTRY, buf);
    if (ok == -1) {
      free (buf);
      return -1;
    }
    if (ok)
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
  uint64_t pages = (l->info.map_length + 4095) / 4096, p, k;
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
    /* What the record knows of the blocks it adds, for the next save. */
    for (k = 0; k < pk.n; k++) {
      uint64_t b = get64 (pk.entries + k * ENTRY);
      uint32_t crc = get32 (pk.entries + k * ENTRY + 8);
      if (b < l->info.nblocks && map_get (l->map, b) == DF_BLOCK_PRESENT)
        crc_set (l, b, &crc);
    }
    if (l->writable && memcmp (l->map, l->disk_map, l->info.map_length)) {
      for (p = 0; p < pages; p++)
        l->dirty[p / 8] |= 1 << (p % 8);
      l->any_dirty = true;
      l->saved = pk.same_boot;
    }
    r = 0;
  }
  park_clear (&pk);
  /* A writer drops a record it could not take (torn, or of another
   * layer); one it took stays until the next flush.
   */
  if (r == 0 && !took && l->writable && l->park_present)
    return layer_park_drop (l);
  return r;
}

/* After the map in place is durable (or before a seal): the record is
 * not needed.  Not synced: after a crash a record left over is another
 * boot's, and ignored.
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
