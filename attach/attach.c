/* diskfarm-attach — attaches a diskfarm export as a kernel NBD device,
 * in the initramfs (from the kernel command line) or by hand.
 *
 * Linked statically: it runs in a busybox initramfs with no libraries.
 */
#include <config.h>

#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <fcntl.h>

#include "cleanup.h"
#include "error.h"
#include "log.h"
#include "monitor.h"
#include "nbd-nl.h"
#include "options.h"
#include "session.h"
#include "util.h"

static const char usage_text[] =
  "Usage: diskfarm-attach [--servers LIST --export NAME] [OPTIONS]\n"
  "  or:  diskfarm-attach --disconnect DEVICE\n"
  "Attach a diskfarm export as a kernel NBD device: negotiate it with the\n"
  "first server of the list that answers, hand the connection to the\n"
  "kernel (netlink), then stay in the background and move the device to\n"
  "the next server if the connection dies.  Without --servers and\n"
  "--export, the diskfarm.* kernel parameters say what to attach.\n"
  "\n"
  "Options:\n"
  "  -s, --servers LIST      up to 4 servers ADDRESS[:PORT], comma-separated,\n"
  "                          tried in order (IPv6: [ADDRESS]:PORT; the port\n"
  "                          is 10809 by default)\n"
  "  -e, --export NAME       the export, e.g. dev/DEVICE@SESSION\n"
  "  -n, --nbd DEVICE        the NBD device (default /dev/nbd0)\n"
  "  -c, --connections N     connections to the server (default 1)\n"
  "      --block-size N      logical block size, 512 to 4096 (default: the\n"
  "                          server's minimum, at least 512)\n"
  "  -t, --timeout S         keep trying the list for S seconds (default 60;\n"
  "                          0: try each server once)\n"
  "      --connect-timeout S\n"
  "                          give up on a server after S seconds (default 5)\n"
  "      --io-timeout S      a request unanswered for S seconds marks its\n"
  "                          connection dead (default 30; 0: never)\n"
  "      --dead-timeout S    hold I/O up to S seconds while no connection\n"
  "                          lives (default 120)\n"
  "      --cmdline FILE      read kernel parameters from FILE (default\n"
  "                          /proc/cmdline)\n"
  "      --check             negotiate the export with every server and\n"
  "                          print what each offers; attach nothing\n"
  "      --disconnect DEVICE\n"
  "                          disconnect an NBD device\n"
  "  -f, --foreground        watch the connection in the foreground\n"
  "      --no-watch          exit once the device is attached\n"
  "  -v, --verbose           say more\n"
  "      --help              show this help\n"
  "      --version           show the version\n"
  "\n"
  "Kernel parameters: diskfarm.servers, diskfarm.export, diskfarm.nbd,\n"
  "diskfarm.connections, diskfarm.block_size, diskfarm.timeout,\n"
  "diskfarm.connect_timeout, diskfarm.io_timeout, diskfarm.dead_timeout:\n"
  "the options of the same names.  Options given win over them.\n";

enum {
  OPT_BLOCK_SIZE = 256, OPT_CONNECT_TIMEOUT, OPT_IO_TIMEOUT, OPT_DEAD_TIMEOUT,
  OPT_CMDLINE, OPT_CHECK, OPT_DISCONNECT, OPT_NO_WATCH, OPT_HELP, OPT_VERSION,
};

static const struct option long_opts[] = {
  { "servers", required_argument, NULL, 's' },
  { "export", required_argument, NULL, 'e' },
  { "nbd", required_argument, NULL, 'n' },
  { "connections", required_argument, NULL, 'c' },
  { "block-size", required_argument, NULL, OPT_BLOCK_SIZE },
  { "timeout", required_argument, NULL, 't' },
  { "connect-timeout", required_argument, NULL, OPT_CONNECT_TIMEOUT },
  { "io-timeout", required_argument, NULL, OPT_IO_TIMEOUT },
  { "dead-timeout", required_argument, NULL, OPT_DEAD_TIMEOUT },
  { "cmdline", required_argument, NULL, OPT_CMDLINE },
  { "check", no_argument, NULL, OPT_CHECK },
  { "disconnect", required_argument, NULL, OPT_DISCONNECT },
  { "foreground", no_argument, NULL, 'f' },
  { "no-watch", no_argument, NULL, OPT_NO_WATCH },
  { "verbose", no_argument, NULL, 'v' },
  { "help", no_argument, NULL, OPT_HELP },
  { "version", no_argument, NULL, OPT_VERSION },
  { NULL, 0, NULL, 0 }
};

struct attach_cli {
  struct attach_options opts;
  const char *cmdline;           /* NULL: /proc/cmdline when needed */
  const char *disconnect;
  bool check, foreground, no_watch;
  int verbose;
};

static int
fail (void)
{
  df_log_error ("%s", df_error_get ());
  return 1;
}

static void
warn_unknown_param (const char *key)
{
  df_log_warning ("unknown kernel parameter %s ignored", key);
}

/* The option's kernel parameter name, for attach_options_set. */
static const char *
param_of (int c)
{
  switch (c) {
  case 's': return "servers";
  case 'e': return "export";
  case 'n': return "nbd";
  case 'c': return "connections";
  case 't': return "timeout";
  case OPT_BLOCK_SIZE: return "block_size";
  case OPT_CONNECT_TIMEOUT: return "connect_timeout";
  case OPT_IO_TIMEOUT: return "io_timeout";
  case OPT_DEAD_TIMEOUT: return "dead_timeout";
  default: return NULL;
  }
}

static int
parse_args (struct attach_cli *cli, int argc, char **argv)
{
  int c;

  while ((c = getopt_long (argc, argv, "s:e:n:c:t:fv", long_opts, NULL))
         != -1) {
    const char *param = param_of (c);

    if (param) {
      if (attach_options_set (&cli->opts, param, optarg) == -1) {
        char name[32], *p;
        snprintf (name, sizeof name, "%s", param);
        for (p = name; *p; p++)
          if (*p == '_')
            *p = '-';
        df_error_prefix ("--%s", name);
        exit (fail ());
      }
      continue;
    }
    switch (c) {
    case OPT_CMDLINE: cli->cmdline = optarg; break;
    case OPT_CHECK: cli->check = true; break;
    case OPT_DISCONNECT: cli->disconnect = optarg; break;
    case 'f': cli->foreground = true; break;
    case OPT_NO_WATCH: cli->no_watch = true; break;
    case 'v': cli->verbose++; break;
    case OPT_HELP:
      fputs (usage_text, stdout);
      exit (0);
    case OPT_VERSION:
      printf ("diskfarm-attach %s\n", PACKAGE_VERSION);
      exit (0);
    default:
      fputs (usage_text, stderr);
      exit (1);
    }
  }
  if (optind < argc) {
    df_log_error ("unexpected argument \"%s\"", argv[optind]);
    fputs (usage_text, stderr);
    exit (1);
  }
  return 0;
}

/* Kernel parameters fill in what the options left out.  /proc files
 * have no size and --cmdline may be a pipe: read until the end.
 */
static int
read_cmdline (struct attach_cli *cli)
{
  const char *path = cli->cmdline ? cli->cmdline : "/proc/cmdline";
  CLEANUP_CLOSE int fd = open (path, O_RDONLY | O_CLOEXEC);
  char text[65536];
  ssize_t got;
  unsigned found;

  if (fd == -1)
    return df_error_errno ("%s", path);
  got = df_read_full (fd, text, sizeof text);
  if (got == -1)
    return df_error_errno ("reading %s", path);
  if ((size_t) got == sizeof text)
    return df_error (EFBIG, "%s: longer than %zu bytes", path, sizeof text - 1);
  text[got] = '\0';
  if (attach_options_parse_cmdline (&cli->opts, text, warn_unknown_param,
                                    &found) == -1)
    return -1;
  if (cli->verbose)
    df_log_info ("%u diskfarm.* parameter%s in %s", found,
                 found == 1 ? "" : "s", path);
  return 0;
}

/* --check: every server, what it offers.  Succeeds if all answer. */
static int
check_servers (const struct attach_options *o)
{
  int fds[ATTACH_MAX_CONNECTIONS];
  size_t k;
  int status = 0;

  for (k = 0; k < o->nservers; k++) {
    struct attach_session s = { .opts = o };
    char what[200];

    if (session_open (&s, k, fds) == -1) {
      printf ("%s: %s\n", o->servers[k].name, df_error_get ());
      status = 1;
      continue;
    }
    session_close_fds (fds, s.connections);
    printf ("%s: %s: %s\n", o->servers[k].name, o->export,
            session_describe (&s, what, sizeof what));
  }
  return status;
}

static void
sleep_s (unsigned s)
{
  struct timespec ts = { .tv_sec = s };

  while (nanosleep (&ts, &ts) == -1 && errno == EINTR)
    ;
}

/* Goes through the list until a server negotiates the export, for up
 * to opts.timeout seconds.
 */
static int
find_server (struct attach_session *s, int *fds)
{
  const struct attach_options *o = s->opts;
  uint64_t start = df_now_mono_ns ();
  uint64_t deadline = start + (uint64_t) o->timeout * 1000000000;
  struct session_log log = { 0 };
  unsigned delay = 1;

  for (;;) {
    uint64_t now, left;

    if (session_open_any (s, 0, fds, session_log_changed, &log) == 0)
      return 0;
    now = df_now_mono_ns ();
    if (now >= deadline)
      break;
    left = (deadline - now + 999999999) / 1000000000;
    if (delay == 1)
      df_log_info ("no server serves \"%s\" yet; trying again for up to "
                   "%" PRIu64 " s", o->export, left);
    sleep_s (delay < left ? delay : left);
    if (delay < 5)
      delay++;
  }
  return df_error (EHOSTUNREACH, "no server could serve \"%s\" (%zu "
                   "server%s tried for %" PRIu64 " s)", o->export,
                   o->nservers, o->nservers == 1 ? "" : "s",
                   (df_now_mono_ns () - start) / 1000000000);
}

/* Daemon mode: the parent returns to the boot script once the watcher
 * is in place (it writes a byte to *ready when it is).
 */
static int
daemonize (int *ready)
{
  int p[2], fd;
  pid_t pid;
  ssize_t n;
  char c;

  if (pipe2 (p, O_CLOEXEC) == -1)
    return df_error_errno ("pipe");
  pid = fork ();
  if (pid == -1)
    return df_error_errno ("fork");
  if (pid > 0) {
    close (p[1]);
    do
      n = read (p[0], &c, 1);
    while (n == -1 && errno == EINTR);
    _exit (n == 1 ? 0 : 1);           /* the watcher died at birth */
  }
  close (p[0]);
  *ready = p[1];
  setsid ();
  if (chdir ("/") == -1)
    return df_error_errno ("chdir /");
  fd = open ("/dev/null", O_RDWR | O_CLOEXEC);
  if (fd >= 0) {
    dup2 (fd, 0);
    dup2 (fd, 1);
    close (fd);
  }
  /* Messages go to the kernel log, which outlives the initramfs. */
  fd = open ("/dev/kmsg", O_WRONLY | O_CLOEXEC);
  if (fd >= 0) {
    dup2 (fd, 2);
    close (fd);
  }
  return 0;
}

/* The kernel reads the partition table at the next open of the device;
 * udev opens it for its probe, but a plain busybox initramfs has no
 * udev: open it once so that the partitions appear either way.
 */
static void
scan_partitions (uint32_t index)
{
  char path[32];
  int fd;

  snprintf (path, sizeof path, "/dev/nbd%u", index);
  fd = open (path, O_RDONLY | O_CLOEXEC);
  if (fd == -1)
    df_debug ("attach", "%s: %m", path);
  else
    close (fd);
}

static int
disconnect (const char *device)
{
  uint32_t index;
  struct nbd_nl *nl;
  int r;

  if (attach_nbd_parse (device, &index) == -1)
    return fail ();
  nl = nbd_nl_open (false);
  if (nl == NULL)
    return fail ();
  r = nbd_nl_disconnect (nl, index);
  nbd_nl_close (nl);
  return r == -1 ? fail () : 0;
}

static int
attach (struct attach_cli *cli, char **argv)
{
  const struct attach_options *o = &cli->opts;
  struct attach_session s = { .opts = o };
  int fds[ATTACH_MAX_CONNECTIONS];
  char backend[NBD_MAX_NAME + 16], what[200];
  bool watch = !cli->no_watch, connected;
  struct nbd_nl_config cfg;
  struct nbd_nl *nl;
  int r, ready = -1;

  /* The driver first: without it, talking to servers is pointless.
   * Watching starts before connecting, not to miss an early event.
   */
  nl = nbd_nl_open (watch);
  if (nl == NULL)
    return fail ();
  if (nbd_nl_status (nl, o->index, &connected) == -1)
    goto err;
  if (connected) {
    df_error (EBUSY, "/dev/nbd%u is already connected", o->index);
    goto err;
  }
  if (find_server (&s, fds) == -1)
    goto err;

  snprintf (backend, sizeof backend, "diskfarm:%s", o->export);
  cfg = (struct nbd_nl_config) {
    .index = o->index, .size = s.info.size, .block_size = s.block_size,
    .server_flags = s.info.flags, .io_timeout = o->io_timeout,
    .dead_timeout = o->dead_timeout, .backend = backend,
  };
  r = nbd_nl_connect (nl, &cfg, fds, s.connections);
  session_close_fds (fds, s.connections);
  if (r == -1)
    goto err;
  scan_partitions (o->index);
  df_log_info ("/dev/nbd%u: \"%s\" from %s: %s", o->index, o->export,
               o->servers[s.server].name,
               session_describe (&s, what, sizeof what));
  if (!watch) {
    nbd_nl_close (nl);
    return 0;
  }

  if (!cli->foreground && daemonize (&ready) == -1)
    goto err;
  monitor_harden (argv);
  if (ready >= 0) {
    if (write (ready, "", 1) != 1)
      df_log_warning ("telling the parent we are ready: %m");
    close (ready);
  }
  r = monitor_run (nl, &s, backend);
  nbd_nl_close (nl);
  return r == -1 ? fail () : 0;
 err:
  nbd_nl_close (nl);
  return fail ();
}

int
main (int argc, char **argv)
{
  struct attach_cli cli = { 0 };
  const unsigned need = (1u << ATTACH_SERVERS) | (1u << ATTACH_EXPORT);

  df_log_init ("diskfarm-attach");
  attach_options_init (&cli.opts);
  parse_args (&cli, argc, argv);
  if (cli.verbose)
    df_log_debug_enable ("all");
  if (cli.disconnect)
    return disconnect (cli.disconnect);
  if ((cli.opts.given & need) != need || cli.cmdline) {
    if (read_cmdline (&cli) == -1)
      return fail ();
  }
  if (attach_options_check (&cli.opts) == -1)
    return fail ();
  if (cli.check)
    return check_servers (&cli.opts);
  return attach (&cli, argv);
}
