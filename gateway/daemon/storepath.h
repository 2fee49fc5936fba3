/* diskfarm-gateway serve — the paths the store and farm endpoints serve
 * (storepath.c).  Pure parsers, fuzzed (fuzz-gw-path.c).
 */
#ifndef DISKFARM_GW_STOREPATH_H
#define DISKFARM_GW_STOREPATH_H

#include "util.h"

enum gw_file_kind {
  GW_FILE_MANIFEST,             /* vdisks/NAME/vdisk.conf */
  GW_FILE_LAYER,                /* vdisks/NAME/NNNN.layer */
  GW_FILE_BOOT,                 /* vdisks/NAME/boot/FILE */
};

struct gw_file_ref {
  enum gw_file_kind kind;
  char vdisk[DF_NAME_MAX + 1];
  char name[DF_NAME_MAX + 1];   /* the last component */
};

/* A path relative to a store; -1 with a message for anything that is
 * not one of the shapes above (write caches, hidden files, "..").
 */
int gw_store_path_parse (const char *path, struct gw_file_ref *out);

enum gw_store_op { GW_OP_MANIFEST, GW_OP_FILES, GW_OP_DELTA, GW_OP_STAGED };
/* What follows /v1/stores/: "STORE/manifest", "STORE/files/PATH",
 * "STORE/staged/PATH" or "STORE/delta/PATH" (*path points into sub).  -1 with ENOENT or EINVAL.
 */
int gw_store_route_parse (const char *sub, char store[DF_NAME_MAX + 1],
                          enum gw_store_op *op, const char **path);

/* A path relative to the farm directory: "farm.conf" (device set to "")
 * or "devices.d/NAME.conf" (device set to NAME).  Nothing else: never
 * the token file, keys or certificates.
 */
int gw_farm_path_parse (const char *path, char device[DF_NAME_MAX + 1]);

/* Opens root/rel for reading without leaving root (symbolic links that
 * lead out are refused: EPERM with a message).
 */
int gw_open_beneath (const char *root, const char *rel);

#endif
