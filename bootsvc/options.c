/* diskfarm-bootsvc — the command line. */
#include <config.h>

#include <arpa/inet.h>
#include <getopt.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bootsvc.h"
#include "cleanup.h"
#include "error.h"
#include "log.h"
#include "util.h"

static const char usage_text[] =
  "Usage: diskfarm-bootsvc [OPTIONS]\n"
  "Boot service of a diskfarm: proxyDHCP (or DHCP), TFTP and HTTP.  PXE\n"
  "firmware gets iPXE, iPXE gets a script per device that loads the kernel\n"
  "and initrd of the device's vDisk from up to four servers.\n"
  "\n"
  "  -f, --farm DIR          the farm directory (default: $DISKFARM_FARM,\n"
  "                          then " DISKFARM_DEFAULT_FARM ")\n"
  "  -s, --server NAME       this server's name in the farm (default:\n"
  "                          $DISKFARM_SERVER, then this host's name)\n"
  "  -i, --interface IF      answer DHCP on IF (repeat for several)\n"
  "  -m, --dhcp-mode MODE    proxy: boot information only, beside the\n"
  "                          site's DHCP server (default); full: hand out\n"
  "                          addresses too; off: no DHCP\n"
  "  -r, --range A-B         addresses of full mode: 10.0.0.100-10.0.0.199\n"
  "      --lease-time SECS   lease time in full mode (default 3600)\n"
  "      --lease-file FILE   leases of full mode (default\n"
  "                          " BOOTSVC_LEASE_FILE ")\n"
  "      --router ADDR       router to hand out in full mode\n"
  "      --dns ADDR[,ADDR]   DNS servers to hand out in full mode\n"
  "  -t, --tftp-root DIR     the iPXE binaries (default " BOOTSVC_TFTP_ROOT ")\n"
  "      --tftp-port PORT    TFTP port, 0 for none (default 69)\n"
  "      --bios-file FILE    what BIOS PXE boots (default undionly.kpxe)\n"
  "      --efi-file FILE     what x86-64 UEFI PXE boots (default snponly.efi)\n"
  "  -p, --http-port PORT    HTTP port of scripts, kernels and initrds; the\n"
  "                          same on every server (default 10810)\n"
  "  -l, --listen ADDR       IPv4 address for HTTP and TFTP (default: all)\n"
  "      --boot-timeout SECS how long the initramfs tries the servers\n"
  "                          (diskfarm.timeout, default 60)\n"
  "  -v, --verbose           debug messages of every subsystem\n"
  "  -D, --debug SUBSYSTEM   debug messages of dhcp, tftp, http, boot, farm\n"
  "      --help              show this help\n"
  "  -V, --version           show the version\n";

enum {
  OPT_HELP = 0x100, OPT_LEASE_TIME, OPT_LEASE_FILE, OPT_ROUTER, OPT_DNS,
  OPT_TFTP_PORT, OPT_BIOS_FILE, OPT_EFI_FILE, OPT_BOOT_TIMEOUT,
};

static const struct option long_opts[] = {
  { "farm", required_argument, NULL, 'f' },
  { "server", required_argument, NULL, 's' },
  { "interface", required_argument, NULL, 'i' },
  { "dhcp-mode", required_argument, NULL, 'm' },
  { "range", required_argument, NULL, 'r' },
  { "lease-time", required_argument, NULL, OPT_LEASE_TIME },
  { "lease-file", required_argument, NULL, OPT_LEASE_FILE },
  { "router", required_argument, NULL, OPT_ROUTER },
  { "dns", required_argument, NULL, OPT_DNS },
  { "tftp-root", required_argument, NULL, 't' },
  { "tftp-port", required_argument, NULL, OPT_TFTP_PORT },
  { "bios-file", required_argument, NULL, OPT_BIOS_FILE },
  { "efi-file", required_argument, NULL, OPT_EFI_FILE },
  { "http-port", required_argument, NULL, 'p' },
  { "listen", required_argument, NULL, 'l' },
  { "boot-timeout", required_argument, NULL, OPT_BOOT_TIMEOUT },
  { "verbose", no_argument, NULL, 'v' },
  { "debug", required_argument, NULL, 'D' },
  { "help", no_argument, NULL, OPT_HELP },
  { "version", no_argument, NULL, 'V' },
  { NULL, 0, NULL, 0 },
};

static void __attribute__ ((noreturn, format (printf, 1, 2)))
die (const char *fmt, ...)
{
  va_list ap;

  fputs ("diskfarm-bootsvc: ", stderr);
  va_start (ap, fmt);
  vfprintf (stderr, fmt, ap);
  va_end (ap);
  fputs ("\n(see diskfarm-bootsvc --help)\n", stderr);
  exit (1);
}

static unsigned
number (const char *opt, const char *s, unsigned min, unsigned max)
{
  uint64_t v;

  if (df_parse_u64 (s, &v) == -1 || v < min || v > max)
    die ("%s \"%s\" is not a number from %u to %u", opt, s, min, max);
  return v;
}

static struct in_addr
ipv4 (const char *opt, const char *s)
{
  struct in_addr a;

  if (inet_pton (AF_INET, s, &a) != 1)
    die ("%s \"%s\" is not an IPv4 address", opt, s);
  return a;
}

static void
parse_range (struct bootsvc_config *cfg, const char *s)
{
  CLEANUP_FREE char *copy = strdup (s);
  char *dash = copy ? strchr (copy, '-') : NULL;

  if (dash == NULL)
    die ("--range \"%s\" is not FIRST-LAST", s);
  *dash = '\0';
  cfg->range_first = ipv4 ("--range", copy);
  cfg->range_last = ipv4 ("--range", dash + 1);
  if (ntohl (cfg->range_last.s_addr) < ntohl (cfg->range_first.s_addr))
    die ("--range \"%s\" runs downwards", s);
  cfg->have_range = true;
}

static void
parse_dns (struct bootsvc_config *cfg, const char *s)
{
  CLEANUP_FREE char *copy = strdup (s);
  char *save = NULL, *item;

  for (item = copy ? strtok_r (copy, ",", &save) : NULL; item;
       item = strtok_r (NULL, ",", &save)) {
    if (cfg->ndns == BOOTSVC_MAX_DNS)
      die ("--dns: at most %d servers", BOOTSVC_MAX_DNS);
    cfg->dns[cfg->ndns++] = ipv4 ("--dns", item);
  }
}

/* A file of the TFTP root named in the DHCP file field. */
static const char *
boot_file_name (const char *opt, const char *s)
{
  CLEANUP_FREE char *copy = strdup (s);
  char *save = NULL, *comp;

  if (strlen (s) > 100 || s[0] == '/' || strstr (s, "//"))
    die ("%s \"%s\" is not a short relative path in the TFTP root", opt, s);
  for (comp = copy ? strtok_r (copy, "/", &save) : NULL; comp;
       comp = strtok_r (NULL, "/", &save))
    if (!df_name_valid (comp))
      die ("%s \"%s\" is not a relative path of plain names", opt, s);
  return s;
}

static void
set_defaults (struct bootsvc_config *cfg)
{
  const char *env = getenv ("DISKFARM_FARM");

  memset (cfg, 0, sizeof *cfg);
  cfg->farm_dir = env && env[0] ? env : DISKFARM_DEFAULT_FARM;
  cfg->dhcp_mode = DHCP_MODE_PROXY;
  cfg->lease_time = 3600;
  cfg->lease_file = BOOTSVC_LEASE_FILE;
  cfg->tftp_root = BOOTSVC_TFTP_ROOT;
  cfg->tftp_port = 69;
  cfg->bios_file = "undionly.kpxe";
  cfg->efi_file = "snponly.efi";
  cfg->http_port = BOOTSVC_HTTP_PORT;
  cfg->boot_timeout = 60;
}

static void
check (const struct bootsvc_config *cfg)
{
  struct in_addr a;

  if (cfg->dhcp_mode != DHCP_MODE_OFF && cfg->ninterfaces == 0)
    die ("say which interface to answer DHCP on (--interface), or use "
         "--dhcp-mode off");
  if (cfg->dhcp_mode == DHCP_MODE_FULL && !cfg->have_range)
    die ("--dhcp-mode full needs --range FIRST-LAST");
  if (cfg->dhcp_mode == DHCP_MODE_FULL && cfg->ninterfaces != 1)
    die ("--dhcp-mode full serves exactly one --interface");
  if (cfg->dhcp_mode != DHCP_MODE_FULL &&
      (cfg->have_range || cfg->router.s_addr || cfg->ndns))
    die ("--range, --router and --dns are for --dhcp-mode full");
  if (cfg->listen && inet_pton (AF_INET, cfg->listen, &a) != 1)
    die ("--listen \"%s\" is not an IPv4 address", cfg->listen);
}

void
bootsvc_parse_options (struct bootsvc_config *cfg, int argc, char **argv)
{
  int c;

  set_defaults (cfg);
  while ((c = getopt_long (argc, argv, "f:s:i:m:r:t:p:l:vD:V", long_opts,
                           NULL)) != -1) {
    switch (c) {
    case 'f': cfg->farm_dir = optarg; break;
    case 's': cfg->server = optarg; break;
    case 'i':
      if (cfg->ninterfaces == BOOTSVC_MAX_INTERFACES)
        die ("at most %d interfaces", BOOTSVC_MAX_INTERFACES);
      cfg->interfaces[cfg->ninterfaces++] = optarg;
      break;
    case 'm':
      if (strcmp (optarg, "proxy") == 0)
        cfg->dhcp_mode = DHCP_MODE_PROXY;
      else if (strcmp (optarg, "full") == 0)
        cfg->dhcp_mode = DHCP_MODE_FULL;
      else if (strcmp (optarg, "off") == 0)
        cfg->dhcp_mode = DHCP_MODE_OFF;
      else
        die ("--dhcp-mode \"%s\" is not proxy, full or off", optarg);
      break;
    case 'r': parse_range (cfg, optarg); break;
    case OPT_LEASE_TIME:
      cfg->lease_time = number ("--lease-time", optarg, 60, 365 * 86400);
      break;
    case OPT_LEASE_FILE: cfg->lease_file = optarg; break;
    case OPT_ROUTER: cfg->router = ipv4 ("--router", optarg); break;
    case OPT_DNS: parse_dns (cfg, optarg); break;
    case 't': cfg->tftp_root = optarg; break;
    case OPT_TFTP_PORT: cfg->tftp_port = number ("--tftp-port", optarg, 0, 65535); break;
    case OPT_BIOS_FILE: cfg->bios_file = boot_file_name ("--bios-file", optarg); break;
    case OPT_EFI_FILE: cfg->efi_file = boot_file_name ("--efi-file", optarg); break;
    case 'p': cfg->http_port = number ("--http-port", optarg, 1, 65535); break;
    case 'l': cfg->listen = optarg; break;
    case OPT_BOOT_TIMEOUT:
      cfg->boot_timeout = number ("--boot-timeout", optarg, 1, 3600);
      break;
    case 'v': df_log_debug_enable ("all"); break;
    case 'D': df_log_debug_enable (optarg); break;
    case OPT_HELP:
      fputs (usage_text, stdout);
      exit (0);
    case 'V':
      printf ("diskfarm-bootsvc %s\n", PACKAGE_VERSION);
      exit (0);
    default:
      fputs ("(see diskfarm-bootsvc --help)\n", stderr);
      exit (1);
    }
  }
  if (optind < argc)
    die ("unexpected argument \"%s\"", argv[optind]);
  check (cfg);
}
