/* diskfarm-gateway — picks the command: serve (the default), mount or
 * attach.
 */
#include <config.h>

#include <stdio.h>
#include <string.h>

#include "gateway.h"

/* serve and mount are always built; attach (gateway/attach/) is not in
 * every tree yet: until it is, main says so instead of failing to link.
 */
#pragma weak gw_attach_main

static const char usage_text[] =
  "Usage: diskfarm-gateway [serve] --farm DIR --server NAME [OPTIONS]\n"
  "       diskfarm-gateway mount --farm DIR MOUNTPOINT\n"
  "       diskfarm-gateway attach dev/DEVICE[@SESSION] ...\n"
  "The diskfarm server's gateway: the daemon (serve), the farm's vDisks as\n"
  "files (mount), a farm disk on a client (attach).\n"
  "\n"
  "\"diskfarm-gateway COMMAND --help\" describes a command.\n";

static int
run (int (*fn) (int, char **), const char *name, int argc, char **argv)
{
  if (fn == NULL) {
    fprintf (stderr, "diskfarm-gateway: this build has no \"%s\" command\n",
             name);
    return 2;
  }
  return fn (argc, argv);
}

int
main (int argc, char **argv)
{
  const char *cmd = argc > 1 ? argv[1] : NULL;

  if (cmd && strcmp (cmd, "mount") == 0)
    return run (gw_mount_main, cmd, argc - 1, argv + 1);
  if (cmd && strcmp (cmd, "attach") == 0)
    return run (gw_attach_main, cmd, argc - 1, argv + 1);
  if (cmd && strcmp (cmd, "serve") == 0)
    return run (gw_serve_main, cmd, argc - 1, argv + 1);
  if (cmd && (strcmp (cmd, "--help") == 0 || strcmp (cmd, "-h") == 0)) {
    fputs (usage_text, stdout);
    return 0;
  }
  if (cmd && strcmp (cmd, "--version") == 0) {
    printf ("diskfarm-gateway %s\n", PACKAGE_VERSION);
    return 0;
  }
  if (cmd == NULL || cmd[0] != '-') {
    fprintf (stderr, "diskfarm-gateway: %s%s%s\n%s",
             cmd ? "unknown command \"" : "no command",
             cmd ? cmd : "", cmd ? "\"" : "", usage_text);
    return 1;
  }
  /* An option first: the daemon. */
  return run (gw_serve_main, "serve", argc, argv);
}
