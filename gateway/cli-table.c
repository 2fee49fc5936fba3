/* diskfarm CLI — aligned tables (see cli.h). */
#include <config.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"

struct cli_table {
  size_t ncols, nrows;
  char **cells;                 /* nrows * ncols, row 0 the headers */
};

struct cli_table *
cli_table_new (const char *const *headers)
{
  struct cli_table *t = calloc (1, sizeof *t);

  if (t == NULL)
    abort ();
  while (headers[t->ncols])
    t->ncols++;
  cli_table_add (t, headers);
  return t;
}

void
cli_table_add (struct cli_table *t, const char *const *cells)
{
  size_t i;

  t->cells = realloc (t->cells, (t->nrows + 1) * t->ncols * sizeof *t->cells);
  if (t->cells == NULL)
    abort ();
  for (i = 0; i < t->ncols; i++)
    t->cells[t->nrows * t->ncols + i] = strdup (cells[i] ? cells[i] : "-");
  t->nrows++;
}

void
cli_table_print (struct cli_table *t)
{
  cli_table_fprint (t, stdout);
}

void
cli_table_fprint (struct cli_table *t, FILE *fp)
{
  size_t r, c, width[32] = { 0 };

  for (r = 0; r < t->nrows; r++)
    for (c = 0; c < t->ncols && c < 32; c++) {
      size_t w = strlen (t->cells[r * t->ncols + c]);
      if (w > width[c])
        width[c] = w;
    }
  for (r = 0; r < t->nrows; r++) {
    for (c = 0; c < t->ncols; c++) {
      const char *s = t->cells[r * t->ncols + c];
      if (c + 1 < t->ncols)
        fprintf (fp, "%-*s  ", (int) width[c], s);
      else
        fputs (s, fp);
    }
    fputc ('\n', fp);
  }
  for (r = 0; r < t->nrows * t->ncols; r++)
    free (t->cells[r]);
  free (t->cells);
  free (t);
}

