/* diskfarm vdisk — import, list, info, export, verify, set, remove. */
#include <config.h>

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "cleanup.h"
#include "cli.h"
#include "error.h"
#include "util.h"

static const char usage[] =
  "Usage: diskfarm vdisk import NAME IMAGE [--store STORE] [--block-size N]\n"
  "       diskfarm vdisk list [--json]\n"
  "       diskfarm vdisk info NAME [--json]\n"
  "       diskfarm vdisk export NAME[@VERSION] OUT [--format raw|qcow2]\n"
  "       diskfarm vdisk verify NAME\n"
  "       diskfarm vdisk set NAME [--cache MODE[:SIZE]] [--access standard|private]\n"
  "       diskfarm vdisk remove NAME\n"
  "       diskfarm vdisk boot NAME [--kernel FILE] [--initrd FILE]\n"
  "                               [--cmdline PARAMETERS]\n"
  "\n"
  "import  makes IMAGE (anything qemu-img reads: raw, qcow2, vmdk, vhdx...)\n"
  "        version 1 of a new vDisk, sealed and in production.  Zero blocks\n"
  "        are not stored.  --block-size: 4096 (default) to 1M, power of two.\n"
  "export  writes a version's content (default: the newest production one).\n"
  "verify  re-hashes every sealed layer and checks headers and the chain;\n"
  "        exits 1 if anything is wrong.\n"
  "set     changes the default write cache or the access mode.\n"
  "remove  deletes a vDisk no device uses; refused while a server has it\n"
  "        open (a device streaming it, its editor).\n"
  "boot    copies the kernel and initrd devices network-boot into the\n"
  "        vDisk (boot/, replicated with it) and sets its kernel parameters\n"
  "        (\"\" clears them); see docs/boot-parameters.md.\n";

static const char *const subcommands[] = {
  "import", "list", "info", "export", "verify", "set", "remove", "boot", NULL
};

/* Store directory (and name) for a new vDisk: --store, or the only one. */
static char *
import_store (struct cli *cli, struct df_farm *farm, const char *store)
{
  CLEANUP_FREE const char **stores = df_farm_names (farm, DF_KIND_STORE);
  const char *server = df_farm_local_server (farm, cli->server);

  if (stores == NULL)
    return NULL;
  if (store == NULL) {
    if (stores[0] == NULL || stores[1] != NULL) {
      df_error (EINVAL, "the farm has %s stores; say which with --store",
                stores[0] ? "several" : "no");
      return NULL;
    }
    store = stores[0];
  }
  return df_farm_store_path (farm, store, server);
}

/* Loads a vDisk from whichever store of this server holds it. */
static struct df_vdisk *
load_vdisk (struct cli *cli, struct df_farm *farm, const char *name)
{
  return df_farm_load_vdisk (farm, df_farm_local_server (farm, cli->server),
                             name, NULL, NULL);
}

static int
cmd_import (struct cli *cli, int argc, char **argv)
{
  static const struct option opts[] = {
    { "store", required_argument, NULL, 's' },
    { "block-size", required_argument, NULL, 'b' },
    { NULL }
  };
  struct df_import_opts io = { 0 };
  const char *store_name = NULL;
  CLEANUP_FREE char *store = NULL;
  struct cli_progress prog;
  struct df_farm *farm;
  uint64_t bs;
  int c, r;

  while ((c = cli_getopt (cli, argc, argv, "", opts, usage)) != -1)
    switch (c) {
    case 's': store_name = optarg; break;
    case 'b':
      if (df_parse_size (optarg, &bs) == -1 || bs > UINT32_MAX)
        return cli_fail ("--block-size");
      io.block_size = bs;
      break;
    }
  if (optind + 2 != argc)
    return cli_usage_error (usage, "import takes NAME and IMAGE");
  farm = cli_open_farm (cli);
  if (farm == NULL)
    return 1;
  store = import_store (cli, farm, store_name);
  df_farm_free (farm);
  if (store == NULL)
    return cli_fail (NULL);
  cli_progress_init (&prog, cli, "import");
  io.progress = cli_progress_cb;
  io.opaque = &prog;
  r = df_vdisk_import (store, argv[optind], argv[optind + 1], &io);
  cli_progress_done (&prog);
  if (r == -1)
    return cli_fail (NULL);
  if (cli->json)
    return cli_print_json (json_pack ("{s:s, s:i}", "vdisk", argv[optind],
                                      "version", 1));
  printf ("imported %s as vdisk %s version 1 (production)\n",
          argv[optind + 1], argv[optind]);
  return 0;
}

static uint64_t
disk_usage (const struct df_vdisk *vd, const struct df_version *v)
{
  CLEANUP_FREE char *path = df_vdisk_layer_path (vd, v);
  struct stat st;

  if (path == NULL || stat (path, &st) == -1)
    return 0;
  return (uint64_t) st.st_blocks * 512;
}

static const char *
format_time (uint64_t ns, char *buf, size_t len)
{
  time_t t = ns / 1000000000;
  struct tm tm;

  if (ns == 0 || localtime_r (&t, &tm) == NULL)
    return "-";
  strftime (buf, len, "%Y-%m-%d %H:%M:%S", &tm);
  return buf;
}

static json_t *
version_json (const struct df_vdisk *vd, const struct df_version *v)
{
  char hash[DF_HASH_TEXT_LEN + 1], id[33];
  json_t *o = json_pack ("{s:i, s:s, s:i, s:s, s:s, s:I}",
                         "version", (int) v->num,
                         "state", df_state_name (v->state),
                         "parent", (int) v->parent,
                         "file", v->file,
                         "id", df_hex (v->id, DF_LAYER_ID_LEN, id),
                         "disk_usage", (json_int_t) disk_usage (vd, v));

  if (v->sealed) {
    json_object_set_new (o, "size", json_integer (v->size));
    json_object_set_new (o, "mtime_ns", json_integer (v->mtime_ns));
    json_object_set_new (o, "hash", json_string (df_hash_format (v->hash, hash)));
  }
  json_object_set_new (o, "sealed", json_boolean (v->sealed));
  return o;
}

static json_t *
vdisk_json (const struct df_vdisk *vd, const char *store_name, bool versions)
{
  const struct df_version *prod = df_vdisk_pick (vd, DF_TYPE_PRODUCTION);
  json_t *o = json_pack ("{s:s, s:s, s:s, s:I, s:i, s:s}",
                         "name", vd->name, "store", store_name,
                         "path", vd->dir, "size", (json_int_t) vd->size,
                         "block_size", (int) vd->block_size,
                         "access", df_access_name (vd->access));
  size_t i;

  json_object_set_new (o, "cache", vd->cache ? json_string (vd->cache) : json_null ());
  json_object_set_new (o, "production", prod ? json_integer (prod->num) : json_null ());
  if (versions) {
    json_t *a = json_array ();
    for (i = 0; i < vd->nversions; i++)
      json_array_append_new (a, version_json (vd, &vd->versions[i]));
    json_object_set_new (o, "versions", a);
    json_object_set_new (o, "boot", json_pack ("{s:s?, s:s?, s:s?}",
                                               "kernel", vd->boot_kernel,
                                               "initrd", vd->boot_initrd,
                                               "cmdline", vd->boot_cmdline));
  }
  else
    json_object_set_new (o, "versions", json_integer (vd->nversions));
  return o;
}

static int
cmd_list (struct cli *cli, int argc, char **argv)
{
  static const char *const headers[] = {
    "NAME", "STORE", "SIZE", "VERSIONS", "PRODUCTION", "CACHE", NULL
  };
  CLEANUP_FREE const char **stores = NULL;
  const char *server;
  struct df_farm *farm;
  struct cli_table *t = NULL;
  json_t *a = NULL;
  size_t i, j;

  if (cli_getopt (cli, argc, argv, "", NULL, usage) != -1 || optind != argc)
    return cli_usage_error (usage, "list takes no arguments");
  farm = cli_open_farm (cli);
  if (farm == NULL)
    return 1;
  server = df_farm_local_server (farm, cli->server);
  stores = df_farm_names (farm, DF_KIND_STORE);
  if (cli->json)
    a = json_array ();
  else
    t = cli_table_new (headers);
  for (i = 0; stores && stores[i]; i++) {
    CLEANUP_FREE char *path = df_farm_store_path (farm, stores[i], server);
    char **names = path ? df_store_vdisks (path) : NULL;

    for (j = 0; names && names[j]; j++) {
      struct df_vdisk *vd = df_vdisk_load (path, names[j]);
      const struct df_version *prod;
      char size[32], nv[16], pv[16];

      if (vd == NULL) {
        cli_fail ("vdisk \"%s\"", names[j]);
        continue;
      }
      if (a)
        json_array_append_new (a, vdisk_json (vd, stores[i], false));
      else {
        const char *row[7];
        prod = df_vdisk_pick (vd, DF_TYPE_PRODUCTION);
        snprintf (nv, sizeof nv, "%zu", vd->nversions);
        snprintf (pv, sizeof pv, "%u", prod ? prod->num : 0);
        row[0] = vd->name;
        row[1] = stores[i];
        row[2] = df_format_size (vd->size, size, sizeof size);
        row[3] = nv;
        row[4] = prod ? pv : "-";
        row[5] = vd->cache;
        row[6] = NULL;
        cli_table_add (t, row);
      }
      df_vdisk_free (vd);
    }
    df_strv_free (names);
  }
  if (a)
    cli_print_json (a);
  else
    cli_table_print (t);
  df_farm_free (farm);
  return 0;
}

static int
cmd_info (struct cli *cli, int argc, char **argv)
{
  static const char *const headers[] = {
    "VERSION", "STATE", "PARENT", "ON DISK", "SEALED", "HASH", NULL
  };
  const char *store_name = NULL, *server;
  struct df_farm *farm;
  struct df_vdisk *vd;
  struct cli_table *t;
  char buf[64];
  size_t i;

  if (cli_getopt (cli, argc, argv, "", NULL, usage) != -1 || optind + 1 != argc)
    return cli_usage_error (usage, "info takes one vdisk name");
  farm = cli_open_farm (cli);
  if (farm == NULL)
    return 1;
  server = df_farm_local_server (farm, cli->server);
  vd = df_farm_load_vdisk (farm, server, argv[optind], &store_name, NULL);
  if (vd == NULL) {
    df_farm_free (farm);
    return cli_fail (NULL);
  }
  if (cli->json)
    cli_print_json (vdisk_json (vd, store_name, true));
  else {
    printf ("vdisk       %s\n", vd->name);
    printf ("store       %s (%s)\n", store_name, vd->dir);
    printf ("size        %s (%" PRIu64 " bytes)\n",
            df_format_size (vd->size, buf, sizeof buf), vd->size);
    printf ("block size  %" PRIu32 "\n", vd->block_size);
    printf ("access      %s\n", df_access_name (vd->access));
    printf ("cache       %s\n", vd->cache ? vd->cache : "(farm default)");
    if (vd->boot_kernel)
      printf ("boot        %s %s %s\n", vd->boot_kernel,
              vd->boot_initrd ? vd->boot_initrd : "",
              vd->boot_cmdline ? vd->boot_cmdline : "");
    putchar ('\n');
    t = cli_table_new (headers);
    for (i = 0; i < vd->nversions; i++) {
      const struct df_version *v = &vd->versions[i];
      char num[16], parent[16], du[32], when[32], hash[DF_HASH_TEXT_LEN + 1];
      const char *row[7];

      snprintf (num, sizeof num, "%u", v->num);
      snprintf (parent, sizeof parent, "%u", v->parent);
      row[0] = num;
      row[1] = df_state_name (v->state);
      row[2] = v->parent ? parent : "-";
      row[3] = df_format_size (disk_usage (vd, v), du, sizeof du);
      row[4] = v->sealed ? format_time (v->mtime_ns, when, sizeof when) : "-";
      row[5] = v->sealed ? df_hash_format (v->hash, hash) : "-";
      row[6] = NULL;
      cli_table_add (t, row);
    }
    cli_table_print (t);
  }
  df_vdisk_free (vd);
  df_farm_free (farm);
  return 0;
}

/* "NAME" or "NAME@VERSION"; *num 0 when none given. */
static int
parse_ref (char *ref, unsigned *num)
{
  char *at = strchr (ref, '@');
  uint64_t v;

  *num = 0;
  if (at == NULL)
    return 0;
  *at = '\0';
  if (df_parse_u64 (at + 1, &v) == -1 || v == 0 || v > DF_VERSION_MAX)
    return df_error (EINVAL, "\"%s\" is not a version number", at + 1);
  *num = v;
  return 0;
}

static int
cmd_export (struct cli *cli, int argc, char **argv)
{
  static const struct option opts[] = {
    { "format", required_argument, NULL, 'f' },
    { NULL }
  };
  const char *format = "raw";
  struct cli_progress prog;
  struct df_farm *farm;
  struct df_vdisk *vd;
  unsigned num;
  int c, r;

  while ((c = cli_getopt (cli, argc, argv, "f:", opts, usage)) != -1)
    if (c == 'f')
      format = optarg;
  if (optind + 2 != argc)
    return cli_usage_error (usage, "export takes NAME[@VERSION] and OUT");
  if (parse_ref (argv[optind], &num) == -1)
    return cli_fail (NULL);
  farm = cli_open_farm (cli);
  if (farm == NULL)
    return 1;
  vd = load_vdisk (cli, farm, argv[optind]);
  df_farm_free (farm);
  if (vd == NULL)
    return cli_fail (NULL);
  if (num == 0) {
    const struct df_version *v = df_vdisk_pick (vd, DF_TYPE_PRODUCTION);
    if (v == NULL) {
      df_vdisk_free (vd);
      cli_error ("vdisk \"%s\" has no production version; name one", argv[optind]);
      return 1;
    }
    num = v->num;
  }
  cli_progress_init (&prog, cli, "export");
  r = df_vdisk_export (vd, num, argv[optind + 1], format, cli_progress_cb, &prog);
  cli_progress_done (&prog);
  df_vdisk_free (vd);
  if (r == -1)
    return cli_fail (NULL);
  if (!cli->json)
    printf ("exported %s version %u to %s (%s)\n", argv[optind], num,
            argv[optind + 1], format);
  return 0;
}

struct verify_out {
  json_t *problems;
};

static void
verify_report (void *opaque, unsigned num, const char *problem)
{
  struct verify_out *vo = opaque;

  if (vo->problems)
    json_array_append_new (vo->problems,
                           json_pack ("{s:i, s:s}", "version", (int) num,
                                      "problem", problem));
  else
    fprintf (stderr, "diskfarm: version %u: %s\n", num, problem);
}

static int
cmd_verify (struct cli *cli, int argc, char **argv)
{
  struct verify_out vo = { NULL };
  struct df_farm *farm;
  struct df_vdisk *vd;
  int n;

  if (cli_getopt (cli, argc, argv, "", NULL, usage) != -1 || optind + 1 != argc)
    return cli_usage_error (usage, "verify takes one vdisk name");
  farm = cli_open_farm (cli);
  if (farm == NULL)
    return 1;
  vd = load_vdisk (cli, farm, argv[optind]);
  df_farm_free (farm);
  if (vd == NULL)
    return cli_fail (NULL);
  if (cli->json)
    vo.problems = json_array ();
  n = df_vdisk_verify (vd, verify_report, &vo);
  if (cli->json)
    cli_print_json (json_pack ("{s:s, s:i, s:b, s:o}", "vdisk", vd->name,
                               "versions", (int) vd->nversions, "ok", n == 0,
                               "problems", vo.problems));
  else if (n == 0)
    printf ("vdisk %s: %zu version%s verified, all good\n", vd->name,
            vd->nversions, vd->nversions == 1 ? "" : "s");
  else
    fprintf (stderr, "diskfarm: vdisk %s: %d problem%s found\n", vd->name, n,
             n == 1 ? "" : "s");
  df_vdisk_free (vd);
  return n == 0 ? 0 : 1;
}

static int
cmd_set (struct cli *cli, int argc, char **argv)
{
  static const struct option opts[] = {
    { "cache", required_argument, NULL, 'c' },
    { "access", required_argument, NULL, 'a' },
    { NULL }
  };
  const char *cache = NULL, *access = NULL, *server;
  CLEANUP_CLOSE int lock = -1;
  struct df_cache_spec spec;
  struct df_farm *farm;
  struct df_vdisk *vd = NULL;
  int c, r = 1;

  while ((c = cli_getopt (cli, argc, argv, "", opts, usage)) != -1)
    switch (c) {
    case 'c': cache = optarg; break;
    case 'a': access = optarg; break;
    }
  if (optind + 1 != argc)
    return cli_usage_error (usage, "set takes one vdisk name");
  if (cache && df_cache_parse (cache, &spec) == -1)
    return cli_fail ("--cache");
  farm = cli_open_farm (cli);
  if (farm == NULL)
    return 1;
  server = df_farm_local_server (farm, cli->server);
  vd = df_farm_load_vdisk (farm, server, argv[optind], NULL, &lock);
  df_farm_free (farm);
  if (vd == NULL)
    return cli_fail (NULL);
  if (access && df_access_parse (access, &vd->access) == -1)
    r = cli_fail ("--access");
  else if (cache && (free (vd->cache), vd->cache = strdup (cache)) == NULL)
    r = cli_fail (NULL);
  else if (df_vdisk_save (vd) == -1)
    r = cli_fail (NULL);
  else
    r = 0;
  df_vdisk_free (vd);
  return r;
}

static int
cmd_remove (struct cli *cli, int argc, char **argv)
{
  CLEANUP_FREE const char **devs = NULL;
  CLEANUP_FREE char *store = NULL;
  CLEANUP_CLOSE int lock = -1;
  const char *server, *name;
  struct df_farm *farm;
  size_t i;

  if (cli_getopt (cli, argc, argv, "", NULL, usage) != -1 || optind + 1 != argc)
    return cli_usage_error (usage, "remove takes one vdisk name");
  name = argv[optind];
  /* The farm's lock: no device gets this vDisk while it goes. */
  lock = df_farm_lock (cli->farm_dir);
  if (lock == -1)
    return cli_fail (NULL);
  farm = cli_open_farm (cli);
  if (farm == NULL)
    return 1;
  devs = df_farm_names (farm, DF_KIND_DEVICE);
  for (i = 0; devs && devs[i]; i++) {
    const char *v = df_farm_get (farm, DF_KIND_DEVICE, devs[i], "vdisk");
    if (v && strcmp (v, name) == 0) {
      cli_error ("vdisk \"%s\" is used by device \"%s\"", name, devs[i]);
      df_farm_free (farm);
      return 1;
    }
  }
  server = df_farm_local_server (farm, cli->server);
  store = df_farm_find_vdisk (farm, server, name, NULL);
  df_farm_free (farm);
  if (store == NULL || df_vdisk_remove (store, name) == -1)
    return cli_fail (NULL);
  return 0;
}

/* ---- boot: kernel, initrd and parameters for network boot ---- */

static int
print_boot (struct cli *cli, const struct df_vdisk *vd)
{
  if (cli->json)
    return cli_print_json (json_pack ("{s:s, s:s?, s:s?, s:s?}", "vdisk",
                                      vd->name, "kernel", vd->boot_kernel,
                                      "initrd", vd->boot_initrd,
                                      "cmdline", vd->boot_cmdline));
  printf ("vdisk %s boots kernel %s, initrd %s, parameters \"%s\"\n", vd->name,
          vd->boot_kernel ? vd->boot_kernel : "(none)",
          vd->boot_initrd ? vd->boot_initrd : "(none)",
          vd->boot_cmdline ? vd->boot_cmdline : "");
  return 0;
}

static int
cmd_boot (struct cli *cli, int argc, char **argv)
{
  static const struct option opts[] = {
    { "kernel", required_argument, NULL, 'k' },
    { "initrd", required_argument, NULL, 'i' },
    { "cmdline", required_argument, NULL, 'c' },
    { NULL }
  };
  struct df_boot_files b = { NULL, NULL, NULL };
  CLEANUP_FREE char *store = NULL;
  const char *server;
  struct df_farm *farm;
  struct df_vdisk *vd;
  int c, r;

  while ((c = cli_getopt (cli, argc, argv, "", opts, usage)) != -1)
    switch (c) {
    case 'k': b.kernel = optarg; break;
    case 'i': b.initrd = optarg; break;
    case 'c': b.cmdline = optarg; break;
    }
  if (optind + 1 != argc)
    return cli_usage_error (usage, "boot takes one vdisk name");
  if (b.cmdline && df_boot_cmdline_check (b.cmdline) == -1)
    return cli_fail ("--cmdline");
  farm = cli_open_farm (cli);
  if (farm == NULL)
    return 1;
  server = df_farm_local_server (farm, cli->server);
  store = server ? df_farm_find_vdisk (farm, server, argv[optind], NULL) : NULL;
  df_farm_free (farm);
  if (store == NULL || df_vdisk_set_boot (store, argv[optind], &b) == -1 ||
      (vd = df_vdisk_load (store, argv[optind])) == NULL)
    return cli_fail (NULL);
  r = print_boot (cli, vd);
  df_vdisk_free (vd);
  return r;
}

int
cli_vdisk (struct cli *cli, int argc, char **argv)
{
  switch (cli_subcommand (cli, &argc, &argv, subcommands, usage)) {
  case 0: return cmd_import (cli, argc, argv);
  case 1: return cmd_list (cli, argc, argv);
  case 2: return cmd_info (cli, argc, argv);
  case 3: return cmd_export (cli, argc, argv);
  case 4: return cmd_verify (cli, argc, argv);
  case 5: return cmd_set (cli, argc, argv);
  case 6: return cmd_remove (cli, argc, argv);
  case 7: return cmd_boot (cli, argc, argv);
  default: return 1;
  }
}
