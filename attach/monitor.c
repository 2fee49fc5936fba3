/* diskfarm-attach — link watcher and failover (see monitor.h). */
#include <config.h>

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <linux/magic.h>
#include <sys/mman.h>
#include <sys/vfs.h>
#include <time.h>
#include <unistd.h>

#include "error.h"
#include "log.h"
#include "monitor.h"
#include "util.h"

/* How often the device's state is polled, for a disconnect made by
 * someone else (which sends no event).
 */
#define STATUS_INTERVAL_MS 5000

/* The replacement server must serve the very same disk. */
static int
same_export (const struct attach_session *old, const struct attach_session *s)
{
  if (s->info.size != old->info.size)
    return df_error (EPROTO, "%s offers %llu bytes instead of %llu: not the "
                     "same disk", s->opts->servers[s->server].name,
                     (unsigned long long) s->info.size,
                     (unsigned long long) old->info.size);
  if ((s->info.flags ^ old->info.flags) & NBD_FLAG_READ_ONLY)
    return df_error (EPROTO, "%s serves the export %s",
                     s->opts->servers[s->server].name,
                     s->info.flags & NBD_FLAG_READ_ONLY ? "read-only"
                     : "read-write");
  return 0;
}

static void
sleep_s (unsigned s)
{
  struct timespec ts = { .tv_sec = s };

  while (nanosleep (&ts, &ts) == -1 && errno == EINTR)
    ;
}

/* A connection died: try the servers after the one that failed, then
 * it again, until one takes over.  The kernel holds I/O meanwhile for
 * dead_timeout seconds and fails it after that; we keep trying beyond,
 * so that the disk comes back when a server does.
 */
static int
failover (struct nbd_nl *nl, struct attach_session *s, const char *backend)
{
  const struct attach_options *o = s->opts;
  int fds[ATTACH_MAX_CONNECTIONS];
  struct session_log log = { 0 };
  unsigned delay = 1;

  df_log_warning ("/dev/nbd%u: lost a connection to %s; failing over",
                  o->index, o->servers[s->server].name);
  for (;;) {
    struct attach_session next = *s;
    bool connected;

    if (session_open_any (&next, s->server + 1, fds, session_log_changed,
                          &log) == 0) {
      int r = same_export (s, &next);
      if (r == 0)
        r = nbd_nl_reconfigure (nl, o->index, backend, fds,
                                next.connections);
      session_close_fds (fds, next.connections);
      if (r == 0) {
        df_log_info ("/dev/nbd%u: now served by %s", o->index,
                     o->servers[next.server].name);
        *s = next;
        return 0;
      }
      df_log_warning ("%s", df_error_get ());
    }
    if (nbd_nl_status (nl, o->index, &connected) == -1)
      return -1;
    if (!connected)
      return 0;                 /* disconnected meanwhile: nothing to do */
    sleep_s (delay);
    if (delay < 5)
      delay++;
  }
}

int
monitor_run (struct nbd_nl *nl, struct attach_session *s, const char *backend)
{
  uint32_t index = s->opts->index;

  for (;;) {
    uint32_t dead;
    bool connected;
    int r = nbd_nl_wait_event (nl, STATUS_INTERVAL_MS, &dead);

    if (r == -1)
      return -1;
    if (r == 1 && (dead == index || dead == UINT32_MAX)) {
      if (failover (nl, s, backend) == -1)
        return -1;
    }
    if (nbd_nl_status (nl, index, &connected) == -1)
      return -1;
    if (!connected) {
      df_log_info ("/dev/nbd%u was disconnected; exiting", index);
      return 0;
    }
  }
}

/* The way systemd tells: initrd-release, or a RAM file system as root. */
static bool
in_initramfs (void)
{
  struct statfs st;

  if (access ("/etc/initrd-release", F_OK) == 0)
    return true;
  return statfs ("/", &st) == 0 &&
    (st.f_type == RAMFS_MAGIC || st.f_type == TMPFS_MAGIC);
}

void
monitor_harden (char **argv)
{
  int fd;

  if (mlockall (MCL_CURRENT | MCL_FUTURE) == -1)
    df_log_warning ("mlockall: %m");
  fd = open ("/proc/self/oom_score_adj", O_WRONLY | O_CLOEXEC);
  if (fd == -1 || write (fd, "-1000", 5) != 5)
    df_log_warning ("oom_score_adj: %m");
  if (fd >= 0)
    close (fd);
  /* systemd spares processes started in the initramfs whose argv[0]
   * begins with '@' when it kills everything at switch-root and at
   * shutdown: the root disk needs us until it is unmounted.  Only from
   * the initramfs (systemd's ROOT_STORAGE_DAEMONS.md).
   */
  if (in_initramfs ())
    argv[0][0] = '@';
}
