/* libFuzzer harness: kernel command lines and option values as
 * diskfarm-attach parses them.
 */
#include <config.h>

#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "options.h"

int LLVMFuzzerTestOneInput (const uint8_t *data, size_t size);

int
LLVMFuzzerTestOneInput (const uint8_t *data, size_t size)
{
  struct attach_options o;
  struct attach_server srv;
  char *text = malloc (size + 1);
  unsigned found;

  if (text == NULL)
    return 0;
  memcpy (text, data, size);
  text[size] = '\0';
  attach_options_init (&o);
  if (attach_options_parse_cmdline (&o, text, NULL, &found) == 0)
    attach_options_check (&o);
  attach_server_parse (text, &srv);
  free (text);
  return 0;
}
