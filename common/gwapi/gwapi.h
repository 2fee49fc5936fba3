/* diskfarm — the gateways of a farm, as their clients and the daemon
 * itself see them: the [gateway] settings of farm.conf, a server's
 * gateway URL, the bearer token.  The HTTP client for their JSON
 * documents is gwclient.h (it needs libcurl; this does not).
 */
#ifndef DISKFARM_GWAPI_H
#define DISKFARM_GWAPI_H

#include <stdbool.h>
#include <stddef.h>

#include "farm/farm.h"

#define DF_GATEWAY_PORT 10811
/* A token is 16 to 256 printable characters without spaces. */
#define DF_TOKEN_MIN 16
#define DF_TOKEN_MAX 256

/* Relays (docs/replication.md): a replicator's copy of a file still on
 * its way, which the gateway of its server serves to peers
 * (GET /v1/stores/STORE/staged/PATH?hash=H).  In the store:
 *   DF_STAGING_DIR/H.part   the copy, at its final size from the start
 *   DF_STAGING_DIR/H.got    what of it has arrived: records of two
 *                           little-endian uint64 [start, end), appended
 *                           once those bytes are written to H.part;
 *                           unlinked when the download stops (done,
 *                           failed or abandoned)
 *   DF_STAGING_DIR/H.done   a hard link to the file committed from
 *                           H.part, until the sync that made it ends
 */
#define DF_STAGING_DIR ".replicator/staging"
#define DF_STAGED_RECORD 16

struct df_gw_settings {
  unsigned port;                /* [gateway] port, default DF_GATEWAY_PORT */
  char *token_file;             /* absolute, or NULL if none is set */
  bool public_status;           /* [gateway] public = status (default) */
  char *ca_file;                /* absolute, or NULL: plain HTTP */
};

/* Reads and checks the [gateway] section.  Free with df_gw_settings_free. */
int df_gw_settings (const struct df_farm *farm, struct df_gw_settings *out);
void df_gw_settings_free (struct df_gw_settings *s);

/* "http://HOST:PORT" or "https://HOST:PORT" of server's gateway (its
 * gateway key, else its address's host and the [gateway] port).
 * Caller frees; NULL with a message.
 */
char *df_gw_url (const struct df_farm *farm, const struct df_gw_settings *s,
                 const char *server);

/* Reads the token from path (surrounding white space dropped) into a
 * malloc'd string.  private_only: refuse a file that others (not the
 * owner or its group) may read or write, as the daemon does.
 */
int df_gw_read_token (const char *path, bool private_only, char **token);

/* Constant-time comparison of a presented token with the real one. */
bool df_gw_token_equal (const char *presented, const char *token);

#endif
