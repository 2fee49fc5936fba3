/* diskfarm — site, server, store, collection and device commands.
 *
 * One implementation for every kind of farm object: the options come
 * from the kind's field table (farm/fields.c).
 */
#include <config.h>

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cleanup.h"
#include "cli.h"
#include "error.h"
#include "util.h"

#define OPT_FIELD 0x2000
#define OPT_UNSET 0x1f00
#define OPT_PERSONALITY 0x1f01

static const char *const subcommands[] = {
  "add", "set", "list", "info", "remove", NULL
};

/* Usage text built from the field table (caller frees). */
static char *
make_usage (enum df_kind k)
{
  const char *kn = df_kind_name (k);
  const struct df_field *f;
  char *buf = NULL;
  size_t len = 0;
  FILE *fp = open_memstream (&buf, &len);

  if (fp == NULL)
    abort ();
  fprintf (fp, "Usage: diskfarm %s add NAME [OPTIONS]\n"
           "       diskfarm %s set NAME [OPTIONS] [--unset KEY]...\n"
           "       diskfarm %s list [--json]\n"
           "       diskfarm %s info NAME [--json]\n"
           "       diskfarm %s remove NAME\n"
           "\nOptions (keys of the %s):\n", kn, kn, kn, kn, kn, kn);
  for (f = df_kind_fields (k); f->key; f++) {
    char opt[64];
    snprintf (opt, sizeof opt, "--%s VALUE", f->key);
    fprintf (fp, "  %-22s %s%s\n", opt, f->help,
             f->required ? " (required)" : "");
  }
  if (k == DF_KIND_DEVICE)
    fprintf (fp, "  %-22s %s\n", "--personality K=V",
             "a personality value (repeatable; K= removes)");
  fprintf (fp, "  %-22s %s\n", "--unset KEY", "remove a key (set only)");
  fprintf (fp, "\nGlobal options: --farm DIR, --server NAME, --json, -v.\n");
  fclose (fp);
  return buf;
}

struct edit {
  const char *key;
  const char *value;            /* NULL: unset */
  bool personality;
};

/* Parses NAME and the field options into edits (caller frees *edits). */
static int
parse_edits (struct cli *cli, enum df_kind k, int argc, char **argv,
             const char *usage, bool allow_unset, struct edit **edits,
             size_t *nedits, const char **name)
{
  const struct df_field *fields = df_kind_fields (k);
  struct option opts[40];
  size_t n = 0, i;
  int c;

  for (i = 0; fields[i].key; i++)
    opts[n++] = (struct option) { fields[i].key, required_argument, NULL,
                                  OPT_FIELD + (int) i };
  opts[n++] = (struct option) { "unset", required_argument, NULL, OPT_UNSET };
  if (k == DF_KIND_DEVICE)
    opts[n++] = (struct option) { "personality", required_argument, NULL,
                                  OPT_PERSONALITY };
  memset (&opts[n], 0, sizeof opts[n]);

  *edits = calloc (argc + 1, sizeof **edits);
  *nedits = 0;
  if (*edits == NULL)
    abort ();
  while ((c = cli_getopt (cli, argc, argv, "", opts, usage)) != -1) {
    struct edit *e = &(*edits)[(*nedits)++];
    if (c >= OPT_FIELD) {
      e->key = fields[c - OPT_FIELD].key;
      e->value = optarg;
    }
    else if (c == OPT_UNSET) {
      if (!allow_unset)
        return cli_usage_error (usage, "--unset is for \"set\"");
      e->key = optarg;
    }
    else if (c == OPT_PERSONALITY) {
      char *eq = strchr (optarg, '=');
      if (eq == NULL)
        return cli_usage_error (usage, "--personality takes KEY=VALUE");
      *eq = '\0';
      e->key = optarg;
      e->value = eq[1] ? eq + 1 : NULL;
      e->personality = true;
    }
  }
  if (optind + 1 != argc)
    return cli_usage_error (usage, "expected one %s name", df_kind_name (k));
  *name = argv[optind];
  return 0;
}

/* Device-specific checks: the vDisk exists, the MAC is normalised. */
static int
check_device (struct df_farm *farm, struct cli *cli, const char *name)
{
  const char *vdisk = df_farm_get (farm, DF_KIND_DEVICE, name, "vdisk");
  const char *mac = df_farm_get (farm, DF_KIND_DEVICE, name, "mac");
  const char *server;
  char *store;
  uint8_t m[6];
  char buf[18];

  if (vdisk) {
    server = df_farm_local_server (farm, cli->server);
    store = df_farm_find_vdisk (farm, server, vdisk, NULL);
    if (store == NULL)
      return -1;
    free (store);
  }
  /* Last: an edit invalidates the strings read above. */
  if (mac && df_parse_mac (mac, m) == 0 &&
      df_farm_set (farm, DF_KIND_DEVICE, name, "mac", df_format_mac (m, buf)) == -1)
    return -1;
  return 0;
}

static int
apply_edits (struct df_farm *farm, struct cli *cli, enum df_kind k,
             const char *name, const struct edit *edits, size_t n)
{
  size_t i;

  for (i = 0; i < n; i++) {
    int r = edits[i].personality
      ? df_farm_set_personality (farm, name, edits[i].key, edits[i].value)
      : df_farm_set (farm, k, name, edits[i].key, edits[i].value);
    if (r == -1)
      return cli_fail ("%s \"%s\"", df_kind_name (k), name);
  }
  if (k == DF_KIND_DEVICE && check_device (farm, cli, name) == -1)
    return cli_fail ("device \"%s\"", name);
  if (df_farm_check (farm) == -1)
    return cli_fail (NULL);
  if (df_farm_save (farm) == -1)
    return cli_fail (NULL);
  return 0;
}

static int
cmd_add_set (struct cli *cli, enum df_kind k, int argc, char **argv,
             const char *usage, bool add)
{
  CLEANUP_FREE struct edit *edits = NULL;
  CLEANUP_CLOSE int lock = -1;
  struct df_farm *farm;
  const char *name;
  size_t n;
  int r;

  if (parse_edits (cli, k, argc, argv, usage, !add, &edits, &n, &name))
    return 1;
  lock = df_farm_lock (cli->farm_dir);
  if (lock == -1)
    return cli_fail (NULL);
  farm = cli_open_farm (cli);
  if (farm == NULL)
    return 1;
  if (add && df_farm_add (farm, k, name) == -1)
    r = cli_fail (NULL);
  else if (!add && !df_farm_exists (farm, k, name)) {
    cli_error ("%s \"%s\" does not exist", df_kind_name (k), name);
    r = 1;
  }
  else
    r = apply_edits (farm, cli, k, name, edits, n);
  df_farm_free (farm);
  return r;
}

static int
add_key_json (const char *key, const char *value, void *opaque)
{
  json_object_set_new (opaque, key, json_string (value));
  return 0;
}

static json_t *
object_json (struct df_farm *farm, enum df_kind k, const char *name)
{
  json_t *o = json_object ();

  json_object_set_new (o, "name", json_string (name));
  df_farm_foreach (farm, k, name, NULL, add_key_json, o);
  if (k == DF_KIND_DEVICE) {
    json_t *p = json_object ();
    df_farm_foreach (farm, k, name, "personality", add_key_json, p);
    json_object_set_new (o, "personality", p);
  }
  if (k == DF_KIND_SERVER) {
    CLEANUP_FREE const char **stores = df_farm_names (farm, DF_KIND_STORE);
    json_t *s = json_object ();
    for (size_t i = 0; stores && stores[i]; i++) {
      CLEANUP_FREE char *p = df_farm_store_path (farm, stores[i], name);
      if (p)
        json_object_set_new (s, stores[i], json_string (p));
    }
    json_object_set_new (o, "store_paths", s);
  }
  return o;
}

static int
cmd_list (struct cli *cli, enum df_kind k, int argc, char **argv,
          const char *usage)
{
  const struct df_field *f, *fields = df_kind_fields (k);
  CLEANUP_FREE const char **names = NULL;
  struct df_farm *farm;
  size_t i, nf = 0;

  if (cli_getopt (cli, argc, argv, "", NULL, usage) != -1 || optind != argc)
    return cli_usage_error (usage, "list takes no arguments");
  farm = cli_open_farm (cli);
  if (farm == NULL)
    return 1;
  names = df_farm_names (farm, k);
  if (names == NULL) {
    df_farm_free (farm);
    return cli_fail (NULL);
  }
  if (cli->json) {
    json_t *a = json_array ();
    for (i = 0; names[i]; i++)
      json_array_append_new (a, object_json (farm, k, names[i]));
    cli_print_json (a);
  }
  else {
    const char *headers[16] = { "NAME" };
    struct cli_table *t;

    for (f = fields; f->key; f++)
      if (strcmp (f->key, "description") != 0 && nf < 14)
        headers[++nf] = f->key;
    t = cli_table_new (headers);
    for (i = 0; names[i]; i++) {
      const char *row[16] = { names[i] };
      size_t j;
      for (j = 1; j <= nf; j++)
        row[j] = df_farm_get (farm, k, names[i], headers[j]);
      cli_table_add (t, row);
    }
    cli_table_print (t);
  }
  df_farm_free (farm);
  return 0;
}

static int
print_key (const char *key, const char *value, void *opaque)
{
  printf ("%s%-14s %s\n", (const char *) opaque, key, value);
  return 0;
}

static int
cmd_info (struct cli *cli, enum df_kind k, int argc, char **argv,
          const char *usage)
{
  struct df_farm *farm;
  const char *name;
  int r = 0;

  if (cli_getopt (cli, argc, argv, "", NULL, usage) != -1 || optind + 1 != argc)
    return cli_usage_error (usage, "expected one %s name", df_kind_name (k));
  name = argv[optind];
  farm = cli_open_farm (cli);
  if (farm == NULL)
    return 1;
  if (!df_farm_exists (farm, k, name)) {
    cli_error ("%s \"%s\" does not exist", df_kind_name (k), name);
    r = 1;
  }
  else if (cli->json)
    cli_print_json (object_json (farm, k, name));
  else {
    printf ("%-14s %s\n", df_kind_name (k), name);
    df_farm_foreach (farm, k, name, NULL, print_key, "");
    if (k == DF_KIND_DEVICE) {
      printf ("personality:\n");
      df_farm_foreach (farm, k, name, "personality", print_key, "  ");
    }
    if (k == DF_KIND_SERVER) {
      CLEANUP_FREE const char **stores = df_farm_names (farm, DF_KIND_STORE);
      for (size_t i = 0; stores && stores[i]; i++) {
        CLEANUP_FREE char *p = df_farm_store_path (farm, stores[i], name);
        printf ("store %-8s %s\n", stores[i], p ? p : "?");
      }
    }
  }
  df_farm_free (farm);
  return r;
}

static int
cmd_remove (struct cli *cli, enum df_kind k, int argc, char **argv,
            const char *usage)
{
  CLEANUP_CLOSE int lock = -1;
  struct df_farm *farm;
  const char *name;
  int r = 0;

  if (cli_getopt (cli, argc, argv, "", NULL, usage) != -1 || optind + 1 != argc)
    return cli_usage_error (usage, "expected one %s name", df_kind_name (k));
  name = argv[optind];
  lock = df_farm_lock (cli->farm_dir);
  if (lock == -1)
    return cli_fail (NULL);
  farm = cli_open_farm (cli);
  if (farm == NULL)
    return 1;
  /* The check refuses removing what something still refers to. */
  if (df_farm_remove (farm, k, name) == -1 || df_farm_check (farm) == -1 ||
      df_farm_save (farm) == -1)
    r = cli_fail ("cannot remove %s \"%s\"", df_kind_name (k), name);
  df_farm_free (farm);
  return r;
}

int
cli_objects (struct cli *cli, enum df_kind k, int argc, char **argv)
{
  CLEANUP_FREE char *usage = make_usage (k);
  int sub = cli_subcommand (cli, &argc, &argv, subcommands, usage);

  switch (sub) {
  case 0: return cmd_add_set (cli, k, argc, argv, usage, true);
  case 1: return cmd_add_set (cli, k, argc, argv, usage, false);
  case 2: return cmd_list (cli, k, argc, argv, usage);
  case 3: return cmd_info (cli, k, argc, argv, usage);
  case 4: return cmd_remove (cli, k, argc, argv, usage);
  default: return 1;
  }
}
