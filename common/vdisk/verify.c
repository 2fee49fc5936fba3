/* diskfarm — vdisk verify: every layer, link and hash (see vdisk.h). */
#include <config.h>

#include <errno.h>
#include <stdarg.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "cleanup.h"
#include "error.h"
#include "util.h"
#include "vdisk/vdisk.h"

struct verify {
  const struct df_vdisk *vd;
  df_verify_fn report;
  void *opaque;
  int problems;
};

static void
problem (struct verify *vf, unsigned num, const char *fmt, ...)
  __attribute__ ((format (printf, 3, 4)));

static void
problem (struct verify *vf, unsigned num, const char *fmt, ...)
{
  char msg[1024];
  va_list ap;

  va_start (ap, fmt);
  vsnprintf (msg, sizeof msg, fmt, ap);
  va_end (ap);
  vf->report (vf->opaque, num, msg);
  vf->problems++;
}

static void
verify_version (struct verify *vf, const struct df_version *v)
{
  const struct df_vdisk *vd = vf->vd;
  const struct df_version *p = v->parent ? df_vdisk_version (vd, v->parent) : NULL;
  CLEANUP_FREE char *path = df_vdisk_layer_path (vd, v);
  const struct df_layer_info *li;
  struct df_layer *l;
  uint8_t hash[DF_HASH_LEN];
  char a[DF_HASH_TEXT_LEN + 1], b[DF_HASH_TEXT_LEN + 1];
  struct stat st;

  if (path == NULL) {
    problem (vf, v->num, "%s", df_error_get ());
    return;
  }
  l = df_layer_open (path, false);
  if (l == NULL) {
    problem (vf, v->num, "%s", df_error_get ());
    return;
  }
  li = df_layer_info (l);
  if (memcmp (li->id, v->id, DF_LAYER_ID_LEN) != 0)
    problem (vf, v->num, "%s: layer id is not the one in the manifest", path);
  if (li->size != vd->size || li->block_size != vd->block_size)
    problem (vf, v->num, "%s: size %" PRIu64 " / block size %" PRIu32
             " differ from the manifest", path, li->size, li->block_size);
  if (p == NULL && !df_is_zero (li->parent_id, DF_LAYER_ID_LEN))
    problem (vf, v->num, "%s: layer names a parent but the version is a base",
             path);
  if (p && memcmp (li->parent_id, p->id, DF_LAYER_ID_LEN) != 0)
    problem (vf, v->num, "%s: parent id is not version %u's id", path, p->num);
  if (p && memcmp (li->parent_hash, p->hash, DF_HASH_LEN) != 0)
    problem (vf, v->num, "%s: bound to parent content %s but version %u is %s",
             path, df_hash_format (li->parent_hash, a), p->num,
             df_hash_format (p->hash, b));
  if (v->sealed != li->sealed)
    problem (vf, v->num, "%s: layer is %s but the manifest says %s", path,
             li->sealed ? "sealed" : "not sealed",
             v->sealed ? "sealed" : "not sealed");
  if (v->sealed) {
    if (stat (path, &st) == -1)
      problem (vf, v->num, "%s: %s", path, strerror (errno));
    else {
      uint64_t mt = (uint64_t) st.st_mtim.tv_sec * 1000000000 + st.st_mtim.tv_nsec;
      if ((uint64_t) st.st_size != v->size)
        problem (vf, v->num, "%s: size %jd, sealed with %" PRIu64, path,
                 (intmax_t) st.st_size, v->size);
      if (mt != v->mtime_ns)
        problem (vf, v->num, "%s: mtime %" PRIu64 " ns, sealed with %" PRIu64,
                 path, mt, v->mtime_ns);
    }
    if (df_layer_hash (l, hash) == -1)
      problem (vf, v->num, "%s", df_error_get ());
    else if (memcmp (hash, v->hash, DF_HASH_LEN) != 0)
      problem (vf, v->num, "%s: content hash %s does not match the sealed "
               "hash %s (the layer was damaged or changed)", path,
               df_hash_format (hash, a), df_hash_format (v->hash, b));
  }
  df_layer_close (l);
}

int
df_vdisk_verify (const struct df_vdisk *vd, df_verify_fn report, void *opaque)
{
  struct verify vf = { .vd = vd, .report = report, .opaque = opaque };
  size_t i;

  for (i = 0; i < vd->nversions; i++)
    verify_version (&vf, &vd->versions[i]);
  return vf.problems;
}
