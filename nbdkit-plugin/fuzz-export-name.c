/* libFuzzer harness: NBD export names. */
#include <config.h>

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "export-name.h"

int LLVMFuzzerTestOneInput (const uint8_t *data, size_t size);

int
LLVMFuzzerTestOneInput (const uint8_t *data, size_t size)
{
  char *s = malloc (size + 1);
  struct df_export_name en;

  if (s == NULL)
    return 0;
  memcpy (s, data, size);
  s[size] = '\0';
  if (df_export_parse (s, &en) == 0 &&
      (!df_name_valid (en.name) ||
       (en.kind == DF_EXPORT_DEV && !df_name_valid (en.session))))
    abort ();                   /* a parsed name must be safe as a path */
  free (s);
  return 0;
}
