/* diskfarm — error reporting from library code.
 *
 * Library functions do not print.  On failure they return -1 (or NULL),
 * leave errno set and record a message in a thread-local buffer that
 * names what failed (the file, the field, the value).  The program that
 * called them reports df_error_get() once, where it has the context.
 * Every failure records its own message: a path that fails with errno
 * alone would report whatever text an earlier, handled failure left.
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

/* The last message of this thread, if errno is still the one it was
 * recorded with; else the text of errno.  Never NULL.  Valid until the
 * next df_error* call in the same thread.
 */
const char *df_error_get (void);

/* Forgets the message.  Call it where a failure is handled and not
 * passed on (an ENOENT that means "create it", a retry that worked), so
 * that the text cannot be reported later for another failure.
 */
void df_error_clear (void);

/* Keeps the message and errno of a failure across cleanup that may fail
 * in turn (removing a half-made file, closing a layer):
 *   struct df_error_saved saved;
 *   df_error_save (&saved);  cleanup...;  df_error_restore (&saved);
 */
#define DF_ERROR_MAX 1024
struct df_error_saved {
  int err, recorded;
  char msg[DF_ERROR_MAX];
};
void df_error_save (struct df_error_saved *s);
void df_error_restore (const struct df_error_saved *s);

#endif
