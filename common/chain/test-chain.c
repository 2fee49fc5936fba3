/* Unit tests: common/chain (reads through a chain, writes to its top). */
#include <config.h>

#include "test-helpers.h"
#include "chain/chain.h"

#define BS 4096
#define NBLOCKS 64
#define SIZE (NBLOCKS * BS)

/* A sealed layer over parent (or a base) with blocks [first, first+n)
 * filled with byte v; also applied to ref.
 */
static struct df_layer *
sealed_layer (const char *name, struct df_layer *parent, uint64_t first,
              uint64_t n, int v, char *ref)
{
  char *p = test_path (tmpdir, name);
  uint8_t hash[DF_HASH_LEN], phash[DF_HASH_LEN];
  char *buf = malloc (n * BS);
  struct df_layer *l;

  if (parent)
    assert_int_equal (df_layer_hash (parent, phash), 0);
  l = df_layer_create (p, SIZE, BS, parent ? df_layer_info (parent)->id : NULL,
                       parent ? phash : NULL, 0);
  assert_non_null (l);
  memset (buf, v, n * BS);
  assert_int_equal (df_layer_write_blocks (l, buf, first, n), 0);
  memset (ref + first * BS, v, n * BS);
  assert_int_equal (df_layer_seal (l, hash), 0);
  df_layer_close (l);
  l = df_layer_open (p, false);
  assert_non_null (l);
  free (buf);
  free (p);
  return l;
}

struct extent_log {
  uint64_t next;
  char *ref;
};

static int
check_extent (void *opaque, uint64_t off, uint64_t len, uint32_t type)
{
  struct extent_log *log = opaque;

  assert_int_equal (off, log->next);
  if (type & DF_EXTENT_ZERO)
    assert_true (df_is_zero (log->ref + off, len));
  log->next = off + len;
  return 0;
}

static void
test_chain (void **state)
{
  char *ref = calloc (1, SIZE), *buf = malloc (SIZE);
  struct df_layer *layers[4];
  struct df_bdev *c;
  char *top = test_path (tmpdir, "top.layer");
  uint8_t phash[DF_HASH_LEN];
  struct extent_log log = { 0, ref };
  uint64_t seed = 1;
  int i;

  (void) state;
  layers[0] = sealed_layer ("l0", NULL, 0, 32, 0x11, ref);
  layers[1] = sealed_layer ("l1", layers[0], 8, 8, 0x22, ref);
  layers[2] = sealed_layer ("l2", layers[1], 12, 30, 0x33, ref);
  assert_int_equal (df_layer_hash (layers[2], phash), 0);
  layers[3] = df_layer_create (top, SIZE, BS, df_layer_info (layers[2])->id,
                               phash, 0);
  assert_non_null (layers[3]);
  c = df_chain_open (layers, 4);
  assert_non_null (c);
  assert_int_equal (c->size, SIZE);
  assert_false (c->flags & DF_BDEV_RDONLY);
  assert_int_equal (df_bdev_pread (c, buf, SIZE, 0), 0);
  assert_memory_equal (buf, ref, SIZE);

  /* Random writes, aligned and not, zeroes and trims of whole blocks. */
  for (i = 0; i < 300; i++) {
    uint64_t off = test_rand (&seed) % SIZE;
    uint32_t len = 1 + test_rand (&seed) % (3 * BS);
    int op = test_rand (&seed) % 4;

    if (off + len > SIZE)
      len = SIZE - off;
    if (op == 0) {
      off &= ~(uint64_t) (BS - 1);
      len = (len + BS - 1) & ~(BS - 1);
      if (off + len > SIZE)
        len = SIZE - off;
    }
    if (op == 3) {
      assert_int_equal (df_bdev_zero (c, len, off, 0), 0);
      memset (ref + off, 0, len);
    }
    else {
      test_fill (buf, len, &seed);
      assert_int_equal (df_bdev_pwrite (c, buf, len, off, i % 50 ? 0 : DF_FUA), 0);
      memcpy (ref + off, buf, len);
    }
  }
  assert_int_equal (df_bdev_pread (c, buf, SIZE, 0), 0);
  assert_memory_equal (buf, ref, SIZE);
  /* An unaligned read across layers. */
  assert_int_equal (df_bdev_pread (c, buf, 3 * BS + 7, 7 * BS + 100), 0);
  assert_memory_equal (buf, ref + 7 * BS + 100, 3 * BS + 7);
  assert_int_equal (df_bdev_extents (c, SIZE, 0, check_extent, &log), 0);
  assert_int_equal (log.next, SIZE);
  /* A writable chain changes: it hands out no memory. */
  {
    struct df_bdev_peek pk;
    uint64_t off;

    for (off = 0; off < SIZE; off += pk.len) {
      assert_int_equal (df_bdev_peek (c, SIZE - off, off, &pk), 0);
      assert_null (pk.data);
    }
  }

  /* Trim only drops whole blocks and keeps the rest. */
  assert_int_equal (df_bdev_trim (c, 3 * BS, BS / 2, 0), 0);
  memset (ref + BS, 0, 2 * BS);
  assert_int_equal (df_bdev_pread (c, buf, SIZE, 0), 0);
  assert_memory_equal (buf, ref, SIZE);
  assert_int_equal (df_bdev_flush (c), 0);
  df_bdev_close (c);
  free (top);
  free (ref);
  free (buf);
}

static void
test_bad_links (void **state)
{
  char ref[SIZE];
  struct df_layer *layers[2];

  (void) state;
  layers[0] = sealed_layer ("b0", NULL, 0, 1, 1, ref);
  layers[1] = sealed_layer ("b1", NULL, 0, 1, 2, ref);   /* not a child */
  assert_null (df_chain_open (layers, 2));
  assert_error_contains ("is not the id");
  layers[0] = sealed_layer ("c0", NULL, 0, 1, 1, ref);
  layers[1] = sealed_layer ("c1", layers[0], 0, 1, 1, ref);
  {
    struct df_layer *swapped[2] = { layers[1], layers[0] };
    assert_null (df_chain_open (swapped, 2));
  }
  assert_null (df_chain_open (layers, 0));
}

/* Peeking a read-only chain: runs as pread sees them, memory only for
 * cached data of sealed layers.
 */
static void
test_peek (void **state)
{
  char *ref = calloc (1, SIZE), *buf = malloc (SIZE);
  struct df_layer *layers[2];
  struct df_bdev *c;
  struct df_bdev_peek pk;
  uint64_t off = 0;
  size_t in_memory = 0;

  (void) state;
  layers[0] = sealed_layer ("p0", NULL, 0, 16, 0x44, ref);
  layers[1] = sealed_layer ("p1", layers[0], 4, 4, 0x55, ref);
  c = df_chain_open (layers, 2);
  assert_non_null (c);
  /* Read once: the data is in the page cache now. */
  assert_int_equal (df_bdev_pread (c, buf, SIZE, 0), 0);
  assert_memory_equal (buf, ref, SIZE);
  while (off < SIZE) {
    assert_int_equal (df_bdev_peek (c, SIZE - off, off, &pk), 0);
    assert_true (pk.len >= 1 && pk.len <= SIZE - off);
    if (pk.zero)
      assert_true (df_is_zero (ref + off, pk.len));
    else if (pk.data) {
      assert_memory_equal (pk.data, ref + off, pk.len);
      in_memory += pk.len;
    }
    off += pk.len;
  }
  assert_int_equal (in_memory, 16 * BS);
  /* The runs: blocks 0-3 from p0, 4-7 from p1, 8-15 from p0, zeros. */
  assert_int_equal (df_bdev_peek (c, SIZE, 0, &pk), 0);
  assert_int_equal (pk.len, 4 * BS);
  assert_int_equal (df_bdev_peek (c, SIZE - 5 * BS, 5 * BS, &pk), 0);
  assert_int_equal (pk.len, 3 * BS);
  assert_int_equal (df_bdev_peek (c, BS, 20 * BS, &pk), 0);
  assert_true (pk.zero);
  df_bdev_close (c);
  free (ref);
  free (buf);
}

static void
test_readonly (void **state)
{
  char ref[SIZE];
  struct df_layer *l = sealed_layer ("ro", NULL, 0, 4, 9, ref);
  struct df_bdev *c = df_chain_open (&l, 1);
  char buf[BS];

  (void) state;
  assert_non_null (c);
  assert_true (c->flags & DF_BDEV_RDONLY);
  memset (buf, 0, sizeof buf);
  assert_int_equal (df_bdev_pwrite (c, buf, BS, 0, 0), -1);
  df_bdev_close (c);
}

/* FAST_ZERO: whole blocks of the vDisk's block size are marked, a part
 * of one is refused and left as it was.
 */
static void
test_fast_zero (void **state)
{
  const uint32_t bs = 64 * 1024;
  const uint64_t size = 8 * bs;
  char *p = test_path (tmpdir, "fz.layer");
  char *ref = malloc (size), *buf = malloc (size);
  struct df_layer *l = df_layer_create (p, size, bs, NULL, NULL, 0);
  struct df_bdev *c;
  uint64_t seed = 3;

  (void) state;
  assert_non_null (l);
  c = df_chain_open (&l, 1);
  assert_non_null (c);
  test_fill (ref, size, &seed);
  assert_int_equal (df_bdev_pwrite (c, ref, size, 0, 0), 0);
  assert_int_equal (df_bdev_zero (c, 4096, bs, DF_FAST_ZERO), -1);
  assert_int_equal (errno, ENOTSUP);
  assert_error_contains ("not fast");
  assert_int_equal (df_bdev_zero (c, bs, bs + 4096, DF_FAST_ZERO), -1);
  assert_int_equal (errno, ENOTSUP);
  assert_int_equal (df_bdev_pread (c, buf, size, 0), 0);
  assert_memory_equal (buf, ref, size);
  assert_int_equal (df_bdev_zero (c, 2 * bs, bs, DF_FAST_ZERO), 0);
  memset (ref + bs, 0, 2 * bs);
  assert_int_equal (df_bdev_zero (c, 4096, 5 * bs, 0), 0);
  memset (ref + 5 * bs, 0, 4096);
  assert_int_equal (df_bdev_pread (c, buf, size, 0), 0);
  assert_memory_equal (buf, ref, size);
  df_bdev_close (c);
  free (p);
  free (ref);
  free (buf);
}

int
main (void)
{
  const struct CMUnitTest tests[] = {
    cmocka_unit_test (test_chain),
    cmocka_unit_test (test_bad_links),
    cmocka_unit_test (test_peek),
    cmocka_unit_test (test_readonly),
    cmocka_unit_test (test_fast_zero),
  };

  return cmocka_run_group_tests (tests, tmpdir_setup, tmpdir_teardown);
}
