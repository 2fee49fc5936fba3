/* diskfarm version — new, promote, rollback, merge, delete. */
#include <config.h>

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cleanup.h"
#include "cli.h"
#include "error.h"
#include "util.h"

static const char usage[] =
  "Usage: diskfarm version new NAME\n"
  "       diskfarm version promote NAME VERSION test|production\n"
  "       diskfarm version rollback NAME\n"
  "       diskfarm version merge NAME [VERSION]\n"
  "       diskfarm version delete NAME VERSION\n"
  "\n"
  "new       adds a maintenance version on top of the newest one and prints\n"
  "          its number; edit it through the edit/NAME export.\n"
  "promote   hands a version to test devices or to production (a maintenance\n"
  "          version is sealed first: hashed and made immutable; if its\n"
  "          editor is still connected, promote waits up to 3 s, then fails).\n"
  "rollback  retires the newest production version; devices boot the one\n"
  "          before at their next boot.\n"
  "merge     writes a new base version with the content of VERSION (default:\n"
  "          the newest), so older versions can be deleted.\n"
  "delete    removes a version no other version depends on.\n";

static const char *const subcommands[] = {
  "new", "promote", "rollback", "merge", "delete", NULL
};

/* Finds the store holding the vDisk (caller frees). */
static char *
find_store (struct cli *cli, const char *name)
{
  struct df_farm *farm = cli_open_farm (cli);
  char *store;

  if (farm == NULL)
    return NULL;
  store = df_farm_find_vdisk (farm, df_farm_local_server (farm, cli->server),
                              name, NULL);
  if (store == NULL)
    cli_fail (NULL);
  df_farm_free (farm);
  return store;
}

static int
parse_num (const char *s, unsigned *num)
{
  uint64_t v;

  if (df_parse_u64 (s, &v) == -1 || v == 0 || v > DF_VERSION_MAX) {
    cli_error ("\"%s\" is not a version number", s);
    return -1;
  }
  *num = v;
  return 0;
}

static int
report (struct cli *cli, const char *name, unsigned num, const char *what)
{
  if (cli->json)
    return cli_print_json (json_pack ("{s:s, s:i, s:s}", "vdisk", name,
                                      "version", (int) num, "action", what));
  if (strcmp (what, "new") == 0)
    printf ("%u\n", num);
  else
    printf ("vdisk %s version %u: %s\n", name, num, what);
  return 0;
}

int
cli_version (struct cli *cli, int argc, char **argv)
{
  int sub = cli_subcommand (cli, &argc, &argv, subcommands, usage);
  CLEANUP_FREE char *store = NULL;
  enum df_version_state to;
  struct cli_progress prog;
  const char *name;
  unsigned num = 0, out = 0;
  int nargs;
  static const int want[] = { 1, 3, 1, -1, 2 };

  if (sub < 0)
    return 1;
  if (cli_getopt (cli, argc, argv, "", NULL, usage) != -1)
    return 1;
  nargs = argc - optind;
  if (want[sub] == -1 ? (nargs < 1 || nargs > 2) : nargs != want[sub])
    return cli_usage_error (usage, "wrong number of arguments for \"%s\"",
                            subcommands[sub]);
  name = argv[optind];
  if (nargs >= 2 && parse_num (argv[optind + 1], &num) == -1)
    return 1;
  store = find_store (cli, name);
  if (store == NULL)
    return 1;

  switch (sub) {
  case 0:
    if (df_version_new (store, name, &out) == -1)
      return cli_fail (NULL);
    return report (cli, name, out, "new");
  case 1:
    if (df_state_parse (argv[optind + 2], &to) == -1)
      return cli_fail (NULL);
    if (df_version_promote (store, name, num, to) == -1)
      return cli_fail (NULL);
    return report (cli, name, num, df_state_name (to));
  case 2:
    if (df_version_rollback (store, name, &out) == -1)
      return cli_fail (NULL);
    return report (cli, name, out, "retired");
  case 3:
    cli_progress_init (&prog, cli, "merge");
    if (df_version_merge (store, name, num, &out, cli_progress_cb, &prog) == -1) {
      cli_progress_done (&prog);
      return cli_fail (NULL);
    }
    cli_progress_done (&prog);
    return report (cli, name, out, "merged");
  case 4:
    if (df_version_delete (store, name, num) == -1)
      return cli_fail (NULL);
    return report (cli, name, num, "deleted");
  }
  return 1;
}
