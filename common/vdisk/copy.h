/* diskfarm — sparse copy between images (internal to the vdisk module).
 *
 * Sources say where their data is (holes are skipped without reading)
 * and destinations receive only the runs of non-zero data, cut at their
 * granularity, in ascending order, so a sequential layer can take them.
 */
#ifndef DISKFARM_VDISK_COPY_H
#define DISKFARM_VDISK_COPY_H

#include <stdint.h>

#include "bdev/bdev.h"
#include "vdisk/vdisk.h"

struct nbd_handle;
struct df_layer;

struct copy_src {
  uint64_t size;
  /* The first data region at or after off: *start, *end (end > start),
   * or *start = size if there is none.  A source may report zeros as
   * data; the copy checks.
   */
  int (*next_data) (struct copy_src *s, uint64_t off, uint64_t *start,
                    uint64_t *end);
  int (*read) (struct copy_src *s, void *buf, uint32_t len, uint64_t off);
  int fd;
  struct nbd_handle *nbd;
  struct df_bdev *bdev;
};

struct copy_dst {
  uint32_t granularity;
  int (*write) (struct copy_dst *d, const void *buf, uint32_t len,
                uint64_t off);
  int fd;
  struct nbd_handle *nbd;
  struct df_layer *layer;
};

void copy_src_fd (struct copy_src *s, int fd, uint64_t size);
void copy_src_nbd (struct copy_src *s, struct nbd_handle *nbd, uint64_t size);
void copy_src_bdev (struct copy_src *s, struct df_bdev *bdev);
void copy_dst_fd (struct copy_dst *d, int fd);
void copy_dst_nbd (struct copy_dst *d, struct nbd_handle *nbd);
void copy_dst_layer (struct copy_dst *d, struct df_layer *layer);

int copy_image (struct copy_src *s, struct copy_dst *d,
                df_progress_fn progress, void *opaque);

/* Opens an image qemu-img can read: raw files directly, other formats
 * through qemu-nbd.  Fills s; close with copy_src_close.
 */
int copy_src_open_image (struct copy_src *s, const char *path);
void copy_src_close (struct copy_src *s);

#endif
