/* libFuzzer harness: INI documents, vDisk manifests and their edits. */
#include <config.h>

#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>

#include "ini/ini.h"
#include "vdisk/vdisk.h"

int LLVMFuzzerTestOneInput (const uint8_t *data, size_t size);

int
LLVMFuzzerTestOneInput (const uint8_t *data, size_t size)
{
  struct df_ini *ini = df_ini_parse ((const char *) data, size, "fuzz");
  struct df_vdisk *vd;

  if (ini) {
    const char **secs = df_ini_sections (ini);
    /* Edits must keep the document parseable. */
    if (secs && secs[0]) {
      df_ini_set (ini, secs[0], "fuzz-key", "value");
      df_ini_remove_section (ini, "vdisk");
      free (df_ini_format (ini, NULL));
    }
    free (secs);
    df_ini_free (ini);
  }
  vd = df_vdisk_parse ((const char *) data, size, "fuzz");
  df_vdisk_free (vd);
  return 0;
}
