/* diskfarm — running helper programs (qemu-img, qemu-nbd) without a shell. */
#ifndef DISKFARM_RUN_H
#define DISKFARM_RUN_H

#include <stddef.h>

/* Runs argv (searched in PATH), waits.  With out != NULL, stdout is
 * captured into a malloc'd NUL-terminated string (caller frees); stderr
 * is captured into the error message on failure.  Returns 0 if the
 * program exited with status 0, else -1 with a message.
 */
int df_run (char *const argv[], char **out);

#endif
