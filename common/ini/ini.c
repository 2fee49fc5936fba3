/* diskfarm — INI documents (see ini.h). */
#include <config.h>

#include <ctype.h>
#include <errno.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <ini.h>

#include "cleanup.h"
#include "error.h"
#include "util.h"
#include "ini/ini.h"

/* inih truncates key names to 49 bytes; longer ones are refused. */
#define KEY_MAX 49
#define FILE_MAX (16 * 1024 * 1024)

struct entry {
  char *section;
  char *key;
  char *value;
  size_t line;
};

struct section {
  char *name;
  size_t last_line;             /* header or last key, for insertion */
};

struct df_ini {
  char *origin;
  char **lines;                 /* without the newline */
  size_t nlines, lines_cap;
  struct entry *entries;
  size_t nentries, entries_cap;
  struct section *sections;
  size_t nsections;
};

/* inih's options are compile-time macros of the library's build.
 * Debian's build turns them into process-wide globals, and we set them
 * to the syntax of ini.h: no continuation lines, no inline comments,
 * lines up to DF_INI_LINE_MAX, stop at the first error.  Other
 * distributions' inih has no such globals (meson checks: HAVE_INIH_OPTIONS)
 * and keeps upstream's defaults: continuation lines, ';' inline
 * comments, a 200-byte line buffer, parsing on after an error.  So the
 * parse below never relies on the options; with any build it
 *   - hands inih each line without its leading whitespace, so no line
 *     reads as the continuation of the previous value;
 *   - takes each value from our own copy of the line (everything after
 *     the first '=' or ':', trimmed), so neither an inline comment nor a
 *     line cut to inih's buffer can shorten it (keys are short and come
 *     first: inih always sees them whole);
 *   - keeps the first error only, whatever inih does after it.
 * The globals, where they exist, make inih itself agree.  (The unit
 * test ini-upstream-inih builds this file with DF_INI_IGNORE_OPTIONS:
 * Debian's globals left alone are upstream's defaults.)
 */
#if HAVE_INIH_OPTIONS && !defined (DF_INI_IGNORE_OPTIONS)
#define SET_INIH_OPTIONS 1
static pthread_once_t setup_once = PTHREAD_ONCE_INIT;

static void
setup_inih (void)
{
  ini_allow_multiline = false;
  ini_allow_inline_comments = false;
  ini_use_stack = false;
  ini_max_line = DF_INI_LINE_MAX + 3;
  ini_stop_on_first_error = true;
}
#endif

/* "[name]" header: the name, malloc'd, or NULL if line is not a header. */
static char *
header_name (const char *line)
{
  const char *p = line, *end;

  while (isspace ((unsigned char) *p))
    p++;
  if (*p != '[')
    return NULL;
  end = strchr (p + 1, ']');
  if (end == NULL)
    return NULL;
  return strndup (p + 1, end - p - 1);
}

static void
clear_parsed (struct df_ini *ini)
{
  size_t i;

  for (i = 0; i < ini->nentries; i++) {
    free (ini->entries[i].section);
    free (ini->entries[i].key);
    free (ini->entries[i].value);
  }
  ini->nentries = 0;
  for (i = 0; i < ini->nsections; i++)
    free (ini->sections[i].name);
  free (ini->sections);
  ini->sections = NULL;
  ini->nsections = 0;
}

static struct section *
find_section (const struct df_ini *ini, const char *name)
{
  size_t i;

  for (i = 0; i < ini->nsections; i++)
    if (strcmp (ini->sections[i].name, name) == 0)
      return &ini->sections[i];
  return NULL;
}

static struct section *
note_section (struct df_ini *ini, const char *name, size_t line)
{
  struct section *s = find_section (ini, name), *n;

  if (s) {
    s->last_line = line;
    return s;
  }
  n = realloc (ini->sections, (ini->nsections + 1) * sizeof *n);
  if (n == NULL)
    return NULL;
  ini->sections = n;
  s = &n[ini->nsections];
  s->name = strdup (name);
  if (s->name == NULL)
    return NULL;
  s->last_line = line;
  ini->nsections++;
  return s;
}

struct parse_state {
  struct df_ini *ini;
  size_t next;                  /* next line to hand to inih */
  size_t cur;                   /* line inih is looking at */
  char *section;                /* full name; inih truncates long ones */
  int failed_errno;
  char *failure;
  size_t failed_line;           /* 1-based line of the first failure */
};

/* The value of a "key = value" line as ini.h defines it: everything
 * after the first '=' or ':', without surrounding whitespace.
 */
static char *
line_value (const char *line)
{
  const char *v = line + strcspn (line, "=:");
  size_t len;

  if (*v)
    v++;
  while (isspace ((unsigned char) *v))
    v++;
  len = strlen (v);
  while (len > 0 && isspace ((unsigned char) v[len - 1]))
    len--;
  return strndup (v, len);
}

static char *
reader (char *str, int num, void *stream)
{
  struct parse_state *st = stream;
  const char *line;
  size_t len;
  char *name;

  if (st->next >= st->ini->nlines)
    return NULL;
  st->cur = st->next++;
  line = st->ini->lines[st->cur];
  /* Never a continuation line: see the top of the file. */
  while (isspace ((unsigned char) *line))
    line++;
  len = strlen (line);
  /* Where inih's buffer is shorter than the line, the handler takes
   * the value from the whole line.
   */
  if (len + 2 > (size_t) num)
    len = num - 2;
  memcpy (str, line, len);
  str[len] = '\n';
  str[len + 1] = '\0';

  name = header_name (line);
  if (name) {
    free (st->section);
    st->section = name;
    if (note_section (st->ini, name, st->cur) == NULL) {
      st->failed_errno = ENOMEM;
      return NULL;
    }
  }
  return str;
}

static int
handler (void *user, const char *section_unused, const char *name,
         const char *value)
{
  struct parse_state *st = user;
  struct df_ini *ini = st->ini;
  const char *section = st->section ? st->section : "";
  struct entry *e;
  size_t i;

  (void) section_unused;
  (void) value;                 /* taken from the line: see the top */
  if (st->failed_line)
    return 0;
  for (i = 0; i < ini->nentries; i++)
    if (strcmp (ini->entries[i].section, section) == 0 &&
        strcmp (ini->entries[i].key, name) == 0) {
      st->failed_line = st->cur + 1;
      if (asprintf (&st->failure, "line %zu: key \"%s\" repeats line %zu",
                    st->cur + 1, name, ini->entries[i].line + 1) == -1) {
        st->failure = NULL;
        st->failed_errno = ENOMEM;
      }
      return 0;
    }
  if (ini->nentries == ini->entries_cap) {
    size_t cap = ini->entries_cap ? ini->entries_cap * 2 : 16;
    e = realloc (ini->entries, cap * sizeof *e);
    if (e == NULL)
      goto nomem;
    ini->entries = e;
    ini->entries_cap = cap;
  }
  e = &ini->entries[ini->nentries];
  e->section = strdup (section);
  e->key = strdup (name);
  e->value = line_value (ini->lines[st->cur]);
  e->line = st->cur;
  ini->nentries++;
  if (!e->section || !e->key || !e->value)
    goto nomem;
  if (note_section (ini, section, st->cur) == NULL)
    goto nomem;
  return 1;

 nomem:
  st->failed_errno = ENOMEM;
  st->failed_line = st->cur + 1;
  return 0;
}

static int
reparse (struct df_ini *ini)
{
  struct parse_state st = { .ini = ini };
  size_t i;
  int r;

#if SET_INIH_OPTIONS
  pthread_once (&setup_once, setup_inih);
#endif
  clear_parsed (ini);
  for (i = 0; i < ini->nlines; i++)
    if (strlen (ini->lines[i]) > DF_INI_LINE_MAX)
      return df_error (EINVAL, "%s: line %zu is longer than %d bytes",
                       ini->origin, i + 1, DF_INI_LINE_MAX);

  r = ini_parse_stream (reader, &st, handler, &st);
  free (st.section);
  /* inih may parse on after an error: the first one counts. */
  if (r > 0 && st.failed_line > (size_t) r && !st.failed_errno) {
    free (st.failure);
    st.failure = NULL;
  }
  if (st.failed_errno) {
    free (st.failure);
    return df_error (st.failed_errno, "%s: %m", ini->origin);
  }
  if (st.failure) {
    df_error (EINVAL, "%s: %s", ini->origin, st.failure);
    free (st.failure);
    return -1;
  }
  if (r > 0)
    return df_error (EINVAL, "%s: line %d: syntax error (expected [section], "
                     "key = value, or a comment)", ini->origin, r);
  if (r < 0)
    return df_error (ENOMEM, "%s: cannot parse", ini->origin);
  return 0;
}

static int
insert_line (struct df_ini *ini, size_t at, const char *text)
{
  char *copy = strdup (text);

  if (copy == NULL)
    return df_error_errno ("%s", ini->origin);
  if (ini->nlines == ini->lines_cap) {
    size_t cap = ini->lines_cap ? ini->lines_cap * 2 : 32;
    char **n = realloc (ini->lines, cap * sizeof *n);
    if (n == NULL) {
      free (copy);
      return df_error_errno ("%s", ini->origin);
    }
    ini->lines = n;
    ini->lines_cap = cap;
  }
  memmove (&ini->lines[at + 1], &ini->lines[at],
           (ini->nlines - at) * sizeof ini->lines[0]);
  ini->lines[at] = copy;
  ini->nlines++;
  return 0;
}

static void
delete_lines (struct df_ini *ini, size_t at, size_t n)
{
  size_t i;

  for (i = at; i < at + n; i++)
    free (ini->lines[i]);
  memmove (&ini->lines[at], &ini->lines[at + n],
           (ini->nlines - at - n) * sizeof ini->lines[0]);
  ini->nlines -= n;
}

struct df_ini *
df_ini_new (const char *origin)
{
  struct df_ini *ini = calloc (1, sizeof *ini);

  if (ini == NULL || (ini->origin = strdup (origin)) == NULL) {
    free (ini);
    df_error_errno ("%s", origin);
    return NULL;
  }
  return ini;
}

struct df_ini *
df_ini_parse (const char *text, size_t len, const char *origin)
{
  struct df_ini *ini = df_ini_new (origin);
  size_t pos = 0;

  if (ini == NULL)
    return NULL;
  if (memchr (text, '\0', len)) {
    df_error (EINVAL, "%s: contains a NUL byte (not a text file)", origin);
    goto fail;
  }
  while (pos < len) {
    const char *nl = memchr (text + pos, '\n', len - pos);
    size_t end = nl ? (size_t) (nl - text) : len;
    CLEANUP_FREE char *line = strndup (text + pos, end - pos);

    if (line == NULL) {
      df_error_errno ("%s", origin);
      goto fail;
    }
    if (end > pos && line[end - pos - 1] == '\r')
      line[end - pos - 1] = '\0';
    if (insert_line (ini, ini->nlines, line) == -1)
      goto fail;
    pos = end + 1;
  }
  if (reparse (ini) == -1)
    goto fail;
  return ini;

 fail:
  df_ini_free (ini);
  return NULL;
}

struct df_ini *
df_ini_load (const char *path)
{
  CLEANUP_FREE char *text = NULL;
  size_t len;

  if (df_read_file (path, FILE_MAX, &text, &len) == -1)
    return NULL;
  return df_ini_parse (text, len, path);
}

void
df_ini_free (struct df_ini *ini)
{
  size_t i;

  if (ini == NULL)
    return;
  clear_parsed (ini);
  free (ini->entries);
  for (i = 0; i < ini->nlines; i++)
    free (ini->lines[i]);
  free (ini->lines);
  free (ini->origin);
  free (ini);
}

const char *
df_ini_origin (const struct df_ini *ini)
{
  return ini->origin;
}

static const struct entry *
find_entry (const struct df_ini *ini, const char *section, const char *key)
{
  size_t i;

  for (i = 0; i < ini->nentries; i++)
    if (strcmp (ini->entries[i].section, section) == 0 &&
        strcmp (ini->entries[i].key, key) == 0)
      return &ini->entries[i];
  return NULL;
}

const char *
df_ini_get (const struct df_ini *ini, const char *section, const char *key)
{
  const struct entry *e = find_entry (ini, section, key);

  return e ? e->value : NULL;
}

bool
df_ini_has_section (const struct df_ini *ini, const char *section)
{
  return find_section (ini, section) != NULL;
}

const char **
df_ini_sections (const struct df_ini *ini)
{
  const char **r = calloc (ini->nsections + 1, sizeof *r);
  size_t i;

  if (r == NULL) {
    df_error_errno ("%s", ini->origin);
    return NULL;
  }
  for (i = 0; i < ini->nsections; i++)
    r[i] = ini->sections[i].name;
  return r;
}

int
df_ini_foreach (const struct df_ini *ini, const char *section,
                df_ini_key_fn fn, void *opaque)
{
  size_t i;
  int r;

  for (i = 0; i < ini->nentries; i++)
    if (strcmp (ini->entries[i].section, section) == 0) {
      r = fn (ini->entries[i].key, ini->entries[i].value, opaque);
      if (r)
        return r;
    }
  return 0;
}

static int
check_edit (const struct df_ini *ini, const char *section, const char *key,
            const char *value)
{
  char q[80];

  if (strpbrk (section, "]\n\r") || strlen (section) > 200)
    return df_error (EINVAL, "%s: bad section name \"%s\"", ini->origin,
                     df_quote (section, q, sizeof q));
  if (key == NULL)
    return 0;
  if (key[0] == '\0' || strlen (key) > KEY_MAX || strpbrk (key, "=:\n\r[;#") ||
      isspace ((unsigned char) key[0]) ||
      isspace ((unsigned char) key[strlen (key) - 1]))
    return df_error (EINVAL, "%s: bad key name \"%s\" (at most %d characters, "
                     "no = : [ ; #)", ini->origin, df_quote (key, q, sizeof q),
                     KEY_MAX);
  if (value && strpbrk (value, "\n\r"))
    return df_error (EINVAL, "%s: value of \"%s\" contains a newline",
                     ini->origin, key);
  return 0;
}

int
df_ini_set (struct df_ini *ini, const char *section, const char *key,
            const char *value)
{
  const struct entry *e;
  const struct section *s;
  CLEANUP_FREE char *line = NULL;
  const char *v = value;
  size_t vlen;

  if (check_edit (ini, section, key, value) == -1)
    return -1;
  while (isspace ((unsigned char) *v))
    v++;
  vlen = strlen (v);
  while (vlen > 0 && isspace ((unsigned char) v[vlen - 1]))
    vlen--;
  if (asprintf (&line, "%s = %.*s", key, (int) vlen, v) == -1) {
    line = NULL;
    return df_error_errno ("%s", ini->origin);
  }

  e = find_entry (ini, section, key);
  if (e) {
    char *copy = strdup (line);
    if (copy == NULL)
      return df_error_errno ("%s", ini->origin);
    free (ini->lines[e->line]);
    ini->lines[e->line] = copy;
  }
  else if ((s = find_section (ini, section)) != NULL) {
    if (insert_line (ini, s->last_line + 1, line) == -1)
      return -1;
  }
  else {
    CLEANUP_FREE char *header = NULL;

    if (section[0] == '\0') {
      if (insert_line (ini, 0, line) == -1)
        return -1;
      return reparse (ini);
    }
    if (asprintf (&header, "[%s]", section) == -1) {
      header = NULL;
      return df_error_errno ("%s", ini->origin);
    }
    if (ini->nlines > 0 && ini->lines[ini->nlines - 1][0] != '\0' &&
        insert_line (ini, ini->nlines, "") == -1)
      return -1;
    if (insert_line (ini, ini->nlines, header) == -1 ||
        insert_line (ini, ini->nlines, line) == -1)
      return -1;
  }
  return reparse (ini);
}

int
df_ini_unset (struct df_ini *ini, const char *section, const char *key)
{
  const struct entry *e = find_entry (ini, section, key);

  if (e == NULL)
    return 0;
  delete_lines (ini, e->line, 1);
  return reparse (ini);
}

int
df_ini_remove_section (struct df_ini *ini, const char *section)
{
  size_t i = 0;

  if (check_edit (ini, section, NULL, NULL) == -1)
    return -1;
  while (i < ini->nlines) {
    CLEANUP_FREE char *name = header_name (ini->lines[i]);
    size_t end;

    if (name == NULL || strcmp (name, section) != 0) {
      i++;
      continue;
    }
    for (end = i + 1; end < ini->nlines; end++) {
      CLEANUP_FREE char *next = header_name (ini->lines[end]);
      if (next)
        break;
    }
    /* Keep one blank line between what came before and what follows. */
    while (end > i + 1 && ini->lines[end - 1][0] == '\0' && end < ini->nlines)
      end--;
    delete_lines (ini, i, end - i);
    if (i > 0 && i < ini->nlines && ini->lines[i - 1][0] == '\0' &&
        ini->lines[i][0] == '\0')
      delete_lines (ini, i, 1);
  }
  while (ini->nlines > 0 && ini->lines[ini->nlines - 1][0] == '\0')
    delete_lines (ini, ini->nlines - 1, 1);
  return reparse (ini);
}

char *
df_ini_format (const struct df_ini *ini, size_t *len)
{
  size_t total = 0, i, o = 0;
  char *buf;

  for (i = 0; i < ini->nlines; i++)
    total += strlen (ini->lines[i]) + 1;
  buf = malloc (total + 1);
  if (buf == NULL) {
    df_error_errno ("%s", ini->origin);
    return NULL;
  }
  for (i = 0; i < ini->nlines; i++) {
    size_t n = strlen (ini->lines[i]);
    memcpy (buf + o, ini->lines[i], n);
    o += n;
    buf[o++] = '\n';
  }
  buf[o] = '\0';
  if (len)
    *len = o;
  return buf;
}

int
df_ini_save (const struct df_ini *ini, const char *path)
{
  CLEANUP_FREE char *text = NULL;
  size_t len;

  text = df_ini_format (ini, &len);
  if (text == NULL)
    return -1;
  return df_write_file_atomic (path, text, len, 0644);
}
