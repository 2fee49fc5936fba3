/* nbdkit-diskfarm-plugin — shared between the plugin's files. */
#ifndef DISKFARM_PLUGIN_H
#define DISKFARM_PLUGIN_H

#include <stdbool.h>
#include <stdint.h>

#include "bdev/bdev.h"
#include "cache/cache.h"
#include "export-name.h"
#include "session/farmstate.h"
#include "session/session.h"

struct plugin_config {
  char *farm_dir;
  char *server;                 /* NULL: df_farm_local_server */
  char *cache_dir;              /* NULL: STORE/caches */
  uint64_t device_limit;        /* per device when its spec names none */
  uint64_t ram_limit;           /* RAM per ram+disk session */
  unsigned linger;              /* seconds a closed session is kept */
  bool stats;                   /* publish the sessions' figures */
  char *stats_dir;              /* NULL: DF_STATS_DIR */
};

/* How often the sessions' states and cache use are republished. */
#define STATS_INTERVAL_MS 1000

extern struct plugin_config cfg;
/* Set up by .config_complete, freed by .unload. */
extern struct df_farmstate *farmstate;
extern struct df_sessions *sessions;

/* ---- exports.c: img/ and edit/ ---- */

struct editor;
/* *desc receives a malloc'd description.  NULL with errno and a message. */
struct editor *editor_open (const char *vdisk, char **desc);
/* Flushes and closes; -1 with a message if the flush failed. */
int editor_close (struct editor *e);
struct df_bdev *editor_bdev (struct editor *e);

struct df_chain_ref *image_open (const struct df_export_name *en, char **desc);

/* list_exports: calls add for each export. */
int exports_list (int (*add) (void *opaque, const char *name, const char *desc),
                  void *opaque);

#endif
