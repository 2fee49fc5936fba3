/* tftp-serve — serves a directory over TFTP with the boot service's
 * TFTP module, on any address and port.  A driver for the integration
 * tests and the benchmark; the daemon is diskfarm-bootsvc.  Built, not
 * installed.
 */
#include <config.h>

#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <netdb.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <unistd.h>

#include "cleanup.h"
#include "error.h"
#include "log.h"
#include "util.h"
#include "evloop/evloop.h"
#include "tftp/tftp.h"

static void
usage (void)
{
  printf ("Usage: tftp-serve [OPTION]... DIR\n"
          "Serve DIR read-only over TFTP with diskfarm's TFTP module.\n"
          "A driver for tests and benchmarks: the boot service is\n"
          "diskfarm-bootsvc.\n"
          "\n"
          "  -l, --listen ADDR:PORT  listen there (default 127.0.0.1:6969;\n"
          "                          [ADDR]:PORT for IPv6, port 0 picks one)\n"
          "  -p, --port-file FILE    write the port to FILE once listening\n"
          "  -b, --max-blksize N     largest blksize granted (default 1468)\n"
          "  -w, --max-windowsize N  largest windowsize granted (default 64)\n"
          "  -r, --rate-limit SIZE   bytes per second per client (e.g. 1M)\n"
          "  -t, --timeout MS        retransmission timeout (default 1000)\n"
          "  -n, --retries N         retransmissions before giving up (5)\n"
          "  -m, --max-transfers N   concurrent transfers (default 1024)\n"
          "  -v, --verbose           log every packet (debug \"tftp\")\n"
          "  -h, --help              show this help and exit\n"
          "  -V, --version           show the version and exit\n"
          "\n"
          "SIGUSR1 logs the counters; SIGINT and SIGTERM log them and exit.\n");
}

static unsigned
parse_unsigned (const char *opt, const char *s)
{
  uint64_t v;

  if (df_parse_u64 (s, &v) == -1 || v > 0xffffffffu) {
    fprintf (stderr, "tftp-serve: %s: bad number \"%s\"\n", opt, s);
    exit (EXIT_FAILURE);
  }
  return v;
}

/* A bound UDP socket for "ADDR:PORT" or "[ADDR]:PORT". */
static int
listen_on (const char *spec)
{
  struct addrinfo hints = {
    .ai_family = AF_UNSPEC, .ai_socktype = SOCK_DGRAM,
    .ai_flags = AI_NUMERICHOST | AI_NUMERICSERV | AI_PASSIVE,
  };
  CLEANUP_FREE char *host = strdup (spec);
  struct addrinfo *ai;
  char *port;
  int fd, r;

  if (host == NULL || (port = strrchr (host, ':')) == NULL)
    return df_error (EINVAL, "--listen \"%s\": expected ADDR:PORT", spec);
  *port++ = '\0';
  if (host[0] == '[' && host[strlen (host) - 1] == ']') {
    memmove (host, host + 1, strlen (host));
    host[strlen (host) - 1] = '\0';
  }
  r = getaddrinfo (host, port, &hints, &ai);
  if (r != 0)
    return df_error (EINVAL, "--listen \"%s\": %s", spec, gai_strerror (r));
  fd = socket (ai->ai_family, SOCK_DGRAM | SOCK_CLOEXEC, 0);
  if (fd == -1 || bind (fd, ai->ai_addr, ai->ai_addrlen) == -1) {
    df_error_errno ("listen on %s", spec);
    if (fd >= 0)
      close (fd);
    fd = -1;
  }
  freeaddrinfo (ai);
  return fd;
}

static int
write_port_file (const char *path, int fd)
{
  struct sockaddr_storage ss;
  socklen_t len = sizeof ss;
  char buf[16];
  unsigned port;

  if (getsockname (fd, (struct sockaddr *) &ss, &len) == -1)
    return df_error_errno ("getsockname");
  port = ntohs (ss.ss_family == AF_INET
                ? ((struct sockaddr_in *) &ss)->sin_port
                : ((struct sockaddr_in6 *) &ss)->sin6_port);
  snprintf (buf, sizeof buf, "%u\n", port);
  return df_write_file_atomic (path, buf, strlen (buf), 0644);
}

static void
log_stats (struct tftp_server *srv)
{
  struct tftp_stats st;

  tftp_server_stats (srv, &st);
  df_log_info ("stats: started=%" PRIu64 " completed=%" PRIu64 " failed=%"
               PRIu64 " refused=%" PRIu64 " bytes=%" PRIu64 " active=%u",
               st.started, st.completed, st.failed, st.refused, st.bytes,
               st.active);
}

struct sig_state {
  struct df_loop *loop;
  struct tftp_server *srv;
};

static void
signal_event (void *opaque, int fd, unsigned events)
{
  struct sig_state *s = opaque;
  struct signalfd_siginfo si;

  (void) events;
  if (read (fd, &si, sizeof si) != sizeof si)
    return;
  log_stats (s->srv);
  if (si.ssi_signo != SIGUSR1)
    df_loop_stop (s->loop);
}

/* Every transfer holds a socket and a file: make room for many. */
static void
raise_fd_limit (void)
{
  struct rlimit rl;

  if (getrlimit (RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
    rl.rlim_cur = rl.rlim_max;
    setrlimit (RLIMIT_NOFILE, &rl);
  }
}

static int
signal_fd (void)
{
  sigset_t set;

  sigemptyset (&set);
  sigaddset (&set, SIGINT);
  sigaddset (&set, SIGTERM);
  sigaddset (&set, SIGUSR1);
  if (sigprocmask (SIG_BLOCK, &set, NULL) == -1)
    return df_error_errno ("sigprocmask");
  return signalfd (-1, &set, SFD_CLOEXEC | SFD_NONBLOCK);
}

static int
serve (const char *listen, const char *port_file, struct tftp_config *cfg)
{
  CLEANUP_CLOSE int fd = listen_on (listen);
  CLEANUP_CLOSE int sfd = -1;
  struct sig_state s = { NULL, NULL };
  struct df_watch *w = NULL;
  int r = -1;

  if (fd == -1 || (sfd = signal_fd ()) == -1)
    return -1;
  s.loop = df_loop_new ();
  if (s.loop == NULL)
    return -1;
  s.srv = tftp_server_new (s.loop, fd, cfg);
  if (s.srv && (w = df_loop_watch (s.loop, sfd, DF_LOOP_READ, signal_event, &s))
      && (port_file == NULL || write_port_file (port_file, fd) == 0)) {
    df_log_info ("serving %s on %s", cfg->root, listen);
    r = df_loop_run (s.loop);
  }
  df_watch_free (w);
  tftp_server_free (s.srv);
  df_loop_free (s.loop);
  return r;
}

int
main (int argc, char **argv)
{
  static const struct option opts[] = {
    { "listen", required_argument, NULL, 'l' },
    { "port-file", required_argument, NULL, 'p' },
    { "max-blksize", required_argument, NULL, 'b' },
    { "max-windowsize", required_argument, NULL, 'w' },
    { "rate-limit", required_argument, NULL, 'r' },
    { "timeout", required_argument, NULL, 't' },
    { "retries", required_argument, NULL, 'n' },
    { "max-transfers", required_argument, NULL, 'm' },
    { "verbose", no_argument, NULL, 'v' },
    { "help", no_argument, NULL, 'h' },
    { "version", no_argument, NULL, 'V' },
    { NULL, 0, NULL, 0 },
  };
  struct tftp_config cfg = { 0 };
  const char *listen = "127.0.0.1:6969", *port_file = NULL;
  int c;

  df_log_init ("tftp-serve");
  while ((c = getopt_long (argc, argv, "l:p:b:w:r:t:n:m:vhV", opts, NULL)) != -1) {
    switch (c) {
    case 'l': listen = optarg; break;
    case 'p': port_file = optarg; break;
    case 'b': cfg.max_blksize = parse_unsigned ("--max-blksize", optarg); break;
    case 'w': cfg.max_windowsize = parse_unsigned ("--max-windowsize", optarg); break;
    case 't': cfg.timeout_ms = parse_unsigned ("--timeout", optarg); break;
    case 'n': cfg.max_retries = parse_unsigned ("--retries", optarg); break;
    case 'm': cfg.max_transfers = parse_unsigned ("--max-transfers", optarg); break;
    case 'r':
      if (df_parse_size (optarg, &cfg.rate_limit) == -1) {
        fprintf (stderr, "tftp-serve: --rate-limit: %s\n", df_error_get ());
        return EXIT_FAILURE;
      }
      break;
    case 'v': df_log_debug_enable ("tftp"); break;
    case 'h': usage (); return EXIT_SUCCESS;
    case 'V': printf ("tftp-serve %s\n", PACKAGE_VERSION); return EXIT_SUCCESS;
    default:
      fprintf (stderr, "Try 'tftp-serve --help'.\n");
      return EXIT_FAILURE;
    }
  }
  if (optind != argc - 1) {
    fprintf (stderr, "tftp-serve: expected one directory; try --help\n");
    return EXIT_FAILURE;
  }
  cfg.root = argv[optind];
  raise_fd_limit ();
  if (serve (listen, port_file, &cfg) == -1) {
    df_log_error ("%s", df_error_get ());
    return EXIT_FAILURE;
  }
  return EXIT_SUCCESS;
}
