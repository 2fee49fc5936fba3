/* diskfarm-attach — the daemon that stays after attaching: it watches
 * the device's connections and, when the kernel reports one dead,
 * connects to the next server of the list that serves the same export
 * and hands the new socket over (NBD_CMD_RECONFIGURE) while the kernel
 * holds the device's I/O (dead_timeout).
 */
#ifndef DISKFARM_ATTACH_MONITOR_H
#define DISKFARM_ATTACH_MONITOR_H

#include "nbd-nl.h"
#include "session.h"

/* Runs until the device is disconnected (returns 0) or netlink fails
 * (-1 with a message).  nl must have been opened with watch.
 */
int monitor_run (struct nbd_nl *nl, struct attach_session *s,
                 const char *backend);

/* Makes the process fit to serve the root disk: memory locked (it must
 * not page from the disk it repairs), spared by the OOM killer, and,
 * when run from the initramfs, marked as a root storage daemon for
 * systemd (argv[0] starting with '@').  Failures are warnings.
 */
void monitor_harden (char **argv);

#endif
