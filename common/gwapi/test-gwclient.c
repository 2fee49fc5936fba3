/* Unit tests: common/gwapi — [gateway] settings, gateway URLs, tokens,
 * and the client against a real HTTP server of ours: the token sent,
 * JSON documents and errors, several servers at once with one down.
 */
#include <config.h>

#include <signal.h>
#include <sys/stat.h>

#include "test-helpers.h"
#include "farm/farm.h"
#include "gwapi/gwapi.h"
#include "gwapi/gwclient.h"
#include "http/http.h"

#define TOKEN "0123456789abcdef0123456789abcdef"

static int
h_doc (struct df_http_request *req, void *opaque)
{
  const char *auth = df_http_header (req, "Authorization");

  (void) opaque;
  if (auth == NULL || strcmp (auth, "Bearer " TOKEN) != 0)
    return df_http_respond_error (req, 401, "unauthorized", "no token");
  return df_http_respond_json (req, 200, json_pack ("{s:s}", "hello", "world"));
}

static int
h_text (struct df_http_request *req, void *opaque)
{
  (void) opaque;
  return df_http_respond_text (req, 200, "not json");
}

static const struct df_http_route routes[] = {
  { .method = "GET", .path = "/doc", .fn = h_doc },
  { .method = "GET", .path = "/text", .fn = h_text },
  { NULL },
};

/* A farm with servers up (gateway on port), down (a port nobody
 * listens on) and bad (an address that is no address).
 */
static struct df_farm *
make_farm (const char *dir, unsigned port, const char *extra)
{
  char conf[1024], *token;
  struct df_farm *farm;

  snprintf (conf, sizeof conf,
            "[gateway]\nport = 1\ntoken-file = token\n%s"
            "[server up]\naddress = 127.0.0.1:10809\ngateway = 127.0.0.1:%u\n"
            "[server down]\naddress = 127.0.0.1\n"
            "[server v6]\naddress = [fd00::5]:10900\n", extra, port);
  test_write (dir, "farm.conf", conf);
  test_write (dir, "token", TOKEN "\n");
  token = test_path (dir, "token");
  chmod (token, 0600);
  free (token);
  farm = df_farm_open (dir);
  if (farm == NULL)
    fail_msg ("%s", df_error_get ());
  return farm;
}

static void
test_settings_and_urls (void **state)
{
  struct df_farm *farm = make_farm (tmpdir, 5000, "ca-file = /etc/ca.pem\n");
  struct df_gw_settings s;
  char *url, *token, *path = test_path (tmpdir, "token");

  (void) state;
  assert_int_equal (df_gw_settings (farm, &s), 0);
  assert_int_equal (s.port, 1);
  assert_true (s.public_status);
  assert_string_equal (s.ca_file, "/etc/ca.pem");
  assert_true (strstr (s.token_file, "/token") != NULL);
  url = df_gw_url (farm, &s, "up");
  assert_string_equal (url, "https://127.0.0.1:5000");
  free (url);
  url = df_gw_url (farm, &s, "down");
  assert_string_equal (url, "https://127.0.0.1:1");
  free (url);
  url = df_gw_url (farm, &s, "v6");
  assert_string_equal (url, "https://[fd00::5]:1");
  free (url);
  assert_null (df_gw_url (farm, &s, "nobody"));
  df_gw_settings_free (&s);
  {
    struct df_gw_client *c = df_gw_client_new (farm);
    assert_non_null (c);
    assert_string_equal (df_gw_client_url (c, "up"), "https://127.0.0.1:5000");
    assert_null (df_gw_client_url (c, "nobody"));
    df_gw_client_free (c);
  }
  df_farm_free (farm);

  assert_int_equal (df_gw_read_token (path, true, &token), 0);
  assert_string_equal (token, TOKEN);
  free (token);
  chmod (path, 0604);
  assert_int_equal (df_gw_read_token (path, true, &token), -1);
  assert_error_contains ("may be read by others");
  assert_int_equal (df_gw_read_token (path, false, &token), 0);
  free (token);
  test_write (tmpdir, "token", "short\n");
  assert_int_equal (df_gw_read_token (path, false, &token), -1);
  assert_true (df_gw_token_equal (TOKEN, TOKEN));
  assert_false (df_gw_token_equal (TOKEN "x", TOKEN));
  assert_false (df_gw_token_equal ("", TOKEN));
  free (path);

  test_write (tmpdir, "farm.conf", "[gateway]\npublic = maybe\n");
  farm = df_farm_open (tmpdir);
  assert_int_equal (df_gw_settings (farm, &s), -1);
  assert_error_contains ("public");
  df_farm_free (farm);
}

static void
test_client (void **state)
{
  struct df_http_config cfg = { .listen = "127.0.0.1", .routes = routes,
                                .json_errors = true };
  struct df_http_server *srv = df_http_server_new (&cfg);
  struct df_farm *farm = make_farm (tmpdir, df_http_server_port (srv), "");
  struct df_gw_client *c = df_gw_client_new (farm);
  const char *servers[] = { "up", "down", "up", "nobody" };
  struct df_gw_result r[4];
  size_t i;

  (void) state;
  df_farm_free (farm);          /* the client keeps what it needs */
  assert_non_null (c);
  assert_true (df_gw_client_has_token (c));
  df_gw_client_set_timeout (c, 3000);
  assert_int_equal (df_gw_get_json (c, "up", "/doc", &r[0]), 0);
  assert_int_equal (r[0].status, 200);
  assert_string_equal (json_string_value (json_object_get (r[0].doc, "hello")),
                       "world");
  df_gw_result_clear (&r[0]);
  assert_int_equal (df_gw_get_json (c, "up", "/text", &r[0]), -1);
  assert_non_null (strstr (r[0].error, "not JSON"));
  assert_int_equal (df_gw_get_json (c, "up", "/nothing", &r[0]), -1);
  assert_int_equal (r[0].status, 404);
  assert_non_null (strstr (r[0].error, "up: HTTP 404: not found"));

  assert_int_equal (df_gw_get_json_many (c, servers, 4, "/doc", r), 2);
  assert_non_null (r[0].doc);
  assert_null (r[1].doc);
  assert_int_equal (r[1].status, 0);
  assert_non_null (strstr (r[1].error, "down: "));
  assert_non_null (r[2].doc);
  assert_non_null (strstr (r[3].error, "no usable gateway address"));
  for (i = 0; i < 4; i++)
    df_gw_result_clear (&r[i]);
  df_gw_client_free (c);
  df_http_server_free (srv);
}

int
main (void)
{
  const struct CMUnitTest tests[] = {
    cmocka_unit_test (test_settings_and_urls),
    cmocka_unit_test (test_client),
  };

  signal (SIGPIPE, SIG_IGN);
  return cmocka_run_group_tests (tests, tmpdir_setup, tmpdir_teardown);
}
