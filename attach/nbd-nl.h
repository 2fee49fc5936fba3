/* diskfarm-attach — the kernel NBD driver's generic netlink interface
 * (family "nbd", linux/nbd-netlink.h), over a raw netlink socket.
 *
 * The driver takes connected sockets whose NBD handshake is done; it
 * speaks the transmission phase itself.  NBD_CMD_RECONFIGURE swaps in a
 * new socket for a dead one while I/O is held (dead_timeout), which is
 * how the device moves to another server.
 */
#ifndef DISKFARM_ATTACH_NBD_NL_H
#define DISKFARM_ATTACH_NBD_NL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct nbd_nl;

struct nbd_nl_config {
  uint32_t index;                /* /dev/nbdINDEX */
  uint64_t size;                 /* bytes */
  uint64_t block_size;
  uint64_t server_flags;         /* transmission flags from the handshake */
  uint64_t io_timeout;           /* s; 0: the kernel's default */
  uint64_t dead_timeout;         /* s: hold I/O while no connection lives */
  const char *backend;           /* shown in /sys/block/nbdN/backend;
                                    RECONFIGURE must repeat it */
};

/* Opens a netlink socket and looks up the "nbd" family.  With watch,
 * the socket also joins the driver's multicast group, for
 * nbd_nl_wait_event.  NULL with a message (errno ENOENT when the
 * driver is not loaded).  Free with nbd_nl_close (accepts NULL).
 */
struct nbd_nl *nbd_nl_open (bool watch);
void nbd_nl_close (struct nbd_nl *nl);

/* NBD_CMD_CONNECT: configures the device with these sockets (the kernel
 * takes its own reference; the caller still closes its fds).
 */
int nbd_nl_connect (struct nbd_nl *nl, const struct nbd_nl_config *cfg,
                    const int *fds, size_t nfds);

/* NBD_CMD_RECONFIGURE: replaces dead sockets of a connected device. */
int nbd_nl_reconfigure (struct nbd_nl *nl, uint32_t index,
                        const char *backend, const int *fds, size_t nfds);

int nbd_nl_disconnect (struct nbd_nl *nl, uint32_t index);

/* NBD_CMD_STATUS: whether the device exists and is configured. */
int nbd_nl_status (struct nbd_nl *nl, uint32_t index, bool *connected);

/* Waits up to timeout_ms (-1: forever) for a multicast event of a
 * socket opened with watch.  Returns 1 and sets *index when a device
 * lost a connection (NBD_CMD_LINK_DEAD), 0 on timeout, -1 on error.
 */
int nbd_nl_wait_event (struct nbd_nl *nl, int timeout_ms, uint32_t *index);

#endif
