/* diskfarm-bootsvc — the per-device iPXE script.
 *
 * The script tries each listed server in turn: the kernel and initrd
 * over HTTP (TFTP if that fails), then boots with the kernel command
 * line of docs/boot-parameters.md: diskfarm.servers, diskfarm.export
 * with a fresh session, and the vDisk's own parameters.  If every
 * server fails it says so on the screen and reboots after a pause.
 */
#ifndef DISKFARM_BOOT_IPXE_H
#define DISKFARM_BOOT_IPXE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "select.h"

#define BOOT_SESSION_LEN 32             /* hex digits */
#define BOOT_CMDLINE_MAX 2000           /* x86 kernels take 2047 bytes */

struct ipxe_script {
  const char *device;
  const uint8_t *mac;
  const char *vdisk;
  unsigned version;             /* the version the device would boot now */
  const char *session;
  const struct boot_server *servers;    /* in order; at least one */
  size_t nservers;
  unsigned http_port;
  bool http;                    /* fetch over HTTP, falling back to TFTP */
  const char *cmdline;          /* the vDisk's parameters, may be NULL */
  unsigned timeout;             /* diskfarm.timeout, seconds */
  bool client_cache;            /* write cache "device": the client keeps it */
};

/* The script text (caller frees), or NULL with a message (a command
 * line iPXE would mangle: df_boot_cmdline_check, or one that is too
 * long).
 */
char *ipxe_script_build (const struct ipxe_script *s);

/* A script that shows message, waits and reboots (caller frees). */
char *ipxe_error_script (const char *message);

/* A fresh random session name, BOOT_SESSION_LEN hex digits. */
int boot_session_new (char buf[BOOT_SESSION_LEN + 1]);

#endif
