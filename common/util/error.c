/* diskfarm — thread-local error messages (see error.h). */
#include <config.h>

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "error.h"

#define ERROR_MAX DF_ERROR_MAX

static _Thread_local char error_buf[ERROR_MAX];
/* The errno the message was recorded with: a message whose errno is no
 * longer current belongs to an earlier failure that was handled.
 */
static _Thread_local int error_errno;

int
df_error (int err, const char *fmt, ...)
{
  va_list ap;

  errno = err;
  va_start (ap, fmt);
  vsnprintf (error_buf, sizeof error_buf, fmt, ap);
  va_end (ap);
  error_errno = err;
  errno = err;
  return -1;
}

int
df_error_errno (const char *fmt, ...)
{
  int err = errno;
  va_list ap;
  size_t len;

  va_start (ap, fmt);
  vsnprintf (error_buf, sizeof error_buf, fmt, ap);
  va_end (ap);
  len = strlen (error_buf);
  snprintf (error_buf + len, sizeof error_buf - len, ": %s", strerror (err));
  error_errno = err;
  errno = err;
  return -1;
}

void
df_error_prefix (const char *fmt, ...)
{
  char prefix[ERROR_MAX], old[ERROR_MAX];
  int err = errno;
  va_list ap;

  va_start (ap, fmt);
  vsnprintf (prefix, sizeof prefix, fmt, ap);
  va_end (ap);
  /* The failure below may have set errno only: prefix its text. */
  snprintf (old, sizeof old, "%s", df_error_get ());
  /* Cut the prefix rather than the message when both do not fit. */
  if (strlen (prefix) > ERROR_MAX / 2)
    prefix[ERROR_MAX / 2] = '\0';
  if (snprintf (error_buf, sizeof error_buf, "%.*s: %.*s", ERROR_MAX / 2,
                prefix, ERROR_MAX / 2 - 3, old) < 0)
    error_buf[0] = '\0';
  error_errno = err;
  errno = err;
}

const char *
df_error_get (void)
{
  if (error_buf[0] == '\0' || error_errno != errno)
    return strerror (errno);
  return error_buf;
}

void
df_error_clear (void)
{
  error_buf[0] = '\0';
  error_errno = 0;
}

void
df_error_save (struct df_error_saved *s)
{
  s->err = errno;
  s->recorded = error_errno;
  memcpy (s->msg, error_buf, sizeof s->msg);
}

void
df_error_restore (const struct df_error_saved *s)
{
  memcpy (error_buf, s->msg, sizeof error_buf);
  error_errno = s->recorded;
  errno = s->err;
}
