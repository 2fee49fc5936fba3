/* diskfarm-replicator — the command line. */
#include <config.h>

#include <getopt.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <curl/curl.h>

#include "error.h"
#include "log.h"
#include "sync.h"
#include "util.h"
#include "watch.h"

static const char usage_text[] =
  "Usage: diskfarm-replicator sync [OPTIONS]\n"
  "  or:  diskfarm-replicator watch [OPTIONS] [--interval SECONDS]\n"
  "Keep this server's stores, and the farm directory, identical to a source\n"
  "server's: same files, same content hashes, same mtimes.  Missing files\n"
  "come whole (resumable), changed ones as librsync deltas, over the source's\n"
  "diskfarm-gateway.\n"
  "\n"
  "Commands:\n"
  "  sync                  pull what differs now, then exit\n"
  "  watch                 sync, then look at the source's manifests every\n"
  "                        few seconds and sync again when they change\n"
  "\n"
  "Options:\n"
  "      --farm DIR        the farm directory (default: $DISKFARM_FARM, then\n"
  "                        " DISKFARM_DEFAULT_FARM ")\n"
  "      --server NAME     this server (default: $DISKFARM_SERVER, then this\n"
  "                        host's name)\n"
  "      --store STORE     only this store (not the farm directory)\n"
  "      --from SERVER     pull the stores from SERVER (default: [farm]\n"
  "                        config-server; the farm directory always comes\n"
  "                        from there)\n"
  "      --bwlimit RATE    receive at most RATE bytes a second in all (50M)\n"
  "      --jobs N          transfers at once (default 4)\n"
  "      --dry-run         say what would move; move nothing\n"
  "      --verify          hash every local file again (remembered hashes\n"
  "                        trust inode, size, mtime and ctime)\n"
  "      --json            a JSON report on standard output\n"
  "      --delta-min SIZE  smaller files always move whole (default 1M)\n"
  "      --fanout relay|rounds\n"
  "                        how big files spread over the servers: relayed\n"
  "                        from peer to peer as they arrive (default), or\n"
  "                        in rounds, each server waiting for a peer that\n"
  "                        holds it whole\n"
  "      --fanout-min SIZE\n"
  "                        smaller files never wait for a peer (default 64M)\n"
  "      --fanout-wait SECONDS\n"
  "                        how long a big file waits for a peer to get it\n"
  "                        first, while no new peer gets it, plus the time it\n"
  "                        takes at 100 MiB/s (default 60)\n"
  "      --allow-empty-source\n"
  "                        let a source that offers no files at all empty\n"
  "                        this server's store\n"
  "      --interval SECONDS  watch: look at the source this often (default 2)\n"
  "  -q, --quiet           errors only\n"
  "  -v, --verbose         say more\n"
  "      --help            show this help\n"
  "  -V, --version         show the version\n"
  "\n"
  "Exit status: 0 when every tree is identical to its source, 1 when some\n"
  "file could not be brought over (the next run resumes), 2 on bad usage.\n";

enum {
  OPT_HELP = 0x100, OPT_FARM, OPT_SERVER, OPT_STORE, OPT_FROM, OPT_BWLIMIT,
  OPT_JOBS, OPT_DRY_RUN, OPT_VERIFY, OPT_JSON, OPT_DELTA_MIN, OPT_FANOUT, OPT_FANOUT_MIN,
  OPT_FANOUT_WAIT,
  OPT_ALLOW_EMPTY, OPT_INTERVAL,
};

static const struct option long_opts[] = {
  { "farm", required_argument, NULL, OPT_FARM },
  { "server", required_argument, NULL, OPT_SERVER },
  { "store", required_argument, NULL, OPT_STORE },
  { "from", required_argument, NULL, OPT_FROM },
  { "bwlimit", required_argument, NULL, OPT_BWLIMIT },
  { "jobs", required_argument, NULL, OPT_JOBS },
  { "dry-run", no_argument, NULL, OPT_DRY_RUN },
  { "verify", no_argument, NULL, OPT_VERIFY },
  { "json", no_argument, NULL, OPT_JSON },
  { "delta-min", required_argument, NULL, OPT_DELTA_MIN },
  { "fanout", required_argument, NULL, OPT_FANOUT },
  { "fanout-min", required_argument, NULL, OPT_FANOUT_MIN },
  { "fanout-wait", required_argument, NULL, OPT_FANOUT_WAIT },
  { "allow-empty-source", no_argument, NULL, OPT_ALLOW_EMPTY },
  { "interval", required_argument, NULL, OPT_INTERVAL },
  { "quiet", no_argument, NULL, 'q' },
  { "verbose", no_argument, NULL, 'v' },
  { "help", no_argument, NULL, OPT_HELP },
  { "version", no_argument, NULL, 'V' },
  { NULL, 0, NULL, 0 },
};

static void __attribute__ ((noreturn, format (printf, 1, 2)))
die (const char *fmt, ...)
{
  va_list ap;

  fputs ("diskfarm-replicator: ", stderr);
  va_start (ap, fmt);
  vfprintf (stderr, fmt, ap);
  va_end (ap);
  fputs ("\n(see diskfarm-replicator --help)\n", stderr);
  exit (2);
}

static uint64_t
size_arg (const char *opt, const char *s, uint64_t min)
{
  uint64_t v;

  if (df_parse_size (s, &v) == -1 || v < min)
    die ("%s \"%s\" is not a size of at least %llu (like 50M)", opt, s,
         (unsigned long long) min);
  return v;
}

static unsigned
number (const char *opt, const char *s, unsigned min, unsigned max)
{
  uint64_t v;

  if (df_parse_u64 (s, &v) == -1 || v < min || v > max)
    die ("%s \"%s\" is not a number from %u to %u", opt, s, min, max);
  return v;
}

static void
set_defaults (struct repl_opts *o)
{
  const char *env = getenv ("DISKFARM_FARM");

  memset (o, 0, sizeof *o);
  o->farm_dir = env && env[0] ? env : DISKFARM_DEFAULT_FARM;
  o->jobs = 4;
  o->fanout_wait = 60;
  o->delta_min = 1024 * 1024;
  o->fanout_min = 64 * 1024 * 1024;
  o->progress = isatty (STDERR_FILENO);
}

static void
parse (struct repl_opts *o, unsigned *interval, int argc, char **argv)
{
  int c;

  while ((c = getopt_long (argc, argv, "qvV", long_opts, NULL)) != -1) {
    switch (c) {
    case OPT_FARM: o->farm_dir = optarg; break;
    case OPT_SERVER: o->server = optarg; break;
    case OPT_STORE:
      if (df_name_check ("store", optarg) == -1)
        die ("--store: %s", df_error_get ());
      o->store = optarg;
      break;
    case OPT_FROM: o->from = optarg; break;
    case OPT_BWLIMIT: o->bwlimit = size_arg ("--bwlimit", optarg, 1024); break;
    case OPT_JOBS: o->jobs = number ("--jobs", optarg, 1, 64); break;
    case OPT_DRY_RUN: o->dry_run = true; break;
    case OPT_VERIFY: o->verify = true; break;
    case OPT_JSON: o->json = true; break;
    case OPT_DELTA_MIN: o->delta_min = size_arg ("--delta-min", optarg, 0); break;
    case OPT_FANOUT:
      if (strcmp (optarg, "relay") != 0 && strcmp (optarg, "rounds") != 0)
        die ("--fanout is relay or rounds, not \"%s\"", optarg);
      o->fanout_rounds = strcmp (optarg, "rounds") == 0;
      break;
    case OPT_FANOUT_MIN:
      o->fanout_min = size_arg ("--fanout-min", optarg, 0);
      break;
    case OPT_FANOUT_WAIT:
      o->fanout_wait = number ("--fanout-wait", optarg, 0, 86400);
      break;
    case OPT_ALLOW_EMPTY: o->allow_empty = true; break;
    case OPT_INTERVAL: *interval = number ("--interval", optarg, 1, 3600); break;
    case 'q': o->quiet = true; break;
    case 'v':
      o->verbose = true;
      df_log_debug_enable ("delta");    /* where a delta's time goes */
      break;
    case OPT_HELP:
      fputs (usage_text, stdout);
      exit (0);
    case 'V':
      printf ("diskfarm-replicator %s\n", PACKAGE_VERSION);
      exit (0);
    default:
      fputs ("(see diskfarm-replicator --help)\n", stderr);
      exit (2);
    }
  }
}

int
main (int argc, char **argv)
{
  struct repl_opts o;
  unsigned interval = 2;
  const char *cmd;
  int r;

  set_defaults (&o);
  /* Options may come before or after the command (getopt permutes). */
  parse (&o, &interval, argc, argv);
  if (optind >= argc)
    die ("say sync or watch");
  cmd = argv[optind];
  if (strcmp (cmd, "sync") != 0 && strcmp (cmd, "watch") != 0)
    die ("unknown command \"%s\" (sync or watch)", cmd);
  if (optind + 1 < argc)
    die ("unexpected argument \"%s\"", argv[optind + 1]);
  if (o.json)
    o.progress = false;
  if (curl_global_init (CURL_GLOBAL_DEFAULT) != CURLE_OK)
    die ("libcurl does not start");
  if (strcmp (cmd, "sync") == 0)
    r = repl_sync (&o);
  else if (o.dry_run || o.json)
    die ("watch takes neither --dry-run nor --json");
  else
    r = repl_watch (&o, interval);
  curl_global_cleanup ();
  return r;
}
