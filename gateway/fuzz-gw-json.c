/* libFuzzer harness: the JSON documents diskfarm status and session
 * list read from the gateways (/v1/status, /v1/vdisks, /v1/sessions):
 * compared as the reports of two servers, and printed.
 */
#include <config.h>

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include <jansson.h>

#include "replicas.h"
#include "status-print.h"

int LLVMFuzzerTestOneInput (const uint8_t *data, size_t size);

static bool
holds (void *opaque, const char *server, const char *store)
{
  (void) opaque;
  (void) store;
  return server[0] == 'a';      /* one carries everything, one nothing */
}

int
LLVMFuzzerTestOneInput (const uint8_t *data, size_t size)
{
  json_t *doc = json_loadb ((const char *) data, size, 0, NULL);
  struct replica_server servers[3] = {
    { "a1", doc }, { "a2", doc }, { "b", doc },
  };
  const char *names[2] = { "a1", "b" };
  json_t *docs[2] = { doc, NULL };
  const char *problems[2] = { NULL, "down" };
  enum replica_verdict worst;
  FILE *out = fopen ("/dev/null", "w");
  json_t *rows;

  if (doc == NULL || out == NULL) {
    if (out)
      fclose (out);
    json_decref (doc);
    return 0;
  }
  rows = replicas_compare (servers, 3, holds, NULL, &worst);
  status_print_replicas (out, rows);
  status_print_servers (out, names, 2, docs, problems);
  status_print_sessions (out, json_object_get (doc, "sessions"));
  status_print_sessions (out, doc);
  json_decref (rows);
  json_decref (doc);
  fclose (out);
  return 0;
}
