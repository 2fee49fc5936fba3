/* diskfarm — the shared-memory file of session figures (stats.c,
 * read.c).  Its layout is private to these two files.
 */
#ifndef DISKFARM_STATS_INT_H
#define DISKFARM_STATS_INT_H

#include <stddef.h>
#include <stdint.h>

#include "stats/stats.h"

#define STATS_MAGIC "DFSTATS1"
#define STATS_FORMAT 2

struct stats_header {
  char magic[8];
  uint32_t format, slot_size, nslots, header_size;
  uint64_t pid;
  uint64_t created_ns;
  char pad[4096 - 40];
};

enum { SLOT_FREE, SLOT_CLAIMED, SLOT_PUBLISHED };

struct stats_slot {
  uint64_t seq;                 /* odd while in_use or identity change */
  uint64_t in_use;              /* SLOT_* */
  uint64_t key;                 /* the publisher's name for the session */
  struct df_stats_identity id;
  uint64_t words[DF_STATS_WORDS] __attribute__ ((aligned (64)));
} __attribute__ ((aligned (64)));

struct stats_file {
  struct stats_header header;
  struct stats_slot slots[];
};

_Static_assert (sizeof (struct stats_header) == 4096, "stats header size");
_Static_assert (sizeof (struct df_stats_identity) % 8 == 0,
                "identities are copied in words");


/* Word-wise relaxed atomic copy; len a multiple of 8. */
void stats_copy_words (void *dst, const void *src, size_t len);
size_t stats_file_size (void);

#endif
