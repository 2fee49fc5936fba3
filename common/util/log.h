/* diskfarm — logging for daemons (bootsvc, gateway).
 *
 * Daemons log to stderr (the journal under systemd), one line per event,
 * prefixed with the program name and a level.  Library code (libdiskfarm)
 * does not log; daemon modules do, through this.
 *
 * Debug output is per subsystem: df_log_debug_enable ("tftp") or "all"
 * (the -D SUBSYSTEM / -v options of the daemons).
 */
#ifndef DISKFARM_LOG_H
#define DISKFARM_LOG_H

#include <stdbool.h>

enum df_log_level { DF_LOG_ERROR, DF_LOG_WARNING, DF_LOG_INFO, DF_LOG_DEBUG };

void df_log_init (const char *program);
void df_log_debug_enable (const char *subsystem);
bool df_log_debug_enabled (const char *subsystem);

void df_log (enum df_log_level level, const char *fmt, ...)
  __attribute__ ((format (printf, 2, 3)));
/* Printed only when debugging of subsystem is enabled. */
void df_debug (const char *subsystem, const char *fmt, ...)
  __attribute__ ((format (printf, 2, 3)));

#define df_log_error(...) df_log (DF_LOG_ERROR, __VA_ARGS__)
#define df_log_warning(...) df_log (DF_LOG_WARNING, __VA_ARGS__)
#define df_log_info(...) df_log (DF_LOG_INFO, __VA_ARGS__)

#endif
