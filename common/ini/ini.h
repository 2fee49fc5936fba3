/* diskfarm — INI documents: read with inih, edited line by line.
 *
 * A document is kept as its lines, so rewriting a file keeps comments,
 * blank lines, key order and keys diskfarm does not know.  What a
 * document means is always what inih reads from those lines: every edit
 * re-parses the text.
 *
 * Syntax (inih's, with these settings): "[section]" headers, "key = value"
 * lines, comments on their own line starting with ';' or '#'.  No inline
 * comments (a value is everything after '=', trimmed), no continuation
 * lines, a key at most once per section.
 */
#ifndef DISKFARM_INI_H
#define DISKFARM_INI_H

#include <stdbool.h>
#include <stddef.h>

struct df_ini;

/* Longest line accepted, in bytes. */
#define DF_INI_LINE_MAX 8192

/* Returns a new document (caller frees with df_ini_free) or NULL with
 * a message naming the file and line.  origin is used in messages.
 */
struct df_ini *df_ini_parse (const char *text, size_t len, const char *origin);
struct df_ini *df_ini_load (const char *path);
struct df_ini *df_ini_new (const char *origin);
void df_ini_free (struct df_ini *ini);

const char *df_ini_origin (const struct df_ini *ini);

/* The value, or NULL if the key is absent.  Valid until the next edit. */
const char *df_ini_get (const struct df_ini *ini, const char *section,
                        const char *key);
bool df_ini_has_section (const struct df_ini *ini, const char *section);

/* Section names in file order, each once (a NULL-terminated array valid
 * until the next edit; caller frees the array only).
 */
const char **df_ini_sections (const struct df_ini *ini);

/* Calls fn for every key of section in file order; stops and returns
 * fn's value when it is not 0.
 */
typedef int (*df_ini_key_fn) (const char *key, const char *value, void *opaque);
int df_ini_foreach (const struct df_ini *ini, const char *section,
                    df_ini_key_fn fn, void *opaque);

/* Edits.  set replaces the key's line, or adds it after the last key of
 * the section, or adds the section at the end.  Values may not contain
 * newlines or NUL and are stored trimmed.
 */
int df_ini_set (struct df_ini *ini, const char *section, const char *key,
                const char *value);
int df_ini_unset (struct df_ini *ini, const char *section, const char *key);
/* Removes the section header, its keys and the comments between them. */
int df_ini_remove_section (struct df_ini *ini, const char *section);

/* The text (caller frees). */
char *df_ini_format (const struct df_ini *ini, size_t *len);
/* Atomic rewrite (see df_write_file_atomic). */
int df_ini_save (const struct df_ini *ini, const char *path);

#endif
