/* diskfarm — vDisks in a store: the manifest (vdisk.conf), versions and
 * their layer files.  See DESIGN.md "On disk".
 *
 *   STORE/vdisks/NAME/vdisk.conf    manifest (INI, edited in place)
 *   STORE/vdisks/NAME/NNNN.layer    one layer file per version
 *   STORE/vdisks/NAME/boot/         kernel and initrd for network boot
 *
 * Functions that change a vDisk take its lock (flock on
 * STORE/vdisks/NAME/.lock), reload the manifest, change it and save it
 * atomically, so concurrent CLI runs and servers never lose an update.
 */
#ifndef DISKFARM_VDISK_H
#define DISKFARM_VDISK_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "bdev/bdev.h"
#include "hash/hash.h"
#include "layer/layer.h"

#define DF_VERSION_MAX 9999

enum df_version_state {
  DF_STATE_MAINTENANCE,
  DF_STATE_TEST,
  DF_STATE_PRODUCTION,
  DF_STATE_RETIRED,
};

enum df_device_type {
  DF_TYPE_PRODUCTION,
  DF_TYPE_TEST,
  DF_TYPE_MAINTENANCE,
};

enum df_access {
  DF_ACCESS_STANDARD,           /* shared read-only image, per-device caches */
  DF_ACCESS_PRIVATE,            /* one device writes the image itself */
};

struct df_version {
  unsigned num;                 /* 1..DF_VERSION_MAX */
  char file[16];                /* "0001.layer" */
  unsigned parent;              /* 0 for a base */
  enum df_version_state state;
  uint8_t id[DF_LAYER_ID_LEN];
  bool sealed;                  /* hash, size and mtime_ns are set */
  uint8_t hash[DF_HASH_LEN];
  uint64_t size;                /* layer file size in bytes */
  uint64_t mtime_ns;
  uint64_t created_ns;
};

struct df_vdisk {
  char *name;
  char *store;                  /* the store directory */
  char *dir;                    /* STORE/vdisks/NAME */
  uint64_t size;                /* virtual size */
  uint32_t block_size;
  enum df_access access;
  char *cache;                  /* default write cache, e.g. "ram+disk:4G" */
  char *boot_kernel, *boot_initrd, *boot_cmdline;   /* relative to dir */
  struct df_version *versions;  /* ascending by num */
  size_t nversions;
  struct df_ini *ini;           /* the manifest document */
};

const char *df_state_name (enum df_version_state s);
int df_state_parse (const char *s, enum df_version_state *out);
const char *df_type_name (enum df_device_type t);
int df_type_parse (const char *s, enum df_device_type *out);
const char *df_access_name (enum df_access a);
int df_access_parse (const char *s, enum df_access *out);

/* Validates the names, reads and checks STORE/vdisks/NAME/vdisk.conf.
 * Caller frees with df_vdisk_free.
 */
struct df_vdisk *df_vdisk_load (const char *store, const char *name);
/* Parses a manifest from memory (for the fuzzer and tests). */
struct df_vdisk *df_vdisk_parse (const char *text, size_t len,
                                 const char *origin);
void df_vdisk_free (struct df_vdisk *vd);
/* Writes the struct's fields into the manifest document and saves it. */
int df_vdisk_save (struct df_vdisk *vd);

/* Names of the vDisks in a store, sorted (NULL-terminated, caller frees
 * each and the array).
 */
char **df_store_vdisks (const char *store);
void df_strv_free (char **v);

/* flock the vDisk (creating the lock file); returns an fd to close, or -1.
 * Lock order: the farm's lock (df_farm_lock) before a vDisk's; a vDisk's
 * before its layers' (which are only ever tried, never waited for).
 */
int df_vdisk_lock (const char *store, const char *name);

/* Removes the vDisk and all its files, under its lock.  Refused (EBUSY,
 * with a message saying so) while any of its layers is open anywhere:
 * a device streaming it, its editor, an export or a verify, on this
 * server or another sharing the store (every open layer holds a lock on
 * its file: docs/layer-format.md "Locks").  Whether a device is
 * assigned to it is the farm's business: the caller checks that.
 */
int df_vdisk_remove (const char *store, const char *name);

/* The kernel parameters of [boot] cmdline, which the boot service
 * writes into an iPXE script: -1 with a message if they hold a
 * character iPXE gives a meaning to ($ " ' \ # ; | & and control
 * characters).  NULL is fine.  Part of manifest validation: a manifest
 * with such parameters neither loads nor saves.
 */
int df_boot_cmdline_check (const char *cmdline);

/* What network boot of the vDisk uses (see docs/boot-parameters.md);
 * NULL leaves a setting as it is.
 */
struct df_boot_files {
  const char *kernel;           /* a file to copy in as boot/NAME */
  const char *initrd;           /* likewise */
  const char *cmdline;          /* kernel parameters; "" clears them */
};

/* Installs boot files and parameters, under the vDisk's lock: checks the
 * parameters first, copies each file atomically into boot/ (under its
 * own name if that is a plain name, else "kernel" or "initrd"), saves
 * the manifest, then deletes files it no longer names.
 */
int df_vdisk_set_boot (const char *store, const char *name,
                       const struct df_boot_files *b);

struct df_version *df_vdisk_version (const struct df_vdisk *vd, unsigned num);
/* The version a device of this type boots: the highest-numbered one in
 * a state the type may see (production: production; test: test or
 * production; maintenance: also maintenance).  NULL if none.
 */
struct df_version *df_vdisk_pick (const struct df_vdisk *vd,
                                  enum df_device_type type);
/* Newest version that is not retired (any state), or NULL. */
struct df_version *df_vdisk_newest (const struct df_vdisk *vd);
/* The maintenance version (the newest one, should a hand-edited
 * manifest list several; version new makes at most one), or NULL.
 */
struct df_version *df_vdisk_maintenance (const struct df_vdisk *vd);
/* Path of a version's layer file (caller frees). */
char *df_vdisk_layer_path (const struct df_vdisk *vd,
                           const struct df_version *v);

/* Opens the chain base..num as a block device.  Checks every layer
 * against the manifest: id, parent binding (id and content hash), and
 * for sealed versions size and mtime.  writable only for a maintenance
 * version.
 */
struct df_bdev *df_vdisk_open (const struct df_vdisk *vd, unsigned num,
                               bool writable);

/* Progress callback for long operations (done <= total bytes). */
typedef void (*df_progress_fn) (void *opaque, uint64_t done, uint64_t total);

struct df_import_opts {
  uint32_t block_size;          /* 0: default */
  df_progress_fn progress;
  void *opaque;
};

/* Imports an image qemu-img can read as version 1 (sealed, production)
 * of a new vDisk.  Zero blocks are not stored.
 */
int df_vdisk_import (const char *store, const char *name, const char *image,
                     const struct df_import_opts *opts);

/* Writes the content of a version to a new file: "raw" or "qcow2". */
int df_vdisk_export (const struct df_vdisk *vd, unsigned num, const char *out,
                     const char *format, df_progress_fn progress,
                     void *opaque);

/* Version operations; each locks, reloads and saves the manifest.
 * new returns the new version's number in *num.
 */
int df_version_new (const char *store, const char *name, unsigned *num);
int df_version_promote (const char *store, const char *name, unsigned num,
                        enum df_version_state to);
int df_version_rollback (const char *store, const char *name, unsigned *retired);
/* num 0: the newest sealed version that is not retired. */
int df_version_merge (const char *store, const char *name, unsigned num,
                      unsigned *merged, df_progress_fn progress, void *opaque);
int df_version_delete (const char *store, const char *name, unsigned num);

/* Checks every version (layer headers and maps, chain links, content
 * hashes, sizes, mtimes).  Calls report for each problem found; returns
 * the number of problems, or -1 if the check itself could not run.
 */
typedef void (*df_verify_fn) (void *opaque, unsigned num, const char *problem);
int df_vdisk_verify (const struct df_vdisk *vd, df_verify_fn report,
                     void *opaque);

#endif
