/* diskfarm status, diskfarm session list — the farm as its servers'
 * gateways see it: up or down, load, sessions, and whether every server
 * holds identical replicas of every version.
 */
#include <config.h>

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cleanup.h"
#include "cli.h"
#include "error.h"
#include "gwapi/gwclient.h"
#include "replicas.h"
#include "status-print.h"
#include "util.h"

static const char status_usage[] =
  "Usage: diskfarm status [--json] [--timeout SECS]\n"
  "Asks every server's gateway for its state and load, and compares the\n"
  "replicas of each vDisk version across the servers that carry its\n"
  "store: identical, missing, differs or incomplete.\n"
  "\n"
  "Exit status: 0 when every server answered and every replica is\n"
  "identical, 1 when some replica is not, 2 when some server could not\n"
  "be asked.\n"
  "\n"
  "  --timeout SECS   how long to wait for the servers (default 10)\n"
  "\nGlobal options: --farm DIR, --json, -v.\n";

static const char session_usage[] =
  "Usage: diskfarm session list [--json] [--timeout SECS]\n"
  "The live device sessions of every server (from their gateways).\n"
  "Exit status 2 when some server could not be asked.\n"
  "\nGlobal options: --farm DIR, --json, -v.\n";

#define OPT_TIMEOUT 0x3000

/* The farm's servers and a client for their gateways. */
struct farm_view {
  struct df_farm *farm;
  struct df_gw_client *client;
  const char **servers;
  size_t n;
};

static void
view_free (struct farm_view *v)
{
  df_gw_client_free (v->client);
  free (v->servers);
  df_farm_free (v->farm);
}

static int
view_open (struct cli *cli, struct farm_view *v, long timeout_ms)
{
  memset (v, 0, sizeof *v);
  v->farm = cli_open_farm (cli);
  if (v->farm == NULL)
    return -1;
  v->client = df_gw_client_new (v->farm);
  v->servers = df_farm_names (v->farm, DF_KIND_SERVER);
  if (v->client == NULL || v->servers == NULL) {
    cli_fail (NULL);
    view_free (v);
    return -1;
  }
  df_gw_client_set_timeout (v->client, timeout_ms);
  while (v->servers[v->n])
    v->n++;
  return 0;
}

static int
parse_common (struct cli *cli, int argc, char **argv, const char *usage,
              long *timeout_ms)
{
  static const struct option opts[] = {
    { "timeout", required_argument, NULL, OPT_TIMEOUT },
    { NULL },
  };
  uint64_t secs;
  int c;

  *timeout_ms = 10000;
  while ((c = cli_getopt (cli, argc, argv, "", opts, usage)) != -1)
    if (c == OPT_TIMEOUT) {
      if (df_parse_u64 (optarg, &secs) == -1 || secs == 0 || secs > 3600)
        return cli_usage_error (usage, "--timeout \"%s\" is not 1 to 3600 "
                                "seconds", optarg), -1;
      *timeout_ms = secs * 1000;
    }
  if (optind < argc)
    return cli_usage_error (usage, "unexpected argument \"%s\"",
                            argv[optind]), -1;
  return 0;
}

/* ---- status ---- */

static bool
holds (void *opaque, const char *server, const char *store)
{
  return df_farm_server_holds (opaque, server, store);
}

static void
print_servers (const struct farm_view *v, const struct df_gw_result *st,
               const struct df_gw_result *vd)
{
  json_t **docs = calloc (v->n + 1, sizeof *docs);
  const char **problems = calloc (v->n + 1, sizeof *problems);
  size_t i;

  if (docs == NULL || problems == NULL)
    abort ();
  for (i = 0; i < v->n; i++) {
    docs[i] = st[i].doc;
    problems[i] = st[i].doc ? (vd[i].doc ? NULL : vd[i].error) : st[i].error;
  }
  status_print_servers (stdout, v->servers, v->n, docs, problems);
  free (docs);
  free (problems);
}

static json_t *
servers_json (const struct farm_view *v, const struct df_gw_result *st,
              const struct df_gw_result *vd)
{
  json_t *a = json_array ();
  size_t i;

  for (i = 0; i < v->n; i++) {
    json_t *o = json_pack ("{s:s, s:s}", "name", v->servers[i], "state",
                           st[i].doc ? "up" : "down");
    if (st[i].doc)
      json_object_set (o, "status", st[i].doc);
    if (!st[i].doc || !vd[i].doc)
      json_object_set_new (o, "error", json_string (st[i].doc ? vd[i].error :
                                                    st[i].error));
    json_array_append_new (a, o);
  }
  return a;
}

int
cli_status (struct cli *cli, int argc, char **argv)
{
  struct farm_view v;
  struct df_gw_result *st, *vd;
  struct replica_server *rs;
  enum replica_verdict worst;
  json_t *rows;
  long timeout;
  size_t i, up_st, up_vd;
  int r;

  if (parse_common (cli, argc, argv, status_usage, &timeout) == -1 ||
      view_open (cli, &v, timeout) == -1)
    return 2;
  st = calloc (v.n + 1, sizeof *st);
  vd = calloc (v.n + 1, sizeof *vd);
  rs = calloc (v.n + 1, sizeof *rs);
  if (st == NULL || vd == NULL || rs == NULL)
    abort ();
  up_st = df_gw_get_json_many (v.client, v.servers, v.n, "/v1/status", st);
  up_vd = df_gw_get_json_many (v.client, v.servers, v.n, "/v1/vdisks", vd);
  for (i = 0; i < v.n; i++)
    rs[i] = (struct replica_server) { v.servers[i], vd[i].doc };
  rows = replicas_compare (rs, v.n, holds, v.farm, &worst);
  r = up_st < v.n || up_vd < v.n ? 2 : worst != VERDICT_IDENTICAL ? 1 : 0;
  if (cli->json)
    cli_print_json (json_pack ("{s:o, s:o, s:i}", "servers",
                               servers_json (&v, st, vd), "replicas",
                               rows ? rows : json_array (), "exit", r));
  else {
    print_servers (&v, st, vd);
    putchar ('\n');
    status_print_replicas (stdout, rows);
    json_decref (rows);
  }
  for (i = 0; i < v.n; i++) {
    df_gw_result_clear (&st[i]);
    df_gw_result_clear (&vd[i]);
  }
  free (st);
  free (vd);
  free (rs);
  view_free (&v);
  return r;
}

/* ---- session list ---- */

static int
session_list (struct cli *cli, int argc, char **argv)
{
  struct farm_view v;
  struct df_gw_result *res;
  json_t *all = json_array (), *errors = json_array (), *s;
  long timeout;
  size_t i, k, up;

  if (parse_common (cli, argc, argv, session_usage, &timeout) == -1 ||
      view_open (cli, &v, timeout) == -1)
    return 2;
  res = calloc (v.n + 1, sizeof *res);
  if (res == NULL)
    abort ();
  up = df_gw_get_json_many (v.client, v.servers, v.n, "/v1/sessions", res);
  for (i = 0; i < v.n; i++) {
    if (res[i].doc == NULL)
      json_array_append_new (errors, json_string (res[i].error));
    json_array_foreach (json_object_get (res[i].doc, "sessions"), k, s)
      if (json_is_object (s)) {
        json_object_set_new (s, "server", json_string (v.servers[i]));
        json_array_append (all, s);
      }
    df_gw_result_clear (&res[i]);
  }
  if (cli->json)
    cli_print_json (json_pack ("{s:o, s:o}", "sessions", all, "errors",
                               errors));
  else {
    status_print_sessions (stdout, all);
    json_array_foreach (errors, i, s)
      cli_error ("%s", json_string_value (s));
    json_decref (all);
    json_decref (errors);
  }
  free (res);
  view_free (&v);
  return up < v.n ? 2 : 0;
}

int
cli_session (struct cli *cli, int argc, char **argv)
{
  static const char *const subs[] = { "list", NULL };

  switch (cli_subcommand (cli, &argc, &argv, subs, session_usage)) {
  case 0: return session_list (cli, argc, argv);
  default: return 1;
  }
}
