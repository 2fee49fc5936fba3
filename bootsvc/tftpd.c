/* diskfarm-bootsvc — TFTP: the bootsvc/tftp engine on the daemon's loop,
 * with a resolver for the names devices ask for:
 *
 *   undionly.kpxe, snponly.efi...   files of the TFTP root (--tftp-root)
 *   vdisks/NAME/kernel, .../initrd  a vDisk's kernel and initrd
 *   boot/MAC.ipxe                   the device's iPXE script (for an iPXE
 *                                   without HTTP)
 */
#include <config.h>

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <unistd.h>

#include "bootsvc.h"
#include "cleanup.h"
#include "error.h"
#include "log.h"
#include "tftp/tftp.h"
#include "util.h"

struct boot_tftp {
  int fd;
  struct tftp_server *srv;
};

/* The script as a file the engine can read: a memfd. */
static int
script_fd (struct bootsvc *svc, const char *name, uint32_t client,
           bool client_known)
{
  CLEANUP_FREE char *text = NULL;
  unsigned status;
  uint8_t mac[6];
  size_t len;
  int fd;

  if (boot_parse_script_name (name, mac) == -1) {
    errno = ENOENT;
    return -1;
  }
  text = boot_script (svc, mac, client, client_known, false, &status);
  if (text == NULL || status != 200) {
    errno = text ? ENOENT : ENOMEM;
    return -1;
  }
  fd = memfd_create ("diskfarm-script", MFD_CLOEXEC);
  if (fd == -1)
    return df_error_errno ("memfd_create");
  len = strlen (text);
  if (write (fd, text, len) != (ssize_t) len || lseek (fd, 0, SEEK_SET) == -1) {
    df_error_errno ("script file");
    close (fd);
    return -1;
  }
  return fd;
}

/* The client's IPv4 address (also from a v4-mapped IPv6 one). */
static bool
client_ipv4 (const struct sockaddr *sa, socklen_t len, uint32_t *addr)
{
  if (sa && sa->sa_family == AF_INET && len >= sizeof (struct sockaddr_in)) {
    *addr = ((const struct sockaddr_in *) sa)->sin_addr.s_addr;
    return true;
  }
  if (sa && sa->sa_family == AF_INET6 && len >= sizeof (struct sockaddr_in6) &&
      IN6_IS_ADDR_V4MAPPED (&((const struct sockaddr_in6 *) sa)->sin6_addr)) {
    memcpy (addr, &((const struct sockaddr_in6 *) sa)->sin6_addr.s6_addr[12], 4);
    return true;
  }
  return false;
}

int
boot_tftp_open_client (void *opaque, const char *path,
                       const struct sockaddr *client, socklen_t client_len)
{
  struct bootsvc *svc = opaque;
  char vdisk[DF_NAME_MAX + 1], q[96];
  const char *slash;
  uint32_t addr = 0;
  bool known = client_ipv4 (client, client_len, &addr);
  int fd;

  while (*path == '/')          /* clients often send "/file" */
    path++;
  if (strncmp (path, "boot/", 5) == 0)
    fd = script_fd (svc, path + 5, addr, known);
  else if (strncmp (path, "vdisks/", 7) == 0 &&
           (slash = strchr (path + 7, '/')) != NULL &&
           (size_t) (slash - path - 7) <= DF_NAME_MAX) {
    memcpy (vdisk, path + 7, slash - path - 7);
    vdisk[slash - path - 7] = '\0';
    fd = boot_file_open (svc, vdisk, slash + 1);
  }
  else
    fd = boot_root_open (svc, path);
  if (fd == -1) {
    int e = errno;
    df_debug ("tftp", "\"%s\": %s", df_quote (path, q, sizeof q),
              df_error_get ());
    errno = e;
  }
  return fd;
}

int
boot_tftp_open (void *opaque, const char *path)
{
  return boot_tftp_open_client (opaque, path, NULL, 0);
}

/* A UDP socket bound to the TFTP port. */
static int
tftp_socket (const struct bootsvc_config *cfg)
{
  struct sockaddr_in sa = { .sin_family = AF_INET, .sin_port = htons (cfg->tftp_port) };
  int one = 1, fd;

  if (cfg->listen && inet_pton (AF_INET, cfg->listen, &sa.sin_addr) != 1)
    return df_error (EINVAL, "TFTP listens on IPv4 only, not \"%s\"", cfg->listen);
  fd = socket (AF_INET, SOCK_DGRAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
  if (fd == -1)
    return df_error_errno ("TFTP socket");
  setsockopt (fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
  if (bind (fd, (struct sockaddr *) &sa, sizeof sa) == -1) {
    df_error_errno ("TFTP port %u", cfg->tftp_port);
    close (fd);
    return -1;
  }
  return fd;
}

int
boot_tftp_start (struct bootsvc *svc)
{
  struct boot_tftp *t = calloc (1, sizeof *t);
  struct tftp_config tc = {
    .root = svc->cfg.tftp_root, .open_client = boot_tftp_open_client,
    .opaque = svc,
  };

  if (t == NULL)
    return df_error_errno ("TFTP");
  t->fd = tftp_socket (&svc->cfg);
  if (t->fd == -1) {
    free (t);
    return -1;
  }
  t->srv = tftp_server_new (svc->loop, t->fd, &tc);
  if (t->srv == NULL) {
    close (t->fd);
    free (t);
    return -1;
  }
  svc->tftp = t;
  return 0;
}

bool
boot_tftp_stats (struct bootsvc *svc, struct tftp_numbers *out)
{
  struct tftp_stats st;

  if (svc->tftp == NULL)
    return false;
  tftp_server_stats (svc->tftp->srv, &st);
  out->started = st.started;
  out->completed = st.completed;
  out->failed = st.failed;
  out->refused = st.refused;
  out->bytes = st.bytes;
  out->active = st.active;
  return true;
}

void
boot_tftp_free (struct boot_tftp *t)
{
  if (t == NULL)
    return;
  tftp_server_free (t->srv);
  close (t->fd);
  free (t);
}
