/* Unit tests: common/layer's hasher (the content hash as a file's bytes
 * arrive) against df_layer_hash of the same file, over odd sizes, block
 * sizes, sparse layers, and every order the bytes can come in.
 */
#include <config.h>

#include <fcntl.h>
#include <sys/stat.h>

#include "test-helpers.h"
#include "layer/layer.h"

#define MIB (1024 * 1024)

struct img {
  char *path;
  uint8_t *bytes;               /* the whole file */
  size_t len;
  uint64_t data_offset;
  uint8_t hash[DF_HASH_LEN];    /* df_layer_hash of the file */
};

enum shape { FULL, SPARSE, EMPTY };

/* A sealed base layer of size bytes in blocks of bs, filled as shape
 * says, read back whole.
 */
static void
make (struct img *im, const char *name, uint64_t size, uint32_t bs,
      enum shape shape, uint64_t seed)
{
  uint64_t nblocks = (size + bs - 1) / bs, b;
  uint8_t seal_hash[DF_HASH_LEN];
  char *buf = malloc (bs);
  struct df_layer *l;
  struct stat st;
  int fd;

  assert_non_null (buf);
  im->path = test_path (tmpdir, name);
  l = df_layer_create (im->path, size, bs, NULL, NULL, 0);
  assert_non_null (l);
  for (b = 0; b < nblocks && shape != EMPTY; b++) {
    unsigned dice = test_rand (&seed) % 8;
    /* Sparse: present, zero or absent; and one whole region absent. */
    if (shape == SPARSE && (b * bs / DF_HASH_REGION == 1 || dice >= 5)) {
      if (dice == 7)
        assert_int_equal (df_layer_set_blocks (l, b, 1, DF_BLOCK_ZERO), 0);
      continue;
    }
    test_fill (buf, bs, &seed);
    if (dice == 0)
      memset (buf, 0, bs / 2);  /* zero pages inside present data */
    assert_int_equal (df_layer_write_blocks (l, buf, b, 1), 0);
  }
  assert_int_equal (df_layer_seal (l, seal_hash), 0);
  im->data_offset = df_layer_info (l)->data_offset;
  df_layer_close (l);
  free (buf);

  fd = open (im->path, O_RDONLY);
  assert_true (fd >= 0);
  assert_int_equal (fstat (fd, &st), 0);
  im->len = st.st_size;
  im->bytes = malloc (im->len);
  assert_non_null (im->bytes);
  assert_int_equal (df_pread_full (fd, im->bytes, im->len, 0), (ssize_t) im->len);
  close (fd);
  l = df_layer_open (im->path, false);
  assert_non_null (l);
  assert_int_equal (df_layer_hash (l, im->hash), 0);
  assert_memory_equal (im->hash, seal_hash, DF_HASH_LEN);
  df_layer_close (l);
}

static void
img_free (struct img *im)
{
  unlink (im->path);
  free (im->path);
  free (im->bytes);
}

/* Gives hs bytes [from, to) of the image in chunks of random sizes. */
static void
feed (struct df_layer_hasher *hs, const struct img *im, uint64_t from,
      uint64_t to, uint64_t *seed)
{
  while (from < to) {
    uint64_t n = 1 + test_rand (seed) % 300000;
    if (n > to - from)
      n = to - from;
    df_layer_hasher_data (hs, from, im->bytes + from, n);
    from += n;
  }
}

/* The hasher's result for the file at path. */
static void
final_of (struct df_layer_hasher *hs, const char *path, uint8_t hash[DF_HASH_LEN])
{
  struct df_layer *l = df_layer_open (path, false);

  assert_non_null (l);
  assert_int_equal (df_layer_hasher_final (hs, l, hash), 0);
  df_layer_close (l);
}

static void
assert_final (struct df_layer_hasher *hs, const struct img *im)
{
  uint8_t h[DF_HASH_LEN];

  final_of (hs, im->path, h);
  assert_memory_equal (h, im->hash, DF_HASH_LEN);
  df_layer_hasher_free (hs);
}

/* The images every test runs over. */
#define NIMG 5
static struct img imgs[NIMG];

static int
setup (void **state)
{
  tmpdir_setup (state);
  /* Three regions and a short last block; odd sizes everywhere. */
  make (&imgs[0], "full.layer", 2 * 4 * MIB + 5 * 4096 + 512, 4096, FULL, 1);
  make (&imgs[1], "sparse.layer", 3 * 4 * MIB + 7 * 4096 + 1024, 4096, SPARSE, 2);
  make (&imgs[2], "big-blocks.layer", 9 * MIB + 1024, 65536, SPARSE, 3);
  make (&imgs[3], "mib-blocks.layer", 6 * MIB + 512, MIB, FULL, 4);
  make (&imgs[4], "empty.layer", 8 * MIB, 4096, EMPTY, 5);
  return 0;
}

static int
teardown (void **state)
{
  int i;

  for (i = 0; i < NIMG; i++)
    img_free (&imgs[i]);
  return tmpdir_teardown (state);
}

/* In order, in chunks of any size: everything hashed on the way. */
static void
test_in_order (void **state)
{
  uint64_t seed = 11;
  int i;

  (void) state;
  for (i = 0; i < NIMG; i++) {
    struct df_layer_hasher *hs = df_layer_hasher_new ();
    assert_non_null (hs);
    assert_int_equal (df_layer_hasher_pending (hs), UINT64_MAX);
    feed (hs, &imgs[i], 0, imgs[i].len, &seed);
    assert_int_equal (df_layer_hasher_pending (hs), 0);
    assert_final (hs, &imgs[i]);
  }
}

/* Concurrent pieces: header and map first, then the data area cut at
 * random places into pieces that each arrive in order, interleaved at
 * random.  Cut at region boundaries, nothing is left to read back.
 */
static void
pieces (const struct img *im, bool aligned, uint64_t seed)
{
  struct df_layer_hasher *hs = df_layer_hasher_new ();
  uint64_t pos[8], end[8], left = 8;
  int k;

  feed (hs, im, 0, im->data_offset, &seed);
  for (k = 0; k < 8; k++) {
    uint64_t span = im->len - im->data_offset;
    uint64_t cut = im->data_offset + span * k / 8;
    if (aligned)
      cut = im->data_offset +
        (cut - im->data_offset) / DF_HASH_REGION * DF_HASH_REGION;
    else if (k > 0)
      cut += test_rand (&seed) % 9999;
    if (cut > im->len)
      cut = im->len;
    if (k > 0 && cut < pos[k - 1])
      cut = pos[k - 1];
    pos[k] = cut;
    if (k > 0)
      end[k - 1] = cut;
  }
  end[7] = im->len;
  for (k = 0; k < 8; k++)
    if (pos[k] == end[k])
      left--;
  while (left > 0) {
    uint64_t n = 1 + test_rand (&seed) % 70000;
    k = test_rand (&seed) % 8;
    if (pos[k] >= end[k])
      continue;
    if (n > end[k] - pos[k])
      n = end[k] - pos[k];
    df_layer_hasher_data (hs, pos[k], im->bytes + pos[k], n);
    pos[k] += n;
    if (pos[k] == end[k])
      left--;
  }
  if (aligned)
    assert_int_equal (df_layer_hasher_pending (hs), 0);
  assert_final (hs, im);
}

static void
test_pieces (void **state)
{
  int i;

  (void) state;
  for (i = 0; i < NIMG; i++) {
    pieces (&imgs[i], false, 100 + i);
    pieces (&imgs[i], true, 200 + i);
  }
}

/* A resumed download: the data before a cut was in the file already,
 * only the rest arrives (after header and map, fetched again).
 */
static void
test_resume (void **state)
{
  uint64_t seed = 21;
  int i;

  (void) state;
  for (i = 0; i < NIMG; i++) {
    const struct img *im = &imgs[i];
    struct df_layer_hasher *hs = df_layer_hasher_new ();
    uint64_t cut = im->data_offset +
      test_rand (&seed) % (im->len - im->data_offset);

    feed (hs, im, 0, im->data_offset, &seed);
    feed (hs, im, cut, im->len, &seed);
    assert_final (hs, im);
  }
}

/* Bytes that arrive twice (a piece fetched again from another source),
 * and a header and map fetched again.
 */
static void
test_twice (void **state)
{
  uint64_t seed = 31;
  int i;

  (void) state;
  for (i = 0; i < NIMG; i++) {
    const struct img *im = &imgs[i];
    struct df_layer_hasher *hs = df_layer_hasher_new ();
    uint64_t a = im->data_offset + test_rand (&seed) % (im->len - im->data_offset);
    uint64_t b = a + test_rand (&seed) % (im->len - a) + 1;
    uint64_t m = im->data_offset + (im->len - im->data_offset) / 2 + 4096 + 100;
    uint64_t d = 1 + test_rand (&seed) % 20000;

    /* Again while its region is being hashed, and after it was. */
    feed (hs, im, 0, m, &seed);
    feed (hs, im, m - d, m, &seed);
    feed (hs, im, 0, im->data_offset, &seed);
    feed (hs, im, m, im->len, &seed);
    feed (hs, im, a, b, &seed);
    assert_final (hs, im);
  }
}

/* Data before the map, the header in the wrong order, nothing at all:
 * the layout stays unknown and the whole file is hashed.
 */
static void
test_layout_unknown (void **state)
{
  const struct img *im = &imgs[1];
  struct df_layer_hasher *hs;
  uint64_t seed = 41;

  (void) state;
  hs = df_layer_hasher_new ();
  feed (hs, im, im->data_offset, im->len, &seed);
  feed (hs, im, 0, im->data_offset, &seed);
  assert_int_equal (df_layer_hasher_pending (hs), UINT64_MAX);
  assert_final (hs, im);

  hs = df_layer_hasher_new ();
  feed (hs, im, 100, im->len, &seed);
  feed (hs, im, 0, 100, &seed);
  assert_final (hs, im);

  hs = df_layer_hasher_new ();
  assert_final (hs, im);
}

/* The bytes given are another layer's (or the file was replaced): the
 * file's own header and map decide, and its content is hashed.
 */
static void
test_other_file (void **state)
{
  uint64_t seed = 51;
  struct df_layer_hasher *hs = df_layer_hasher_new ();

  (void) state;
  feed (hs, &imgs[0], 0, imgs[0].len, &seed);
  assert_final (hs, &imgs[1]);
}

/* A corrupt source: what arrived (and was written) differs from the
 * original in one byte; the hash says so, like df_layer_hash of the
 * file written.
 */
static void
test_corrupt (void **state)
{
  const struct img *im = &imgs[0];
  char *p = test_path (tmpdir, "corrupt.layer");
  uint8_t *bytes = malloc (im->len), h[DF_HASH_LEN], want[DF_HASH_LEN];
  uint64_t at = im->data_offset + 4 * MIB + 12345, off;
  struct df_layer_hasher *hs = df_layer_hasher_new ();
  struct df_layer *l;

  (void) state;
  assert_non_null (bytes);
  memcpy (bytes, im->bytes, im->len);
  bytes[at] ^= 0x40;
  assert_int_equal (df_write_file_atomic (p, bytes, im->len, 0600), 0);
  for (off = 0; off < im->len; off += 4097)      /* in order, odd chunks */
    df_layer_hasher_data (hs, off, bytes + off,
                          im->len - off < 4097 ? im->len - off : 4097);
  assert_int_equal (df_layer_hasher_pending (hs), 0);
  final_of (hs, p, h);
  assert_memory_not_equal (h, im->hash, DF_HASH_LEN);
  l = df_layer_open (p, false);
  assert_non_null (l);
  assert_int_equal (df_layer_hash (l, want), 0);
  df_layer_close (l);
  assert_memory_equal (h, want, DF_HASH_LEN);
  df_layer_hasher_free (hs);
  unlink (p);
  free (p);
  free (bytes);
}

int
main (void)
{
  const struct CMUnitTest tests[] = {
    cmocka_unit_test (test_in_order),
    cmocka_unit_test (test_pieces),
    cmocka_unit_test (test_resume),
    cmocka_unit_test (test_twice),
    cmocka_unit_test (test_layout_unknown),
    cmocka_unit_test (test_other_file),
    cmocka_unit_test (test_corrupt),
  };

  return cmocka_run_group_tests (tests, setup, teardown);
}
