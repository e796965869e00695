/* ws_deflate.c - permessage-deflate negotiation, and compressing and
 * inflating whole messages with the worker's two zlib streams. */
#include "ws_deflate.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <zlib.h>

#include "log.h"

#define WS_DEFLATE_MIN_BITS 9   /* zlib's raw deflate cannot do an 8-bit window */
#define WS_DEFLATE_MAX_BITS 15
#define WS_DEFLATE_MEM_LEVEL 8
#define WS_INFLATE_FIRST (16 * 1024)

static const uint8_t ws_deflate_tail[4] = { 0x00, 0x00, 0xff, 0xff };

/* --- negotiation -------------------------------------------------------- */

/* One offer's parameters as parsed (RFC 7692 section 7.1). */
struct ws_offer {
    int ok;                     /* every parameter known, once, well formed */
    int server_no_takeover, client_no_takeover;
    int server_bits;            /* 0: not offered */
    int client_bits;            /* -1: not offered, 0: offered without a value */
};

static int ws_tchar(char c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9')
           || (c != '\0' && strchr("!#$%&'*+-.^_`|~", c) != NULL);
}

static const char *ws_skip_ows(const char *p)
{
    while (*p == ' ' || *p == '\t') {
        p++;
    }
    return p;
}

/* Reads a token at P into OUT (SIZE bytes, truncated names simply do not
 * match); returns the end, or NULL when there is none. */
static const char *ws_token(const char *p, char *out, size_t size)
{
    size_t n = 0;

    if (!ws_tchar(*p)) {
        return NULL;
    }
    for (; ws_tchar(*p); p++) {
        if (n + 1 < size) {
            out[n++] = *p;
        }
    }
    out[n] = '\0';
    return p;
}

/* Reads a token or a quoted-string (unescaped) value at P. */
static const char *ws_value(const char *p, char *out, size_t size)
{
    size_t n = 0;

    if (*p != '"') {
        return ws_token(p, out, size);
    }
    for (p++; *p != '"'; p++) {
        if (*p == '\\') {
            p++;
        }
        if (*p == '\0' || *p == '\r' || *p == '\n') {
            return NULL;
        }
        if (n + 1 < size) {
            out[n++] = *p;
        }
    }
    out[n] = '\0';
    return p + 1;
}

/* A window size as RFC 7692 writes it: 8 to 15, no sign, no leading zero. */
static int ws_window_bits(const char *v)
{
    if (v[0] == '8' || v[0] == '9') {
        return v[1] == '\0' ? v[0] - '0' : -1;
    }
    if (v[0] == '1' && v[1] >= '0' && v[1] <= '5' && v[2] == '\0') {
        return 10 + v[1] - '0';
    }
    return -1;
}

/* Takes one parameter (NAME, VALUE or NULL) into O. */
static void ws_offer_param(struct ws_offer *o, const char *name, const char *value)
{
    if (strcasecmp(name, "server_no_context_takeover") == 0) {
        o->ok &= value == NULL && !o->server_no_takeover;
        o->server_no_takeover = 1;
    } else if (strcasecmp(name, "client_no_context_takeover") == 0) {
        o->ok &= value == NULL && !o->client_no_takeover;
        o->client_no_takeover = 1;
    } else if (strcasecmp(name, "server_max_window_bits") == 0) {
        o->ok &= value != NULL && o->server_bits == 0;
        o->server_bits = value != NULL ? ws_window_bits(value) : -1;
        o->ok &= o->server_bits > 0;
    } else if (strcasecmp(name, "client_max_window_bits") == 0) {
        o->ok &= o->client_bits < 0;
        o->client_bits = value != NULL ? ws_window_bits(value) : 0;
        o->ok &= o->client_bits >= 0;
    } else {
        o->ok = 0;
    }
}

int ws_deflate_negotiate(const char *offers, int max_bits, char *response, size_t size)
{
    const char *p = offers;
    int accepted = 0, named = 0;

    if (p == NULL) {
        return 0;
    }
    for (;;) {
        char name[32], pname[32], pvalue[8];
        struct ws_offer o = { .ok = 1, .client_bits = -1 };

        p = ws_skip_ows(p);
        if (*p == ',') {                /* empty list elements are allowed */
            p++;
            continue;
        }
        if (*p == '\0') {
            break;
        }
        if ((p = ws_token(p, name, sizeof(name))) == NULL) {
            return 0;
        }
        for (p = ws_skip_ows(p); *p == ';'; p = ws_skip_ows(p)) {
            int has_value = 0;

            if ((p = ws_token(ws_skip_ows(p + 1), pname, sizeof(pname))) == NULL) {
                return 0;
            }
            p = ws_skip_ows(p);
            if (*p == '=') {
                if ((p = ws_value(ws_skip_ows(p + 1), pvalue, sizeof(pvalue))) == NULL) {
                    return 0;
                }
                has_value = 1;
            }
            ws_offer_param(&o, pname, has_value ? pvalue : NULL);
        }
        if (*p != ',' && *p != '\0') {
            return 0;
        }
        /* The first offer parley can honour wins; the rest are still read,
         * so that a malformed header declines everything. */
        if (!accepted && o.ok && strcasecmp(name, "permessage-deflate") == 0
            && (o.server_bits == 0 || o.server_bits >= WS_DEFLATE_MIN_BITS)) {
            accepted = o.server_bits != 0 && o.server_bits < max_bits ? o.server_bits : max_bits;
            named = o.server_bits != 0;
        }
    }
    /* The window is named only when the client asked for one: some
     * clients refuse a parameter they did not offer. */
    if (accepted && named) {
        snprintf(response, size, "permessage-deflate; server_no_context_takeover; client_no_context_takeover; "
                 "server_max_window_bits=%d", accepted);
    } else if (accepted) {
        snprintf(response, size, "permessage-deflate; server_no_context_takeover; client_no_context_takeover");
    }
    return accepted;
}

/* --- compressing -------------------------------------------------------- */

static struct {
    z_stream def, inf;
    int def_ready, inf_ready;
    int level, max_bits;
} wsd = { .level = Z_BEST_SPEED, .max_bits = WS_DEFLATE_MAX_BITS };

void ws_deflate_setup(int level, int max_bits)
{
    if (wsd.def_ready) {
        deflateEnd(&wsd.def);
        wsd.def_ready = 0;
    }
    wsd.level = level;
    wsd.max_bits = max_bits;
}

size_t ws_deflate_bound(size_t len)
{
    return len + sizeof(ws_deflate_tail);       /* only a shorter result is used */
}

int ws_deflate_fits(size_t len, int window_bits)
{
    return window_bits >= wsd.max_bits || len <= (size_t)1 << window_bits;
}

size_t ws_deflate_compress(const void *data, size_t len, uint8_t *out)
{
    z_stream *z = &wsd.def;
    size_t n;

    if (!wsd.def_ready) {
        if (deflateInit2(z, wsd.level, Z_DEFLATED, -wsd.max_bits, WS_DEFLATE_MEM_LEVEL, Z_DEFAULT_STRATEGY) != Z_OK) {
            log_error(0, "event=deflate_init_failed messages=uncompressed");
            return 0;
        }
        wsd.def_ready = 1;
    } else if (deflateReset(z) != Z_OK) {
        return 0;
    }
    if (len > UINT32_MAX - sizeof(ws_deflate_tail)) {
        return 0;
    }
    z->next_in = (Bytef *)(uintptr_t)data;
    z->avail_in = (uInt)len;
    z->next_out = out;
    z->avail_out = (uInt)ws_deflate_bound(len);
    /* A sync flush ends the message on a byte boundary with an empty stored
     * block, 00 00 ff ff, which RFC 7692 7.2.1 has the sender remove.  With
     * the output full the message did not get shorter: not worth it. */
    if (deflate(z, Z_SYNC_FLUSH) != Z_OK || z->avail_in != 0 || z->avail_out == 0) {
        return 0;
    }
    n = ws_deflate_bound(len) - z->avail_out;
    if (n < sizeof(ws_deflate_tail) || memcmp(out + n - sizeof(ws_deflate_tail), ws_deflate_tail, sizeof(ws_deflate_tail)) != 0) {
        return 0;
    }
    n -= sizeof(ws_deflate_tail);
    return n < len ? n : 0;
}

/* --- inflating ---------------------------------------------------------- */

enum ws_inflate_result ws_deflate_inflate(const uint8_t *in, size_t len, size_t max, char **out, size_t *out_len)
{
    z_stream *z = &wsd.inf;
    size_t cap = max < WS_INFLATE_FIRST ? max + 1 : WS_INFLATE_FIRST, got = 0;
    int tail = 0, ok = 0, rc;
    char *buf;

    if (!wsd.inf_ready) {
        /* The widest window inflates whatever window the client used. */
        if (inflateInit2(z, -WS_DEFLATE_MAX_BITS) != Z_OK) {
            return WS_INFLATE_NO_MEMORY;
        }
        wsd.inf_ready = 1;
    } else if (inflateReset(z) != Z_OK) {
        return WS_INFLATE_NO_MEMORY;
    }
    if (len > UINT32_MAX) {
        return WS_INFLATE_TOO_BIG;      /* zlib counts in 32 bits */
    }
    if ((buf = malloc(cap + 1)) == NULL) {
        return WS_INFLATE_NO_MEMORY;
    }
    z->next_in = (Bytef *)(uintptr_t)in;
    z->avail_in = (uInt)len;
    for (;;) {
        if (z->avail_in == 0 && !tail) {
            z->next_in = (Bytef *)(uintptr_t)ws_deflate_tail;
            z->avail_in = sizeof(ws_deflate_tail);
            tail = 1;
        }
        if (got == cap) {
            char *more;

            /* The buffer grows to MAX + 1 at most: one byte past the limit
             * is enough to know the message is too big. */
            if (cap > max) {
                free(buf);
                return WS_INFLATE_TOO_BIG;
            }
            cap = cap > max / 2 ? max + 1 : cap * 2;
            if ((more = realloc(buf, cap + 1)) == NULL) {
                free(buf);
                return WS_INFLATE_NO_MEMORY;
            }
            buf = more;
        }
        z->next_out = (Bytef *)buf + got;
        z->avail_out = (uInt)(cap - got);
        rc = inflate(z, Z_SYNC_FLUSH);
        got = cap - z->avail_out;
        if (got > max) {
            free(buf);
            return WS_INFLATE_TOO_BIG;
        }
        if (rc == Z_STREAM_END) {
            /* A final block may end the message, with its own bits: when
             * it took any of the tail, the message was cut short.  Nothing
             * may follow it. */
            ok = z->avail_in == (tail ? sizeof(ws_deflate_tail) : 0);
            break;
        }
        if (rc != Z_OK && rc != Z_BUF_ERROR) {
            break;
        }
        if (tail && z->avail_in == 0 && z->avail_out > 0) {
            /* Everything is in: the message must end where a block does,
             * or it was cut short. */
            ok = (z->data_type & 128) != 0;
            break;
        }
    }
    if (!ok) {
        free(buf);
        return rc == Z_MEM_ERROR ? WS_INFLATE_NO_MEMORY : WS_INFLATE_INVALID;
    }
    buf[got] = '\0';
    *out = buf;
    *out_len = got;
    return WS_INFLATE_OK;
}
