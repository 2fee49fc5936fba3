/* diskfarm-gateway — one program, three commands (see gateway-main.c).
 * Each returns the exit status.
 */
#ifndef DISKFARM_GATEWAY_H
#define DISKFARM_GATEWAY_H

int gw_serve_main (int argc, char **argv);
int gw_mount_main (int argc, char **argv);
int gw_attach_main (int argc, char **argv);

#endif
