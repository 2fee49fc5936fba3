/* diskfarm-attach — what to attach and how: command line options and
 * diskfarm.* kernel parameters, both parsed into one struct.
 */
#ifndef DISKFARM_ATTACH_OPTIONS_H
#define DISKFARM_ATTACH_OPTIONS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

#define ATTACH_MAX_SERVERS 4     /* what the boot script may list */
#define ATTACH_MAX_CONNECTIONS 16
#define NBD_DEFAULT_PORT 10809
#define NBD_MAX_NAME 4096        /* NBD protocol limit on export names */

struct attach_server {
  char name[80];                 /* "10.0.0.1:10809", "[fd00::1]:10809" */
  struct sockaddr_storage addr;
  socklen_t addrlen;
};

/* One bit per parameter, to know which ones were given. */
enum attach_param {
  ATTACH_SERVERS,
  ATTACH_EXPORT,
  ATTACH_NBD,
  ATTACH_CONNECTIONS,
  ATTACH_BLOCK_SIZE,
  ATTACH_TIMEOUT,
  ATTACH_CONNECT_TIMEOUT,
  ATTACH_IO_TIMEOUT,
  ATTACH_DEAD_TIMEOUT,
  ATTACH_NPARAMS
};

struct attach_options {
  struct attach_server servers[ATTACH_MAX_SERVERS];
  size_t nservers;
  char export[NBD_MAX_NAME + 1];
  uint32_t index;                /* /dev/nbdINDEX */
  uint32_t connections;
  uint32_t block_size;           /* 0: the server's minimum, at least 512 */
  uint32_t timeout;              /* s: keep trying the server list */
  uint32_t connect_timeout;      /* s: one connection attempt */
  uint32_t io_timeout;           /* s: NBD_ATTR_TIMEOUT */
  uint32_t dead_timeout;         /* s: NBD_ATTR_DEAD_CONN_TIMEOUT */
  unsigned given;                /* 1u << enum attach_param */
};

/* Defaults for everything but servers and export. */
void attach_options_init (struct attach_options *o);

/* Sets one parameter by its kernel parameter name without the
 * "diskfarm." prefix ("servers", "io_timeout"; '-' and '_' are the
 * same).  Returns -1 with a message on a bad value, -2 (no message)
 * for an unknown key.
 */
int attach_options_set (struct attach_options *o, const char *key,
                        const char *value);

/* Applies the diskfarm.* parameters of a kernel command line (text of
 * /proc/cmdline), except those already given as options: options win.
 * diskfarm.device (the device's name in the farm) and diskfarm.cache
 * (the initramfs scripts' business) are known and left alone.
 * A parameter repeated on the command line takes its last value (what
 * was appended at the boot prompt).  Unknown diskfarm.* keys are
 * reported through warn (may be NULL) and skipped.  Sets *found to how
 * many diskfarm.* parameters there were.
 */
int attach_options_parse_cmdline (struct attach_options *o, const char *text,
                                  void (*warn) (const char *key),
                                  unsigned *found);

/* "HOST[:PORT]" with HOST an IPv4 address or "[IPv6]". */
int attach_server_parse (const char *s, struct attach_server *srv);

/* "/dev/nbd3", "nbd3" or "3" into 3. */
int attach_nbd_parse (const char *s, uint32_t *index);

/* Everything needed to attach is there and consistent. */
int attach_options_check (const struct attach_options *o);

#endif
