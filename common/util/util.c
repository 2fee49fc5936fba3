/* diskfarm — small helpers shared by every program (see util.h). */
#include <config.h>

#include <ctype.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "cleanup.h"
#include "error.h"
#include "util.h"

bool
df_name_valid (const char *name)
{
  size_t i;

  if (name == NULL || name[0] == '\0')
    return false;
  if (strcmp (name, ".") == 0 || strcmp (name, "..") == 0)
    return false;
  for (i = 0; name[i]; i++) {
    unsigned char c = name[i];
    if (i >= DF_NAME_MAX)
      return false;
    if (!(isascii (c) && (isalnum (c) || c == '.' || c == '_' || c == '-')))
      return false;
  }
  return true;
}

int
df_name_check (const char *what, const char *name)
{
  char q[96];

  if (df_name_valid (name))
    return 0;
  if (name == NULL || name[0] == '\0')
    return df_error (EINVAL, "%s name is empty", what);
  if (strlen (name) > DF_NAME_MAX)
    return df_error (EINVAL, "%s name \"%s...\" is longer than %d characters",
                     what, df_quote (name, q, 40), DF_NAME_MAX);
  return df_error (EINVAL,
                   "invalid %s name \"%s\" (use 1-%d of A-Z a-z 0-9 . _ -, "
                   "not \".\" or \"..\")",
                   what, df_quote (name, q, sizeof q), DF_NAME_MAX);
}

const char *
df_quote (const char *s, char *buf, size_t n)
{
  size_t o = 0;

  if (n == 0)
    return buf;
  for (; s && *s && o + 1 < n; s++) {
    unsigned char c = *s;
    if (c >= 0x20 && c < 0x7f && c != '"' && c != '\\')
      buf[o++] = c;
    else if (o + 5 < n)
      o += snprintf (buf + o, n - o, "\\x%02x", c);
    else
      break;
  }
  buf[o] = '\0';
  return buf;
}

int
df_parse_u64 (const char *s, uint64_t *out)
{
  char *end;
  unsigned long long v;

  if (s == NULL || !isdigit ((unsigned char) *s))
    return df_error (EINVAL, "\"%s\" is not a number", s ? s : "");
  errno = 0;
  v = strtoull (s, &end, 10);
  if (errno == ERANGE || *end != '\0')
    return df_error (EINVAL, "\"%s\" is not a number", s);
  *out = v;
  return 0;
}

int
df_parse_size (const char *s, uint64_t *out)
{
  char *end;
  unsigned long long v;
  unsigned shift = 0;
  char q[64];

  if (s == NULL || !isdigit ((unsigned char) *s))
    goto bad;
  errno = 0;
  v = strtoull (s, &end, 10);
  if (errno == ERANGE)
    goto bad;
  switch (toupper ((unsigned char) *end)) {
  case '\0': break;
  case 'K': shift = 10; end++; break;
  case 'M': shift = 20; end++; break;
  case 'G': shift = 30; end++; break;
  case 'T': shift = 40; end++; break;
  case 'B': break;
  default: goto bad;
  }
  if (shift && (*end == 'i' || *end == 'I'))
    end++;
  if (*end == 'B' || *end == 'b')
    end++;
  if (*end != '\0')
    goto bad;
  if (shift && v > (UINT64_MAX >> shift))
    return df_error (ERANGE, "size \"%s\" is too large", df_quote (s, q, sizeof q));
  *out = (uint64_t) v << shift;
  return 0;

 bad:
  return df_error (EINVAL, "\"%s\" is not a size (e.g. 4096, 64K, 2G)",
                   df_quote (s, q, sizeof q));
}

const char *
df_format_size (uint64_t n, char *buf, size_t len)
{
  static const char *const units[] = { "B", "KiB", "MiB", "GiB", "TiB", "PiB" };
  double v = n;
  unsigned u = 0;

  while (v >= 1024 && u + 1 < sizeof units / sizeof units[0]) {
    v /= 1024;
    u++;
  }
  if (u == 0)
    snprintf (buf, len, "%" PRIu64 " B", n);
  else
    snprintf (buf, len, "%.1f %s", v, units[u]);
  return buf;
}

int
df_parse_bool (const char *s, bool *out)
{
  static const char *const yes[] = { "1", "yes", "true", "on", NULL };
  static const char *const no[] = { "0", "no", "false", "off", NULL };
  size_t i;

  for (i = 0; s && yes[i]; i++)
    if (strcasecmp (s, yes[i]) == 0) {
      *out = true;
      return 0;
    }
  for (i = 0; s && no[i]; i++)
    if (strcasecmp (s, no[i]) == 0) {
      *out = false;
      return 0;
    }
  return df_error (EINVAL, "\"%s\" is not a boolean (yes/no)", s ? s : "");
}

static int
hexval (int c)
{
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

int
df_parse_mac (const char *s, uint8_t mac[6])
{
  char q[40];
  int i;

  if (s == NULL || strlen (s) != 17)
    goto bad;
  for (i = 0; i < 6; i++) {
    int hi = hexval (s[i * 3]), lo = hexval (s[i * 3 + 1]);
    char sep = s[i * 3 + 2];
    if (hi < 0 || lo < 0)
      goto bad;
    if (i < 5 && sep != ':' && sep != '-')
      goto bad;
    mac[i] = hi << 4 | lo;
  }
  return 0;
 bad:
  return df_error (EINVAL, "\"%s\" is not a MAC address (like 52:54:00:12:34:56)",
                   df_quote (s, q, sizeof q));
}

const char *
df_format_mac (const uint8_t mac[6], char *buf)
{
  snprintf (buf, 18, "%02x:%02x:%02x:%02x:%02x:%02x",
            mac[0], mac[1], mac[2], mac[3], mac[4], mac[5]);
  return buf;
}

int
df_mkdir_p (const char *path, mode_t mode)
{
  CLEANUP_FREE char *copy = strdup (path);
  char *p;

  if (copy == NULL)
    return df_error_errno ("%s", path);
  for (p = copy + 1; ; p++) {
    if (*p == '/' || *p == '\0') {
      char saved = *p;
      *p = '\0';
      if (mkdir (copy, mode) == -1 && errno != EEXIST)
        return df_error_errno ("mkdir %s", copy);
      *p = saved;
      if (saved == '\0')
        break;
    }
  }
  return 0;
}

static int
remove_at (int parent, const char *name)
{
  struct stat st;
  int fd;
  DIR *d;
  struct dirent *de;
  int r = 0;

  if (fstatat (parent, name, &st, AT_SYMLINK_NOFOLLOW) == -1)
    return errno == ENOENT ? 0 : -1;
  if (!S_ISDIR (st.st_mode))
    return unlinkat (parent, name, 0);
  fd = openat (parent, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
  if (fd == -1)
    return -1;
  d = fdopendir (fd);
  if (d == NULL) {
    close (fd);
    return -1;
  }
  while ((de = readdir (d)) != NULL) {
    if (strcmp (de->d_name, ".") == 0 || strcmp (de->d_name, "..") == 0)
      continue;
    if (remove_at (dirfd (d), de->d_name) == -1)
      r = -1;
  }
  closedir (d);
  if (r == 0)
    r = unlinkat (parent, name, AT_REMOVEDIR);
  return r;
}

int
df_remove_tree (const char *path)
{
  if (remove_at (AT_FDCWD, path) == -1)
    return df_error_errno ("remove %s", path);
  return 0;
}

int
df_file_stamp_get (const char *path, struct df_file_stamp *out)
{
  struct stat st;

  memset (out, 0, sizeof *out);
  if (stat (path, &st) == -1)
    return df_error_errno ("%s", path);
  out->dev = st.st_dev;
  out->ino = st.st_ino;
  out->size = st.st_size;
  out->mtime = st.st_mtim;
  out->ctime = st.st_ctim;
  return 0;
}

static bool
same_timespec (struct timespec a, struct timespec b)
{
  return a.tv_sec == b.tv_sec && a.tv_nsec == b.tv_nsec;
}

bool
df_file_stamp_equal (const struct df_file_stamp *a,
                     const struct df_file_stamp *b)
{
  return a->dev == b->dev && a->ino == b->ino && a->size == b->size &&
    same_timespec (a->mtime, b->mtime) && same_timespec (a->ctime, b->ctime);
}

char *
df_path_join (const char *dir, const char *name)
{
  char *r;

  if (asprintf (&r, "%s/%s", dir, name) == -1) {
    df_error_errno ("%s/%s", dir, name);
    return NULL;
  }
  return r;
}

uint64_t
df_now_mono_ns (void)
{
  struct timespec ts;

  clock_gettime (CLOCK_MONOTONIC, &ts);
  return (uint64_t) ts.tv_sec * 1000000000 + ts.tv_nsec;
}

uint64_t
df_now_real_ns (void)
{
  struct timespec ts;

  clock_gettime (CLOCK_REALTIME, &ts);
  return (uint64_t) ts.tv_sec * 1000000000 + ts.tv_nsec;
}

int
df_boot_id (char *buf)
{
  static const char path[] = "/proc/sys/kernel/random/boot_id";
  CLEANUP_CLOSE int fd = open (path, O_RDONLY | O_CLOEXEC);
  char data[64];
  ssize_t len;

  /* A /proc file says it is empty: read what it gives. */
  if (fd == -1 || (len = df_read_full (fd, data, sizeof data)) == -1)
    return df_error_errno ("%s", path);
  while (len > 0 && data[len - 1] == '\n')
    len--;
  if (len != DF_BOOT_ID_LEN)
    return df_error (EINVAL, "%s: %zd characters, not %d", path, len,
                     DF_BOOT_ID_LEN);
  memcpy (buf, data, len);
  buf[len] = '\0';
  return 0;
}

int
df_random_bytes (void *buf, size_t len)
{
  size_t got = 0;

  while (got < len) {
    ssize_t r = getrandom ((char *) buf + got, len - got, 0);
    if (r == -1 && errno == EINTR)
      continue;
    if (r == -1)
      return df_error_errno ("getrandom");
    got += r;
  }
  return 0;
}

const char *
df_hex (const void *data, size_t len, char *buf)
{
  static const char digits[] = "0123456789abcdef";
  const unsigned char *p = data;
  size_t i;

  for (i = 0; i < len; i++) {
    buf[i * 2] = digits[p[i] >> 4];
    buf[i * 2 + 1] = digits[p[i] & 15];
  }
  buf[len * 2] = '\0';
  return buf;
}

int
df_unhex (const char *s, void *out, size_t len)
{
  unsigned char *p = out;
  size_t i;

  if (s == NULL || strlen (s) != len * 2)
    return df_error (EINVAL, "expected %zu hex digits", len * 2);
  for (i = 0; i < len; i++) {
    int hi = hexval (s[i * 2]), lo = hexval (s[i * 2 + 1]);
    if (hi < 0 || lo < 0)
      return df_error (EINVAL, "\"%.*s\" is not hex", (int) (len * 2), s);
    p[i] = hi << 4 | lo;
  }
  return 0;
}

bool
df_is_zero (const void *buf, size_t len)
{
  const unsigned char *p = buf;
  size_t i;

  /* Check the first 16 bytes, then compare the buffer with itself
   * shifted by 16: memcmp is vectorised and this touches each byte twice
   * at most.
   */
  for (i = 0; i < len && i < 16; i++)
    if (p[i])
      return false;
  return len <= 16 || memcmp (p, p + 16, len - 16) == 0;
}

size_t
df_parallel (size_t max, void *(*fn) (void *), void *arg)
{
  long cpus = sysconf (_SC_NPROCESSORS_ONLN);
  pthread_t threads[DF_PARALLEL_MAX];
  size_t n = cpus > 1 ? (size_t) cpus : 1, started = 0, i;

  if (n > max)
    n = max;
  if (n > DF_PARALLEL_MAX)
    n = DF_PARALLEL_MAX;
  /* A thread that cannot be started leaves its share to the others. */
  while (started + 1 < n && pthread_create (&threads[started], NULL, fn, arg) == 0)
    started++;
  fn (arg);
  for (i = 0; i < started; i++)
    pthread_join (threads[i], NULL);
  return started + 1;
}
