/* diskfarm-replicator — what one sync does, as a pure function.
 *
 * Input: the source's manifest (the authority), the manifests of the
 * peers that carry the same store (for fan-out), and what this server
 * holds (one entry per local file of a replicated shape, its hash where
 * known).  Output: one action per file, in the order they may run:
 *
 *   phase 0   layers and boot files (farm: farm.conf)
 *   phase 1   each vDisk's vdisk.conf, once all of that vDisk's phase-0
 *             actions have succeeded (farm: devices.d files)
 *   phase 2   deletions of files the source no longer has (a removed
 *             vDisk's vdisk.conf goes in phase 1, before its layers)
 *
 * So no reader ever sees a vdisk.conf naming a layer that is missing or
 * partial.  No I/O here: the table-driven unit test (test-plan.c) pins
 * every rule down.
 *
 * Per file:
 *   missing here                  -> download; for a layer of at least
 *                                    delta_min, the local layer of its
 *                                    vDisk with the most data as a basis
 *                                    hint: if the new layer turns out to
 *                                    be a base (a merge), it comes as a
 *                                    delta on that basis
 *   same hash and size, same mtime -> nothing
 *   same hash and size, other mtime -> fix mtime (no transfer)
 *   different (or hash unknown)    -> delta on the local file if both are
 *                                    at least delta_min, else download
 *
 * Fan-out: the holders of a file are the source and every peer whose
 * manifest shows it identical; the servers that need it are this one
 * and every peer whose manifest lacks it (sorted by name).  In that
 * order, the first as many servers as there are holders take one
 * holder each; the others wait until more servers hold it.  One source
 * and N servers then take about log2(N + 1) rounds, and the source
 * sends each file about that many times instead of N.  Files under
 * fanout_min, and those listed in go_now (a wait that lasted too long),
 * never wait.
 *
 * With relay (pipelined fan-out, relay.h), nothing waits: in the same
 * order, the first as many servers as there are holders take one
 * holder each, and each next one takes the file from the server
 * holders-count places before it, as that server's copy arrives (a
 * chain per holder: sources = that relay, then the same server's
 * files endpoint, then the holders).  The source sends a file about
 * once, each server about once, and they all run at once.  Files
 * under fanout_min come from the holders directly.
 */
#ifndef DISKFARM_REPL_PLAN_H
#define DISKFARM_REPL_PLAN_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "manifest.h"

#define REPL_SOURCES_MAX 8

/* A local file of a replicated shape. */
struct repl_local {
  const char *path;             /* relative, like manifest paths */
  uint64_t size;
  uint64_t mtime_ns;
  uint64_t allocated;           /* bytes on disk (st_blocks * 512) */
  bool hash_known;
  uint8_t hash[DF_HASH_LEN];
};

struct repl_peer {
  const char *name;
  const struct repl_manifest *m;        /* NULL: not reachable */
};

struct repl_plan_input {
  const char *self;                     /* this server */
  const char *source;                   /* the source server's name */
  const struct repl_manifest *src;      /* its manifest */
  const struct repl_peer *peers;        /* other servers with the store */
  size_t npeers;
  const struct repl_local *local;       /* sorted by path */
  size_t nlocal;
  uint64_t delta_min;                   /* smaller files move whole */
  uint64_t fanout_min;                  /* smaller files never wait */
  const char *const *go_now;            /* sorted paths that must not wait */
  size_t ngo_now;
  bool allow_empty;                     /* an empty source may empty us */
  bool relay;                           /* pipelined fan-out (see above) */
};

enum repl_act {
  REPL_NOTHING,                 /* identical already */
  REPL_DOWNLOAD,                /* whole file (resumable) */
  REPL_DELTA,                   /* librsync delta on basis */
  REPL_FIX_MTIME,               /* content identical, mtime differs */
  REPL_WAIT,                    /* fan-out: a peer gets it first */
  REPL_DELETE,                  /* the source no longer has it */
};

struct repl_action {
  enum repl_act act;
  int phase;                    /* 0, 1, 2 (see above) */
  const char *path;             /* what it acts on */
  char vdisk[DF_NAME_MAX + 1];  /* its vDisk ("" for farm files) */
  const struct repl_file *file; /* the source's entry (NULL for DELETE) */
  const struct repl_local *have;        /* the local file, or NULL */
  const char *basis;            /* DELTA: the local file to patch from;
                                   DOWNLOAD of a layer: a basis hint */
  const char *sources[REPL_SOURCES_MAX];   /* holders, preferred first */
  size_t nsources;
  size_t nrelay;                /* sources[0..nrelay) are relays: their
                                   staged copy, still arriving */
};

struct repl_plan {
  struct repl_action *actions;  /* phase order, then path order */
  size_t nactions;
};

const char *repl_act_name (enum repl_act a);

/* Local files whose hash the plan needs: present, hash unknown, and the
 * same size as the source's (a different size differs anyway).
 */
bool repl_plan_needs_hash (const struct repl_file *src,
                           const struct repl_local *have);

/* Fills out (caller frees with repl_plan_free).  -1 with a message if
 * the input is unusable (an empty source with files here and
 * !allow_empty; an unsorted local list).
 */
int repl_plan_make (const struct repl_plan_input *in, struct repl_plan *out);
void repl_plan_free (struct repl_plan *p);

#endif
