/* nbdkit-diskfarm-plugin — shared between the plugin's files. */
#ifndef DISKFARM_PLUGIN_H
#define DISKFARM_PLUGIN_H

#include <stdbool.h>
#include <stdint.h>

#include "bdev/bdev.h"
#include "cache/cache.h"
#include "export-name.h"
#include "farm/farm.h"
#include "vdisk/vdisk.h"

struct plugin_config {
  char *farm_dir;
  char *server;                 /* NULL: df_farm_local_server */
  char *cache_dir;              /* NULL: STORE/caches */
  uint64_t cache_limit;         /* all caches of this server, 0 = none */
  uint64_t device_limit;        /* per device when its spec names none */
  uint64_t ram_limit;           /* RAM per ram+disk session */
  unsigned linger;              /* seconds a closed session is kept */
};

extern struct plugin_config cfg;
extern struct df_cache_budget budget;

/* ---- farmstate.c ---- */

/* Locks the farm, reloading it when farm.conf or devices.d changed, and
 * returns it; NULL with a message (and unlocked) if it cannot be read.
 * Strings from it are valid until farm_release.
 */
struct df_farm *farm_acquire (void);
void farm_release (void);
void farm_free_all (void);
/* This server's name in the farm (valid while the farm is held). */
const char *farm_server (struct df_farm *farm);
/* Loads a vDisk from the store of this server that holds it. */
struct df_vdisk *farm_load_vdisk (struct df_farm *farm, const char *name);

/* Read-only chains shared by every export of one version. */
struct chain_ref {
  struct df_bdev *bdev;
  unsigned version;
  uint8_t id[DF_LAYER_ID_LEN];
  uint8_t hash[DF_HASH_LEN];
  /* private */
  char *key;
  unsigned refs;
  struct chain_ref *next;
};
struct chain_ref *chain_get (const struct df_vdisk *vd, unsigned version);
void chain_put (struct chain_ref *c);

/* ---- sessions.c ---- */

struct session;
/* Opens (or joins) the device session named by en; *desc receives a
 * malloc'd description.  NULL with errno and a message.
 */
struct session *session_open (const struct df_export_name *en, char **desc);
void session_close (struct session *s);
struct df_bdev *session_bdev (struct session *s);
bool session_readonly (struct session *s);
/* Logs a full cache once per device. */
void session_note_error (struct session *s, int err);
int sessions_start (void);
void sessions_stop (void);

/* ---- exports.c ---- */

struct editor;
struct editor *editor_open (const char *vdisk, char **desc);
void editor_close (struct editor *e);
struct df_bdev *editor_bdev (struct editor *e);

struct chain_ref *image_open (const struct df_export_name *en, char **desc);

/* list_exports: calls add for each export. */
int exports_list (int (*add) (void *opaque, const char *name, const char *desc),
                  void *opaque);

#endif
