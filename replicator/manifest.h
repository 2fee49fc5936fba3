/* diskfarm-replicator — what a server offers for replication: the store
 * and farm manifests of its gateway (docs/api.md), parsed and checked.
 *
 * A manifest comes from the network, so every path in it is checked
 * against the few shapes replication carries before it is used:
 *
 *   store:  vdisks/NAME/vdisk.conf          kind "manifest"
 *           vdisks/NAME/NNNN.layer          kind "layer" (version NNNN)
 *           vdisks/NAME/PLAIN[/PLAIN...]    kind "boot" (kernel, initrd)
 *   farm:   farm.conf, devices.d/NAME.conf  kind "farm"
 *
 * where NAME and PLAIN are names as df_name_valid says.  Nothing else
 * ever becomes a path.
 */
#ifndef DISKFARM_REPL_MANIFEST_H
#define DISKFARM_REPL_MANIFEST_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "hash/hash.h"
#include "util.h"

enum repl_kind {
  REPL_KIND_MANIFEST,           /* a vDisk's vdisk.conf */
  REPL_KIND_LAYER,              /* a sealed layer */
  REPL_KIND_BOOT,               /* a kernel or initrd of a vDisk */
  REPL_KIND_FARM,               /* farm.conf or devices.d/NAME.conf */
};

/* Boot files may sit this deep under vdisks/NAME/. */
#define REPL_BOOT_DEPTH 4
/* A manifest lists at most this many files. */
#define REPL_FILES_MAX 200000

struct repl_file {
  char *path;                   /* relative to the store or farm directory */
  enum repl_kind kind;
  char vdisk[DF_NAME_MAX + 1];  /* "" for farm files */
  unsigned version;             /* layers; 0 otherwise */
  uint64_t size;
  uint64_t mtime_ns;
  uint8_t hash[DF_HASH_LEN];    /* layer content hash, else SHA-256 */
};

struct repl_manifest {
  char *server;                 /* as the gateway says; may be "" */
  bool farm;                    /* a farm manifest (else a store's) */
  struct repl_file *files;      /* sorted by path, no duplicates */
  size_t nfiles;
};

const char *repl_kind_name (enum repl_kind k);

/* Classifies a relative path: 0 with its kind (and, for store paths, the
 * vDisk name and layer version; vdisk and version may be NULL), or -1
 * with a message if the path is none of the shapes above.
 */
int repl_path_classify (const char *path, bool farm, enum repl_kind *kind,
                        char *vdisk, unsigned *version);

/* Parses and checks a manifest document (JSON).  origin names it in
 * messages.  Caller frees with repl_manifest_free.
 */
struct repl_manifest *repl_manifest_parse (const char *json, size_t len,
                                           bool farm, const char *origin);
void repl_manifest_free (struct repl_manifest *m);

/* The entry for path, or NULL (binary search). */
const struct repl_file *repl_manifest_find (const struct repl_manifest *m,
                                            const char *path);

/* Same size, mtime and hash: a replica of one is identical to the other. */
bool repl_file_identical (const struct repl_file *a, const struct repl_file *b);

/* A manifest's hash text: 64 hex digits, with or without "sha256:". */
int repl_hash_parse (const char *text, uint8_t hash[DF_HASH_LEN]);

#endif
