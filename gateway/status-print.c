/* diskfarm status and session list — their tables, from the gateways'
 * JSON documents (see status-print.h).  Any document prints: what is
 * missing or of another type shows as "-".
 */
#include <config.h>

#include <stdio.h>
#include <string.h>

#include "cli.h"
#include "status-print.h"
#include "util.h"

static const char *
jstr (json_t *o, const char *key)
{
  return json_string_value (json_object_get (o, key));
}

void
status_print_servers (FILE *fp, const char *const *names, size_t n,
                      json_t *const *docs, const char *const *problems)
{
  static const char *const head[] = {
    "SERVER", "STATE", "LOAD", "SESSIONS", "BOOTING", "VERSION", "PROBLEM",
    NULL
  };
  struct cli_table *t = cli_table_new (head);
  size_t i;

  for (i = 0; i < n; i++) {
    char load[32] = "", sess[16] = "", boot[16] = "";
    json_t *d = json_is_object (docs[i]) ? docs[i] : NULL;
    if (d) {
      snprintf (load, sizeof load, "%.2f",
                json_number_value (json_object_get (d, "load")));
      snprintf (sess, sizeof sess, "%lld",
                (long long) json_integer_value (json_object_get (d, "sessions")));
      snprintf (boot, sizeof boot, "%lld",
                (long long) json_integer_value (json_object_get (d, "booting")));
    }
    cli_table_add (t, (const char *const[]) {
      names[i], d ? "up" : "down", d ? load : NULL, d ? sess : NULL,
      d ? boot : NULL, d ? jstr (d, "version") : NULL, problems[i] });
  }
  cli_table_fprint (t, fp);
}

void
status_print_replicas (FILE *fp, json_t *rows)
{
  static const char *const head[] = {
    "VDISK", "VERSION", "STATE", "REPLICAS", "PENDING", "SERVERS", NULL
  };
  struct cli_table *t = cli_table_new (head);
  json_t *r, *per;
  const char *name;
  size_t i;

  json_array_foreach (rows, i, r) {
    char num[16], servers[512] = "", pending[256] = "";
    json_t *p;
    size_t k;
    snprintf (num, sizeof num, "%lld",
              (long long) json_integer_value (json_object_get (r, "version")));
    json_object_foreach (json_object_get (r, "servers"), name, per) {
      const char *rep = jstr (per, "replica");
      const char *ver = jstr (per, "verified");
      snprintf (servers + strlen (servers), sizeof servers - strlen (servers),
                "%s%s:%s", servers[0] ? " " : "", name,
                ver && strcmp (ver, "failed") == 0 ? "damaged" :
                ver && strcmp (ver, "pending") == 0 ? "checking" :
                rep ? rep : "?");
    }
    json_array_foreach (json_object_get (r, "pending"), k, p)
      snprintf (pending + strlen (pending), sizeof pending - strlen (pending),
                "%s%s", k ? "," : "", json_string_value (p));
    cli_table_add (t, (const char *const[]) {
      jstr (r, "vdisk"), num, jstr (r, "state"), jstr (r, "replicas"),
      pending[0] ? pending : "-", servers });
  }
  cli_table_fprint (t, fp);
}

void
status_print_sessions (FILE *fp, json_t *all)
{
  static const char *const head[] = {
    "SERVER", "DEVICE", "SESSION", "STATE", "CLIENT", "VDISK", "CONN",
    "READ", "WRITTEN", "CACHE", NULL
  };
  struct cli_table *t = cli_table_new (head);
  json_t *s;
  size_t i;

  json_array_foreach (all, i, s) {
    char vdisk[96], conn[16], rd[32], wr[32], cache[32];
    snprintf (vdisk, sizeof vdisk, "%s@%lld", jstr (s, "vdisk") ?: "?",
              (long long) json_integer_value (json_object_get (s, "version")));
    snprintf (conn, sizeof conn, "%lld", (long long)
              json_integer_value (json_object_get (s, "connections")));
    df_format_size (json_integer_value (json_object_get (s, "bytes_read")),
                    rd, sizeof rd);
    df_format_size (json_integer_value (json_object_get (s, "bytes_written")),
                    wr, sizeof wr);
    df_format_size (json_integer_value (json_object_get (s, "cache_bytes")),
                    cache, sizeof cache);
    cli_table_add (t, (const char *const[]) {
      jstr (s, "server"), jstr (s, "device"), jstr (s, "session"),
      jstr (s, "state"), jstr (s, "client"), vdisk, conn, rd, wr, cache });
  }
  cli_table_fprint (t, fp);
}

