/* diskfarm-bootsvc — DHCP packet parsing and building (see packet.h). */
#include <config.h>

#include <arpa/inet.h>
#include <errno.h>
#include <stddef.h>
#include <string.h>

#include "dhcp/packet.h"
#include "error.h"

/* Offsets in the fixed part of a BOOTP/DHCP message. */
#define OFF_OP 0
#define OFF_XID 4
#define OFF_SECS 8
#define OFF_FLAGS 10
#define OFF_CIADDR 12
#define OFF_YIADDR 16
#define OFF_SIADDR 20
#define OFF_GIADDR 24
#define OFF_CHADDR 28
#define OFF_SNAME 44
#define OFF_FILE 108
#define OFF_COOKIE 236
#define OFF_OPTIONS 240

#define SNAME_LEN 64
#define FILE_LEN 128

static const uint8_t magic_cookie[4] = { 99, 130, 83, 99 };

static uint16_t
get16 (const uint8_t *p)
{
  return (uint16_t) (p[0] << 8 | p[1]);
}

static struct in_addr
get_addr (const uint8_t *p)
{
  struct in_addr a;

  memcpy (&a.s_addr, p, 4);
  return a;
}

/* One area of options (the options field, or an overloaded file or
 * sname field).  Calls visit for every option instance; end_required
 * makes a missing end option an error.
 */
struct area {
  const uint8_t *data;
  size_t len;
  const char *name;
};

typedef void (*visit_fn) (struct dhcp_packet *p, uint8_t code,
                          const uint8_t *data, uint8_t len, void *opaque);

static int
walk_area (struct dhcp_packet *p, const struct area *a, bool end_required,
           visit_fn visit, void *opaque)
{
  size_t i = 0;

  while (i < a->len) {
    uint8_t code = a->data[i];

    if (code == DHO_PAD) {
      i++;
      continue;
    }
    if (code == DHO_END)
      return 0;
    if (i + 1 >= a->len)
      return df_error (EINVAL, "option %u in the %s field has no length byte",
                       code, a->name);
    if (i + 2 + a->data[i + 1] > a->len)
      return df_error (EINVAL, "option %u (%u bytes) runs past the end of the "
                       "%s field", code, a->data[i + 1], a->name);
    visit (p, code, a->data + i + 2, a->data[i + 1], opaque);
    i += 2 + a->data[i + 1];
  }
  if (end_required)
    return df_error (EINVAL, "the %s field has no end option", a->name);
  return 0;
}

/* Pass 1: total length of each option over all its instances. */
static void
visit_count (struct dhcp_packet *p, uint8_t code, const uint8_t *data,
             uint8_t len, void *opaque)
{
  uint16_t *total = opaque;

  (void) data;
  p->opt[code].present = true;
  total[code] += len;
}

/* Pass 2: instances appended to their option's slot in the store. */
static void
visit_copy (struct dhcp_packet *p, uint8_t code, const uint8_t *data,
            uint8_t len, void *opaque)
{
  (void) opaque;
  memcpy ((uint8_t *) p->opt[code].data + p->opt[code].len, data, len);
  p->opt[code].len += len;
}

/* Both passes over the areas: the options and their data in the store. */
static int
collect (struct dhcp_packet *p, const struct area *areas, size_t nareas)
{
  uint16_t total[256] = { 0 };
  size_t i, used = 0;
  unsigned code;

  memset (p->opt, 0, sizeof p->opt);
  for (i = 0; i < nareas; i++)
    if (walk_area (p, &areas[i], i == 0, visit_count, total) == -1)
      return -1;
  for (code = 0; code < 256; code++)
    if (p->opt[code].present) {
      p->opt[code].data = p->store + used;
      used += total[code];
    }
  for (i = 0; i < nareas; i++)
    walk_area (p, &areas[i], false, visit_copy, NULL);
  return 0;
}

static int
parse_options (struct dhcp_packet *p, const uint8_t *b, size_t len)
{
  struct area areas[3] = {
    { b + OFF_OPTIONS, len - OFF_OPTIONS, "options" },
  };
  const struct dhcp_option *o;
  size_t nareas = 1;

  if (collect (p, areas, nareas) == -1)
    return -1;
  o = dhcp_get (p, DHO_OVERLOAD);
  if (o == NULL)
    return 0;
  /* Option overload: more options in the file field, then sname. */
  if (o->len != 1 || o->data[0] < 1 || o->data[0] > 3)
    return df_error (EINVAL, "option overload (52) is not 1, 2 or 3");
  if (o->data[0] & 1)
    areas[nareas++] = (struct area) { b + OFF_FILE, FILE_LEN, "file" };
  if (o->data[0] & 2)
    areas[nareas++] = (struct area) { b + OFF_SNAME, SNAME_LEN, "sname" };
  return collect (p, areas, nareas);
}

int
dhcp_parse (const void *buf, size_t len, struct dhcp_packet *p)
{
  const uint8_t *b = buf;

  memset (p, 0, offsetof (struct dhcp_packet, store));
  if (len < DHCP_MIN_LEN)
    return df_error (EINVAL, "truncated packet (%zu bytes, a DHCP message has "
                     "at least %d)", len, DHCP_MIN_LEN);
  if (len > DHCP_PACKET_MAX)
    return df_error (EINVAL, "oversized packet (%zu bytes)", len);
  if (memcmp (b + OFF_COOKIE, magic_cookie, 4) != 0)
    return df_error (EINVAL, "no DHCP magic cookie (a plain BOOTP packet?)");
  p->op = b[OFF_OP];
  p->htype = b[1];
  p->hlen = b[2];
  p->hops = b[3];
  if (p->hlen > sizeof p->chaddr)
    return df_error (EINVAL, "hardware address length %u is over 16", p->hlen);
  memcpy (&p->xid, b + OFF_XID, 4);
  p->secs = get16 (b + OFF_SECS);
  p->flags = get16 (b + OFF_FLAGS);
  p->ciaddr = get_addr (b + OFF_CIADDR);
  p->yiaddr = get_addr (b + OFF_YIADDR);
  p->siaddr = get_addr (b + OFF_SIADDR);
  p->giaddr = get_addr (b + OFF_GIADDR);
  memcpy (p->chaddr, b + OFF_CHADDR, sizeof p->chaddr);
  return parse_options (p, b, len);
}

const struct dhcp_option *
dhcp_get (const struct dhcp_packet *p, uint8_t code)
{
  return p->opt[code].present ? &p->opt[code] : NULL;
}

unsigned
dhcp_msg_type (const struct dhcp_packet *p)
{
  const struct dhcp_option *o = dhcp_get (p, DHO_MESSAGE_TYPE);

  if (o == NULL || o->len != 1 || o->data[0] < DHCPDISCOVER ||
      o->data[0] > DHCPINFORM)
    return 0;
  return o->data[0];
}

bool
dhcp_get_addr (const struct dhcp_packet *p, uint8_t code, struct in_addr *out)
{
  const struct dhcp_option *o = dhcp_get (p, code);

  if (o == NULL || o->len != 4)
    return false;
  memcpy (&out->s_addr, o->data, 4);
  return true;
}

const uint8_t *
dhcp_suboption (const uint8_t *data, size_t len, uint8_t code, uint8_t *sublen)
{
  size_t i = 0;

  while (i < len) {
    if (data[i] == DHO_PAD) {
      i++;
      continue;
    }
    if (data[i] == DHO_END || i + 1 >= len || i + 2 + data[i + 1] > len)
      return NULL;
    if (data[i] == code) {
      *sublen = data[i + 1];
      return data + i + 2;
    }
    i += 2 + data[i + 1];
  }
  return NULL;
}

const char *
dhcp_msg_name (unsigned type)
{
  static const char *const names[] = {
    "BOOTP", "DHCPDISCOVER", "DHCPOFFER", "DHCPREQUEST", "DHCPDECLINE",
    "DHCPACK", "DHCPNAK", "DHCPRELEASE", "DHCPINFORM",
  };

  return type < sizeof names / sizeof names[0] ? names[type] : "DHCP?";
}

/* ---- building ---- */

void
dhcp_reply_start (struct dhcp_reply *r, const struct dhcp_packet *req,
                  uint8_t type)
{
  const struct dhcp_option *mms = dhcp_get (req, DHO_MAX_MESSAGE_SIZE);
  uint16_t flags = htons (req->flags);

  memset (r->buf, 0, DHCP_MIN_LEN);
  r->buf[OFF_OP] = BOOTREPLY;
  r->buf[1] = req->htype;
  r->buf[2] = req->hlen;
  memcpy (r->buf + OFF_XID, &req->xid, 4);
  memcpy (r->buf + OFF_FLAGS, &flags, 2);
  memcpy (r->buf + OFF_GIADDR, &req->giaddr.s_addr, 4);
  memcpy (r->buf + OFF_CHADDR, req->chaddr, sizeof req->chaddr);
  memcpy (r->buf + OFF_COOKIE, magic_cookie, 4);
  r->len = OFF_OPTIONS;
  r->overflow = false;
  r->max = DHCP_REPLY_DEFAULT_MAX;
  /* Option 57 counts the IP and UDP headers too. */
  if (mms && mms->len == 2 && get16 (mms->data) > 576)
    r->max = get16 (mms->data) - 28;
  if (r->max > sizeof r->buf)
    r->max = sizeof r->buf;
  dhcp_reply_option_u8 (r, DHO_MESSAGE_TYPE, type);
}

static void
set_addr (struct dhcp_reply *r, size_t off, struct in_addr a)
{
  memcpy (r->buf + off, &a.s_addr, 4);
}

void
dhcp_reply_set_ciaddr (struct dhcp_reply *r, struct in_addr a)
{
  set_addr (r, OFF_CIADDR, a);
}

void
dhcp_reply_set_yiaddr (struct dhcp_reply *r, struct in_addr a)
{
  set_addr (r, OFF_YIADDR, a);
}

void
dhcp_reply_set_siaddr (struct dhcp_reply *r, struct in_addr a)
{
  set_addr (r, OFF_SIADDR, a);
}

void
dhcp_reply_set_flags (struct dhcp_reply *r, uint16_t flags)
{
  uint16_t f = htons (flags);

  memcpy (r->buf + OFF_FLAGS, &f, 2);
}

int
dhcp_reply_set_file (struct dhcp_reply *r, const char *file)
{
  size_t n = strlen (file);

  if (n >= FILE_LEN)
    return df_error (ENAMETOOLONG, "boot file name \"%.40s...\" is longer "
                     "than %d bytes", file, FILE_LEN - 1);
  memset (r->buf + OFF_FILE, 0, FILE_LEN);
  memcpy (r->buf + OFF_FILE, file, n);
  return 0;
}

void
dhcp_reply_option (struct dhcp_reply *r, uint8_t code, const void *data,
                   size_t len)
{
  const uint8_t *d = data;

  do {
    size_t n = len > 255 ? 255 : len;
    /* Room for this instance and the end option. */
    if (r->overflow || r->len + 2 + n + 1 > r->max) {
      r->overflow = true;
      return;
    }
    r->buf[r->len] = code;
    r->buf[r->len + 1] = n;
    if (n)
      memcpy (r->buf + r->len + 2, d, n);
    r->len += 2 + n;
    d += n;
    len -= n;
  } while (len > 0);
}

void
dhcp_reply_option_u8 (struct dhcp_reply *r, uint8_t code, uint8_t v)
{
  dhcp_reply_option (r, code, &v, 1);
}

void
dhcp_reply_option_u32 (struct dhcp_reply *r, uint8_t code, uint32_t v)
{
  uint32_t n = htonl (v);

  dhcp_reply_option (r, code, &n, 4);
}

void
dhcp_reply_option_addr (struct dhcp_reply *r, uint8_t code, struct in_addr a)
{
  dhcp_reply_option (r, code, &a.s_addr, 4);
}

void
dhcp_reply_option_str (struct dhcp_reply *r, uint8_t code, const char *s)
{
  dhcp_reply_option (r, code, s, strlen (s));
}

size_t
dhcp_reply_finish (struct dhcp_reply *r)
{
  if (r->overflow) {
    df_error (EMSGSIZE, "the reply does not fit in %zu bytes", r->max);
    return 0;
  }
  r->buf[r->len++] = DHO_END;
  if (r->len < DHCP_REPLY_MIN) {
    memset (r->buf + r->len, 0, DHCP_REPLY_MIN - r->len);
    r->len = DHCP_REPLY_MIN;
  }
  return r->len;
}
