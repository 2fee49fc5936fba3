/* diskfarm — NBD export names (DESIGN.md "Names on the wire").
 *
 *   img/VDISK            the newest production version, read-only
 *   img/VDISK@VERSION    that version, read-only
 *   dev/DEVICE           the device's vDisk through its write cache,
 *                        session "0"
 *   dev/DEVICE@SESSION   the same, in that session
 *   edit/VDISK           the maintenance version, writable, one editor
 *
 * Names are [A-Za-z0-9._-]{1,64} and not "." or "..": a parsed name can
 * be used as one path component.  Anything else is refused.
 */
#ifndef DISKFARM_EXPORT_NAME_H
#define DISKFARM_EXPORT_NAME_H

#include "util.h"

enum df_export_kind {
  DF_EXPORT_IMG,
  DF_EXPORT_DEV,
  DF_EXPORT_EDIT,
};

struct df_export_name {
  enum df_export_kind kind;
  char name[DF_NAME_MAX + 1];
  unsigned version;             /* img: 0 = newest production */
  char session[DF_NAME_MAX + 1];/* dev: "0" when not given */
};

/* Returns 0, or -1 with errno EINVAL and a message quoting the name. */
int df_export_parse (const char *s, struct df_export_name *out);

#endif
