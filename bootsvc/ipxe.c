/* diskfarm-bootsvc — the per-device iPXE script (see ipxe.h). */
#include <config.h>

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cleanup.h"
#include "error.h"
#include "ipxe.h"
#include "util.h"
#include "vdisk/vdisk.h"

#define RETRY_SECONDS 10

int
boot_session_new (char buf[BOOT_SESSION_LEN + 1])
{
  uint8_t raw[BOOT_SESSION_LEN / 2];

  if (df_random_bytes (raw, sizeof raw) == -1)
    return -1;
  df_hex (raw, sizeof raw, buf);
  return 0;
}

/* The kernel command line, shared by every server's attempt. */
static char *
kernel_args (const struct ipxe_script *s)
{
  CLEANUP_FREE char *text = NULL;
  size_t len = 0, i;
  FILE *f;

  /* The manifest checked them; so does anyone else who builds a script. */
  if (df_boot_cmdline_check (s->cmdline) == -1)
    return NULL;
  f = open_memstream (&text, &len);
  if (f == NULL) {
    df_error_errno ("script");
    return NULL;
  }
  fprintf (f, "initrd=initrd BOOTIF=01-%02x-%02x-%02x-%02x-%02x-%02x "
           "diskfarm.servers=", s->mac[0], s->mac[1], s->mac[2], s->mac[3],
           s->mac[4], s->mac[5]);
  for (i = 0; i < s->nservers; i++)
    fprintf (f, "%s%s:%u", i ? "," : "", s->servers[i].host,
             s->servers[i].nbd_port);
  fprintf (f, " diskfarm.export=dev/%s@%s diskfarm.device=%s "
           "diskfarm.timeout=%u", s->device, s->session, s->device, s->timeout);
  if (s->client_cache)
    fputs (" diskfarm.cache=device", f);
  if (s->cmdline && s->cmdline[strspn (s->cmdline, " ")])
    fprintf (f, " %s", s->cmdline + strspn (s->cmdline, " "));
  if (fclose (f) != 0) {
    df_error_errno ("script");
    return NULL;
  }
  if (len > BOOT_CMDLINE_MAX) {
    df_error (E2BIG, "the kernel command line would be %zu bytes, over %d",
              len, BOOT_CMDLINE_MAX);
    return NULL;
  }
  return TAKE_PTR (text);
}

/* kernel, initrd and boot from one server; on failure, the next one. */
static void
server_block (FILE *f, const struct ipxe_script *s, size_t i, const char *args)
{
  const struct boot_server *sv = &s->servers[i];
  char next[32];

  if (i + 1 < s->nservers)
    snprintf (next, sizeof next, "server%zu", i + 2);
  else
    snprintf (next, sizeof next, "failed");
  fprintf (f, ":server%zu\n", i + 1);
  fprintf (f, "echo diskfarm: loading %s from %s (%s)\n", s->vdisk, sv->name,
           sv->host);
  fputs ("imgfree\n", f);
  fputs ("kernel ", f);
  if (s->http)
    fprintf (f, "http://%s:%u/vdisks/%s/kernel %s || kernel ", sv->host,
             s->http_port, s->vdisk, args);
  fprintf (f, "tftp://%s/vdisks/%s/kernel %s || goto %s\n", sv->host, s->vdisk,
           args, next);
  fputs ("initrd ", f);
  if (s->http)
    fprintf (f, "http://%s:%u/vdisks/%s/initrd || initrd ", sv->host,
             s->http_port, s->vdisk);
  fprintf (f, "tftp://%s/vdisks/%s/initrd || goto %s\n", sv->host, s->vdisk,
           next);
  fprintf (f, "boot || goto %s\n", next);
}

char *
ipxe_script_build (const struct ipxe_script *s)
{
  CLEANUP_FREE char *args = kernel_args (s);
  char *text = NULL, mac[18];
  size_t len = 0, i;
  FILE *f;

  if (args == NULL)
    return NULL;
  if (s->nservers == 0) {
    df_error (ENOENT, "no server to boot from");
    return NULL;
  }
  f = open_memstream (&text, &len);
  if (f == NULL) {
    df_error_errno ("script");
    return NULL;
  }
  fprintf (f, "#!ipxe\n# diskfarm: device %s (%s), vdisk %s version %u, "
           "session %s\n", s->device, df_format_mac (s->mac, mac), s->vdisk,
           s->version, s->session);
  fputs ("# servers in order:", f);
  for (i = 0; i < s->nservers; i++)
    fprintf (f, " %s", s->servers[i].name);
  fputc ('\n', f);
  for (i = 0; i < s->nservers; i++)
    server_block (f, s, i, args);
  fprintf (f, ":failed\necho diskfarm: no server could start %s; rebooting in "
           "%d seconds\nsleep %d ||\nreboot ||\nexit 1\n", s->device,
           RETRY_SECONDS, RETRY_SECONDS);
  if (fclose (f) != 0) {
    free (text);
    df_error_errno ("script");
    return NULL;
  }
  return text;
}

char *
ipxe_error_script (const char *message)
{
  char *text, q[512];

  /* Keep the message inert: no expansion, no operators. */
  df_quote (message, q, sizeof q);
  for (char *p = q; *p; p++)
    if (strchr ("$\\#;|&", *p))
      *p = ' ';
  if (asprintf (&text, "#!ipxe\necho diskfarm: %s\necho diskfarm: rebooting in "
                "%d seconds\nsleep %d ||\nreboot ||\nexit 1\n", q,
                RETRY_SECONDS * 3, RETRY_SECONDS * 3) == -1)
    return NULL;
  return text;
}
