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
 * and writes the current map into a record past the layer's data, tagged
 * with the kernel's boot id, without any fsync.  The record is only
 * trusted by an open in the same boot: the process that wrote it is gone
 * but the kernel that holds its writes (page cache or disk) is the same,
 * so every block it points at reads as written.  After a reboot (a
 * crash, or a host stop, which syncs but is not known to have) the boot
 * id differs and the map in place, the one of the last flush, holds: the
 * blocks it points at were durable at that flush, and a block written
 * since either was not in it (and reads as before) or is an overwrite in
 * place of a block that was, which a crash may leave old or new like any
 * unflushed write.  The next flush writes the map in place and drops
 * the record.
 *
 * Layout at park_offset (the layer's end rounded up to 4096):
 *   0 magic "DFPARK\0\0" | 8 layer id (16) | 24 boot id (40, NUL padded)
 *   64 map length (8) | 72 CRC-32C of the map (4) | ... zeros ...
 *   4092 CRC-32C of bytes 0-4091;  then the map at park_offset + 4096.
 * The map goes first and the header last, so a process killed while
 * writing it leaves a record whose checksums fail, and is ignored.
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
enum { P_MAGIC = 0, P_ID = 8, P_BOOT = 24, P_MAP_LENGTH = 64, P_MAP_CRC = 72,
       P_CRC = PARK_HEADER - 4 };

static uint64_t
park_offset (const struct df_layer *l)
{
  return df_round_up (l->info.data_offset + l->info.size, 4096);
}

/* Writes the record of the current map (map_lock held).  No fsync. */
int
layer_park_write (struct df_layer *l)
{
  uint8_t h[PARK_HEADER];
  char boot[DF_BOOT_ID_LEN + 1];
  uint64_t off = park_offset (l);

  if (df_boot_id (boot) == -1)
    return -1;
  memset (h, 0, sizeof h);
  memcpy (h + P_MAGIC, PARK_MAGIC, sizeof PARK_MAGIC);
  memcpy (h + P_ID, l->info.id, DF_LAYER_ID_LEN);
  memcpy (h + P_BOOT, boot, DF_BOOT_ID_LEN);
  put64 (h + P_MAP_LENGTH, l->info.map_length);
  put32 (h + P_MAP_CRC, df_crc32c (0, l->map, l->info.map_length));
  put32 (h + P_CRC, df_crc32c (0, h, P_CRC));
  if (df_pwrite_full (l->fd, l->map, l->info.map_length, off + PARK_HEADER) == -1 ||
      df_pwrite_full (l->fd, h, sizeof h, off) == -1)
    return df_error_errno ("write park record of %s", l->path);
  l->park_present = true;
  return 0;
}

/* The record's map into m if it is whole, of this layer and of this
 * boot: 1, else 0.  -1 with a message on a read error.
 */
static int
park_read (struct df_layer *l, uint64_t size, uint8_t *m)
{
  uint8_t h[PARK_HEADER];
  char boot[DF_BOOT_ID_LEN + 1];
  uint64_t off = park_offset (l);

  if (size > l->info.data_offset + l->info.size)
    l->park_present = true;
  if (size < off + PARK_HEADER + l->info.map_length)
    return 0;
  if (layer_pread_all (l->fd, h, sizeof h, off) == -1)
    return df_error_errno ("read park record of %s", l->path);
  if (memcmp (h + P_MAGIC, PARK_MAGIC, sizeof PARK_MAGIC) != 0 ||
      get32 (h + P_CRC) != df_crc32c (0, h, P_CRC) ||
      memcmp (h + P_ID, l->info.id, DF_LAYER_ID_LEN) != 0 ||
      get64 (h + P_MAP_LENGTH) != l->info.map_length)
    return 0;
  /* No boot id: nothing can be trusted, the map in place holds. */
  if (df_boot_id (boot) == -1) {
    df_error_clear ();
    return 0;
  }
  if (memcmp (h + P_BOOT, boot, DF_BOOT_ID_LEN) != 0)
    return 0;
  if (layer_pread_all (l->fd, m, l->info.map_length, off + PARK_HEADER) == -1)
    return df_error_errno ("read park record of %s", l->path);
  if (get32 (h + P_MAP_CRC) != df_crc32c (0, m, l->info.map_length) ||
      layer_check_map (&l->info, m) != 0) {
    df_error_clear ();
    return 0;
  }
  return 1;
}

/* At open of an unsealed layer, after its map in place was read: a
 * record of this boot replaces it.  A writer then has every map page
 * dirty (the next flush writes them in place), and saved (the record
 * holds them: a close without changes need not flush).  0 or -1.
 */
int
layer_park_load (struct df_layer *l, uint64_t file_size)
{
  uint8_t *m = malloc (l->info.map_length ? l->info.map_length : 1);
  uint64_t pages = (l->info.map_length + 4095) / 4096, p;
  int r;

  if (m == NULL)
    return df_error_errno ("%s", l->path);
  r = park_read (l, file_size, m);
  if (r == 1) {
    free (l->map);
    l->map = m;
    if (l->writable) {
      for (p = 0; p < pages; p++)
        l->dirty[p / 8] |= 1 << (p % 8);
      l->any_dirty = l->saved = true;
    }
    return 0;
  }
  free (m);
  /* A writer drops a record it cannot use (another boot's, or torn). */
  if (r == 0 && l->writable && l->park_present)
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
