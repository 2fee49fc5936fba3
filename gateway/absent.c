/* diskfarm-gateway — commands whose sources are not in this tree (see
 * meson.build) say so instead of failing to link.
 */
#include <config.h>

#include <stdio.h>

#include "gateway.h"

#ifdef GW_ABSENT_MOUNT
int
gw_mount_main (int argc, char **argv)
{
  (void) argc;
  (void) argv;
  fputs ("diskfarm-gateway: this build has no mount command\n", stderr);
  return 1;
}
#endif

#ifdef GW_ABSENT_ATTACH
int
gw_attach_main (int argc, char **argv)
{
  (void) argc;
  (void) argv;
  fputs ("diskfarm-gateway: this build has no attach command\n", stderr);
  return 1;
}
#endif
