/* diskfarm init — create a farm directory. */
#include <config.h>

#include <stdio.h>

#include "cli.h"
#include "error.h"

static const char usage[] =
  "Usage: diskfarm init [--name FARM] [--site SITE] [--server-name NAME]\n"
  "                     [--address ADDR] [--store NAME] [--store-path PATH]\n"
  "Create a farm in the --farm directory with one site, one server (this\n"
  "host) and one store.\n"
  "\n"
  "  --name FARM        farm name (default: diskfarm)\n"
  "  --site SITE        first site (default: default)\n"
  "  --server-name NAME this server (default: the host name)\n"
  "  --address ADDR     its address (default: 127.0.0.1)\n"
  "  --store NAME       first store (default: store)\n"
  "  --store-path PATH  its directory; relative paths are inside the farm\n"
  "                     (default: store)\n";

int
cli_init (struct cli *cli, int argc, char **argv)
{
  static const struct option opts[] = {
    { "name", required_argument, NULL, 'n' },
    { "site", required_argument, NULL, 's' },
    { "server-name", required_argument, NULL, 'S' },
    { "address", required_argument, NULL, 'a' },
    { "store", required_argument, NULL, 't' },
    { "store-path", required_argument, NULL, 'p' },
    { NULL }
  };
  struct df_farm_init in = { 0 };
  int c;

  while ((c = cli_getopt (cli, argc, argv, "", opts, usage)) != -1)
    switch (c) {
    case 'n': in.name = optarg; break;
    case 's': in.site = optarg; break;
    case 'S': in.server = optarg; break;
    case 'a': in.address = optarg; break;
    case 't': in.store = optarg; break;
    case 'p': in.store_path = optarg; break;
    }
  if (optind != argc)
    return cli_usage_error (usage, "init takes no arguments");
  if (df_farm_create (cli->farm_dir, &in) == -1)
    return cli_fail ("init %s", cli->farm_dir);
  if (!cli->json)
    printf ("created farm in %s\n", cli->farm_dir);
  return 0;
}
