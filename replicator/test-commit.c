/* Unit tests: replicator/stage and commit (staged files checked, given
 * their exact mtime and renamed into place; vdisk.conf only over layers
 * that are here; remembered hashes; the sync lock).
 */
#include <config.h>

#include <fcntl.h>
#include <sys/stat.h>
#include <sys/time.h>

#include "test-helpers.h"
#include "commit.h"
#include "io.h"
#include "stage.h"
#include "vdisk/vdisk.h"

#define SIZE (4 * 1024 * 1024)

static char *src_store, *dst_store;

/* The source: vdisk "v" with one sealed version, imported. */
static int
setup (void **state)
{
  char *img, *buf = calloc (1, SIZE);
  uint64_t seed = 42;
  int fd;

  (void) state;
  tmpdir_setup (state);
  src_store = test_path (tmpdir, "src");
  dst_store = test_path (tmpdir, "dst");
  mkdir (src_store, 0755);
  mkdir (dst_store, 0755);
  img = test_path (tmpdir, "img.raw");
  fd = open (img, O_WRONLY | O_CREAT | O_TRUNC, 0644);
  test_fill (buf + SIZE / 2, SIZE / 4, &seed);
  if (fd < 0 || pwrite (fd, buf, SIZE, 0) != SIZE)
    abort ();
  close (fd);
  if (df_vdisk_import (src_store, "v", img, NULL) == -1)
    fail_msg ("%s", df_error_get ());
  free (img);
  free (buf);
  return 0;
}

static int
teardown (void **state)
{
  free (src_store);
  free (dst_store);
  return tmpdir_teardown (state);
}

/* The manifest entry for a source file, hashed here. */
static void
describe (const char *path, enum repl_kind kind, struct repl_file *f)
{
  char *full = test_path (src_store, path);
  struct stat sb;

  memset (f, 0, sizeof *f);
  f->path = strdup (path);
  f->kind = kind;
  assert_int_equal (repl_path_classify (path, false, &kind, f->vdisk,
                                        &f->version), 0);
  assert_int_equal (stat (full, &sb), 0);
  f->size = sb.st_size;
  f->mtime_ns = repl_mtime_ns (&sb);
  if (repl_hash_file (full, kind, f->hash) == -1)
    fail_msg ("%s", df_error_get ());
  free (full);
}

/* Copies the source file into the staging area; returns an fd on it. */
static int
stage_copy (struct repl_stage *st, const struct repl_file *f, char **spath)
{
  char *from = test_path (src_store, f->path), *cmd;
  int fd;

  *spath = repl_stage_file_path (st, f, "part");
  assert_non_null (*spath);
  assert_true (asprintf (&cmd, "cp --sparse=always '%s' '%s'", from, *spath) > 0);
  assert_int_equal (system (cmd), 0);
  fd = open (*spath, O_RDWR);
  assert_true (fd >= 0);
  free (cmd);
  free (from);
  return fd;
}

/* A hasher that saw the staged file's bytes as they were written (in
 * order, in odd chunks), as a download feeds it.
 */
static struct df_layer_hasher *
hashed_as_written (int fd)
{
  struct df_layer_hasher *hs = df_layer_hasher_new ();
  struct stat sb;
  char *buf;
  off_t off;

  assert_non_null (hs);
  assert_int_equal (fstat (fd, &sb), 0);
  buf = malloc (sb.st_size);
  assert_non_null (buf);
  assert_int_equal (df_pread_full (fd, buf, sb.st_size, 0), sb.st_size);
  for (off = 0; off < sb.st_size; off += 65537)
    df_layer_hasher_data (hs, off, buf + off,
                          sb.st_size - off < 65537 ? sb.st_size - off : 65537);
  free (buf);
  return hs;
}

/* Hashed as it arrived: a damaged byte is refused like before, the
 * right file goes in.
 */
static void
test_commit_hashed_on_arrival (void **state)
{
  char *store = test_path (tmpdir, "dst-arrival"), *spath, *live;
  struct repl_stage *st;
  struct df_layer_hasher *hs;
  struct repl_file layer;
  struct stat sb;
  int fd;

  (void) state;
  mkdir (store, 0755);
  st = repl_stage_open (store, false);
  assert_non_null (st);
  describe ("vdisks/v/0001.layer", REPL_KIND_LAYER, &layer);
  fd = stage_copy (st, &layer, &spath);
  assert_int_equal (fstat (fd, &sb), 0);
  /* A byte of the data (the last 1 MiB of the disk holds data). */
  assert_int_equal (pwrite (fd, "\x5a", 1, sb.st_size - SIZE / 4 - 4321), 1);
  hs = hashed_as_written (fd);
  assert_int_equal (df_layer_hasher_pending (hs), 0);
  assert_int_equal (repl_commit (st, fd, spath, &layer, hs), -1);
  assert_error_contains ("content hash");
  df_layer_hasher_free (hs);
  close (fd);
  live = test_path (store, layer.path);
  assert_int_equal (access (live, F_OK), -1);

  unlink (spath);
  free (spath);
  fd = stage_copy (st, &layer, &spath);
  hs = hashed_as_written (fd);
  if (repl_commit (st, fd, spath, &layer, hs) == -1)
    fail_msg ("%s", df_error_get ());
  df_layer_hasher_free (hs);
  close (fd);
  assert_int_equal (access (live, F_OK), 0);
  repl_stage_close (st);
  free (live);
  free (spath);
  free (store);
  free (layer.path);
}

static void
test_commit_layer_then_manifest (void **state)
{
  struct repl_stage *st = repl_stage_open (dst_store, false);
  struct repl_file layer, conf;
  char *spath, *live, *text;
  size_t len;
  struct stat sb;
  uint8_t hash[DF_HASH_LEN];
  int fd;

  (void) state;
  assert_non_null (st);
  describe ("vdisks/v/0001.layer", REPL_KIND_LAYER, &layer);
  describe ("vdisks/v/vdisk.conf", REPL_KIND_MANIFEST, &conf);

  /* vdisk.conf first would name a layer that is not here: refused. */
  live = test_path (src_store, conf.path);
  assert_int_equal (df_read_file (live, 1 << 20, &text, &len), 0);
  free (live);
  assert_int_equal (repl_check_vdisk_conf (st, "v", text, len), -1);
  assert_error_contains ("not here");

  /* A wrong hash is refused and nothing becomes live. */
  fd = stage_copy (st, &layer, &spath);
  layer.hash[5] ^= 1;
  assert_int_equal (repl_commit (st, fd, spath, &layer, NULL), -1);
  assert_error_contains ("content hash");
  layer.hash[5] ^= 1;
  live = test_path (dst_store, layer.path);
  assert_int_equal (access (live, F_OK), -1);
  /* A wrong size likewise. */
  layer.size++;
  assert_int_equal (repl_commit (st, fd, spath, &layer, NULL), -1);
  assert_error_contains ("bytes arrived");
  layer.size--;

  /* The right one: live, exact mtime, staged file gone, hash known. */
  if (repl_commit (st, fd, spath, &layer, NULL) == -1)
    fail_msg ("%s", df_error_get ());
  close (fd);
  assert_int_equal (access (spath, F_OK), -1);
  assert_int_equal (stat (live, &sb), 0);
  assert_true (repl_mtime_ns (&sb) == layer.mtime_ns);
  assert_true (repl_stage_known_hash (st, layer.path, &sb, hash));
  assert_memory_equal (hash, layer.hash, DF_HASH_LEN);
  free (spath);

  /* Now the manifest may follow. */
  if (repl_check_vdisk_conf (st, "v", text, len) == -1)
    fail_msg ("%s", df_error_get ());
  fd = stage_copy (st, &conf, &spath);
  assert_int_equal (repl_commit (st, fd, spath, &conf, NULL), 0);
  close (fd);
  free (spath);
  free (text);
  repl_stage_close (st);

  /* The replica opens like the original. */
  {
    struct df_vdisk *vd = df_vdisk_load (dst_store, "v");
    struct df_bdev *b = vd ? df_vdisk_open (vd, 1, false) : NULL;
    if (b == NULL)
      fail_msg ("%s", df_error_get ());
    df_bdev_close (b);
    df_vdisk_free (vd);
  }
  free (live);
  free (layer.path);
  free (conf.path);
}

static void
test_hashes_remembered_and_mtime_fix (void **state)
{
  struct repl_stage *st = repl_stage_open (dst_store, false);
  struct repl_file layer;
  char *live;
  struct stat sb;
  uint8_t hash[DF_HASH_LEN];
  struct timeval tv[2] = { { 1000, 0 }, { 1000, 0 } };

  (void) state;
  assert_non_null (st);
  describe ("vdisks/v/0001.layer", REPL_KIND_LAYER, &layer);
  live = test_path (dst_store, layer.path);
  assert_int_equal (stat (live, &sb), 0);
  /* Remembered across runs (the previous test's commit). */
  assert_true (repl_stage_known_hash (st, layer.path, &sb, hash));

  /* mtime drift: the ctime changes too, so the hash is checked again. */
  assert_int_equal (utimes (live, tv), 0);
  assert_int_equal (stat (live, &sb), 0);
  assert_false (repl_stage_known_hash (st, layer.path, &sb, hash));
  if (repl_fix_mtime (st, &layer) == -1)
    fail_msg ("%s", df_error_get ());
  assert_int_equal (stat (live, &sb), 0);
  assert_true (repl_mtime_ns (&sb) == layer.mtime_ns);
  assert_true (repl_stage_known_hash (st, layer.path, &sb, hash));

  /* Content that changed is not an mtime fix. */
  layer.hash[0] ^= 1;
  assert_int_equal (utimes (live, tv), 0);
  assert_int_equal (repl_fix_mtime (st, &layer), -1);
  assert_error_contains ("changed since");
  layer.hash[0] ^= 1;
  assert_int_equal (repl_fix_mtime (st, &layer), 0);

  /* Only one sync at a time. */
  assert_null (repl_stage_open (dst_store, false));
  assert_error_contains ("another diskfarm-replicator");
  repl_stage_close (st);
  free (live);
  free (layer.path);
}

static void
test_local_edit_and_remove (void **state)
{
  struct repl_stage *st = repl_stage_open (dst_store, false);
  struct repl_manifest src = { .files = NULL, .nfiles = 0 };
  char *conf = test_path (dst_store, "vdisks/v/vdisk.conf");
  char *layer2 = test_path (dst_store, "vdisks/v/0002.layer");
  char *dir = test_path (dst_store, "vdisks/v");
  unsigned num;

  (void) state;
  assert_non_null (st);
  assert_int_equal (repl_check_local_edit (st, "v", &src, "srv1"), 0);
  /* A maintenance version made here is this server's edit. */
  repl_stage_close (st);
  if (df_version_new (dst_store, "v", &num) == -1)
    fail_msg ("%s", df_error_get ());
  st = repl_stage_open (dst_store, false);
  assert_int_equal (access (layer2, F_OK), 0);
  assert_int_equal (repl_check_local_edit (st, "v", &src, "srv1"), -1);
  assert_error_contains ("in maintenance on this server");

  /* Removing a vDisk: files, then the directory with its lock. */
  assert_int_equal (repl_remove (st, "vdisks/v/vdisk.conf"), 0);
  assert_int_equal (repl_remove (st, "vdisks/v/0001.layer"), 0);
  assert_int_equal (repl_remove (st, "vdisks/v/0002.layer"), 0);
  assert_int_equal (repl_remove (st, "vdisks/v/0002.layer"), 0);  /* again */
  repl_prune_vdisk (st, "v");
  assert_int_equal (access (conf, F_OK), -1);
  assert_int_equal (access (dir, F_OK), -1);
  repl_stage_close (st);
  free (conf);
  free (layer2);
  free (dir);
}

static void
test_tidy (void **state)
{
  struct repl_stage *st = repl_stage_open (dst_store, true);
  struct repl_file a = { .path = (char *) "x" }, b = { .path = (char *) "y" };
  uint8_t keep[1][DF_HASH_LEN];
  char *pa, *pb;

  (void) state;
  assert_non_null (st);
  memset (a.hash, 0xaa, DF_HASH_LEN);
  memset (b.hash, 0xbb, DF_HASH_LEN);
  pa = repl_stage_file_path (st, &a, "part");
  pb = repl_stage_file_path (st, &b, "delta");
  close (open (pa, O_CREAT | O_WRONLY, 0600));
  close (open (pb, O_CREAT | O_WRONLY, 0600));
  memcpy (keep[0], a.hash, DF_HASH_LEN);
  repl_stage_tidy (st, keep, 1);
  assert_int_equal (access (pa, F_OK), 0);
  assert_int_equal (access (pb, F_OK), -1);
  repl_stage_close (st);
  free (pa);
  free (pb);
}

int
main (void)
{
  const struct CMUnitTest tests[] = {
    cmocka_unit_test (test_commit_layer_then_manifest),
    cmocka_unit_test (test_commit_hashed_on_arrival),
    cmocka_unit_test (test_hashes_remembered_and_mtime_fix),
    cmocka_unit_test (test_local_edit_and_remove),
    cmocka_unit_test (test_tidy),
  };

  return cmocka_run_group_tests (tests, setup, teardown);
}
