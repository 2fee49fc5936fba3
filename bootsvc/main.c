/* diskfarm-bootsvc — the boot service daemon: proxyDHCP or DHCP, TFTP
 * and HTTP on one event loop (see bootsvc.h for the modules).
 */
#include <config.h>

#include <arpa/inet.h>
#include <errno.h>
#include <libgen.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/signalfd.h>
#include <sys/stat.h>
#include <unistd.h>

#include "bootsvc.h"
#include "cleanup.h"
#include "dhcp/leases.h"
#include "error.h"
#include "evloop/evloop.h"
#include "http/http.h"
#include "log.h"
#include "util.h"

struct signals {
  struct bootsvc *svc;
  int fd;
  struct df_watch *watch;
};

static void
on_signal (void *opaque, int fd, unsigned events)
{
  struct signals *sg = opaque;
  struct signalfd_siginfo si;

  (void) events;
  while (read (fd, &si, sizeof si) == sizeof si) {
    if (si.ssi_signo == SIGHUP)
      bootsvc_farm_reload (sg->svc);
    else {
      df_log_info ("stopping (signal %u)", si.ssi_signo);
      df_loop_stop (sg->svc->loop);
    }
  }
}

static int
watch_signals (struct bootsvc *svc, struct signals *sg)
{
  sigset_t set;

  sigemptyset (&set);
  sigaddset (&set, SIGINT);
  sigaddset (&set, SIGTERM);
  sigaddset (&set, SIGHUP);
  if (sigprocmask (SIG_BLOCK, &set, NULL) == -1)
    return df_error_errno ("sigprocmask");
  sg->svc = svc;
  sg->fd = signalfd (-1, &set, SFD_CLOEXEC | SFD_NONBLOCK);
  if (sg->fd == -1)
    return df_error_errno ("signalfd");
  sg->watch = df_loop_watch (svc->loop, sg->fd, DF_LOOP_READ, on_signal, sg);
  return sg->watch ? 0 : -1;
}

/* The TFTP root should hold what PXE clients are told to boot. */
static int
check_tftp_root (const struct bootsvc_config *cfg)
{
  const char *files[2] = { cfg->bios_file, cfg->efi_file };
  struct stat st;
  size_t i;

  if (stat (cfg->tftp_root, &st) == -1 || !S_ISDIR (st.st_mode))
    return df_error (ENOENT, "--tftp-root %s is not a directory (Debian's "
                     "ipxe package fills " BOOTSVC_TFTP_ROOT ")", cfg->tftp_root);
  for (i = 0; i < 2; i++) {
    CLEANUP_FREE char *p = df_path_join (cfg->tftp_root, files[i]);
    if (p && stat (p, &st) == -1)
      df_log_warning ("%s has no %s: PXE clients told to boot it will fail",
                      cfg->tftp_root, files[i]);
  }
  return 0;
}

static int
open_leases (struct bootsvc *svc)
{
  const struct bootsvc_config *cfg = &svc->cfg;
  CLEANUP_FREE char *dir = strdup (cfg->lease_file);

  if (dir == NULL || df_mkdir_p (dirname (dir), 0755) == -1)
    return -1;
  svc->leases = lease_pool_new (cfg->range_first, cfg->range_last,
                                cfg->lease_file);
  if (svc->leases == NULL)
    return -1;
  if (lease_pool_dropped (svc->leases))
    df_log_warning ("%s: %zu leases outside --range were dropped",
                    cfg->lease_file, lease_pool_dropped (svc->leases));
  return 0;
}

static void
log_start (struct bootsvc *svc)
{
  const struct bootsvc_config *cfg = &svc->cfg;
  static const char *const modes[] = { "no DHCP", "proxyDHCP", "full DHCP" };
  char ifs[256] = "", tftp[64] = "no TFTP";
  size_t i;

  for (i = 0; i < cfg->ninterfaces; i++)
    snprintf (ifs + strlen (ifs), sizeof ifs - strlen (ifs), "%s%s",
              i ? "," : " on ", cfg->interfaces[i]);
  if (svc->tftp)
    snprintf (tftp, sizeof tftp, "TFTP on port %u", cfg->tftp_port);
  df_log_info ("serving farm %s as server %s: %s%s, %s from %s, HTTP on port "
               "%u", cfg->farm_dir, bootsvc_server_name (svc),
               modes[cfg->dhcp_mode], ifs, tftp, cfg->tftp_root,
               df_http_server_port (svc->http));
}

static int
start (struct bootsvc *svc, struct signals *sg)
{
  const struct bootsvc_config *cfg = &svc->cfg;

  svc->loop = df_loop_new ();
  if (svc->loop == NULL || watch_signals (svc, sg) == -1)
    return -1;
  svc->farm = farm_cache_new (cfg->farm_dir, cfg->server);
  if (svc->farm == NULL || check_tftp_root (cfg) == -1)
    return -1;
  svc->peers = peer_view_start (cfg->farm_dir, cfg->server);
  if (svc->peers == NULL)
    return -1;
  if (cfg->dhcp_mode == DHCP_MODE_FULL && open_leases (svc) == -1)
    return -1;
  if (web_start (svc) == -1)
    return -1;
  if (cfg->tftp_port && boot_tftp_start (svc) == -1)
    return -1;
  if (cfg->dhcp_mode != DHCP_MODE_OFF && dhcp_service_start (svc) == -1)
    return -1;
  log_start (svc);
  return 0;
}

static void
stop (struct bootsvc *svc, struct signals *sg)
{
  dhcp_service_free (svc->dhcp);
  boot_tftp_free (svc->tftp);
  df_http_server_free (svc->http);
  lease_pool_free (svc->leases);
  peer_view_stop (svc->peers);
  farm_cache_free (svc->farm);
  df_watch_free (sg->watch);
  if (sg->fd >= 0)
    close (sg->fd);
  df_loop_free (svc->loop);
}

int
main (int argc, char **argv)
{
  struct bootsvc svc = { 0 };
  struct signals sg = { .fd = -1 };
  int r = 1;

  df_log_init ("diskfarm-bootsvc");
  bootsvc_parse_options (&svc.cfg, argc, argv);
  /* A client that goes away mid-transfer must not kill the daemon. */
  signal (SIGPIPE, SIG_IGN);
  if (start (&svc, &sg) == -1)
    df_log_error ("%s", df_error_get ());
  else if (df_loop_run (svc.loop) == -1)
    df_log_error ("event loop: %s", df_error_get ());
  else
    r = 0;
  stop (&svc, &sg);
  return r;
}
