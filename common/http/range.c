/* diskfarm — HTTP Range and ETag headers (RFC 9110 sections 13-14). */
#include <config.h>

#include <ctype.h>
#include <stdbool.h>
#include <stdint.h>
#include <string.h>
#include <strings.h>

#include "http/http.h"

static const char *
skip_space (const char *s)
{
  while (*s == ' ' || *s == '\t')
    s++;
  return s;
}

/* Digits into *out; returns the end or NULL (none, or overflow). */
static const char *
parse_digits (const char *s, uint64_t *out)
{
  uint64_t v = 0;

  if (!isdigit ((unsigned char) *s))
    return NULL;
  for (; isdigit ((unsigned char) *s); s++) {
    if (v > (UINT64_MAX - 9) / 10)
      return NULL;
    v = v * 10 + (*s - '0');
  }
  *out = v;
  return s;
}

enum spec { SPEC_BAD = -2, SPEC_UNSATISFIABLE = -1, SPEC_OK = 0 };

/* One "a-b", "a-" or "-n" at *sp (advanced past it) against size. */
static enum spec
parse_spec (const char **sp, uint64_t size, struct df_http_range *r)
{
  const char *s = skip_space (*sp);
  uint64_t a = 0, b = 0;
  bool have_a = isdigit ((unsigned char) *s), have_b;

  if (have_a && (s = parse_digits (s, &a)) == NULL)
    return SPEC_BAD;
  s = skip_space (s);
  if (*s++ != '-')
    return SPEC_BAD;
  s = skip_space (s);
  have_b = isdigit ((unsigned char) *s);
  if (have_b && (s = parse_digits (s, &b)) == NULL)
    return SPEC_BAD;
  *sp = skip_space (s);
  if (!have_a && !have_b)
    return SPEC_BAD;
  if (!have_a) {                /* suffix: the last b bytes */
    if (b == 0 || size == 0)
      return SPEC_UNSATISFIABLE;
    r->len = b < size ? b : size;
    r->start = size - r->len;
    return SPEC_OK;
  }
  if (have_b && b < a)
    return SPEC_BAD;            /* invalid: the header is ignored */
  if (a >= size)
    return SPEC_UNSATISFIABLE;
  if (!have_b || b >= size)
    b = size - 1;
  r->start = a;
  r->len = b - a + 1;
  return SPEC_OK;
}

int
df_http_parse_ranges (const char *value, uint64_t size,
                      struct df_http_range *out, size_t max)
{
  const char *s;
  size_t n = 0, specs = 0;
  uint64_t total = 0;

  if (value == NULL)
    return 0;
  s = skip_space (value);
  if (strncasecmp (s, "bytes", 5) != 0)
    return 0;
  s = skip_space (s + 5);
  if (*s++ != '=')
    return 0;
  for (;;) {
    struct df_http_range r;
    enum spec e;

    s = skip_space (s);
    if (*s == ',') {            /* empty list elements are allowed */
      s++;
      continue;
    }
    if (*s == '\0')
      break;
    if (++specs > max)
      return 0;                 /* too many: send it all */
    e = parse_spec (&s, size, &r);
    if (e == SPEC_BAD || (*s != ',' && *s != '\0'))
      return 0;
    if (e == SPEC_OK) {
      /* Overlapping ranges that add up to more than the resource are
       * an amplification attack, not a download: send it once.
       */
      total += r.len;
      if (n > 0 && total > size)
        return 0;
      out[n++] = r;
    }
  }
  if (specs == 0)
    return 0;
  return n > 0 ? (int) n : -1;
}

bool
df_http_etag_match (const char *list, const char *etag)
{
  size_t n = strlen (etag);
  const char *s = list;

  if (list == NULL)
    return false;
  while (*s) {
    s = skip_space (s);
    if (*s == '*')
      return true;
    if (strncmp (s, "W/", 2) == 0)      /* weak comparison */
      s += 2;
    if (strncmp (s, etag, n) == 0 &&
        (s[n] == '\0' || s[n] == ',' || s[n] == ' ' || s[n] == '\t'))
      return true;
    s = strchr (s, ',');
    if (s == NULL)
      break;
    s++;
  }
  return false;
}
