/* diskfarm — layer files (see layer.h and docs/layer-format.md). */
#include <config.h>

#include <endian.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include "cleanup.h"
#include "crc32c.h"
#include "error.h"
#include "util.h"
#include "layer/layer.h"
#include "layer/layer-int.h"

int
layer_pread_all (int fd, void *buf, size_t len, uint64_t off)
{
  ssize_t r = df_pread_full (fd, buf, len, off);

  /* A layer file is never shorter than its header and map say. */
  if (r >= 0 && (size_t) r < len) {
    errno = EIO;
    return -1;
  }
  return r == -1 ? -1 : 0;
}


size_t
layer_blocks_bytes (const struct df_layer *l, uint64_t first, uint64_t count)
{
  uint64_t start = first * l->info.block_size;
  uint64_t end = (first + count) * l->info.block_size;

  if (end > l->info.size)
    end = l->info.size;
  return end - start;
}

#define MAGIC "DFLAYER"         /* 8 bytes with the NUL */
#define FLAG_SEALED 1u
#define FLAGS_KNOWN FLAG_SEALED

/* Header field offsets. */
enum {
  H_MAGIC = 0, H_VERSION = 8, H_HEADER_SIZE = 12, H_SIZE = 16,
  H_BLOCK_SIZE = 24, H_FLAGS = 28, H_ID = 32, H_PARENT_ID = 48,
  H_PARENT_HASH = 64, H_MAP_OFFSET = 96, H_MAP_LENGTH = 104,
  H_DATA_OFFSET = 112, H_CREATED = 120, H_RESERVED = 128,
  H_CRC = DF_LAYER_HEADER_SIZE - 4,
};





static void
encode_header (const struct df_layer_info *info, uint8_t h[DF_LAYER_HEADER_SIZE])
{
  memset (h, 0, DF_LAYER_HEADER_SIZE);
  memcpy (h + H_MAGIC, MAGIC, 8);
  put32 (h + H_VERSION, info->format_version);
  put32 (h + H_HEADER_SIZE, DF_LAYER_HEADER_SIZE);
  put64 (h + H_SIZE, info->size);
  put32 (h + H_BLOCK_SIZE, info->block_size);
  put32 (h + H_FLAGS, info->sealed ? FLAG_SEALED : 0);
  memcpy (h + H_ID, info->id, DF_LAYER_ID_LEN);
  memcpy (h + H_PARENT_ID, info->parent_id, DF_LAYER_ID_LEN);
  memcpy (h + H_PARENT_HASH, info->parent_hash, DF_HASH_LEN);
  put64 (h + H_MAP_OFFSET, info->map_offset);
  put64 (h + H_MAP_LENGTH, info->map_length);
  put64 (h + H_DATA_OFFSET, info->data_offset);
  put64 (h + H_CREATED, info->created_ns);
  put32 (h + H_CRC, df_crc32c (0, h, H_CRC));
}

static uint64_t
map_length_for (uint64_t nblocks)
{
  return (nblocks + 3) / 4;
}

/* Decodes and checks a header.  Messages have no file name; callers
 * prefix it.
 */
int
layer_decode_header (const uint8_t *h, struct df_layer_info *info)
{
  uint32_t crc, flags;
  uint64_t map_end;

  if (memcmp (h + H_MAGIC, MAGIC, 8) != 0)
    return df_error (EINVAL, "not a diskfarm layer (bad magic)");
  info->format_version = get32 (h + H_VERSION);
  if (info->format_version != DF_LAYER_FORMAT_VERSION)
    return df_error (EINVAL, "layer format version %" PRIu32 " is not supported "
                     "(this diskfarm reads version %d)",
                     info->format_version, DF_LAYER_FORMAT_VERSION);
  crc = df_crc32c (0, h, H_CRC);
  if (crc != get32 (h + H_CRC))
    return df_error (EINVAL, "header checksum mismatch (stored %08" PRIx32
                     ", computed %08" PRIx32 ")", get32 (h + H_CRC), crc);
  if (get32 (h + H_HEADER_SIZE) != DF_LAYER_HEADER_SIZE)
    return df_error (EINVAL, "header size %" PRIu32 " is not %d",
                     get32 (h + H_HEADER_SIZE), DF_LAYER_HEADER_SIZE);
  info->size = get64 (h + H_SIZE);
  info->block_size = get32 (h + H_BLOCK_SIZE);
  flags = get32 (h + H_FLAGS);
  if (info->block_size < DF_LAYER_MIN_BLOCK ||
      info->block_size > DF_LAYER_MAX_BLOCK ||
      !df_is_power_of_2 (info->block_size))
    return df_error (EINVAL, "block size %" PRIu32 " is not a power of two "
                     "from %d to %d", info->block_size, DF_LAYER_MIN_BLOCK,
                     DF_LAYER_MAX_BLOCK);
  if (info->size == 0 || info->size > DF_LAYER_MAX_SIZE || info->size % 512)
    return df_error (EINVAL, "virtual size %" PRIu64 " is not a non-zero "
                     "multiple of 512 up to 2^56", info->size);
  if (flags & ~FLAGS_KNOWN)
    return df_error (EINVAL, "unknown header flags %#" PRIx32, flags);
  info->sealed = flags & FLAG_SEALED;
  memcpy (info->id, h + H_ID, DF_LAYER_ID_LEN);
  memcpy (info->parent_id, h + H_PARENT_ID, DF_LAYER_ID_LEN);
  memcpy (info->parent_hash, h + H_PARENT_HASH, DF_HASH_LEN);
  if (df_is_zero (info->id, DF_LAYER_ID_LEN))
    return df_error (EINVAL, "layer id is zero");
  if (df_is_zero (info->parent_id, DF_LAYER_ID_LEN) !=
      df_is_zero (info->parent_hash, DF_HASH_LEN))
    return df_error (EINVAL, "parent id and parent hash disagree "
                     "(one is zero, the other not)");
  info->nblocks = (info->size + info->block_size - 1) / info->block_size;
  info->map_offset = get64 (h + H_MAP_OFFSET);
  info->map_length = get64 (h + H_MAP_LENGTH);
  info->data_offset = get64 (h + H_DATA_OFFSET);
  info->created_ns = get64 (h + H_CREATED);
  if (info->map_offset != DF_LAYER_HEADER_SIZE)
    return df_error (EINVAL, "map offset %" PRIu64 " is not %d",
                     info->map_offset, DF_LAYER_HEADER_SIZE);
  if (info->map_length != map_length_for (info->nblocks))
    return df_error (EINVAL, "map length %" PRIu64 " does not match %" PRIu64
                     " blocks", info->map_length, info->nblocks);
  map_end = df_round_up (info->map_offset + info->map_length, 4096);
  if (info->data_offset < map_end ||
      info->data_offset % info->block_size != 0)
    return df_error (EINVAL, "data offset %" PRIu64 " is not block aligned "
                     "after the map", info->data_offset);
  if (!df_is_zero (h + H_RESERVED, H_CRC - H_RESERVED))
    return df_error (EINVAL, "reserved header bytes are not zero");
  return 0;
}

int
layer_check_map (const struct df_layer_info *info, const uint8_t *map)
{
  uint64_t i, full = info->nblocks / 4;
  unsigned b;

  for (i = 0; i < full; i++) {
    uint8_t v = map[i];
    /* 0b11 in any of the four 2-bit fields is invalid. */
    if (v & (v >> 1) & 0x55)
      for (b = 0; b < 4; b++)
        if (((v >> (b * 2)) & 3) == 3)
          return df_error (EINVAL, "allocation map entry of block %" PRIu64
                           " is invalid (3)", i * 4 + b);
  }
  for (b = 0; b < 4 && full < info->map_length; b++) {
    unsigned v = (map[full] >> (b * 2)) & 3;
    uint64_t block = full * 4 + b;
    if (block >= info->nblocks && v != 0)
      return df_error (EINVAL, "allocation map has bits set past the last "
                       "block");
    if (v == 3)
      return df_error (EINVAL, "allocation map entry of block %" PRIu64
                       " is invalid (3)", block);
  }
  return 0;
}

int
df_layer_check_image (const void *data, size_t len)
{
  struct df_layer_info info;

  if (len < DF_LAYER_HEADER_SIZE)
    return df_error (EINVAL, "truncated: %zu bytes, the header alone is %d",
                     len, DF_LAYER_HEADER_SIZE);
  if (layer_decode_header (data, &info) == -1)
    return -1;
  if (len < info.map_offset + info.map_length)
    return df_error (EINVAL, "truncated inside the allocation map");
  return layer_check_map (&info, (const uint8_t *) data + info.map_offset);
}

static struct df_layer *
layer_alloc (const char *path)
{
  struct df_layer *l = calloc (1, sizeof *l);

  if (l == NULL || (l->path = strdup (path)) == NULL) {
    free (l);
    df_error_errno ("%s", path);
    return NULL;
  }
  l->fd = -1;
  {
    /* A zero must not wait behind an endless stream of writes. */
    pthread_rwlockattr_t attr;
    pthread_rwlockattr_init (&attr);
    pthread_rwlockattr_setkind_np (&attr,
                                   PTHREAD_RWLOCK_PREFER_WRITER_NONRECURSIVE_NP);
    pthread_rwlock_init (&l->punch_lock, &attr);
    pthread_rwlockattr_destroy (&attr);
  }
  pthread_mutex_init (&l->map_lock, NULL);
  pthread_mutex_init (&l->park_lock, NULL);
  return l;
}

void
df_layer_close (struct df_layer *l)
{
  if (l == NULL)
    return;
  /* Errors cannot be returned here; callers that care flush first.  This
   * may run in a failure path: keep that failure's message.
   */
  if (l->writable && l->any_dirty && !l->saved) {
    struct df_error_saved saved;
    df_error_save (&saved);
    df_layer_flush (l);
    df_error_restore (&saved);
  }
  layer_bulk_hasher_stop (l);
  layer_mem_unmap (l);
  if (l->fd >= 0)
    close (l->fd);
  pthread_mutex_destroy (&l->map_lock);
  pthread_mutex_destroy (&l->park_lock);
  pthread_rwlock_destroy (&l->punch_lock);
  free (l->map);
  free (l->disk_map);
  free (l->dirty);
  free (l->path);
  free (l);
}

/* Every open layer holds a flock on its file, taken without waiting
 * (docs/layer-format.md "Locks"): a writer an exclusive one, a reader a
 * shared one.  So a layer has one writer and no reader, or readers only,
 * on this host and on others sharing the store; and a vDisk's removal,
 * which takes every layer's lock exclusive, knows whether anyone has one
 * open.  The lock goes with the open file description: two opens in one
 * process count as two.
 */
static int
lock_writer (struct df_layer *l)
{
  if (flock (l->fd, LOCK_EX | LOCK_NB) == -1) {
    if (errno == EWOULDBLOCK)
      return df_error (EBUSY, "%s: layer is open for writing elsewhere",
                       l->path);
    return df_error_errno ("lock %s", l->path);
  }
  return 0;
}

/* First step of every open: a shared lock (refused while a writer or a
 * removal holds the layer), then a check that the file was not removed
 * between our open and the lock.
 */
static int
lock_reader (struct df_layer *l)
{
  struct stat st;

  if (flock (l->fd, LOCK_SH | LOCK_NB) == -1) {
    if (errno == EWOULDBLOCK)
      return df_error (EBUSY, "%s: layer is open for writing elsewhere, or "
                       "being removed", l->path);
    return df_error_errno ("lock %s", l->path);
  }
  if (fstat (l->fd, &st) == -1)
    return df_error_errno ("%s", l->path);
  if (st.st_nlink == 0)
    return df_error (ENOENT, "%s: layer was removed", l->path);
  return 0;
}

/* A writer's second step, once the header says the layer is not sealed:
 * the shared lock becomes exclusive, refused while others read it.
 */
static int
lock_upgrade (struct df_layer *l)
{
  if (flock (l->fd, LOCK_EX | LOCK_NB) == -1) {
    if (errno == EWOULDBLOCK)
      return df_error (EBUSY, "%s: layer is open for reading elsewhere",
                       l->path);
    return df_error_errno ("lock %s", l->path);
  }
  return 0;
}

struct df_layer *
df_layer_create (const char *path, uint64_t size, uint32_t block_size,
                 const uint8_t *parent_id, const uint8_t *parent_hash,
                 int flags)
{
  struct df_layer *l = layer_alloc (path);
  struct df_layer_info *info;
  uint8_t header[DF_LAYER_HEADER_SIZE];

  if (l == NULL)
    return NULL;
  info = &l->info;
  info->format_version = DF_LAYER_FORMAT_VERSION;
  info->size = size;
  info->block_size = block_size;
  if (block_size < DF_LAYER_MIN_BLOCK || block_size > DF_LAYER_MAX_BLOCK ||
      !df_is_power_of_2 (block_size)) {
    df_error (EINVAL, "%s: block size %" PRIu32 " is not a power of two "
              "from %d to %d", path, block_size, DF_LAYER_MIN_BLOCK,
              DF_LAYER_MAX_BLOCK);
    goto fail;
  }
  if (size == 0 || size % 512 || size > DF_LAYER_MAX_SIZE) {
    df_error (EINVAL, "%s: size %" PRIu64 " is not a non-zero multiple of 512",
              path, size);
    goto fail;
  }
  info->nblocks = (size + block_size - 1) / block_size;
  info->map_offset = DF_LAYER_HEADER_SIZE;
  info->map_length = map_length_for (info->nblocks);
  info->data_offset = df_round_up (df_round_up (info->map_offset +
                                                info->map_length, 4096),
                                   block_size);
  info->created_ns = df_now_real_ns ();
  if (df_random_bytes (info->id, DF_LAYER_ID_LEN) == -1)
    goto fail;
  if (parent_id) {
    memcpy (info->parent_id, parent_id, DF_LAYER_ID_LEN);
    memcpy (info->parent_hash, parent_hash, DF_HASH_LEN);
  }
  l->map = calloc (1, info->map_length);
  l->disk_map = calloc (1, info->map_length);
  l->dirty = calloc (1, (info->map_length + 4095) / 4096 / 8 + 1);
  if (l->map == NULL || l->disk_map == NULL || l->dirty == NULL) {
    df_error_errno ("%s", path);
    goto fail;
  }
  l->writable = true;
  l->bulk = flags & DF_LAYER_BULK;
  if (l->bulk && layer_bulk_hasher_start (l) == -1)
    goto fail;

  l->fd = open (path, O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC, 0644);
  if (l->fd == -1) {
    df_error_errno ("create %s", path);
    goto fail;
  }
  if (lock_writer (l) == -1) {
    unlink (path);
    goto fail;
  }
  encode_header (info, header);
  if (ftruncate (l->fd, info->data_offset + size) == -1 ||
      df_pwrite_full (l->fd, header, sizeof header, 0) == -1 ||
      df_pwrite_full (l->fd, l->map, info->map_length, info->map_offset) == -1) {
    df_error_errno ("write %s", path);
    unlink (path);
    goto fail;
  }
  return l;

 fail:
  df_layer_close (l);
  return NULL;
}

struct df_layer *
df_layer_open (const char *path, bool writable)
{
  struct df_layer *l = layer_alloc (path);
  uint8_t header[DF_LAYER_HEADER_SIZE];
  struct stat st;

  if (l == NULL)
    return NULL;
  l->fd = open (path, (writable ? O_RDWR : O_RDONLY) | O_CLOEXEC);
  if (l->fd == -1) {
    df_error_errno ("%s", path);
    goto fail;
  }
  if (lock_reader (l) == -1)
    goto fail;
  if (fstat (l->fd, &st) == -1) {
    df_error_errno ("%s", path);
    goto fail;
  }
  if (!S_ISREG (st.st_mode)) {
    df_error (EINVAL, "%s: not a regular file", path);
    goto fail;
  }
  if (st.st_size < DF_LAYER_HEADER_SIZE) {
    df_error (EINVAL, "%s: truncated: %jd bytes, the header alone is %d",
              path, (intmax_t) st.st_size, DF_LAYER_HEADER_SIZE);
    goto fail;
  }
  if (layer_pread_all (l->fd, header, sizeof header, 0) == -1) {
    df_error_errno ("read %s", path);
    goto fail;
  }
  if (layer_decode_header (header, &l->info) == -1) {
    df_error_prefix ("%s", path);
    goto fail;
  }
  if ((uint64_t) st.st_size < l->info.data_offset + l->info.size) {
    df_error (EINVAL, "%s: truncated: %jd bytes, a layer of this size has "
              "%" PRIu64, path, (intmax_t) st.st_size,
              l->info.data_offset + l->info.size);
    goto fail;
  }
  if (writable && l->info.sealed) {
    df_error (EROFS, "%s: layer is sealed and cannot be written", path);
    goto fail;
  }
  if (writable && lock_upgrade (l) == -1)
    goto fail;
  l->map = malloc (l->info.map_length);
  l->dirty = calloc (1, (l->info.map_length + 4095) / 4096 / 8 + 1);
  if (l->map == NULL || l->dirty == NULL) {
    df_error_errno ("%s", path);
    goto fail;
  }
  if (layer_pread_all (l->fd, l->map, l->info.map_length, l->info.map_offset) == -1) {
    df_error_errno ("read map of %s", path);
    goto fail;
  }
  if (layer_check_map (&l->info, l->map) == -1) {
    df_error_prefix ("%s", path);
    goto fail;
  }
  l->writable = writable;
  if (!l->info.sealed) {
    l->disk_map = malloc (l->info.map_length);
    if (l->disk_map == NULL) {
      df_error_errno ("%s", path);
      goto fail;
    }
    memcpy (l->disk_map, l->map, l->info.map_length);
    if (layer_park_load (l, st.st_size) == -1)
      goto fail;
  }
  return l;

 fail:
  df_layer_close (l);
  return NULL;
}

const struct df_layer_info *
df_layer_info (const struct df_layer *l)
{
  return &l->info;
}

const char *
df_layer_path (const struct df_layer *l)
{
  return l->path;
}

bool
df_layer_writable (const struct df_layer *l)
{
  return l->writable;
}


enum df_block_state
df_layer_block (const struct df_layer *l, uint64_t block)
{
  return map_get (l->map, block);
}

uint64_t
df_layer_count (const struct df_layer *l, enum df_block_state s)
{
  uint64_t i, n = 0;

  for (i = 0; i < l->info.nblocks; i++)
    n += map_get (l->map, i) == s;
  return n;
}

int
df_layer_pread (const struct df_layer *l, void *buf, size_t len,
                uint64_t offset)
{
  if (layer_pread_all (l->fd, buf, len, l->info.data_offset + offset) == -1)
    return df_error_errno ("read %s at %" PRIu64, l->path, offset);
  return 0;
}

/* Sets map entries and marks their map pages dirty; df_layer_flush
 * writes them after the data is durable.  Called with map_lock held.
 */
static int
map_update (struct df_layer *l, uint64_t first, uint64_t count,
            enum df_block_state s)
{
  uint64_t i, page;

  for (i = first; i < first + count; i++)
    map_put (l->map, i, s);
  l->saved = false;
  l->map_gen++;
  if (l->bulk)
    return 0;
  for (page = first / 4 / 4096; page <= (first + count - 1) / 4 / 4096; page++)
    l->dirty[page / 8] |= 1 << (page % 8);
  l->any_dirty = true;
  return 0;
}

/* Writes the dirty map pages.  Called with map_lock held. */
static int
write_dirty_map (struct df_layer *l)
{
  uint64_t pages = (l->info.map_length + 4095) / 4096, p = 0;

  while (p < pages) {
    uint64_t n = 0, off, len;
    if (!(l->dirty[p / 8] & (1 << (p % 8)))) {
      p++;
      continue;
    }
    while (p + n < pages && (l->dirty[(p + n) / 8] & (1 << ((p + n) % 8))))
      n++;
    off = p * 4096;
    len = (p + n) * 4096 < l->info.map_length ? n * 4096 : l->info.map_length - off;
    if (df_pwrite_full (l->fd, l->map + off, len, l->info.map_offset + off) == -1)
      return df_error_errno ("write map of %s", l->path);
    for (; n > 0; n--, p++)
      l->dirty[p / 8] &= ~(1 << (p % 8));
  }
  l->any_dirty = false;
  return 0;
}

static int
check_write (const struct df_layer *l, uint64_t first, uint64_t count)
{
  if (!l->writable)
    return df_error (EROFS, "%s: layer is read-only", l->path);
  if (first > l->info.nblocks || count > l->info.nblocks - first)
    return df_error (EINVAL, "%s: blocks %" PRIu64 "+%" PRIu64
                     " are past the end", l->path, first, count);
  return 0;
}

/* df_layer_write_blocks with punch_lock held shared. */
static int
write_blocks_locked (struct df_layer *l, const void *buf, uint64_t first,
                     uint64_t count, size_t len)
{
  /* Data first: until the map says present, nobody reads it. */
  if (df_pwrite_full (l->fd, buf, len,
                  l->info.data_offset + first * l->info.block_size) == -1)
    return df_error_errno ("write %s", l->path);
  /* A bulk writer (import, merge) fills the page cache much faster than
   * the disk drains it: start writeback now so that the fsync at seal
   * has little left to do.
   */
  if (l->bulk) {
    sync_file_range (l->fd, l->info.data_offset + first * l->info.block_size,
                     len, SYNC_FILE_RANGE_WRITE);
    layer_bulk_hasher_note (l, first, count);
  }
  SCOPED_LOCK (&l->map_lock);
  return map_update (l, first, count, DF_BLOCK_PRESENT);
}

int
df_layer_write_blocks (struct df_layer *l, const void *buf, uint64_t first,
                       uint64_t count)
{
  size_t len = layer_blocks_bytes (l, first, count);
  int r;

  if (check_write (l, first, count) == -1)
    return -1;
  pthread_rwlock_rdlock (&l->punch_lock);
  r = write_blocks_locked (l, buf, first, count, len);
  pthread_rwlock_unlock (&l->punch_lock);
  return r;
}

int
df_layer_set_blocks (struct df_layer *l, uint64_t first, uint64_t count,
                     enum df_block_state state)
{
  int r;

  if (state == DF_BLOCK_PRESENT)
    return df_error (EINVAL, "%s: use df_layer_write_blocks", l->path);
  if (check_write (l, first, count) == -1)
    return -1;
  if (l->bulk)
    layer_bulk_hasher_note (l, first, count);
  pthread_rwlock_wrlock (&l->punch_lock);
  {
    SCOPED_LOCK (&l->map_lock);
    r = map_update (l, first, count, state);
  }
  /* The map no longer points at the data, so it can go.  Not every file
   * system can punch holes; the space is then reused on the next write.
   */
  if (r == 0 && !l->bulk)
    fallocate (l->fd, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE,
               l->info.data_offset + first * l->info.block_size,
               layer_blocks_bytes (l, first, count));
  pthread_rwlock_unlock (&l->punch_lock);
  return r;
}

/* The map goes into the park record, never in place: see layer-park.c
 * for why, and for when an open trusts it.
 */
int
df_layer_save (struct df_layer *l)
{
  char why[256];

  if (!l->writable || layer_park_save (l) == 0)
    return 0;
  /* No boot id to tag it with, it could not be written (a full disk),
   * or the blocks could not be read back for their CRCs: the slow way,
   * which is safe.  If that fails too, the message says both.
   */
  snprintf (why, sizeof why, "%s", df_error_get ());
  df_error_clear ();
  if (df_layer_flush (l) == -1) {
    df_error_prefix ("no park record (%s), and flushing failed", why);
    return -1;
  }
  return 0;
}

int
df_layer_flush (struct df_layer *l)
{
  if (!l->writable)
    return 0;
  /* Data first, then the map that points at it, then the map itself. */
  if (fdatasync (l->fd) == -1)
    return df_error_errno ("fdatasync %s", l->path);
  {
    SCOPED_LOCK (&l->map_lock);
    if (!l->any_dirty)
      return 0;
    /* The data is durable: the park record is not needed any more, and
     * a record left over with the new map in place could undo this
     * flush after a crash.  So it goes first (if it cannot, the map in
     * place stays the one it was based on), and the fdatasync below
     * commits its removal with the map.
     */
    if (layer_park_drop (l) == -1)
      return -1;
    l->flush_gen++;
    if (write_dirty_map (l) == -1)
      return -1;
    memcpy (l->disk_map, l->map, l->info.map_length);
  }
  if (fdatasync (l->fd) == -1)
    return df_error_errno ("fdatasync %s", l->path);
  return 0;
}

int
df_layer_seal (struct df_layer *l, uint8_t hash[DF_HASH_LEN])
{
  uint8_t header[DF_LAYER_HEADER_SIZE];

  if (!l->writable)
    return df_error (EROFS, "%s: layer is not writable", l->path);
  /* Data and map durable before the header says sealed: a crash in
   * between leaves an unsealed layer, which promote seals again.
   */
  if (df_pwrite_full (l->fd, l->map, l->info.map_length, l->info.map_offset) == -1)
    return df_error_errno ("write %s", l->path);
  if (layer_park_drop (l) == -1)
    return -1;
  if (fdatasync (l->fd) == -1)
    return df_error_errno ("fdatasync %s", l->path);
  l->info.sealed = true;
  encode_header (&l->info, header);
  if (df_pwrite_full (l->fd, header, sizeof header, 0) == -1)
    return df_error_errno ("write %s", l->path);
  if (fsync (l->fd) == -1)
    return df_error_errno ("fsync %s", l->path);
  l->writable = false;
  l->any_dirty = false;
  return layer_seal_hash (l, hash);
}
