/* diskfarm — logging for daemons (see log.h). */
#include <config.h>

#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "log.h"

#define MAX_DEBUG 16

static const char *program = "diskfarm";
static const char *debug_subsystems[MAX_DEBUG];
static size_t ndebug;
static bool debug_all;
static pthread_mutex_t log_lock = PTHREAD_MUTEX_INITIALIZER;

void
df_log_init (const char *name)
{
  program = name;
}

void
df_log_debug_enable (const char *subsystem)
{
  if (strcmp (subsystem, "all") == 0)
    debug_all = true;
  else if (ndebug < MAX_DEBUG)
    debug_subsystems[ndebug++] = subsystem;
}

bool
df_log_debug_enabled (const char *subsystem)
{
  size_t i;

  if (debug_all)
    return true;
  for (i = 0; i < ndebug; i++)
    if (strcmp (debug_subsystems[i], subsystem) == 0)
      return true;
  return false;
}

static void
vlog (const char *level, const char *fmt, va_list ap)
{
  char line[2048];

  vsnprintf (line, sizeof line, fmt, ap);
  pthread_mutex_lock (&log_lock);
  fprintf (stderr, "%s: %s%s\n", program, level, line);
  pthread_mutex_unlock (&log_lock);
}

void
df_log (enum df_log_level level, const char *fmt, ...)
{
  static const char *const prefix[] = { "error: ", "warning: ", "", "debug: " };
  va_list ap;

  va_start (ap, fmt);
  vlog (prefix[level], fmt, ap);
  va_end (ap);
}

void
df_debug (const char *subsystem, const char *fmt, ...)
{
  char level[64];
  va_list ap;

  if (!df_log_debug_enabled (subsystem))
    return;
  snprintf (level, sizeof level, "debug: %s: ", subsystem);
  va_start (ap, fmt);
  vlog (level, fmt, ap);
  va_end (ap);
}
