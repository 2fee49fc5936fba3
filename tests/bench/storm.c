/* A small boot storm: N clients at once, each reading a working set and
 * writing a little, like diskless hosts booting together.
 *
 * usage: storm URI-TEMPLATE N READ-MIB WRITE-MIB
 *   URI-TEMPLATE contains %d, replaced by the client number (0..N-1), so
 *   each client may use its own export (dev/pc%03d@storm).
 * Prints the total time, the slowest client's time and the slowest
 * connection (connect and handshake, which opens the export).  The working set
 * is the first READ-MIB of the disk, read in 64 KiB requests in a
 * shuffled order (boot reads are scattered); writes are 4 KiB to 64 KiB
 * at random offsets in the second half of the disk.
 */
#include <config.h>

#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <libnbd.h>

struct client {
  int n;
  char uri[512];
  uint64_t read_bytes, write_bytes;
  double seconds;
  double connect_seconds;
  int failed;
};

static double
now (void)
{
  struct timespec ts;

  clock_gettime (CLOCK_MONOTONIC, &ts);
  return ts.tv_sec + ts.tv_nsec / 1e9;
}

static void *
run_client (void *opaque)
{
  struct client *c = opaque;
  struct nbd_handle *h = nbd_create ();
  char *buf = malloc (65536);
  uint64_t seed = c->n * 2654435761u + 1, i, nreads = c->read_bytes / 65536;
  uint64_t *order = calloc (nreads, sizeof *order);
  int64_t size;
  double start = now ();

  if (h == NULL || buf == NULL || order == NULL)
    goto fail;
  /* A storm overflows listen backlogs: retry like a booting host would. */
  for (i = 0; nbd_connect_uri (h, c->uri) == -1; i++) {
    if (i == 200 || nbd_get_errno () != EAGAIN)
      goto fail;
    nbd_close (h);
    h = nbd_create ();
    if (h == NULL)
      goto fail;
    usleep (10000);
  }
  c->connect_seconds = now () - start;
  if ((size = nbd_get_size (h)) == -1)
    goto fail;
  for (i = 0; i < nreads; i++)
    order[i] = i;
  for (i = nreads; i > 1; i--) {               /* Fisher-Yates */
    uint64_t j;
    seed = seed * 6364136223846793005ULL + 1442695040888963407ULL;
    j = (seed >> 33) % i;
    uint64_t t = order[i - 1]; order[i - 1] = order[j]; order[j] = t;
  }
  for (i = 0; i < nreads; i++)
    if (nbd_pread (h, buf, 65536, order[i] * 65536, 0) == -1)
      goto fail;
  for (i = 0; i < c->write_bytes; ) {
    uint64_t len, off;
    seed = seed * 6364136223846793005ULL + 1442695040888963407ULL;
    len = 4096 << ((seed >> 40) % 5);          /* 4K .. 64K */
    off = (size / 2 + ((seed >> 20) % (size / 2 - 65536))) & ~4095ULL;
    memcpy (buf, &off, sizeof off);
    if (nbd_pwrite (h, buf, len, off, 0) == -1)
      goto fail;
    i += len;
  }
  if ((nbd_can_flush (h) == 1 && nbd_flush (h, 0) == -1) ||
      nbd_shutdown (h, 0) == -1)
    goto fail;
  c->seconds = now () - start;
  nbd_close (h);
  free (buf);
  free (order);
  return NULL;
 fail:
  fprintf (stderr, "storm: client %d: %s\n", c->n, nbd_get_error ());
  c->failed = 1;
  nbd_close (h);
  free (buf);
  free (order);
  return NULL;
}

/* The template with its "%d" (or "%03d") replaced by n. */
static void
make_uri (char *out, size_t len, const char *tmpl, int n)
{
  const char *p = strchr (tmpl, '%');
  const char *end = p ? strchr (p, 'd') : NULL;
  int width = p && end ? atoi (p + 1) : 0;

  if (p == NULL || end == NULL) {
    snprintf (out, len, "%s", tmpl);
    return;
  }
  snprintf (out, len, "%.*s%0*d%s", (int) (p - tmpl), tmpl, width, n, end + 1);
}

int
main (int argc, char **argv)
{
  struct client *clients;
  pthread_t *threads;
  double start, slowest = 0, slowest_connect = 0;
  int n, i, failed = 0;

  if (argc != 5) {
    fprintf (stderr, "usage: storm URI-TEMPLATE N READ-MIB WRITE-MIB\n");
    return 2;
  }
  n = atoi (argv[2]);
  clients = calloc (n, sizeof *clients);
  threads = calloc (n, sizeof *threads);
  if (n <= 0 || clients == NULL || threads == NULL)
    return 2;
  start = now ();
  for (i = 0; i < n; i++) {
    clients[i].n = i;
    make_uri (clients[i].uri, sizeof clients[i].uri, argv[1], i);
    clients[i].read_bytes = strtoull (argv[3], NULL, 10) << 20;
    clients[i].write_bytes = strtoull (argv[4], NULL, 10) << 20;
    if (pthread_create (&threads[i], NULL, run_client, &clients[i]) != 0)
      return 1;
  }
  for (i = 0; i < n; i++) {
    pthread_join (threads[i], NULL);
    failed += clients[i].failed;
    if (clients[i].seconds > slowest)
      slowest = clients[i].seconds;
    if (clients[i].connect_seconds > slowest_connect)
      slowest_connect = clients[i].connect_seconds;
  }
  printf ("clients=%d failed=%d total_s=%.2f slowest_s=%.2f "
          "slowest_connect_s=%.2f\n", n, failed, now () - start, slowest,
          slowest_connect);
  free (clients);
  free (threads);
  return failed ? 1 : 0;
}
