/* diskfarm-gateway attach — the command line (run.c does the work). */
#include <config.h>

#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "attach.h"
#include "error.h"
#include "gateway.h"
#include "log.h"
#include "util.h"

static const char usage_text[] =
  "Usage: diskfarm-gateway attach dev/DEVICE[@SESSION] (--servers LIST |\n"
  "         --farm DIR) [--file PATH] [--nbd-socket PATH] [OPTIONS]\n"
  "Present a farm disk on this host (a hypervisor, a client): as a file\n"
  "(FUSE) and/or a local NBD server on a unix socket, served by the farm's\n"
  "servers over NBD.  If the server in use dies or stops answering, the\n"
  "disk moves to the next server holding an identical replica of its\n"
  "version, and the requests in flight are sent again there: clients see\n"
  "a pause, not an error.  This is safe when the device's write cache is\n"
  "\"device\" (writes stay here, in --overlay) or is \"disk\"/\"persistent\"\n"
  "on storage all servers share; otherwise the disk waits for its own\n"
  "server to come back, and says so at start.  Without @SESSION a new\n"
  "session is made.  img/VDISK[@VERSION] attaches a version read-only.\n"
  "\n"
  "Servers:\n"
  "  -s, --servers LIST      HOST[:PORT],... (IPv6: [ADDRESS]:PORT; port\n"
  "                          10809 by default; unix:PATH for a socket)\n"
  "  -f, --farm DIR          the farm's servers from DIR/farm.conf, least\n"
  "                          loaded first (their gateways say; --servers\n"
  "                          are tried in the order given)\n"
  "  -c, --connections N     connections to the server, when the export\n"
  "                          allows several (default 4)\n"
  "      --connect-timeout S give up connecting to a server after S\n"
  "                          seconds (default 5)\n"
  "      --io-timeout S      a request unanswered for S seconds means the\n"
  "                          server is lost (default 30; 0: never)\n"
  "      --dead-timeout S    requests wait S seconds for a server before\n"
  "                          failing (default 0: for ever)\n"
  "      --replay-limit SIZE unflushed writes kept to send again after a\n"
  "                          failover (default 64M; then a flush is sent)\n"
  "      --shared-cache      the servers keep write caches on storage they\n"
  "                          all share (so failover is safe for disk and\n"
  "                          persistent caches)\n"
  "\n"
  "Front ends:\n"
  "      --file PATH         the disk as a file (FUSE), made if missing:\n"
  "                          qemu -drive file=PATH,format=raw\n"
  "      --nbd-socket PATH   a local NBD server on a unix socket: qemu\n"
  "                          nbd+unix:///?socket=PATH, nbd-client, nbdcopy\n"
  "      --read-only         present the disk read-only\n"
  "\n"
  "Local storage:\n"
  "      --overlay FILE      where a device with write cache \"device\" keeps\n"
  "                          its writes (a layer file; durable on flush,\n"
  "                          resumed after a restart on the same version)\n"
  "      --read-cache DIR    a read cache of versions in DIR, shared by the\n"
  "                          attaches of this host, kept across restarts\n"
  "      --read-cache-size SIZE\n"
  "                          its size (default 4G; least recently used\n"
  "                          blocks go)\n"
  "\n"
  "  -P, --pid-file FILE     write the process id to FILE once attached\n"
  "  -v, --verbose           say more\n"
  "      --help              show this help\n"
  "      --version           show the version\n"
  "\n"
  "Runs until SIGTERM or SIGINT, then flushes and detaches.\n";

enum {
  OPT_CONNECT_TIMEOUT = 256, OPT_IO_TIMEOUT,
  OPT_DEAD_TIMEOUT, OPT_REPLAY_LIMIT, OPT_SHARED_CACHE, OPT_FILE,
  OPT_NBD_SOCKET, OPT_READ_ONLY, OPT_OVERLAY, OPT_READ_CACHE,
  OPT_READ_CACHE_SIZE, OPT_HELP, OPT_VERSION,
};

static const struct option long_opts[] = {
  { "servers", required_argument, NULL, 's' },
  { "farm", required_argument, NULL, 'f' },
  { "connections", required_argument, NULL, 'c' },
  { "connect-timeout", required_argument, NULL, OPT_CONNECT_TIMEOUT },
  { "io-timeout", required_argument, NULL, OPT_IO_TIMEOUT },
  { "dead-timeout", required_argument, NULL, OPT_DEAD_TIMEOUT },
  { "replay-limit", required_argument, NULL, OPT_REPLAY_LIMIT },
  { "shared-cache", no_argument, NULL, OPT_SHARED_CACHE },
  { "file", required_argument, NULL, OPT_FILE },
  { "nbd-socket", required_argument, NULL, OPT_NBD_SOCKET },
  { "read-only", no_argument, NULL, OPT_READ_ONLY },
  { "overlay", required_argument, NULL, OPT_OVERLAY },
  { "read-cache", required_argument, NULL, OPT_READ_CACHE },
  { "read-cache-size", required_argument, NULL, OPT_READ_CACHE_SIZE },
  { "pid-file", required_argument, NULL, 'P' },
  { "verbose", no_argument, NULL, 'v' },
  { "help", no_argument, NULL, OPT_HELP },
  { "version", no_argument, NULL, OPT_VERSION },
  { NULL, 0, NULL, 0 }
};

static int
bad (const char *opt, const char *value, const char *what)
{
  df_log_error ("--%s \"%s\": %s", opt, value, what);
  return -1;
}

static int
seconds (const char *opt, const char *v, unsigned *out)
{
  uint64_t n;

  if (df_parse_u64 (v, &n) == -1 || n > 86400)
    return bad (opt, v, "not 0 to 86400 seconds");
  *out = n;
  return 0;
}

static int
set_option (struct attach_opts *o, int c, const char *v)
{
  uint64_t n;

  switch (c) {
  case 's': o->servers = v; return 0;
  case 'f': o->farm = v; return 0;
  case 'P': o->pid_file = v; return 0;
  case 'v': o->verbose = true; return 0;
  case 'c':
    if (df_parse_u64 (v, &n) == -1 || n == 0 || n > DF_UPSTREAM_MAX_CONNECTIONS)
      return bad ("connections", v, "not 1 to 16");
    o->connections = n;
    return 0;
  case OPT_CONNECT_TIMEOUT:
    if (seconds ("connect-timeout", v, &o->connect_timeout) == -1)
      return -1;
    return o->connect_timeout ? 0 : bad ("connect-timeout", v, "not 1 or more");
  case OPT_IO_TIMEOUT: return seconds ("io-timeout", v, &o->io_timeout);
  case OPT_DEAD_TIMEOUT: return seconds ("dead-timeout", v, &o->dead_timeout);
  case OPT_REPLAY_LIMIT:
    if (df_parse_size (v, &o->replay_limit) == -1)
      return bad ("replay-limit", v, df_error_get ());
    return 0;
  case OPT_READ_CACHE_SIZE:
    if (df_parse_size (v, &o->read_cache_size) == -1 ||
        o->read_cache_size < 16 * 1024 * 1024)
      return bad ("read-cache-size", v, "not a size of 16M or more");
    return 0;
  case OPT_SHARED_CACHE: o->shared_cache = true; return 0;
  case OPT_FILE: o->file = v; return 0;
  case OPT_NBD_SOCKET: o->nbd_socket = v; return 0;
  case OPT_READ_ONLY: o->read_only = true; return 0;
  case OPT_OVERLAY: o->overlay = v; return 0;
  case OPT_READ_CACHE: o->read_cache = v; return 0;
  }
  return -2;
}

static int
check_options (const struct attach_opts *o)
{
  if (!o->servers == !o->farm)
    df_log_error ("give either --servers or --farm");
  else if (!o->file && !o->nbd_socket)
    df_log_error ("give --file and/or --nbd-socket: how to present the disk");
  else if (attach_export_check (o->export) == -1)
    df_log_error ("%s", df_error_get ());
  else
    return 0;
  return -1;
}

int
gw_attach_main (int argc, char **argv)
{
  struct attach_opts o = {
    .connections = 4, .connect_timeout = 5, .io_timeout = 30,
    .replay_limit = 64 << 20, .read_cache_size = UINT64_C (4) << 30,
  };
  int c;

  df_log_init ("diskfarm-gateway attach");
  while ((c = getopt_long (argc, argv, "s:f:c:P:v", long_opts, NULL)) != -1) {
    int r;
    if (c == OPT_HELP) {
      fputs (usage_text, stdout);
      return 0;
    }
    if (c == OPT_VERSION) {
      printf ("diskfarm-gateway %s\n", PACKAGE_VERSION);
      return 0;
    }
    r = set_option (&o, c, optarg);
    if (r == -1)
      return 1;
    if (r == -2) {
      fputs (usage_text, stderr);
      return 1;
    }
  }
  if (optind + 1 != argc) {
    df_log_error (optind == argc ? "name the export: dev/DEVICE[@SESSION]"
                  : "one export only, not \"%s\"", argv[argc - 1]);
    return 1;
  }
  o.export = argv[optind];
  if (check_options (&o) == -1)
    return 1;
  if (o.verbose)
    df_log_debug_enable ("all");
  return attach_run (&o) == -1 ? 1 : 0;
}
