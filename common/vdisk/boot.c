/* diskfarm — a vDisk's network-boot files and parameters (see vdisk.h). */
#include <config.h>

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "cleanup.h"
#include "error.h"
#include "util.h"
#include "vdisk/vdisk.h"

/* The last component of a path ("vmlinuz" of "boot/vmlinuz"), or NULL. */
static const char *
base_name (const char *path)
{
  const char *slash = path ? strrchr (path, '/') : NULL;

  return slash ? slash + 1 : path;
}

/* A kernel or initrd worth copying: a regular file with something in it. */
static int
check_source (const char *src, const char *what)
{
  struct stat st;

  if (stat (src, &st) == -1)
    return df_error_errno ("%s %s", what, src);
  if (!S_ISREG (st.st_mode) || st.st_size == 0)
    return df_error (EINVAL, "%s %s is not a non-empty regular file", what,
                     src);
  return 0;
}

/* Copies a boot file in as boot/ and its own name (fallback if that is
 * not a plain name or is avoid, the other boot file's); *field becomes
 * "boot/NAME", *old the path it replaces (to delete once the manifest
 * is saved), or NULL.
 */
static int
install_file (struct df_vdisk *vd, const char *src, const char *fallback,
              const char *avoid, char **field, char **old)
{
  const char *base = base_name (src);
  CLEANUP_FREE char *bootdir = NULL, *dst = NULL;
  char *rel = NULL;

  if (check_source (src, fallback) == -1)
    return -1;
  if (base == NULL || !df_name_valid (base) ||
      (avoid && strcmp (base, avoid) == 0))
    base = fallback;
  bootdir = df_path_join (vd->dir, "boot");
  dst = bootdir ? df_path_join (bootdir, base) : NULL;
  if (dst == NULL || asprintf (&rel, "boot/%s", base) == -1)
    return df_error_errno ("%s", vd->name);
  if (df_mkdir_p (bootdir, 0755) == -1 ||
      df_copy_file_atomic (src, dst, 0644) == -1) {
    free (rel);
    return -1;
  }
  *old = NULL;
  if (*field && strcmp (*field, rel) != 0)
    *old = df_path_join (vd->dir, *field);
  free (*field);
  *field = rel;
  return 0;
}

static int
set_cmdline (struct df_vdisk *vd, const char *cmdline)
{
  free (vd->boot_cmdline);
  vd->boot_cmdline = NULL;
  if (cmdline[0] && (vd->boot_cmdline = strdup (cmdline)) == NULL)
    return df_error_errno ("%s", vd->name);
  return 0;
}

int
df_vdisk_set_boot (const char *store, const char *name,
                   const struct df_boot_files *b)
{
  CLEANUP_CLOSE int lock = -1;
  CLEANUP_FREE char *old_kernel = NULL, *old_initrd = NULL;
  struct df_vdisk *vd = NULL;
  int r = -1;

  /* Refuse bad parameters before copying anything. */
  if (b->cmdline && df_boot_cmdline_check (b->cmdline) == -1)
    return -1;
  lock = df_vdisk_lock (store, name);
  if (lock == -1 || (vd = df_vdisk_load (store, name)) == NULL)
    return -1;
  if (b->kernel && install_file (vd, b->kernel, "kernel",
                                 base_name (vd->boot_initrd),
                                 &vd->boot_kernel, &old_kernel) == -1)
    goto out;
  if (b->initrd && install_file (vd, b->initrd, "initrd",
                                 base_name (vd->boot_kernel),
                                 &vd->boot_initrd, &old_initrd) == -1)
    goto out;
  if (b->cmdline && set_cmdline (vd, b->cmdline) == -1)
    goto out;
  if ((b->kernel || b->initrd || b->cmdline) && df_vdisk_save (vd) == -1)
    goto out;
  /* The manifest no longer names them: files replaced by new names. */
  if (old_kernel)
    unlink (old_kernel);
  if (old_initrd)
    unlink (old_initrd);
  r = 0;
 out:
  df_vdisk_free (vd);
  return r;
}
