/* diskfarm-gateway serve — the command line. */
#include <config.h>

#include <getopt.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "gw.h"
#include "log.h"
#include "util.h"

static const char usage_text[] =
  "Usage: diskfarm-gateway [serve] [OPTIONS]\n"
  "       diskfarm-gateway mount|attach ... (see their --help)\n"
  "The per-server daemon of a diskfarm: an HTTP API with this server's\n"
  "status and load, its live device sessions, its vDisks and replicas,\n"
  "Prometheus metrics, and its stores' files and librsync deltas for\n"
  "replication.  Follows the farm's changes without a restart.\n"
  "\n"
  "  -f, --farm DIR          the farm directory (default: $DISKFARM_FARM,\n"
  "                          then " DISKFARM_DEFAULT_FARM ")\n"
  "  -s, --server NAME       this server's name in the farm (default:\n"
  "                          $DISKFARM_SERVER, then this host's name)\n"
  "  -l, --listen ADDR[:PORT]  listen there (repeat for several; default:\n"
  "                          every address, port [gateway] port or 10811)\n"
  "      --tls-cert FILE     serve HTTPS with this PEM certificate...\n"
  "      --tls-key FILE      ...and its key\n"
  "      --stats-dir DIR     where nbdkit publishes its sessions (default\n"
  "                          " DF_STATS_DIR ")\n"
  "      --cache-dir DIR     where deltas are kept (default:\n"
  "                          $CACHE_DIRECTORY, then /var/tmp)\n"
  "      --delta-cache SIZE  bytes of recent deltas kept (default 1G)\n"
  "      --delta-jobs N      deltas computed at once (default 1)\n"
  "      --threads N         HTTP threads (default 4)\n"
  "      --upload-rate RATE  cap on the bytes/s of file and delta bodies,\n"
  "                          all clients together (e.g. 40M; default: none)\n"
  "      --relay-wait SECS   staged files: wait this long for bytes still\n"
  "                          on their way (default 10)\n"
  "      --max-connections N connections at once (default 1024)\n"
  "      --max-per-ip N      connections from one address (default 256)\n"
  "      --request-timeout SECS  a request must arrive whole within this\n"
  "                          (default 30)\n"
  "  -v, --verbose           debug messages of every subsystem\n"
  "  -D, --debug SUBSYSTEM   debug messages of http, farm, delta, hash\n"
  "      --help              show this help\n"
  "  -V, --version           show the version\n";

enum {
  OPT_HELP = 0x100, OPT_TLS_CERT, OPT_TLS_KEY, OPT_STATS_DIR, OPT_CACHE_DIR,
  OPT_DELTA_CACHE, OPT_DELTA_JOBS, OPT_THREADS, OPT_MAX_CONN, OPT_MAX_PER_IP,
  OPT_TIMEOUT, OPT_POLL_MS, OPT_UPLOAD_RATE, OPT_RELAY_WAIT,
};

static const struct option long_opts[] = {
  { "farm", required_argument, NULL, 'f' },
  { "server", required_argument, NULL, 's' },
  { "listen", required_argument, NULL, 'l' },
  { "tls-cert", required_argument, NULL, OPT_TLS_CERT },
  { "tls-key", required_argument, NULL, OPT_TLS_KEY },
  { "stats-dir", required_argument, NULL, OPT_STATS_DIR },
  { "cache-dir", required_argument, NULL, OPT_CACHE_DIR },
  { "delta-cache", required_argument, NULL, OPT_DELTA_CACHE },
  { "delta-jobs", required_argument, NULL, OPT_DELTA_JOBS },
  { "threads", required_argument, NULL, OPT_THREADS },
  { "max-connections", required_argument, NULL, OPT_MAX_CONN },
  { "max-per-ip", required_argument, NULL, OPT_MAX_PER_IP },
  { "request-timeout", required_argument, NULL, OPT_TIMEOUT },
  { "upload-rate", required_argument, NULL, OPT_UPLOAD_RATE },
  { "relay-wait", required_argument, NULL, OPT_RELAY_WAIT },
  /* Undocumented: how often the farm is checked (tests). */
  { "poll-ms", required_argument, NULL, OPT_POLL_MS },
  { "verbose", no_argument, NULL, 'v' },
  { "debug", required_argument, NULL, 'D' },
  { "help", no_argument, NULL, OPT_HELP },
  { "version", no_argument, NULL, 'V' },
  { NULL, 0, NULL, 0 },
};

static int __attribute__ ((format (printf, 1, 2)))
bad (const char *fmt, ...)
{
  va_list ap;

  fputs ("diskfarm-gateway: ", stderr);
  va_start (ap, fmt);
  vfprintf (stderr, fmt, ap);
  va_end (ap);
  fputs ("\n(see diskfarm-gateway --help)\n", stderr);
  return -1;
}

static int
number (const char *opt, const char *s, unsigned min, unsigned max,
        unsigned *out)
{
  uint64_t v;

  if (df_parse_u64 (s, &v) == -1 || v < min || v > max)
    return bad ("%s \"%s\" is not a number from %u to %u", opt, s, min, max);
  *out = v;
  return 0;
}

static void
set_defaults (struct gw_config *cfg)
{
  const char *env = getenv ("DISKFARM_FARM");
  const char *cache = getenv ("CACHE_DIRECTORY");

  memset (cfg, 0, sizeof *cfg);
  cfg->farm_dir = env && env[0] ? env : DISKFARM_DEFAULT_FARM;
  cfg->stats_dir = DF_STATS_DIR;
  /* systemd's CacheDirectory= may list several, separated by ':'. */
  cfg->cache_dir = cache && cache[0] && !strchr (cache, ':') ? cache : "/var/tmp";
  cfg->delta_cache = 1024ULL * 1024 * 1024;
  cfg->delta_jobs = 1;
  cfg->threads = 4;
  cfg->max_connections = 1024;
  cfg->max_per_ip = 256;
  cfg->timeout_s = 30;
  cfg->poll_ms = 2000;
  cfg->relay_wait_s = 10;
}

static int
one (struct gw_config *cfg, int c)
{
  switch (c) {
  case 'f': cfg->farm_dir = optarg; return 0;
  case 's': cfg->server = optarg; return 0;
  case 'l':
    if (cfg->nlisten == GW_MAX_LISTEN)
      return bad ("at most %d --listen", GW_MAX_LISTEN);
    cfg->listen[cfg->nlisten++] = optarg;
    return 0;
  case OPT_TLS_CERT: cfg->tls_cert = optarg; return 0;
  case OPT_TLS_KEY: cfg->tls_key = optarg; return 0;
  case OPT_STATS_DIR: cfg->stats_dir = optarg; return 0;
  case OPT_CACHE_DIR: cfg->cache_dir = optarg; return 0;
  case OPT_DELTA_CACHE:
    if (df_parse_size (optarg, &cfg->delta_cache) == -1)
      return bad ("--delta-cache \"%s\" is not a size", optarg);
    return 0;
  case OPT_DELTA_JOBS:
    return number ("--delta-jobs", optarg, 1, 64, &cfg->delta_jobs);
  case OPT_THREADS: return number ("--threads", optarg, 1, 256, &cfg->threads);
  case OPT_MAX_CONN:
    return number ("--max-connections", optarg, 1, 65536,
                   &cfg->max_connections);
  case OPT_MAX_PER_IP:
    return number ("--max-per-ip", optarg, 1, 65536, &cfg->max_per_ip);
  case OPT_TIMEOUT:
    return number ("--request-timeout", optarg, 1, 3600, &cfg->timeout_s);
  case OPT_UPLOAD_RATE:
    if (df_parse_size (optarg, &cfg->upload_rate) == -1 ||
        cfg->upload_rate == 0)
      return bad ("--upload-rate \"%s\" is not a rate (bytes a second, "
                  "e.g. 40M)", optarg);
    return 0;
  case OPT_RELAY_WAIT:
    return number ("--relay-wait", optarg, 1, 3600, &cfg->relay_wait_s);
  case OPT_POLL_MS:
    return number ("--poll-ms", optarg, 10, 3600000, &cfg->poll_ms);
  case 'v': df_log_debug_enable ("all"); return 0;
  case 'D': df_log_debug_enable (optarg); return 0;
  case OPT_HELP:
    fputs (usage_text, stdout);
    return 1;
  case 'V':
    printf ("diskfarm-gateway %s\n", PACKAGE_VERSION);
    return 1;
  default:
    fputs ("(see diskfarm-gateway --help)\n", stderr);
    return -1;
  }
}

int
gw_parse_options (struct gw_config *cfg, int argc, char **argv)
{
  int c, r;

  set_defaults (cfg);
  optind = 1;
  while ((c = getopt_long (argc, argv, "f:s:l:vD:V", long_opts, NULL)) != -1)
    if ((r = one (cfg, c)) != 0)
      return r;
  if (optind < argc)
    return bad ("unexpected argument \"%s\"", argv[optind]);
  if (!cfg->tls_cert != !cfg->tls_key)
    return bad ("--tls-cert and --tls-key go together");
  if (cfg->max_per_ip > cfg->max_connections)
    cfg->max_per_ip = cfg->max_connections;
  return 0;
}
