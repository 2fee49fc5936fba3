/* diskfarm-gateway serve — the daemon's shared state and modules.
 *
 * The main thread runs a df_loop for signals and the farm watch; HTTP
 * requests run on libmicrohttpd's thread pool, concurrently.  Modules:
 *   options.c   the command line
 *   serve.c     start, run, stop
 *   farm.c      the farm, reloaded when its files change (snapshots)
 *   routes.c    the route table and the token guard
 *   storepath.c which store paths may be served (pure)
 *   store.c     /v1/stores/STORE/manifest and files
 *   farmdir.c   /v1/farm/manifest and files
 *   hashes.c    SHA-256 of files and verified layer hashes, cached
 *   delta.c     POST /v1/stores/STORE/delta: jobs, joined and cached
 *   delta-compute.c  one librsync delta
 *   staged.c    /v1/stores/STORE/staged: a copy still arriving (relays)
 *   status.c    /v1/status, /v1/vdisks, /v1/devices
 *   sessions.c  /v1/sessions and the load figure, from nbdkit's figures
 *   metrics.c   /metrics
 */
#ifndef DISKFARM_GW_H
#define DISKFARM_GW_H

#include <pthread.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/stat.h>

#include "farm/farm.h"
#include "gwapi/gwapi.h"
#include "hash/hash.h"
#include "http/http.h"
#include "stats/stats.h"
#include "util.h"

#define GW_MAX_LISTEN 8
#define GW_MAX_ROUTES 15

struct gw_config {
  const char *farm_dir;
  const char *server;                   /* --server, or NULL */
  const char *listen[GW_MAX_LISTEN];    /* ADDR[:PORT]; none: every address */
  size_t nlisten;
  const char *tls_cert, *tls_key;
  const char *stats_dir;
  const char *cache_dir;                /* deltas */
  uint64_t delta_cache;                 /* bytes of deltas kept */
  unsigned delta_jobs;                  /* deltas computed at once */
  unsigned threads;                     /* HTTP threads */
  unsigned max_connections, max_per_ip;
  unsigned timeout_s;                   /* a whole request must arrive */
  unsigned poll_ms;                     /* farm change checks */
  uint64_t upload_rate;                 /* bytes/s of file bodies (0: any) */
  unsigned relay_wait_s;                /* staged: wait for bytes this long */
};

/* One store this server carries. */
struct gw_store {
  const char *name;                     /* in the farm */
  char *path;
};

/* A loaded farm: immutable once published, shared by requests through
 * gw_farm_get / gw_farm_put, freed with its last reference.
 */
struct gw_farm {
  unsigned refs;                        /* under gw->farm_lock */
  struct df_farm *farm;
  const char *server;                   /* this server's name, in farm */
  struct df_gw_settings settings;
  char *token;                          /* NULL: no token-file */
  struct gw_store *stores;
  size_t nstores;
  /* What the files were when read, for reloads (the main thread's). */
  struct df_farm_stamp stamp;
  struct df_file_stamp token_stamp;
  bool token_stamped;
};

struct gw_counters {
  uint64_t auth_failures, reloads, reload_failures;
  uint64_t deltas_computed, deltas_cached, deltas_joined, deltas_refused;
};

struct gw_hashes;
struct gw_delta;
struct df_loop;

struct gw {
  struct gw_config cfg;
  struct df_loop *loop;
  /* farm_lock covers farm (the pointer) and every refs; a leaf lock. */
  pthread_mutex_t farm_lock;
  struct gw_farm *farm;
  struct df_http_route routes[GW_MAX_ROUTES + 1];    /* ends with a NULL path */
  struct df_http_server *http[GW_MAX_LISTEN];
  char where[GW_MAX_LISTEN][64];        /* "ADDR:PORT" of each */
  size_t nhttp;
  struct gw_hashes *hashes;
  struct gw_delta *delta;
  uint64_t start_mono_ns;
  struct gw_counters counters;          /* atomically */
  struct df_http_rate *upload;          /* --upload-rate, or NULL */
};

static inline void
gw_count (uint64_t *field)
{
  __atomic_fetch_add (field, 1, __ATOMIC_RELAXED);
}

/* options.c: parses argv into cfg; returns -1 after printing an error,
 * 1 after --help or --version (exit 0), 0 to run.
 */
int gw_parse_options (struct gw_config *cfg, int argc, char **argv);

/* farm.c */
/* Loads the farm for the first time; -1 with a message. */
int gw_farm_start (struct gw *gw);
/* Reloads if its files changed (force: anyway); logs the outcome.  A
 * farm that fails to load is logged and the previous one kept.
 */
void gw_farm_check (struct gw *gw, bool force);
void gw_farm_stop (struct gw *gw);
/* The current farm, referenced; give it back with gw_farm_put. */
struct gw_farm *gw_farm_get (struct gw *gw);
void gw_farm_put (struct gw *gw, struct gw_farm *f);
/* The directory of a store this server carries, or NULL. */
const char *gw_farm_store (const struct gw_farm *f, const char *name);

/* hashes.c */
struct gw_hashes *gw_hashes_new (void);
void gw_hashes_free (struct gw_hashes *h);
/* The SHA-256 of the bytes of the regular file open as fd (st: its
 * fstat), from the cache if the file has not changed since.
 */
int gw_hash_file (struct gw_hashes *h, int fd, const struct stat *st,
                  uint8_t out[DF_HASH_LEN]);
enum gw_verify {
  GW_VERIFY_PENDING,            /* not checked yet (queued) */
  GW_VERIFY_OK,                 /* *actual is its content hash */
  GW_VERIFY_FAILED,             /* unreadable or damaged */
};
/* The content hash of the sealed layer at path (st: its stat) as the
 * background check found it; queues the check if it has not been done
 * for the file as it is now.
 */
enum gw_verify gw_hash_layer (struct gw_hashes *h, const char *path,
                              const struct stat *st,
                              uint8_t actual[DF_HASH_LEN]);

/* store.c */
enum gw_replica {
  GW_REPLICA_PRESENT,           /* the file has the manifest's size */
  GW_REPLICA_MISSING,           /* no file */
  GW_REPLICA_INCOMPLETE,        /* shorter than the manifest, or unsealed */
};
struct df_vdisk;
struct df_version;
/* The replica of version v of vd in store (a directory) on this server:
 * its stat and its content hash as checked (*verify GW_VERIFY_OK: the
 * manifest's; GW_VERIFY_FAILED: another, or a file with another size or
 * mtime than the manifest's, or unreadable; GW_VERIFY_PENDING: not
 * checked yet, hash is the manifest's).
 */
enum gw_replica gw_layer_replica (struct gw *gw, const char *store,
                                  const struct df_vdisk *vd,
                                  const struct df_version *v, struct stat *st,
                                  uint8_t hash[DF_HASH_LEN],
                                  enum gw_verify *verify);
struct gw_file_ref;
/* Opens a layer the files endpoint may serve, with its stat and content
 * hash; -1 once it has answered why not (or with a message).
 */
int gw_open_layer (struct gw *gw, struct df_http_request *req,
                   const char *store, const struct gw_file_ref *ref,
                   const char *rel, struct stat *st, uint8_t hash[DF_HASH_LEN]);
/* The sorted "files" array of a store's manifest; NULL with a message. */
json_t *gw_store_manifest (struct gw *gw, const char *store);
/* Reads a small regular file under root (at most 4 MiB) into a malloc'd
 * NUL-terminated buffer.
 */
int gw_read_beneath (const char *root, const char *rel, char **data,
                     size_t *len, struct stat *st);
/* Answers with bytes read from a file (st) as that file: Range, ETag of
 * hash, Last-Modified and X-Diskfarm-Mtime-Ns of st.
 */
int gw_respond_bytes (struct df_http_request *req, const char *data,
                      size_t len, const struct stat *st,
                      const uint8_t hash[DF_HASH_LEN]);
/* 404 for ENOENT, 403 (logged) for EPERM, else 403: the df_error. */
int gw_respond_open_error (struct df_http_request *req);
uint64_t gw_mtime_ns (const struct stat *st);

/* sessions.c */
struct df_stats_session;
struct gw_load {
  unsigned sessions;            /* connected: booting and active */
  unsigned booting, lingering;
  double load;                  /* see docs/api.md */
};
void gw_load (struct gw *gw, const struct gw_farm *f, struct gw_load *out);
/* The sessions of a device here, as a JSON array. */
json_t *gw_device_sessions (struct gw *gw, const char *device);
json_t *gw_session_json (const struct df_stats_session *s);
/* Calls fn for each live session here (see df_stats_read). */
int gw_sessions_foreach (struct gw *gw,
                         int (*fn) (const struct df_stats_session *, void *),
                         void *opaque);

/* delta-compute.c: the librsync delta from the basis a signature
 * describes to the file open as in (in_st: its fstat), written to out
 * from its start as librsync makes it; progress (opaque, bytes) follows
 * every write.  0 with *size the delta's length, or -1 with a message
 * (ECANCELED once *stop is true, ESTALE if the file changed).
 */
typedef void (*gw_delta_progress_fn) (void *opaque, uint64_t written);
int gw_delta_compute (const bool *stop, const char *sig, size_t sig_len,
                      int in, const struct stat *in_st, int out,
                      gw_delta_progress_fn progress, void *opaque,
                      uint64_t *size);
/* An unlinked file in dir for a delta, or -1 with a message. */
int gw_delta_file (const char *dir);

/* delta.c */
struct gw_delta *gw_delta_new (struct gw *gw);
/* Answers every waiting request (503) and stops the workers. */
void gw_delta_shutdown (struct gw_delta *d);
void gw_delta_free (struct gw_delta *d);

/* routes.c */
enum { GW_PUBLIC = 1 };                 /* route flag: /metrics, /v1/status */
int gw_http_start (struct gw *gw);
void gw_http_stop (struct gw *gw);
/* A JSON error answer; for 4xx refusals of hostile input, also logged. */
int gw_refuse (struct df_http_request *req, unsigned status,
               const char *error, const char *fmt, ...)
  __attribute__ ((format (printf, 4, 5)));
/* How many gw_refuse answers there were. */
uint64_t gw_refused (void);
/* The 64 hex digits of a hash, into buf (65 bytes). */
const char *gw_hex_hash (const uint8_t hash[DF_HASH_LEN], char *buf);

/* Handlers (store.c, farmdir.c, delta.c, status.c, metrics.c). */
int gw_h_store_manifest (struct df_http_request *req, void *gw);
int gw_h_store_file (struct df_http_request *req, void *gw);
int gw_h_farm_manifest (struct df_http_request *req, void *gw);
int gw_h_farm_file (struct df_http_request *req, void *gw);
int gw_h_delta (struct df_http_request *req, void *gw);
int gw_h_status (struct df_http_request *req, void *gw);
int gw_h_vdisks (struct df_http_request *req, void *gw);
int gw_h_vdisk (struct df_http_request *req, void *gw);
int gw_h_devices (struct df_http_request *req, void *gw);
int gw_h_device (struct df_http_request *req, void *gw);
int gw_h_sessions (struct df_http_request *req, void *gw);
int gw_h_metrics (struct df_http_request *req, void *gw);

/* staged.c: GET /v1/stores/STORE/staged/PATH?hash=H from store dir. */
int gw_serve_staged (struct gw *gw, struct df_http_request *req,
                     const char *dir, const char *path);
/* The body of req's response goes out within --upload-rate. */
void gw_throttle (struct gw *gw, struct df_http_request *req);

#endif
