/* Replays fuzz corpora through a libFuzzer entry point, as a unit test.
 *
 * usage: fuzz-NAME-replay FILE|DIR...
 * Every file is fed to LLVMFuzzerTestOneInput once; a crash or a
 * sanitizer report fails the test.  Prints how many inputs ran.
 */
#include <config.h>

#include <dirent.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "util.h"

int LLVMFuzzerTestOneInput (const uint8_t *data, size_t size);

static int
run_file (const char *path)
{
  char *data = NULL;
  size_t len;

  if (df_read_file (path, 16 * 1024 * 1024, &data, &len) == -1) {
    fprintf (stderr, "replay: cannot read %s\n", path);
    return -1;
  }
  LLVMFuzzerTestOneInput ((const uint8_t *) data, len);
  free (data);
  return 0;
}

int
main (int argc, char **argv)
{
  int i, n = 0;

  for (i = 1; i < argc; i++) {
    struct stat st;
    DIR *d;
    struct dirent *de;

    if (stat (argv[i], &st) == -1) {
      fprintf (stderr, "replay: %s: missing\n", argv[i]);
      return 1;
    }
    if (!S_ISDIR (st.st_mode)) {
      if (run_file (argv[i]) == -1)
        return 1;
      n++;
      continue;
    }
    d = opendir (argv[i]);
    while (d && (de = readdir (d)) != NULL) {
      char *p;
      if (de->d_name[0] == '.')
        continue;
      p = df_path_join (argv[i], de->d_name);
      if (p == NULL || run_file (p) == -1)
        return 1;
      free (p);
      n++;
    }
    if (d)
      closedir (d);
  }
  if (n == 0) {
    fprintf (stderr, "replay: no inputs\n");
    return 1;
  }
  printf ("replayed %d inputs\n", n);
  return 0;
}
