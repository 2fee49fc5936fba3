/* diskfarm — the operator's command line: main and shared helpers. */
#include <config.h>

#include <errno.h>
#include <getopt.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cleanup.h"
#include "cli.h"
#include "error.h"
#include "util.h"

static const char usage_text[] =
  "Usage: diskfarm [--farm DIR] [--json] COMMAND [ARGS...]\n"
  "Manage a diskfarm: servers, stores, vDisks and their versions, devices.\n"
  "\n"
  "Commands:\n"
  "  init                      create a farm directory\n"
  "  site add|set|list|info|remove\n"
  "  server add|set|list|info|remove\n"
  "  store add|set|list|info|remove\n"
  "  collection add|set|list|info|remove\n"
  "  device add|set|list|info|remove\n"
  "  vdisk import|list|info|export|verify|set|remove|boot\n"
  "  version new|promote|rollback|merge|delete\n"
  "  status                    every server: up, load, identical replicas\n"
  "  session list              live device sessions of every server\n"
  "\n"
  "Options (for every command):\n"
  "      --farm DIR    the farm directory (default: $DISKFARM_FARM, then\n"
  "                    " DISKFARM_DEFAULT_FARM ")\n"
  "      --server NAME the server this runs on, for its store paths\n"
  "                    (default: $DISKFARM_SERVER, then this host's name)\n"
  "      --json        machine-readable output of listings and info\n"
  "  -v, --verbose     say more\n"
  "      --help        show help (also after a command)\n"
  "      --version     show the version\n"
  "\n"
  "\"diskfarm COMMAND --help\" describes a command.\n";

static const struct option global_opts[] = {
  { "farm", required_argument, NULL, OPT_FARM },
  { "json", no_argument, NULL, OPT_JSON },
  { "server", required_argument, NULL, OPT_SERVER },
  { "help", no_argument, NULL, OPT_HELP },
  { "verbose", no_argument, NULL, 'v' },
};
#define N_GLOBAL (sizeof global_opts / sizeof global_opts[0])

void
cli_error (const char *fmt, ...)
{
  va_list ap;

  fputs ("diskfarm: ", stderr);
  va_start (ap, fmt);
  vfprintf (stderr, fmt, ap);
  va_end (ap);
  fputc ('\n', stderr);
}

int
cli_fail (const char *fmt, ...)
{
  va_list ap;

  fputs ("diskfarm: ", stderr);
  if (fmt) {
    va_start (ap, fmt);
    vfprintf (stderr, fmt, ap);
    va_end (ap);
    fputs (": ", stderr);
  }
  fprintf (stderr, "%s\n", df_error_get ());
  return 1;
}

int
cli_usage_error (const char *usage, const char *fmt, ...)
{
  va_list ap;

  fputs ("diskfarm: ", stderr);
  va_start (ap, fmt);
  vfprintf (stderr, fmt, ap);
  va_end (ap);
  fprintf (stderr, "\n%s", usage);
  return 1;
}

int
cli_getopt (struct cli *cli, int argc, char **argv, const char *shortopts,
            const struct option *longopts, const char *usage)
{
  struct option all[64];
  size_t n = 0, i;
  CLEANUP_FREE char *shorts = NULL;
  int c;

  for (i = 0; longopts && longopts[i].name; i++)
    all[n++] = longopts[i];
  for (i = 0; i < N_GLOBAL; i++)
    all[n++] = global_opts[i];
  memset (&all[n], 0, sizeof all[n]);
  /* A leading '+' (dispatch levels) stops at the first non-option. */
  if (asprintf (&shorts, "%sv", shortopts ? shortopts : "") == -1)
    exit (1);

  for (;;) {
    c = getopt_long (argc, argv, shorts, all, NULL);
    switch (c) {
    case OPT_FARM: cli->farm_dir = optarg; break;
    case OPT_JSON: cli->json = true; break;
    case OPT_SERVER: cli->server = optarg; break;
    case 'v': cli->verbose++; break;
    case OPT_HELP:
      fputs (usage, stdout);
      exit (0);
    case '?':
      fprintf (stderr, "%s", usage);
      exit (1);
    default:
      return c;
    }
  }
}

struct df_farm *
cli_open_farm (struct cli *cli)
{
  struct df_farm *farm = df_farm_open (cli->farm_dir);

  if (farm == NULL)
    cli_fail (NULL);
  return farm;
}

int
cli_print_json (json_t *v)
{
  json_dumpf (v, stdout, JSON_INDENT (2) | JSON_PRESERVE_ORDER);
  fputc ('\n', stdout);
  json_decref (v);
  return 0;
}

void
cli_progress_init (struct cli_progress *p, struct cli *cli, const char *label)
{
  p->label = label;
  p->start_ns = df_now_mono_ns ();
  p->last_percent = -1;
  p->enabled = !cli->json && isatty (2);
}

void
cli_progress_cb (void *opaque, uint64_t done, uint64_t total)
{
  struct cli_progress *p = opaque;
  int percent = total ? (int) (done * 100 / total) : 100;
  char a[32], b[32], rate[32];
  double secs;
  int bar = percent * 30 / 100;

  if (!p->enabled || percent == p->last_percent)
    return;
  p->last_percent = percent;
  secs = (df_now_mono_ns () - p->start_ns) / 1e9;
  df_format_size (secs > 0 ? (uint64_t) (done / secs) : 0, rate, sizeof rate);
  fprintf (stderr, "\r%s %3d%% [%.*s%*s] %s / %s  %s/s ", p->label, percent,
           bar, "==============================", 30 - bar, "",
           df_format_size (done, a, sizeof a), df_format_size (total, b, sizeof b),
           rate);
}

void
cli_progress_done (struct cli_progress *p)
{
  if (p->enabled && p->last_percent >= 0)
    fputc ('\n', stderr);
}

static const struct {
  const char *name;
  enum df_kind kind;
} object_commands[] = {
  { "site", DF_KIND_SITE },
  { "server", DF_KIND_SERVER },
  { "store", DF_KIND_STORE },
  { "collection", DF_KIND_COLLECTION },
  { "device", DF_KIND_DEVICE },
};

int
main (int argc, char **argv)
{
  struct cli cli = { 0 };
  const char *cmd;
  size_t i;
  static const struct option opts[] = {
    { "version", no_argument, NULL, 'V' },
    { NULL }
  };

  cli.farm_dir = getenv ("DISKFARM_FARM");
  if (cli.farm_dir == NULL || cli.farm_dir[0] == '\0')
    cli.farm_dir = DISKFARM_DEFAULT_FARM;
  if (cli_getopt (&cli, argc, argv, "+", opts, usage_text) == 'V') {
    printf ("diskfarm %s\n", PACKAGE_VERSION);
    return 0;
  }
  if (optind >= argc) {
    fputs (usage_text, stderr);
    return 1;
  }
  cmd = argv[optind];
  argc -= optind;
  argv += optind;
  optind = 0;                   /* argv changed: make getopt start over */

  if (strcmp (cmd, "init") == 0)
    return cli_init (&cli, argc, argv);
  if (strcmp (cmd, "vdisk") == 0)
    return cli_vdisk (&cli, argc, argv);
  if (strcmp (cmd, "version") == 0)
    return cli_version (&cli, argc, argv);
  if (strcmp (cmd, "status") == 0)
    return cli_status (&cli, argc, argv);
  if (strcmp (cmd, "session") == 0)
    return cli_session (&cli, argc, argv);
  for (i = 0; i < sizeof object_commands / sizeof object_commands[0]; i++)
    if (strcmp (cmd, object_commands[i].name) == 0)
      return cli_objects (&cli, object_commands[i].kind, argc, argv);
  if (strcmp (cmd, "help") == 0) {
    fputs (usage_text, stdout);
    return 0;
  }
  cli_error ("unknown command \"%s\" (see diskfarm --help)", cmd);
  return 1;
}

int
cli_subcommand (struct cli *cli, int *argc, char ***argv,
                const char *const *names, const char *usage)
{
  const char *word;
  size_t i;

  if (cli_getopt (cli, *argc, *argv, "+", NULL, usage) != -1 || optind >= *argc) {
    fputs (usage, stderr);
    return -1;
  }
  word = (*argv)[optind];
  *argc -= optind;
  *argv += optind;
  optind = 0;
  for (i = 0; names[i]; i++)
    if (strcmp (word, names[i]) == 0)
      return i;
  cli_usage_error (usage, "unknown subcommand \"%s\"", word);
  return -1;
}
