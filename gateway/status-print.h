/* diskfarm status and session list — the tables they print from the
 * gateways' documents (status-print.c).  Fuzzed with arbitrary
 * documents (tests/fuzz/fuzz-gw-json.c).
 */
#ifndef DISKFARM_STATUS_PRINT_H
#define DISKFARM_STATUS_PRINT_H

#include <stddef.h>
#include <stdio.h>

#include <jansson.h>

/* One row per server: docs[i] its /v1/status (NULL: down), problems[i]
 * what went wrong (may be NULL).
 */
void status_print_servers (FILE *fp, const char *const *names, size_t n,
                           json_t *const *docs, const char *const *problems);
/* The rows of replicas_compare. */
void status_print_replicas (FILE *fp, json_t *rows);
/* Sessions of /v1/sessions, each with a "server". */
void status_print_sessions (FILE *fp, json_t *sessions);

#endif
