/* diskfarm-gateway mount — the farm's vDisks as files, through FUSE.
 *
 *   MOUNT/img/VDISK/N            sealed version N (test, production or
 *                                retired), read-only
 *   MOUNT/img/VDISK/production   symlink to the newest production version
 *   MOUNT/edit/VDISK             the maintenance version, read-write
 *
 * Files are thin adapters over the block-device stack: a version file
 * reads the version's layer chain (df_vdisk_open), an edit file writes
 * the maintenance layer through the same writer lock the plugin's edit/
 * export takes.  No NBD hop.
 *
 * Modules:
 *   catalog.c     the vDisks of this server's stores (the farm as the
 *                 shared farm state follows it), manifests reread when
 *                 they change
 *   tree.c        what a name is now (the one rule lookups and the
 *                 watcher share), attributes, directory listings
 *   nodes.c       the inode table; the watcher that tells the kernel to
 *                 forget names that went away
 *   fs.c          FUSE operations on names: lookup, getattr, readdir...
 *   fileio.c      FUSE operations on data: open, read, write, fsync,
 *                 fallocate, lseek, release
 *   mount-main.c  options, the dead mount a killed gateway left, the
 *                 session and its threads
 *
 * Lock order: a node's lock, then the node table's lock, then the
 * catalog's lock; the farm state's locks are leaves.  None is held
 * across file I/O: opening and closing a chain happen with the node
 * marked busy, its lock released.
 */
#ifndef DISKFARM_GATEWAY_MOUNT_H
#define DISKFARM_GATEWAY_MOUNT_H

#define FUSE_USE_VERSION FUSE_MAKE_VERSION (3, 12)

#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>
#include <sys/stat.h>

#include <fuse_lowlevel.h>

#include "bdev/bdev.h"
#include "util.h"
#include "vdisk/vdisk.h"

/* Names in a vDisk's directory. */
#define MOUNT_PRODUCTION "production"

/* Requests are up to 1 MiB (max_write, max_read, max_pages 256). */
#define MOUNT_MAX_IO (1024 * 1024)

/* ---- catalog.c ---- */

struct catalog;

/* Follows the farm (the shared farm state) and finds this server (name,
 * or df_farm_local_server's rules).  NULL with a message.
 */
struct catalog *catalog_new (const char *farm_dir, const char *server);
void catalog_free (struct catalog *c);     /* NULL is fine */
/* This server's name (valid until catalog_free). */
const char *catalog_server (const struct catalog *c);

/* A vDisk as its manifest was when read.  Shared and never changed:
 * take a reference to keep it, put it when done.
 */
struct vd_info {
  struct df_vdisk *vd;
  struct df_file_stamp stamp;   /* of vdisk.conf when it was read */
  unsigned refs;                /* atomic */
};

/* The vDisk NAME of this server's stores, its manifest reread if it
 * changed.  NULL with errno ENOENT when no store holds it, or another
 * errno and a message.  Caller puts.
 */
struct vd_info *catalog_vdisk (struct catalog *c, const char *name);
void vd_info_put (struct vd_info *i);      /* NULL is fine */

/* The names of the vDisks of this server's stores: sorted, each once,
 * NULL-terminated (df_strv_free).  NULL with a message.
 */
char **catalog_names (struct catalog *c);

/* ---- nodes.c ---- */

enum node_kind {
  NODE_ROOT,
  NODE_IMG,                     /* img/ */
  NODE_EDIT,                    /* edit/ */
  NODE_VDISK,                   /* img/VDISK/ */
  NODE_VERSION,                 /* img/VDISK/N */
  NODE_PRODUCTION,              /* img/VDISK/production */
  NODE_EDITFILE,                /* edit/VDISK */
};

/* An inode.  Its address is its inode number (the root's is 1), so a
 * data request finds its node without a table lookup.
 */
struct node {
  /* Set when made, then constant. */
  enum node_kind kind;
  struct node *parent;          /* NULL for the root */
  char name[DF_NAME_MAX + 1];   /* the entry's name in parent */
  char vdisk[DF_NAME_MAX + 1];  /* VDISK and below */
  unsigned version;             /* VERSION, EDITFILE */
  uint8_t id[DF_LAYER_ID_LEN];  /* VERSION, EDITFILE: the top layer's id */
  uint64_t size;                /* VERSION, EDITFILE: the virtual size */
  uint64_t mtime_ns;
  uint32_t block_size;
  bool sealed;                  /* VERSION: content never changes */

  /* Under the node table's lock. */
  uint64_t nlookup;             /* the kernel's references */
  bool gone;                    /* the kernel was told to forget it */
  struct node *next;

  /* Under lock: the open chain, shared by every handle of the file. */
  pthread_mutex_t lock;
  pthread_cond_t cond;          /* busy went false */
  bool busy;                    /* bdev being opened or closed */
  struct df_bdev *bdev;
  unsigned users;               /* handles and passing users of bdev */
  int64_t data_bytes;           /* VERSION: allocated bytes, -1 unknown */
};

struct nodes;

struct nodes *nodes_new (void);
/* Closes every chain still open (flushing editors).  NULL is fine. */
void nodes_free (struct nodes *t);
struct node *nodes_root (struct nodes *t);
/* The node of an inode number the kernel holds. */
struct node *nodes_get (struct nodes *t, fuse_ino_t ino);
fuse_ino_t node_ino (const struct node *n);

/* The node with tmpl's identity (parent, name, kind, version, id) that
 * the kernel may still use, or a new copy of tmpl; counts one kernel
 * reference.  NULL with ENOMEM.
 */
struct node *nodes_ref (struct nodes *t, const struct node *tmpl);
/* Same parent, name, kind, version and layer id. */
bool node_same (const struct node *a, const struct node *b);
/* The kernel dropped nlookup references (FORGET). */
void nodes_forget (struct nodes *t, struct node *n, uint64_t nlookup);

struct gw_mount;
/* Every second, checks each name the kernel knows and makes it forget
 * those that went away (fuse_lowlevel_notify_inval_entry).  Lookups
 * that see a change wake it early.
 */
int nodes_watch_start (struct gw_mount *m);
void nodes_watch_wake (struct nodes *t);
void nodes_watch_stop (struct nodes *t);

/* ---- tree.c ---- */

/* What name in parent is now: fills *out (kind, identity, size, times).
 * -1 with errno ENOENT when there is nothing, or another errno.
 */
int tree_resolve (struct gw_mount *m, const struct node *parent,
                  const char *name, struct node *out);
/* Whether n is still what its name holds (the root, img/ and edit/
 * always are).  A node that is not answers ESTALE: the kernel then looks
 * the name up again (open and stat retry with a fresh lookup) instead
 * of waiting for the watcher.
 */
bool tree_current (struct gw_mount *m, const struct node *n);
/* The target of a production link: "N", into buf (>= 16 bytes). */
int tree_readlink (struct gw_mount *m, const struct node *n, char *buf);
/* Attributes of a node, and how long the kernel may keep them. */
void tree_stat (struct gw_mount *m, struct node *n, struct stat *st,
                double *attr_timeout);
double tree_entry_timeout (const struct node *n);
/* The entries of a directory (the names only), NULL-terminated
 * (df_strv_free); NULL with errno.
 */
char **tree_list (struct gw_mount *m, const struct node *dir);

/* ---- fileio.c ---- */

/* Opens the node's chain or joins it (users + 1): a version's chain
 * read-only, the maintenance version writable.  NULL with errno and a
 * message.
 */
struct df_bdev *node_open_bdev (struct gw_mount *m, struct node *n);
/* The chain if it is open (users + 1), else NULL. */
struct df_bdev *node_peek_bdev (struct node *n);
/* users - 1; the last one flushes (if writable) and closes. */
int node_put_bdev (struct node *n);
/* Bytes of a device that are not holes. */
int bdev_data_bytes (struct df_bdev *b, uint64_t *bytes);

/* FUSE operations on data, wired in fs.c. */
void fileio_open (fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi);
void fileio_release (fuse_req_t req, fuse_ino_t ino,
                     struct fuse_file_info *fi);
void fileio_read (fuse_req_t req, fuse_ino_t ino, size_t size, off_t off,
                  struct fuse_file_info *fi);
void fileio_write (fuse_req_t req, fuse_ino_t ino, const char *buf,
                   size_t size, off_t off, struct fuse_file_info *fi);
void fileio_fsync (fuse_req_t req, fuse_ino_t ino, int datasync,
                   struct fuse_file_info *fi);
void fileio_fallocate (fuse_req_t req, fuse_ino_t ino, int mode, off_t offset,
                       off_t length, struct fuse_file_info *fi);
void fileio_lseek (fuse_req_t req, fuse_ino_t ino, off_t off, int whence,
                   struct fuse_file_info *fi);

/* ---- fs.c ---- */

/* Every operation; the session's userdata is the struct gw_mount. */
extern const struct fuse_lowlevel_ops gw_mount_ops;

/* ---- mount-main.c ---- */

struct gw_mount {
  struct catalog *catalog;
  struct nodes *nodes;
  struct fuse_session *se;
  uid_t uid;
  gid_t gid;
  uint64_t started_ns;          /* directories' times */
};

#endif
