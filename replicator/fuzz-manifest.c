/* libFuzzer harness: store and farm manifests as a gateway sends them,
 * and the plan made from one (every path and number in it is hostile).
 */
#include <config.h>

#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "manifest.h"
#include "plan.h"

int LLVMFuzzerTestOneInput (const uint8_t *data, size_t size);

static void
plan_from (const struct repl_manifest *m)
{
  struct repl_local local[2] = {
    { .path = "vdisks/base/0001.layer", .size = 1 << 20, .allocated = 1 << 20,
      .hash_known = true },
    { .path = "vdisks/base/vdisk.conf", .size = 100 },
  };
  struct repl_peer peers[2] = { { "srv3", m }, { "srv4", NULL } };
  struct repl_plan plan;

  if (repl_plan_make (&(struct repl_plan_input) {
        .self = "srv2", .source = "srv1", .src = m, .peers = peers,
        .npeers = 2, .local = m->farm ? NULL : local,
        .nlocal = m->farm ? 0 : 2, .delta_min = 4096, .fanout_min = 1 << 20,
      }, &plan) == 0)
    repl_plan_free (&plan);
}

int
LLVMFuzzerTestOneInput (const uint8_t *data, size_t size)
{
  int farm;

  for (farm = 0; farm <= 1; farm++) {
    struct repl_manifest *m = repl_manifest_parse ((const char *) data, size,
                                                   farm, "fuzz");
    size_t i;

    if (m == NULL)
      continue;
    for (i = 0; i < m->nfiles; i++)
      if (repl_manifest_find (m, m->files[i].path) != &m->files[i])
        __builtin_trap ();
    plan_from (m);
    repl_manifest_free (m);
  }
  return 0;
}
