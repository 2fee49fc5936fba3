/* diskfarm — error reporting from library code.
 *
 * Library functions do not print.  On failure they return -1 (or NULL),
 * leave errno set and record a message in a thread-local buffer that
 * names what failed (the file, the field, the value).  The program that
 * called them reports df_error_get() once, where it has the context.
 */
#ifndef DISKFARM_ERROR_H
#define DISKFARM_ERROR_H

#include <errno.h>

/* Records a message and sets errno to err.  The message is formatted
 * before errno changes, so %m in fmt refers to err.  Returns -1 so that
 * "return df_error (EINVAL, ...)" reads naturally.
 */
int df_error (int err, const char *fmt, ...)
  __attribute__ ((format (printf, 2, 3)));

/* Like df_error, but keeps the existing errno and appends ": %m". */
int df_error_errno (const char *fmt, ...)
  __attribute__ ((format (printf, 1, 2)));

/* Prefixes the current message with "prefix: ", errno unchanged. */
void df_error_prefix (const char *fmt, ...)
  __attribute__ ((format (printf, 1, 2)));

/* The last message of this thread; never NULL.  Valid until the next
 * df_error* call in the same thread.
 */
const char *df_error_get (void);

void df_error_clear (void);

#endif
