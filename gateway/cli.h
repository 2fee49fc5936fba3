/* diskfarm CLI — shared between the command files. */
#ifndef DISKFARM_CLI_H
#define DISKFARM_CLI_H

#include <getopt.h>
#include <stdbool.h>
#include <stdio.h>

#include <jansson.h>

#include "farm/farm.h"

struct cli {
  const char *farm_dir;
  const char *server;           /* --server, for store paths */
  bool json;
  int verbose;
};

struct cli_command {
  const char *name;
  int (*run) (struct cli *cli, int argc, char **argv);
  const char *summary;
};

/* Long options every command takes; cli_getopt appends them. */
enum { OPT_FARM = 0x1000, OPT_JSON, OPT_SERVER, OPT_HELP };

/* getopt_long over the command's options plus the global ones.  Returns
 * like getopt_long; handles the global ones itself.  On --help prints
 * usage to stdout and exits 0; on a bad option exits 1.  shortopts
 * starting with '+' stop at the first non-option (for dispatch).
 */
int cli_getopt (struct cli *cli, int argc, char **argv, const char *shortopts,
                const struct option *longopts, const char *usage);
/* Prints "diskfarm: message" to stderr. */
void cli_error (const char *fmt, ...) __attribute__ ((format (printf, 1, 2)));
/* Prints df_error_get() with the prefix; returns 1 (the exit status). */
int cli_fail (const char *fmt, ...) __attribute__ ((format (printf, 1, 2)));
/* Prints usage to stderr with a message; returns 1. */
int cli_usage_error (const char *usage, const char *fmt, ...)
  __attribute__ ((format (printf, 2, 3)));

/* Opens the farm (--farm, $DISKFARM_FARM, default); prints and returns
 * NULL on error.
 */
struct df_farm *cli_open_farm (struct cli *cli);

/* Prints a JSON value to stdout (indented) and frees it; returns 0. */
int cli_print_json (json_t *v);

/* A simple aligned table on stdout. */
struct cli_table;
struct cli_table *cli_table_new (const char *const *headers);
void cli_table_add (struct cli_table *t, const char *const *cells);
void cli_table_print (struct cli_table *t);   /* and frees */
void cli_table_fprint (struct cli_table *t, FILE *fp);     /* and frees */

/* Progress on stderr when it is a terminal (and not --json). */
struct cli_progress {
  const char *label;
  unsigned long long start_ns;
  int last_percent;
  bool enabled;
};
void cli_progress_init (struct cli_progress *p, struct cli *cli,
                        const char *label);
void cli_progress_cb (void *opaque, uint64_t done, uint64_t total);
void cli_progress_done (struct cli_progress *p);

/* Parses global options up to the subcommand word and shifts argv so
 * that argv[0] is it; returns its index in names, or -1 (printed).
 */
int cli_subcommand (struct cli *cli, int *argc, char ***argv,
                    const char *const *names, const char *usage);

int cli_init (struct cli *cli, int argc, char **argv);
int cli_objects (struct cli *cli, enum df_kind k, int argc, char **argv);
int cli_vdisk (struct cli *cli, int argc, char **argv);
int cli_version (struct cli *cli, int argc, char **argv);
int cli_status (struct cli *cli, int argc, char **argv);
int cli_session (struct cli *cli, int argc, char **argv);

#endif
