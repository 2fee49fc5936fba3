/* diskfarm-gateway — one program, one command per subdirectory:
 * serve (daemon/), mount (mount/), attach (attach/).  Each command's
 * main takes the arguments after the command name (argv[0] is the
 * command) and returns the exit status.
 */
#ifndef DISKFARM_GATEWAY_H
#define DISKFARM_GATEWAY_H

int gw_serve_main (int argc, char **argv);
int gw_mount_main (int argc, char **argv);
int gw_attach_main (int argc, char **argv);

#endif
