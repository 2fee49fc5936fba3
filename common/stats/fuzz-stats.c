/* Fuzz harness: the gateway's reader of session figures (df_stats_read)
 * over a file whose first bytes are the input (the rest of a table's
 * size is zeros), held locked as a live publisher holds it.
 */
#include <config.h>

#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <unistd.h>

#include "stats/stats-int.h"
#include "util.h"

int LLVMFuzzerTestOneInput (const uint8_t *data, size_t size);

static int
visit (const struct df_stats_session *s, void *opaque)
{
  size_t *sum = opaque;
  size_t i;

  *sum += strlen (s->id.device) + strlen (s->id.export_name) +
    strlen (s->id.session) + strlen (s->id.client) + strlen (s->id.vdisk) +
    strlen (s->id.cache_mode) + strlen (df_stats_state_name (s->id.state));
  for (i = 0; i < DF_STATS_WORDS; i++)
    *sum += s->words[i];
  return 0;
}

static char dir[] = "/tmp/diskfarm-fuzz-stats.XXXXXX";

static void
remove_dir (void)
{
  rmdir (dir);
}

int
LLVMFuzzerTestOneInput (const uint8_t *data, size_t size)
{
  static bool made;
  size_t len = stats_file_size (), sum = 0;
  char path[sizeof dir + 32];
  int fd;

  if (!made) {
    if (mkdtemp (dir) == NULL)
      abort ();
    made = true;
    atexit (remove_dir);
  }
  snprintf (path, sizeof path, "%s/nbdkit-1.stats", dir);
  fd = open (path, O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
  if (fd == -1 || ftruncate (fd, len) == -1 ||
      df_pwrite_full (fd, data, size < len ? size : len, 0) == -1 ||
      flock (fd, LOCK_EX) == -1)
    abort ();
  df_stats_read (dir, visit, &sum);
  unlink (path);
  close (fd);
  return 0;
}
