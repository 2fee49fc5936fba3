/* diskfarm — the farm directory: farm.conf and devices.d/NAME.conf.
 *
 * farm.conf holds the farm ([farm]), vDisk defaults ([vdisk-defaults])
 * and one section per object: [site NAME], [server NAME], [store NAME],
 * [collection NAME].  Each device is a file devices.d/NAME.conf with a
 * [device] section and free-form [personality] keys.  Objects are
 * described by a field table, so the CLI, the checks and the docs share
 * one list of keys.  Files are rewritten atomically and keep comments
 * and unknown keys.
 */
#ifndef DISKFARM_FARM_H
#define DISKFARM_FARM_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "vdisk/vdisk.h"

enum df_kind {
  DF_KIND_SITE,
  DF_KIND_SERVER,
  DF_KIND_STORE,
  DF_KIND_COLLECTION,
  DF_KIND_DEVICE,
  DF_KIND_COUNT,
};

enum df_field_type {
  DF_F_TEXT,                    /* any single line */
  DF_F_REF,                     /* the name of an object of kind .ref */
  DF_F_VDISK,                   /* a vDisk name */
  DF_F_ADDRESS,                 /* host name or IP address, optional :port */
  DF_F_SUBNETS,                 /* CIDR list: "10.0.0.0/24, 10.1.0.0/16" */
  DF_F_UINT,
  DF_F_BOOL,
  DF_F_MAC,
  DF_F_TYPE,                    /* device type */
  DF_F_CACHE,                   /* write cache MODE[:SIZE] */
  DF_F_PATH,                    /* directory; relative to the farm dir */
  DF_F_STORE_PATHS,             /* "STORE:PATH, STORE:PATH" */
};

struct df_field {
  const char *key;              /* INI key and CLI option (--key) */
  enum df_field_type type;
  enum df_kind ref;             /* for DF_F_REF */
  bool required;
  const char *help;
};

const char *df_kind_name (enum df_kind k);
/* The keys of a farm-wide section of farm.conf ("farm", "gateway"...),
 * or NULL if the section has no table (terminated by key == NULL).
 * df_farm_open checks the keys of [gateway] and [farm] config-server.
 */
const struct df_field *df_settings_fields (const char *section);
/* Terminated by an entry with key == NULL. */
const struct df_field *df_kind_fields (enum df_kind k);
const struct df_field *df_kind_field (enum df_kind k, const char *key);
/* Syntax check of one value; -1 with a message naming key and value. */
int df_field_check (const struct df_field *f, const char *value);

/* Write cache specification "MODE[:SIZE]". */
enum df_cache_mode {
  DF_CACHE_RAM,
  DF_CACHE_DISK,
  DF_CACHE_RAM_DISK,
  DF_CACHE_PERSISTENT,
  DF_CACHE_NONE,                /* private image */
  DF_CACHE_DEVICE,              /* the client caches */
};
struct df_cache_spec {
  enum df_cache_mode mode;
  uint64_t limit;               /* bytes, 0 = no per-device limit */
};
int df_cache_parse (const char *s, struct df_cache_spec *out);
const char *df_cache_mode_name (enum df_cache_mode m);

struct df_farm;

/* Opens the farm directory: reads and checks farm.conf and every
 * devices.d/NAME.conf.  Caller frees with df_farm_free.
 */
struct df_farm *df_farm_open (const char *dir);
void df_farm_free (struct df_farm *farm);
const char *df_farm_dir (const struct df_farm *farm);

struct df_farm_init {
  const char *name;             /* farm name, default "diskfarm" */
  const char *site;             /* default "default" */
  const char *server;           /* default: this host's name */
  const char *address;          /* default: 127.0.0.1 */
  const char *store;            /* default "store" */
  const char *store_path;       /* default "store" (inside the farm dir) */
};
int df_farm_create (const char *dir, const struct df_farm_init *init);

/* Change detection (stamp.c): take a stamp before reading the farm, keep
 * it with what was read, and reload when a newer stamp says changed.
 */
struct df_farm_stamp {
  uint64_t digest;              /* of every file's name, inode, size, mtime */
  uint64_t files;
  uint64_t newest_ns;           /* newest mtime seen */
  uint64_t taken_ns;            /* wall clock when taken */
  bool valid;                   /* false: the directory could not be read */
};
void df_farm_stamp_take (const char *dir, struct df_farm_stamp *out);
/* True if the farm may have changed between old and now (see stamp.c:
 * also when old was taken within a timestamp tick of a change).
 */
bool df_farm_stamp_changed (const struct df_farm_stamp *old,
                            const struct df_farm_stamp *now);
/* A devices.d entry that is a device file (NAME.conf, not hidden). */
bool df_farm_device_file (const char *name);

/* Exclusive lock on the farm for read-modify-write; returns an fd. */
int df_farm_lock (const char *dir);

/* [farm] and [vdisk-defaults] keys. */
const char *df_farm_setting (const struct df_farm *farm, const char *section,
                             const char *key);
int df_farm_set_setting (struct df_farm *farm, const char *section,
                         const char *key, const char *value);

/* Generic objects.  Names are sorted; the array is NULL-terminated and
 * valid until the next edit (caller frees the array only).
 */
const char **df_farm_names (const struct df_farm *farm, enum df_kind k);
bool df_farm_exists (const struct df_farm *farm, enum df_kind k,
                     const char *name);
const char *df_farm_get (const struct df_farm *farm, enum df_kind k,
                         const char *name, const char *key);
/* Calls fn for every key of the object (known and unknown), file order. */
int df_farm_foreach (const struct df_farm *farm, enum df_kind k,
                     const char *name, const char *section,
                     int (*fn) (const char *key, const char *value, void *),
                     void *opaque);

int df_farm_add (struct df_farm *farm, enum df_kind k, const char *name);
/* value NULL removes the key.  Known keys are checked. */
int df_farm_set (struct df_farm *farm, enum df_kind k, const char *name,
                 const char *key, const char *value);
/* A device's [personality] keys. */
int df_farm_set_personality (struct df_farm *farm, const char *device,
                             const char *key, const char *value);
int df_farm_remove (struct df_farm *farm, enum df_kind k, const char *name);
/* Checks references (sites, stores, collections named exist; MACs are
 * unique; required keys present) for the objects of the farm.
 */
int df_farm_check (const struct df_farm *farm);
/* Saves what changed (farm.conf and device files), atomically. */
int df_farm_save (struct df_farm *farm);

/* Typed views (strings point into the farm; valid until the next edit). */
struct df_device {
  const char *name;
  uint8_t mac[6];
  const char *vdisk;
  const char *collection;       /* may be NULL */
  enum df_device_type type;
  const char *cache;            /* override, may be NULL */
};
int df_farm_device (const struct df_farm *farm, const char *name,
                    struct df_device *out);
/* -1 with ENOENT if no device has that MAC. */
int df_farm_device_by_mac (const struct df_farm *farm, const uint8_t mac[6],
                           struct df_device *out);

struct df_server {
  const char *name;
  const char *address;
  const char *site;
  const char *subnets;
  unsigned power;               /* relative capacity, default 1 */
};
int df_farm_server (const struct df_farm *farm, const char *name,
                    struct df_server *out);
/* The server this process runs as: name if given, else $DISKFARM_SERVER,
 * else the server named like this host, else the only server.
 */
const char *df_farm_local_server (const struct df_farm *farm, const char *name);

/* Splits a server address "HOST", "HOST:PORT", "[V6]:PORT" or a bare
 * IPv6 address into host (IPv6 in brackets, as in URLs) and port
 * (default_port when it names none).
 */
int df_address_split (const char *address, unsigned default_port, char *host,
                      size_t len, unsigned *port);

/* Is the store on shared storage that every server mounts ([store NAME]
 * shared = yes)?  Its files are the same everywhere: never replicated.
 */
bool df_farm_store_shared (const struct df_farm *farm, const char *store);

/* Does the server carry the store?  Yes for a shared store, for a store
 * in its store-paths, and for every store if it lists none.
 */
bool df_farm_server_holds (const struct df_farm *farm, const char *server,
                           const char *store);

/* The directory of store on server (server's store-paths entry, else the
 * store's path; relative paths are inside the farm dir).  Caller frees.
 */
char *df_farm_store_path (const struct df_farm *farm, const char *store,
                          const char *server);

/* Finds the first store (on server) that holds vdisk; returns its path
 * (caller frees) and the store name in *store_name if not NULL.  NULL
 * with ENOENT if no store holds it, or with the error of a store that
 * could not be looked in (and holds it maybe) if none of the others
 * does.
 */
char *df_farm_find_vdisk (const struct df_farm *farm, const char *server,
                          const char *vdisk, const char **store_name);

/* The vDisks of the stores on server: sorted, each name once, NULL-
 * terminated (df_strv_free).  A store that cannot be listed (unmounted,
 * gone) lists nothing.  NULL with a message only if memory ran out.
 */
char **df_farm_vdisk_names (const struct df_farm *farm, const char *server);

/* Finds the store as df_farm_find_vdisk does and loads the vDisk's
 * manifest from it.  With lock not NULL, the vDisk's lock is taken
 * before the manifest is read and its fd returned there (the caller
 * closes it after saving).  Caller frees with df_vdisk_free.
 */
struct df_vdisk *df_farm_load_vdisk (const struct df_farm *farm,
                                     const char *server, const char *vdisk,
                                     const char **store_name, int *lock);

#endif
