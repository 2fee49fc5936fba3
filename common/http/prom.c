/* diskfarm — Prometheus text exposition (see prom.h). */
#include <config.h>

#include <errno.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>

#include "error.h"
#include "http/http.h"
#include "http/prom.h"

struct df_prom {
  FILE *fp;
  char *text;
  size_t len;
};

struct df_prom *
df_prom_new (void)
{
  struct df_prom *p = calloc (1, sizeof *p);

  if (p && (p->fp = open_memstream (&p->text, &p->len)) == NULL) {
    free (p);
    p = NULL;
  }
  return p;
}

void
df_prom_free (struct df_prom *p)
{
  if (p == NULL)
    return;
  if (p->fp)
    fclose (p->fp);
  free (p->text);
  free (p);
}

void
df_prom_family (struct df_prom *p, const char *name, const char *type,
                const char *help)
{
  const char *c;

  fprintf (p->fp, "# HELP %s ", name);
  for (c = help; *c; c++)               /* HELP escapes \ and newline */
    if (*c == '\\')
      fputs ("\\\\", p->fp);
    else if (*c == '\n')
      fputs ("\\n", p->fp);
    else
      fputc (*c, p->fp);
  fprintf (p->fp, "\n# TYPE %s %s\n", name, type);
}

static void
labels (struct df_prom *p, va_list ap)
{
  const char *k, *v, *c;
  int n = 0;

  while ((k = va_arg (ap, const char *)) != NULL) {
    v = va_arg (ap, const char *);
    fprintf (p->fp, "%s%s=\"", n++ ? "," : "{", k);
    for (c = v ? v : ""; *c; c++)
      if (*c == '\\' || *c == '"')
        fprintf (p->fp, "\\%c", *c);
      else if (*c == '\n')
        fputs ("\\n", p->fp);
      else
        fputc (*c, p->fp);
    fputc ('"', p->fp);
  }
  if (n)
    fputc ('}', p->fp);
}

void
df_prom_u64 (struct df_prom *p, const char *name, uint64_t v, ...)
{
  va_list ap;

  fputs (name, p->fp);
  va_start (ap, v);
  labels (p, ap);
  va_end (ap);
  fprintf (p->fp, " %" PRIu64 "\n", v);
}

void
df_prom_double (struct df_prom *p, const char *name, double v, ...)
{
  va_list ap;

  fputs (name, p->fp);
  va_start (ap, v);
  labels (p, ap);
  va_end (ap);
  fprintf (p->fp, " %.6g\n", v);
}

int
df_http_respond_prom (struct df_http_request *req, struct df_prom *p)
{
  int r;

  if (p == NULL)
    return df_error (ENOMEM, "metrics");
  if (fclose (p->fp) != 0) {
    p->fp = NULL;
    df_prom_free (p);
    return df_error (ENOMEM, "metrics");
  }
  p->fp = NULL;
  r = df_http_respond (req, 200, "text/plain; version=0.0.4; charset=utf-8",
                       p->text, p->len);
  df_prom_free (p);
  return r;
}
