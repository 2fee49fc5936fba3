/* diskfarm-gateway mount — the inode table, and the watcher.
 *
 * A node lives while the kernel holds references to it (lookups minus
 * forgets).  The kernel keeps names of sealed versions for a long time
 * (they never change), so when one goes away (version deleted, vDisk
 * removed, maintenance version promoted) someone must tell it: the
 * watcher checks every name the kernel knows once a second, with the
 * same rule lookups use (tree_resolve), and invalidates those that no
 * longer hold.
 */
#include <config.h>

#include <errno.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "cleanup.h"
#include "error.h"
#include "log.h"
#include "mount.h"

#define WATCH_INTERVAL_NS 1000000000ull

struct nodes {
  pthread_mutex_t lock;         /* list, nlookup, gone, the watcher's flags */
  struct node root, img, edit;  /* always there */
  struct node *list;            /* the others */
  pthread_cond_t wake;
  bool woken, stopping, watching;
  pthread_t watcher;
  struct gw_mount *m;
};

static void
node_init (struct node *n)
{
  pthread_mutex_init (&n->lock, NULL);
  pthread_cond_init (&n->cond, NULL);
  n->data_bytes = -1;
}

static void
static_node (struct node *n, enum node_kind kind, struct node *parent,
             const char *name)
{
  memset (n, 0, sizeof *n);
  node_init (n);
  n->kind = kind;
  n->parent = parent;
  strcpy (n->name, name);
}

struct nodes *
nodes_new (void)
{
  struct nodes *t = calloc (1, sizeof *t);

  if (t == NULL) {
    df_error_errno ("nodes");
    return NULL;
  }
  pthread_mutex_init (&t->lock, NULL);
  pthread_cond_init (&t->wake, NULL);
  static_node (&t->root, NODE_ROOT, NULL, "");
  static_node (&t->img, NODE_IMG, &t->root, "img");
  static_node (&t->edit, NODE_EDIT, &t->root, "edit");
  return t;
}

static void
node_free (struct node *n)
{
  if (n->bdev) {
    if (!(n->bdev->flags & DF_BDEV_RDONLY) && df_bdev_flush (n->bdev) == -1)
      df_log_error ("edit/%s: flush: %s", n->vdisk, df_error_get ());
    df_bdev_close (n->bdev);
  }
  pthread_mutex_destroy (&n->lock);
  pthread_cond_destroy (&n->cond);
}

void
nodes_free (struct nodes *t)
{
  struct node *n, *next;

  if (t == NULL)
    return;
  for (n = t->list; n; n = next) {
    next = n->next;
    node_free (n);
    free (n);
  }
  node_free (&t->root);
  node_free (&t->img);
  node_free (&t->edit);
  pthread_cond_destroy (&t->wake);
  pthread_mutex_destroy (&t->lock);
  free (t);
}

struct node *
nodes_root (struct nodes *t)
{
  return &t->root;
}

struct node *
nodes_get (struct nodes *t, fuse_ino_t ino)
{
  return ino == FUSE_ROOT_ID ? &t->root : (struct node *) (uintptr_t) ino;
}

fuse_ino_t
node_ino (const struct node *n)
{
  return n->kind == NODE_ROOT ? FUSE_ROOT_ID : (fuse_ino_t) (uintptr_t) n;
}

bool
node_same (const struct node *a, const struct node *b)
{
  return a->kind == b->kind && a->parent == b->parent &&
    strcmp (a->name, b->name) == 0 && a->version == b->version &&
    memcmp (a->id, b->id, DF_LAYER_ID_LEN) == 0;
}

struct node *
nodes_ref (struct nodes *t, const struct node *tmpl)
{
  struct node *n;
  SCOPED_LOCK (&t->lock);

  switch (tmpl->kind) {
  case NODE_ROOT: return &t->root;
  case NODE_IMG: return &t->img;
  case NODE_EDIT: return &t->edit;
  default: break;
  }
  for (n = t->list; n; n = n->next)
    if (!n->gone && node_same (n, tmpl)) {
      n->nlookup++;
      return n;
    }
  n = malloc (sizeof *n);
  if (n == NULL) {
    errno = ENOMEM;
    return NULL;
  }
  memcpy (n, tmpl, sizeof *n);
  node_init (n);
  n->nlookup = 1;
  n->gone = false;
  n->bdev = NULL;
  n->users = 0;
  n->busy = false;
  n->next = t->list;
  t->list = n;
  return n;
}

void
nodes_forget (struct nodes *t, struct node *n, uint64_t nlookup)
{
  struct node **p;

  if (n->kind == NODE_ROOT || n->kind == NODE_IMG || n->kind == NODE_EDIT)
    return;
  pthread_mutex_lock (&t->lock);
  n->nlookup = n->nlookup > nlookup ? n->nlookup - nlookup : 0;
  /* The kernel releases every handle of an inode before forgetting it,
   * so users is 0 here; the check keeps a node that is still in use.
   */
  if (n->nlookup > 0 || n->users > 0 || n->busy) {
    pthread_mutex_unlock (&t->lock);
    return;
  }
  for (p = &t->list; *p; p = &(*p)->next)
    if (*p == n) {
      *p = n->next;
      break;
    }
  pthread_mutex_unlock (&t->lock);
  node_free (n);
  free (n);
}

/* ---- the watcher ---- */

/* A name the kernel knows, copied so that it can be checked with no
 * lock held.
 */
struct known {
  struct node *n;               /* compared, never followed, unlocked */
  struct node parent;           /* kind, name, vdisk */
  struct node self;             /* the identity */
};

static struct known *
snapshot (struct nodes *t, size_t *count)
{
  struct known *k = NULL;
  struct node *n;
  size_t len = 0, i = 0;
  SCOPED_LOCK (&t->lock);

  for (n = t->list; n; n = n->next)
    len++;
  if (len == 0 || (k = calloc (len, sizeof *k)) == NULL) {
    *count = 0;
    return NULL;
  }
  for (n = t->list; n; n = n->next) {
    if (n->gone || n->nlookup == 0)
      continue;
    k[i].n = n;
    k[i].parent.kind = n->parent->kind;
    strcpy (k[i].parent.name, n->parent->name);
    strcpy (k[i].parent.vdisk, n->parent->vdisk);
    k[i].self.kind = n->kind;
    k[i].self.parent = n->parent;
    strcpy (k[i].self.name, n->name);
    k[i].self.version = n->version;
    memcpy (k[i].self.id, n->id, DF_LAYER_ID_LEN);
    i++;
  }
  *count = i;
  return k;
}

/* Marks the node gone if it is still the one checked; returns its
 * parent's inode number to invalidate, or 0.
 */
static fuse_ino_t
mark_gone (struct nodes *t, const struct known *k)
{
  struct node *n;
  SCOPED_LOCK (&t->lock);

  for (n = t->list; n; n = n->next)
    if (n == k->n && !n->gone && node_same (n, &k->self)) {
      n->gone = true;
      return node_ino (n->parent);
    }
  return 0;
}

static void
check_names (struct nodes *t)
{
  struct gw_mount *m = t->m;
  size_t count, i;
  CLEANUP_FREE struct known *k = snapshot (t, &count);

  for (i = 0; i < count; i++) {
    struct node now;
    fuse_ino_t parent;
    int r;

    r = tree_resolve (m, &k[i].parent, k[i].self.name, &now);
    now.parent = k[i].self.parent;
    /* Only a definite "not there" (or something else there) makes the
     * kernel forget; a store that cannot be read right now does not.
     */
    if (r == 0 ? node_same (&now, &k[i].self) : errno != ENOENT)
      continue;
    parent = mark_gone (t, &k[i]);
    if (parent == 0)
      continue;
    df_debug ("mount", "%s/%s%s%s is gone",
              k[i].parent.kind == NODE_EDIT ? "edit" : "img",
              k[i].parent.vdisk, k[i].parent.kind == NODE_VDISK ? "/" : "",
              k[i].self.name);
    r = fuse_lowlevel_notify_inval_entry (m->se, parent, k[i].self.name,
                                          strlen (k[i].self.name));
    if (r < 0 && r != -ENOENT)
      df_log_warning ("cannot make the kernel forget %s: %s",
                      k[i].self.name, strerror (-r));
  }
}

static void *
watch (void *arg)
{
  struct nodes *t = arg;

  pthread_mutex_lock (&t->lock);
  while (!t->stopping) {
    struct timespec until;
    uint64_t ns;

    clock_gettime (CLOCK_REALTIME, &until);
    ns = until.tv_nsec + WATCH_INTERVAL_NS;
    until.tv_sec += ns / 1000000000;
    until.tv_nsec = ns % 1000000000;
    while (!t->woken && !t->stopping &&
           pthread_cond_timedwait (&t->wake, &t->lock, &until) != ETIMEDOUT)
      ;
    if (t->stopping)
      break;
    t->woken = false;
    pthread_mutex_unlock (&t->lock);
    check_names (t);
    pthread_mutex_lock (&t->lock);
  }
  pthread_mutex_unlock (&t->lock);
  return NULL;
}

int
nodes_watch_start (struct gw_mount *m)
{
  struct nodes *t = m->nodes;
  sigset_t all, old;
  int r;

  t->m = m;
  /* Signals are for the main thread (fuse_set_signal_handlers). */
  sigfillset (&all);
  pthread_sigmask (SIG_BLOCK, &all, &old);
  r = pthread_create (&t->watcher, NULL, watch, t);
  pthread_sigmask (SIG_SETMASK, &old, NULL);
  if (r != 0)
    return df_error (r, "watcher thread: %m");
  t->watching = true;
  return 0;
}

void
nodes_watch_wake (struct nodes *t)
{
  pthread_mutex_lock (&t->lock);
  t->woken = true;
  pthread_cond_signal (&t->wake);
  pthread_mutex_unlock (&t->lock);
}

void
nodes_watch_stop (struct nodes *t)
{
  if (t == NULL || !t->watching)
    return;
  pthread_mutex_lock (&t->lock);
  t->stopping = true;
  pthread_cond_signal (&t->wake);
  pthread_mutex_unlock (&t->lock);
  pthread_join (t->watcher, NULL);
  t->watching = false;
}
