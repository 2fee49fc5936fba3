/* diskfarm-gateway — the per-server daemon (serve, the default), the
 * FUSE view of the farm (mount) and a farm disk attached locally with
 * failover (attach).  argv[1] picks the command; an option or nothing
 * means serve.
 */
#include <config.h>

#include <string.h>

#include "gateway.h"

int
main (int argc, char **argv)
{
  if (argc > 1 && strcmp (argv[1], "mount") == 0)
    return gw_mount_main (argc - 1, argv + 1);
  if (argc > 1 && strcmp (argv[1], "attach") == 0)
    return gw_attach_main (argc - 1, argv + 1);
  if (argc > 1 && strcmp (argv[1], "serve") == 0)
    return gw_serve_main (argc - 1, argv + 1);
  return gw_serve_main (argc, argv);
}
