/* Unit tests: replicator/plan (the sync plan, row by row).
 *
 * Each row gives the source's files, this server's files and the peers'
 * files in a compact text form, and the actions expected, in order:
 *
 *   file:   "PATH SIZE MTIME H"        H: one hex digit, the hash's bytes
 *   local:  "PATH SIZE MTIME H ALLOC"  H "?" for a hash not known
 *   action: "ACT PATH [basis=PATH] [<- SOURCE,SOURCE...]"
 */
#include <config.h>

#include "test-helpers.h"
#include "plan.h"

#define MAXF 12
#define MAXP 8

struct peer_row {
  const char *name;
  bool down;
  const char *files[MAXF];
};

struct row {
  const char *name;
  const char *self;                     /* default "srv2" */
  const char *src[MAXF];
  const char *local[MAXF];
  struct peer_row peers[MAXP];
  uint64_t fanout_min;                  /* default: no fan-out waits */
  const char *go_now[4];
  bool farm, allow_empty;
  bool relay;                           /* pipelined fan-out */
  const char *want[MAXF + 4];
  const char *error;                    /* the plan fails with this */
};

#define MiB (1024 * 1024)

static const struct row rows[] = {
  { .name = "fresh replica: everything downloads, vdisk.conf last",
    .src = { "vdisks/v/0001.layer 8388608 100 1",
             "vdisks/v/boot/vmlinuz 5000 100 2",
             "vdisks/v/vdisk.conf 800 100 3" },
    .want = { "download vdisks/v/0001.layer <- srv1",
              "download vdisks/v/boot/vmlinuz <- srv1",
              "download vdisks/v/vdisk.conf <- srv1" } },
  { .name = "identical replica: nothing",
    .src = { "vdisks/v/0001.layer 8388608 100 1",
             "vdisks/v/vdisk.conf 800 100 3" },
    .local = { "vdisks/v/0001.layer 8388608 100 1 8388608",
               "vdisks/v/vdisk.conf 800 100 3 4096" },
    .want = { "nothing vdisks/v/0001.layer",
              "nothing vdisks/v/vdisk.conf" } },
  { .name = "new version: only the new layer moves, and the manifest",
    .src = { "vdisks/v/0001.layer 8388608 100 1",
             "vdisks/v/0002.layer 8388608 200 4",
             "vdisks/v/vdisk.conf 900 200 5" },
    .local = { "vdisks/v/0001.layer 8388608 100 1 8388608",
               "vdisks/v/vdisk.conf 800 100 3 4096" },
    .want = { "nothing vdisks/v/0001.layer",
              "download vdisks/v/0002.layer basis=vdisks/v/0001.layer <- srv1",
              "download vdisks/v/vdisk.conf <- srv1" } },
  { .name = "merge: a new base, with the old one as a hint; old layers go",
    .src = { "vdisks/v/0003.layer 8388608 300 6",
             "vdisks/v/vdisk.conf 700 300 7" },
    .local = { "vdisks/v/0001.layer 8388608 100 1 8388608",
               "vdisks/v/0002.layer 8388608 200 4 1048576",
               "vdisks/v/vdisk.conf 900 200 5 4096" },
    .want = { "download vdisks/v/0003.layer basis=vdisks/v/0001.layer <- srv1",
              "download vdisks/v/vdisk.conf <- srv1",
              "delete vdisks/v/0001.layer",
              "delete vdisks/v/0002.layer" } },
  { .name = "basis: most data wins, then the newest; thin layers never",
    .src = { "vdisks/v/0005.layer 8388608 500 8" },
    .local = { "vdisks/v/0001.layer 8388608 100 1 4194304",
               "vdisks/v/0002.layer 8388608 200 2 4194304",
               "vdisks/v/0003.layer 8388608 300 3 4096",
               "vdisks/w/0001.layer 8388608 100 1 8388608" },
    .want = { "download vdisks/v/0005.layer basis=vdisks/v/0002.layer <- srv1",
              "delete vdisks/v/0001.layer", "delete vdisks/v/0002.layer",
              "delete vdisks/v/0003.layer", "delete vdisks/w/0001.layer" } },
  { .name = "flipped byte: same size, other hash -> delta on itself",
    .src = { "vdisks/v/0001.layer 8388608 100 1" },
    .local = { "vdisks/v/0001.layer 8388608 100 9 8388608" },
    .want = { "delta vdisks/v/0001.layer basis=vdisks/v/0001.layer <- srv1" } },
  { .name = "hash unknown counts as different",
    .src = { "vdisks/v/0001.layer 8388608 100 1" },
    .local = { "vdisks/v/0001.layer 8388608 100 ? 8388608" },
    .want = { "delta vdisks/v/0001.layer basis=vdisks/v/0001.layer <- srv1" } },
  { .name = "mtime-only drift: fixed without a transfer",
    .src = { "vdisks/v/0001.layer 8388608 100 1",
             "vdisks/v/vdisk.conf 800 100 3" },
    .local = { "vdisks/v/0001.layer 8388608 555 1 8388608",
               "vdisks/v/vdisk.conf 800 556 3 4096" },
    .want = { "fix-mtime vdisks/v/0001.layer",
              "fix-mtime vdisks/v/vdisk.conf" } },
  { .name = "small files move whole, also when they differ",
    .src = { "vdisks/v/boot/initrd 4096 100 2",
             "vdisks/v/vdisk.conf 800 100 3" },
    .local = { "vdisks/v/boot/initrd 4000 90 ? 4096",
               "vdisks/v/vdisk.conf 800 90 4 4096" },
    .want = { "download vdisks/v/boot/initrd <- srv1",
              "download vdisks/v/vdisk.conf <- srv1" } },
  { .name = "a truncated local copy of a big file: delta",
    .src = { "vdisks/v/boot/initrd 8388608 100 2" },
    .local = { "vdisks/v/boot/initrd 2097152 90 ? 2097152" },
    .want = { "delta vdisks/v/boot/initrd basis=vdisks/v/boot/initrd <- srv1" } },
  { .name = "a removed vDisk: its manifest first, then its files",
    .src = { "vdisks/v/vdisk.conf 800 100 3" },
    .local = { "vdisks/gone/0001.layer 8388608 100 1 8388608",
               "vdisks/gone/boot/vmlinuz 5000 100 2 8192",
               "vdisks/gone/vdisk.conf 800 100 3 4096",
               "vdisks/v/vdisk.conf 800 100 3 4096" },
    .want = { "delete vdisks/gone/vdisk.conf",
              "nothing vdisks/v/vdisk.conf",
              "delete vdisks/gone/0001.layer",
              "delete vdisks/gone/boot/vmlinuz" } },
  { .name = "a vDisk whose source lists files but no manifest keeps its own",
    .src = { "vdisks/v/0001.layer 8388608 100 1" },
    .local = { "vdisks/v/0001.layer 8388608 100 1 8388608",
               "vdisks/v/vdisk.conf 800 100 3 4096" },
    .want = { "nothing vdisks/v/0001.layer" } },
  { .name = "an empty source never empties a replica",
    .local = { "vdisks/v/vdisk.conf 800 100 3 4096" },
    .error = "offers no files at all" },
  { .name = "... unless allowed",
    .allow_empty = true,
    .local = { "vdisks/v/vdisk.conf 800 100 3 4096" },
    .want = { "delete vdisks/v/vdisk.conf" } },
  { .name = "an empty source and an empty replica: nothing to do",
    .want = { NULL } },
  { .name = "farm: farm.conf first, devices after, removed devices last",
    .farm = true,
    .src = { "devices.d/pc1.conf 100 10 1", "devices.d/pc2.conf 100 10 2",
             "farm.conf 900 10 3" },
    .local = { "devices.d/old.conf 100 5 4 4096",
               "devices.d/pc1.conf 100 10 1 4096",
               "farm.conf 800 5 5 4096" },
    .want = { "download farm.conf <- srv1",
              "nothing devices.d/pc1.conf",
              "download devices.d/pc2.conf <- srv1",
              "delete devices.d/old.conf" } },
  { .name = "farm: a farm.conf the source lacks is never deleted",
    .farm = true,
    .src = { "devices.d/pc1.conf 100 10 1" },
    .local = { "devices.d/pc1.conf 100 10 1 4096", "farm.conf 800 5 5 4096" },
    .want = { "nothing devices.d/pc1.conf" } },
  { .name = "fan-out: identical peers are sources too, mine first",
    .self = "srv3",
    .src = { "vdisks/v/0001.layer 8388608 100 1" },
    .peers = { { "srv2", false, { "vdisks/v/0001.layer 8388608 100 1" } },
               { "srv4", false, { "vdisks/v/0001.layer 8388608 100 1" } } },
    .want = { "download vdisks/v/0001.layer <- srv1,srv2,srv4" } },
  { .name = "fan-out: a peer with another mtime or hash is no source",
    .self = "srv3",
    .src = { "vdisks/v/0001.layer 8388608 100 1" },
    .peers = { { "srv2", false, { "vdisks/v/0001.layer 8388608 101 1" } },
               { "srv4", false, { "vdisks/v/0001.layer 8388608 100 2" } },
               { "srv5", true } },
    .fanout_min = 64 * MiB,
    .want = { "download vdisks/v/0001.layer <- srv1" } },
  { .name = "fan-out round 1: one holder, the first needer takes it",
    .self = "a",
    .src = { "vdisks/v/0001.layer 134217728 100 1" },
    .peers = { { "b", false, { NULL } }, { "c", false, { NULL } },
               { "d", false, { NULL } } },
    .fanout_min = 64 * MiB,
    .want = { "download vdisks/v/0001.layer <- srv1" } },
  { .name = "fan-out round 1: the second needer waits",
    .self = "b",
    .src = { "vdisks/v/0001.layer 134217728 100 1" },
    .peers = { { "a", false, { NULL } }, { "c", false, { NULL } },
               { "d", false, { NULL } } },
    .fanout_min = 64 * MiB,
    .want = { "wait vdisks/v/0001.layer <- srv1" } },
  { .name = "fan-out round 2: two holders, needers b and c take one each",
    .self = "c",
    .src = { "vdisks/v/0001.layer 134217728 100 1" },
    .peers = { { "a", false, { "vdisks/v/0001.layer 134217728 100 1" } },
               { "b", false, { NULL } }, { "d", false, { NULL } } },
    .fanout_min = 64 * MiB,
    .want = { "download vdisks/v/0001.layer <- a,srv1" } },
  { .name = "fan-out round 2: d waits for round 3",
    .self = "d",
    .src = { "vdisks/v/0001.layer 134217728 100 1" },
    .peers = { { "a", false, { "vdisks/v/0001.layer 134217728 100 1" } },
               { "b", false, { NULL } }, { "c", false, { NULL } } },
    .fanout_min = 64 * MiB,
    .want = { "wait vdisks/v/0001.layer <- srv1,a" } },
  { .name = "fan-out: a wait that lasted too long goes now",
    .self = "d",
    .src = { "vdisks/v/0001.layer 134217728 100 1" },
    .peers = { { "a", false, { "vdisks/v/0001.layer 134217728 100 1" } },
               { "b", false, { NULL } }, { "c", false, { NULL } } },
    .fanout_min = 64 * MiB,
    .go_now = { "vdisks/v/0001.layer" },
    .want = { "download vdisks/v/0001.layer <- srv1,a" } },
  { .name = "fan-out: unreachable peers neither hold nor need",
    .self = "d",
    .src = { "vdisks/v/0001.layer 134217728 100 1" },
    .peers = { { "a", true }, { "b", true }, { "c", true } },
    .fanout_min = 64 * MiB,
    .want = { "download vdisks/v/0001.layer <- srv1" } },
  { .name = "fan-out: small files never wait",
    .self = "d",
    .src = { "vdisks/v/vdisk.conf 800 100 1" },
    .peers = { { "a", false, { NULL } }, { "b", false, { NULL } } },
    .fanout_min = 64 * MiB,
    .want = { "download vdisks/v/vdisk.conf <- srv1" } },
  { .name = "fan-out: deltas wait their turn too",
    .self = "b",
    .src = { "vdisks/v/0001.layer 134217728 100 1" },
    .local = { "vdisks/v/0001.layer 134217728 100 9 134217728" },
    .peers = { { "a", false, { "vdisks/v/0001.layer 134217728 100 9" } } },
    .fanout_min = 64 * MiB,
    .want = { "wait vdisks/v/0001.layer basis=vdisks/v/0001.layer <- srv1" } },
  /* Relays: "x*" is x's staged copy, still arriving. */
  { .name = "relay: the first needer takes the source",
    .self = "a", .relay = true,
    .src = { "vdisks/v/0001.layer 134217728 100 1" },
    .peers = { { "b", false, { NULL } }, { "c", false, { NULL } },
               { "d", false, { NULL } } },
    .fanout_min = 64 * MiB,
    .want = { "download vdisks/v/0001.layer <- srv1" } },
  { .name = "relay: the second takes the first's copy now, not later",
    .self = "b", .relay = true,
    .src = { "vdisks/v/0001.layer 134217728 100 1" },
    .peers = { { "a", false, { NULL } }, { "c", false, { NULL } },
               { "d", false, { NULL } } },
    .fanout_min = 64 * MiB,
    .want = { "download vdisks/v/0001.layer <- a*,a,srv1" } },
  { .name = "relay: a chain, each from the one before",
    .self = "d", .relay = true,
    .src = { "vdisks/v/0001.layer 134217728 100 1" },
    .peers = { { "a", false, { NULL } }, { "b", false, { NULL } },
               { "c", false, { NULL } } },
    .fanout_min = 64 * MiB,
    .want = { "download vdisks/v/0001.layer <- c*,c,srv1" } },
  { .name = "relay: two holders, two chains",
    .self = "d", .relay = true,
    .src = { "vdisks/v/0001.layer 134217728 100 1" },
    .peers = { { "a", false, { "vdisks/v/0001.layer 134217728 100 1" } },
               { "b", false, { NULL } }, { "c", false, { NULL } } },
    .fanout_min = 64 * MiB,
    .want = { "download vdisks/v/0001.layer <- b*,b,srv1,a" } },
  { .name = "relay: small files come from the holders",
    .self = "d", .relay = true,
    .src = { "vdisks/v/vdisk.conf 800 100 1" },
    .peers = { { "a", false, { NULL } }, { "b", false, { NULL } } },
    .fanout_min = 64 * MiB,
    .want = { "download vdisks/v/vdisk.conf <- srv1" } },
  { .name = "relay: deltas neither relay nor wait",
    .self = "b", .relay = true,
    .src = { "vdisks/v/0001.layer 134217728 100 1" },
    .local = { "vdisks/v/0001.layer 134217728 100 9 134217728" },
    .peers = { { "a", false, { "vdisks/v/0001.layer 134217728 100 9" } } },
    .fanout_min = 64 * MiB,
    .want = { "delta vdisks/v/0001.layer basis=vdisks/v/0001.layer <- srv1" } },
};

/* Backing store for one row's manifests and local files. */
struct built {
  struct repl_manifest src, peer[MAXP];
  struct repl_file files[MAXP + 1][MAXF];
  char paths[MAXP + 2][MAXF][128];
  struct repl_local local[MAXF];
  struct repl_peer peers[MAXP];
  size_t npeers;
};

static void
parse_file_spec (const char *spec, bool farm, struct repl_file *f, char *path)
{
  unsigned long long size, mtime;
  char h[4];
  enum repl_kind k;

  memset (f, 0, sizeof *f);
  if (sscanf (spec, "%127s %llu %llu %3s", path, &size, &mtime, h) != 4)
    fail_msg ("bad file spec %s", spec);
  if (repl_path_classify (path, farm, &k, f->vdisk, &f->version) == -1)
    fail_msg ("%s", df_error_get ());
  f->path = path;
  f->kind = k;
  f->size = size;
  f->mtime_ns = mtime;
  memset (f->hash, (int) strtoul (h, NULL, 16) * 0x11, DF_HASH_LEN);
}

static void
build_manifest (const char *const *specs, bool farm, struct repl_manifest *m,
                struct repl_file *files, char (*paths)[128])
{
  size_t i;

  memset (m, 0, sizeof *m);
  m->farm = farm;
  m->files = files;
  for (i = 0; i < MAXF && specs[i]; i++)
    parse_file_spec (specs[i], farm, &files[i], paths[i]);
  m->nfiles = i;
}

static void
build (const struct row *r, struct built *b)
{
  size_t i;

  memset (b, 0, sizeof *b);
  build_manifest (r->src, r->farm, &b->src, b->files[0], b->paths[0]);
  for (i = 0; i < MAXF && r->local[i]; i++) {
    unsigned long long size, mtime, alloc;
    char h[4];
    struct repl_local *l = &b->local[i];

    if (sscanf (r->local[i], "%127s %llu %llu %3s %llu", b->paths[MAXP + 1][i],
                &size, &mtime, h, &alloc) != 5)
      fail_msg ("bad local spec %s", r->local[i]);
    l->path = b->paths[MAXP + 1][i];
    l->size = size;
    l->mtime_ns = mtime;
    l->allocated = alloc;
    l->hash_known = h[0] != '?';
    memset (l->hash, (int) strtoul (h, NULL, 16) * 0x11, DF_HASH_LEN);
  }
  for (i = 0; i < MAXP && r->peers[i].name; i++) {
    b->peers[i].name = r->peers[i].name;
    if (!r->peers[i].down) {
      build_manifest (r->peers[i].files, r->farm, &b->peer[i], b->files[i + 1],
                      b->paths[i + 1]);
      b->peers[i].m = &b->peer[i];
    }
  }
  b->npeers = i;
}

static void
describe (const struct repl_action *a, char *buf, size_t len)
{
  size_t o = snprintf (buf, len, "%s %s", repl_act_name (a->act), a->path);
  size_t i;

  if (a->basis)
    o += snprintf (buf + o, len - o, " basis=%s", a->basis);
  for (i = 0; i < a->nsources; i++)
    o += snprintf (buf + o, len - o, "%s%s%s", i ? "," : " <- ", a->sources[i],
                   i < a->nrelay ? "*" : "");
}

static void
run_row (const struct row *r)
{
  static struct built b;
  struct repl_plan_input in;
  struct repl_plan plan;
  size_t i, nlocal, ngo;
  char got[400];

  build (r, &b);
  for (nlocal = 0; nlocal < MAXF && r->local[nlocal]; nlocal++)
    ;
  for (ngo = 0; ngo < 4 && r->go_now[ngo]; ngo++)
    ;
  in = (struct repl_plan_input) {
    .self = r->self ? r->self : "srv2", .source = "srv1", .src = &b.src,
    .peers = b.peers, .npeers = b.npeers, .local = b.local, .nlocal = nlocal,
    .delta_min = MiB, .fanout_min = r->fanout_min ? r->fanout_min : UINT64_MAX,
    .go_now = r->go_now, .ngo_now = ngo, .allow_empty = r->allow_empty,
    .relay = r->relay,
  };
  if (repl_plan_make (&in, &plan) == -1) {
    if (r->error == NULL)
      fail_msg ("%s: %s", r->name, df_error_get ());
    assert_error_contains (r->error);
    return;
  }
  if (r->error)
    fail_msg ("%s: planned, expected \"%s\"", r->name, r->error);
  for (i = 0; i < plan.nactions; i++) {
    describe (&plan.actions[i], got, sizeof got);
    if (r->want[i] == NULL)
      fail_msg ("%s: extra action \"%s\"", r->name, got);
    if (strcmp (got, r->want[i]) != 0)
      fail_msg ("%s: action %zu is \"%s\", want \"%s\"", r->name, i, got,
                r->want[i]);
  }
  if (r->want[i])
    fail_msg ("%s: missing action \"%s\"", r->name, r->want[i]);
  repl_plan_free (&plan);
}

static void
test_rows (void **state)
{
  size_t i;

  (void) state;
  for (i = 0; i < sizeof rows / sizeof rows[0]; i++)
    run_row (&rows[i]);
}

/* Four servers pulling one big file: rounds double the holders. */
static void
test_fanout_rounds (void **state)
{
  static const char *const names[] = { "a", "b", "c", "d", "e", "f", "g", "h" };
  bool has[8] = { false };
  unsigned rounds = 0, from_source = 0;
  size_t n = 8, i, j;

  (void) state;
  for (;;) {
    bool got[8] = { false }, any = false, all = true;

    for (i = 0; i < n; i++) {
      struct repl_file f = { .path = (char *) "vdisks/v/0001.layer",
                             .kind = REPL_KIND_LAYER, .vdisk = "v",
                             .version = 1, .size = 1 << 30, .mtime_ns = 1 };
      struct repl_manifest have_m = { .files = &f, .nfiles = 1 };
      struct repl_manifest none = { .files = NULL, .nfiles = 0 };
      struct repl_manifest src = { .files = &f, .nfiles = 1 };
      struct repl_peer peers[8];
      struct repl_plan plan;
      size_t np = 0;

      if (has[i])
        continue;
      all = false;
      for (j = 0; j < n; j++)
        if (j != i)
          peers[np++] = (struct repl_peer) { names[j], has[j] ? &have_m : &none };
      assert_int_equal (repl_plan_make (&(struct repl_plan_input) {
            .self = names[i], .source = "src", .src = &src, .peers = peers,
            .npeers = np, .delta_min = 1 << 20, .fanout_min = 1 << 26 },
          &plan), 0);
      assert_int_equal (plan.nactions, 1);
      if (plan.actions[0].act == REPL_DOWNLOAD) {
        got[i] = any = true;
        if (strcmp (plan.actions[0].sources[0], "src") == 0)
          from_source++;
      }
      repl_plan_free (&plan);
    }
    if (all)
      break;
    assert_true (any);
    for (i = 0; i < n; i++)
      has[i] = has[i] || got[i];
    rounds++;
  }
  /* 1 + 1 + 2 + 4 = 8 servers after 4 rounds; the source sent 4 times. */
  assert_int_equal (rounds, 4);
  assert_int_equal (from_source, 4);
}

int
main (void)
{
  const struct CMUnitTest tests[] = {
    cmocka_unit_test (test_rows),
    cmocka_unit_test (test_fanout_rounds),
  };

  return cmocka_run_group_tests (tests, NULL, NULL);
}
