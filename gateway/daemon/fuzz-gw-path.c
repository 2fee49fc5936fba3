/* libFuzzer harness: what the gateway parses of a request path and its
 * headers: the /v1/stores/ route, store and farm paths, Range and ETag
 * lists.
 */
#include <config.h>

#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "http/http.h"
#include "storepath.h"

int LLVMFuzzerTestOneInput (const uint8_t *data, size_t size);

int
LLVMFuzzerTestOneInput (const uint8_t *data, size_t size)
{
  char *s = malloc (size + 1), store[DF_NAME_MAX + 1], dev[DF_NAME_MAX + 1];
  struct df_http_range r[DF_HTTP_MAX_RANGES];
  struct gw_file_ref ref;
  enum gw_store_op op;
  const char *path;
  int n, i;

  if (s == NULL)
    return 0;
  memcpy (s, data, size);
  s[size] = '\0';
  if (gw_store_route_parse (s, store, &op, &path) == 0 && path)
    gw_store_path_parse (path, &ref);
  gw_store_path_parse (s, &ref);
  gw_farm_path_parse (s, dev);
  n = df_http_parse_ranges (s, size * 7 + 3, r, DF_HTTP_MAX_RANGES);
  for (i = 0; i < n; i++)
    if (r[i].len == 0 || r[i].start + r[i].len > size * 7 + 3)
      abort ();                 /* a range outside the resource */
  df_http_etag_match (s, "\"abc\"");
  free (s);
  return 0;
}
