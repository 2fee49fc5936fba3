/* diskfarm-gateway mount — options, the dead mount a killed gateway
 * left behind, and the FUSE session.
 */
#include <config.h>

#include <errno.h>
#include <getopt.h>
#include <libgen.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/vfs.h>
#include <unistd.h>

#include "cleanup.h"
#include "error.h"
#include "gateway.h"
#include "log.h"
#include "mount.h"
#include "run.h"

/* What /proc/self/mountinfo calls our mounts (subtype=diskfarm). */
#define MOUNT_FSTYPE "fuse.diskfarm"
#define DEFAULT_THREADS 16
#define MAX_THREADS 256

static const char usage_text[] =
  "Usage: diskfarm-gateway mount [--farm DIR] [--server NAME] MOUNTPOINT\n"
  "Shows the vDisks of this server's stores as files (FUSE), read and\n"
  "written through the block-device stack, no NBD in between:\n"
  "\n"
  "  MOUNTPOINT/img/VDISK/N           version N (sealed: test, production\n"
  "                                   or retired), read-only\n"
  "  MOUNTPOINT/img/VDISK/production  symlink to the newest production\n"
  "                                   version, e.g. \"production -> 3\"\n"
  "  MOUNTPOINT/edit/VDISK            the maintenance version, read-write\n"
  "\n"
  "Options:\n"
  "      --farm DIR     the farm directory (default: $DISKFARM_FARM, then\n"
  "                     " DISKFARM_DEFAULT_FARM ")\n"
  "      --server NAME  this server, for its store paths (default:\n"
  "                     $DISKFARM_SERVER, then this host's name)\n"
  "      --threads N    FUSE request threads at most (default 16)\n"
  "      --allow-other  let other users in (the files' modes still apply:\n"
  "                     img/ files 0444, edit/ files 0600)\n"
  "  -v, --verbose      log opens and the names that went away\n"
  "      --help         show this help\n"
  "      --version      show the version\n"
  "\n"
  "Versions appear and go away as the farm's manifests change (promote,\n"
  "delete, merge), without remounting; an open file keeps its version.\n"
  "\n"
  "edit/VDISK: the first open makes this process the version's editor,\n"
  "with the layer's writer lock the plugin's edit/ export takes (EBUSY\n"
  "while another holds it); the last close releases it, so promote the\n"
  "version once the files are closed.  fsync or fdatasync makes writes\n"
  "durable.  The size is fixed: O_TRUNC and resizing are refused (use\n"
  "\"dd conv=notrunc\", \"qemu-img convert -n\").  fallocate punches holes\n"
  "and zeroes ranges; SEEK_DATA/SEEK_HOLE show the holes of every file.\n"
  "\n"
  "Runs in the foreground until SIGTERM or SIGINT, or until unmounted\n"
  "(\"fusermount3 -u MOUNTPOINT\"), then unmounts.  A dead mount that a\n"
  "killed gateway left at MOUNTPOINT (\"Transport endpoint is not\n"
  "connected\") is unmounted at start.\n";

enum { OPT_FARM = 256, OPT_SERVER, OPT_THREADS, OPT_ALLOW_OTHER, OPT_HELP,
       OPT_VERSION };

static const struct option long_opts[] = {
  { "farm", required_argument, NULL, OPT_FARM },
  { "server", required_argument, NULL, OPT_SERVER },
  { "threads", required_argument, NULL, OPT_THREADS },
  { "allow-other", no_argument, NULL, OPT_ALLOW_OTHER },
  { "verbose", no_argument, NULL, 'v' },
  { "help", no_argument, NULL, OPT_HELP },
  { "version", no_argument, NULL, OPT_VERSION },
  { NULL, 0, NULL, 0 },
};

struct mount_opts {
  const char *farm;
  const char *server;
  const char *mountpoint;
  unsigned threads;
  bool allow_other;
  int verbose;
};

static int
usage_error (const char *message)
{
  fprintf (stderr, "diskfarm-gateway mount: %s\n%s", message, usage_text);
  return 1;
}

/* Returns -1 to go on, else the exit status. */
static int
parse_options (struct mount_opts *o, int argc, char **argv)
{
  uint64_t n;
  int c;

  o->farm = getenv ("DISKFARM_FARM");
  if (o->farm == NULL || o->farm[0] == '\0')
    o->farm = DISKFARM_DEFAULT_FARM;
  o->threads = DEFAULT_THREADS;
  optind = 1;
  while ((c = getopt_long (argc, argv, "v", long_opts, NULL)) != -1)
    switch (c) {
    case OPT_FARM: o->farm = optarg; break;
    case OPT_SERVER: o->server = optarg; break;
    case OPT_ALLOW_OTHER: o->allow_other = true; break;
    case 'v': o->verbose++; break;
    case OPT_THREADS:
      if (df_parse_u64 (optarg, &n) == -1 || n < 1 || n > MAX_THREADS)
        return usage_error ("--threads wants a number from 1 to 256");
      o->threads = n;
      break;
    case OPT_HELP:
      fputs (usage_text, stdout);
      return 0;
    case OPT_VERSION:
      printf ("diskfarm-gateway %s\n", PACKAGE_VERSION);
      return 0;
    default:
      fputs (usage_text, stderr);
      return 1;
    }
  if (optind != argc - 1)
    return usage_error (optind < argc ? "one MOUNTPOINT, please"
                        : "no MOUNTPOINT");
  o->mountpoint = argv[optind];
  return -1;
}

static int canonical (const char *path, char *out);

/* mountinfo escapes space, tab, newline and backslash as \ooo. */
static void
unescape (char *s)
{
  char *out = s;

  for (; *s; s++)
    if (s[0] == '\\' && s[1] >= '0' && s[1] <= '3' && s[2] >= '0' &&
        s[2] <= '7' && s[3] >= '0' && s[3] <= '7') {
      *out++ = (s[1] - '0') * 64 + (s[2] - '0') * 8 + (s[3] - '0');
      s += 3;
    }
    else
      *out++ = *s;
  *out = '\0';
}

/* The type and device ("MAJ:MIN") of the topmost mount at path
 * (absolute, canonical): 1 if there is one, 0 if not, -1 on error.
 */
static int
mount_at (const char *path, char *type, size_t len, char *dev, size_t dlen)
{
  CLEANUP_FCLOSE FILE *f = fopen ("/proc/self/mountinfo", "re");
  CLEANUP_FREE char *line = NULL;
  size_t cap = 0;
  int found = 0;

  if (f == NULL)
    return df_error_errno ("/proc/self/mountinfo");
  while (getline (&line, &cap, f) != -1) {
    char *save = NULL, *field[5], *sep, *t;
    int i;

    /* ID PARENT MAJ:MIN ROOT MOUNTPOINT ... - TYPE SOURCE OPTIONS */
    sep = strstr (line, " - ");
    if (sep == NULL)
      continue;
    *sep = '\0';
    for (i = 0; i < 5; i++)
      if ((field[i] = strtok_r (i ? NULL : line, " ", &save)) == NULL)
        break;
    if (i < 5)
      continue;
    unescape (field[4]);
    if (strcmp (field[4], path) != 0)
      continue;
    save = NULL;
    if ((t = strtok_r (sep + 3, " ", &save)) != NULL) {
      snprintf (type, len, "%s", t);
      if (dev)
        snprintf (dev, dlen, "%s", field[2]);
      found = 1;
    }
  }
  return found;
}

static int
mount_type_at (const char *path, char *type, size_t len)
{
  return mount_at (path, type, len, NULL, 0);
}

/* The kernel reads ahead 128 KiB on a FUSE mount, which caps sequential
 * requests at that size: raise it to MOUNT_MAX_IO.  Needs root; the
 * INIT reply (max_readahead) cannot raise it, only lower it.
 */
static void
set_read_ahead (const char *mountpoint)
{
  char path[PATH_MAX], type[64], dev[32], sys[64];
  CLEANUP_FCLOSE FILE *f = NULL;

  if (canonical (mountpoint, path) == -1 ||
      mount_at (path, type, sizeof type, dev, sizeof dev) != 1)
    return;
  snprintf (sys, sizeof sys, "/sys/class/bdi/%s/read_ahead_kb", dev);
  f = fopen (sys, "we");
  if (f == NULL || fprintf (f, "%d\n", MOUNT_MAX_IO / 1024) < 0 ||
      fflush (f) != 0)
    df_log_warning ("%s: cannot set the read-ahead to %d KiB (%m): "
                    "sequential reads will be slower", sys,
                    MOUNT_MAX_IO / 1024);
}

/* The absolute path of dir/base without looking at base itself (a
 * dead mount cannot be looked at).
 */
static int
canonical (const char *path, char *out)
{
  CLEANUP_FREE char *a = strdup (path), *b = strdup (path);
  char dir[PATH_MAX];
  const char *base;

  if (a == NULL || b == NULL)
    return df_error_errno ("%s", path);
  base = basename (b);
  if (realpath (dirname (a), dir) == NULL)
    return df_error_errno ("%s", path);
  if (strcmp (base, "/") == 0 || strcmp (base, ".") == 0 ||
      strcmp (base, "..") == 0)
    return df_error (EINVAL, "%s: name the mount point directory itself",
                     path);
  if ((size_t) snprintf (out, PATH_MAX, "%s/%s", strcmp (dir, "/") ? dir : "",
                         base) >= PATH_MAX)
    return df_error (ENAMETOOLONG, "%s: path too long", path);
  return 0;
}

/* A gateway killed while mounted leaves its mount behind, answering
 * ENOTCONN to everything.  Unmount it (lazily: a process may still sit
 * in it), and refuse a live gateway's mount.  statfs asks the file
 * system every time, where stat may be answered from cached attributes.
 */
static int
clean_dead_mount (const char *mountpoint)
{
  char path[PATH_MAX], type[64] = "";
  struct statfs sfs;
  struct stat st;
  int r;

  if (canonical (mountpoint, path) == -1)
    return -1;
  if (statfs (path, &sfs) == 0) {
    if (stat (path, &st) == -1)
      return df_error_errno ("%s", mountpoint);
    if (!S_ISDIR (st.st_mode))
      return df_error (ENOTDIR, "%s is not a directory", mountpoint);
    r = mount_type_at (path, type, sizeof type);
    if (r == 1 && strcmp (type, MOUNT_FSTYPE) == 0)
      return df_error (EBUSY, "%s: a running gateway is mounted there",
                       mountpoint);
    return r == -1 ? -1 : 0;
  }
  if (errno != ENOTCONN)
    return df_error_errno ("%s", mountpoint);
  r = mount_type_at (path, type, sizeof type);
  if (r == -1)
    return -1;
  if (r == 0 || strcmp (type, MOUNT_FSTYPE) != 0)
    return df_error (ENOTCONN, "%s is a dead mount of another program (%s); "
                     "unmount it (fusermount3 -u -z %s)", mountpoint,
                     r ? type : "not in the mount table", mountpoint);
  if (umount2 (path, MNT_DETACH) == -1) {
    char *argv[] = { (char *) "fusermount3", (char *) "-u", (char *) "-z",
                     path, NULL };

    if (errno != EPERM)
      return df_error_errno ("unmount the dead mount at %s", mountpoint);
    if (df_run (argv, NULL) == -1) {
      df_error_prefix ("unmount the dead mount at %s", mountpoint);
      return -1;
    }
  }
  df_log_info ("%s: unmounted the dead mount of a gateway that was killed",
               mountpoint);
  return 0;
}

/* FUSE mount options: ours, and 1 MiB reads. */
static char *
fuse_options (const struct mount_opts *o)
{
  char *s;
  /* fsname shows the farm unless the path would break the list. */
  bool plain = strpbrk (o->farm, ",\\ \t\n") == NULL;

  if (asprintf (&s, "fsname=diskfarm%s%s,subtype=diskfarm,"
                "default_permissions,max_read=%d%s", plain ? ":" : "",
                plain ? o->farm : "", MOUNT_MAX_IO,
                o->allow_other ? ",allow_other" : "") == -1)
    return NULL;
  return s;
}

static struct fuse_session *
new_session (const struct mount_opts *o, struct gw_mount *m)
{
  CLEANUP_FREE char *opts = fuse_options (o);
  char *argv[] = { (char *) "diskfarm-gateway", (char *) "-o", opts,
                   (char *) "-d", NULL };
  struct fuse_args args = FUSE_ARGS_INIT (o->verbose > 1 ? 4 : 3, argv);
  struct fuse_session *se;

  if (opts == NULL) {
    df_error_errno ("options");
    return NULL;
  }
  se = fuse_session_new (&args, &gw_mount_ops, sizeof gw_mount_ops, m);
  fuse_opt_free_args (&args);
  if (se == NULL)
    df_error (EINVAL, "cannot start a FUSE session (see above)");
  return se;
}

static int
serve (const struct mount_opts *o, struct gw_mount *m)
{
  struct fuse_loop_config *cfg;
  int r;

  if (fuse_session_mount (m->se, o->mountpoint) == -1)
    return df_error (EIO, "cannot mount at %s (see above; is /dev/fuse "
                     "there?)", o->mountpoint);
  set_read_ahead (o->mountpoint);
  if (nodes_watch_start (m) == -1) {
    fuse_session_unmount (m->se);
    return -1;
  }
  df_log_info ("farm %s (server %s) mounted at %s", o->farm,
               catalog_server (m->catalog), o->mountpoint);
  cfg = fuse_loop_cfg_create ();
  if (cfg == NULL)
    r = -ENOMEM;
  else {
    fuse_loop_cfg_set_max_threads (cfg, o->threads);
    fuse_loop_cfg_set_clone_fd (cfg, 1);
    r = fuse_session_loop_mt (m->se, cfg);
    fuse_loop_cfg_destroy (cfg);
  }
  nodes_watch_stop (m->nodes);
  fuse_session_unmount (m->se);
  /* A signal ends the loop with its number: a normal stop. */
  if (r == SIGTERM || r == SIGINT || r == SIGHUP) {
    df_log_info ("%s unmounted (signal %d)", o->mountpoint, r);
    return 0;
  }
  if (r != 0)
    return df_error (r < 0 ? -r : EIO, "FUSE session: %s",
                     strerror (r < 0 ? -r : EIO));
  df_log_info ("%s unmounted", o->mountpoint);
  return 0;
}

int
gw_mount_main (int argc, char **argv)
{
  struct mount_opts o = { 0 };
  struct gw_mount m = { 0 };
  CLEANUP_FREE char *farm = NULL;
  int r = parse_options (&o, argc, argv);

  if (r >= 0)
    return r;
  df_log_init ("diskfarm-gateway");
  /* The farm by its full name, in logs and in the mount table. */
  farm = realpath (o.farm, NULL);
  if (farm)
    o.farm = farm;
  if (o.verbose)
    df_log_debug_enable ("mount");
  m.uid = getuid ();
  m.gid = getgid ();
  m.started_ns = df_now_real_ns ();
  r = 1;
  if (clean_dead_mount (o.mountpoint) == -1 ||
      (m.catalog = catalog_new (o.farm, o.server)) == NULL ||
      (m.nodes = nodes_new ()) == NULL ||
      (m.se = new_session (&o, &m)) == NULL)
    goto out;
  if (fuse_set_signal_handlers (m.se) == -1) {
    df_error (EINVAL, "cannot set signal handlers");
    goto out;
  }
  if (serve (&o, &m) == 0)
    r = 0;
  fuse_remove_signal_handlers (m.se);
 out:
  if (r != 0)
    df_log_error ("mount: %s", df_error_get ());
  if (m.se)
    fuse_session_destroy (m.se);
  /* Open editors are flushed before their locks go. */
  nodes_free (m.nodes);
  catalog_free (m.catalog);
  return r;
}
