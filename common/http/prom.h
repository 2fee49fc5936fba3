/* diskfarm — Prometheus text exposition format (version 0.0.4), for the
 * /metrics of the daemons.
 *
 *   struct df_prom *p = df_prom_new ();
 *   df_prom_family (p, "diskfarm_http_requests_total", "counter", "...");
 *   df_prom_u64 (p, "diskfarm_http_requests_total", 12, "code", "200", NULL);
 *   df_http_respond_prom (req, p);
 *
 * Label values are escaped; a family's samples follow its family line.
 */
#ifndef DISKFARM_PROM_H
#define DISKFARM_PROM_H

#include <stdint.h>

struct df_prom;
struct df_http_request;

struct df_prom *df_prom_new (void);
void df_prom_free (struct df_prom *p);
/* # HELP and # TYPE lines; type "counter" or "gauge". */
void df_prom_family (struct df_prom *p, const char *name, const char *type,
                     const char *help);
/* One sample; then label name and value pairs, ending with NULL. */
void df_prom_u64 (struct df_prom *p, const char *name, uint64_t v, ...)
  __attribute__ ((sentinel));
void df_prom_double (struct df_prom *p, const char *name, double v, ...)
  __attribute__ ((sentinel));
/* Answers with the text (text/plain; version=0.0.4) and frees p. */
int df_http_respond_prom (struct df_http_request *req, struct df_prom *p);

#endif
