/* http_chunked.c - strict chunked body decoding (RFC 9112 7.1). */
#include "http_chunked.h"

#include <string.h>

#include "parley.h"

enum {
    CH_SIZE_FIRST,
    CH_SIZE,
    CH_EXT_BWS,                 /* blanks that must lead to a ";" */
    CH_EXT_NAME_START,          /* after ";" */
    CH_EXT_NAME,
    CH_EXT_NAME_BWS,            /* blanks after a name: "=" or ";" next */
    CH_EXT_VALUE_START,         /* after "=" */
    CH_EXT_TOKEN,
    CH_EXT_QUOTED,
    CH_EXT_ESCAPE,              /* after a backslash in a quoted-string */
    CH_EXT_END,                 /* after a quoted-string */
    CH_LF,                      /* the LF ending a chunk line */
    CH_DATA,
    CH_DATA_CR,
    CH_DATA_LF,
    CH_TRAILER,
};

void http_chunked_init(struct http_chunked *c, uint64_t max_body, size_t max_trailer)
{
    memset(c, 0, sizeof(*c));
    c->max_body = max_body;
    c->max_trailer = max_trailer;
}

static int http_chunked_hex(unsigned char c)
{
    return c >= '0' && c <= '9' ? c - '0'
         : c >= 'a' && c <= 'f' ? c - 'a' + 10
         : c >= 'A' && c <= 'F' ? c - 'A' + 10
         : -1;
}

static int http_chunked_refuse(struct http_chunked *c, int status, const char *reason)
{
    c->reason = reason;
    return status;
}

/* Where a byte that may end an extension's name or value leads: the next
 * extension, the end of the line, or blanks before either. */
static int http_chunked_ext_next(unsigned char b)
{
    return b == ';' ? CH_EXT_NAME_START : b == '\r' ? CH_LF : b == ' ' || b == '\t' ? CH_EXT_BWS : -1;
}

/* The state after byte B of a chunk line's size and extensions, or -1. */
static int http_chunked_line_byte(struct http_chunked *c, unsigned char b)
{
    int blank = b == ' ' || b == '\t';

    switch (c->state) {
    case CH_SIZE_FIRST:
    case CH_SIZE:
        if (http_chunked_hex(b) >= 0) {
            if (++c->digits > 16) {
                return -1;      /* more than any size needs: refused, not wrapped */
            }
            c->size = c->size * 16 + (uint64_t)http_chunked_hex(b);
            return CH_SIZE;
        }
        /* No blank between the size and a ";" (h11 and others refuse it). */
        return c->state != CH_SIZE ? -1 : b == ';' ? CH_EXT_NAME_START : b == '\r' ? CH_LF : -1;
    case CH_EXT_BWS:
        return blank ? CH_EXT_BWS : b == ';' ? CH_EXT_NAME_START : -1;
    case CH_EXT_NAME_START:
        return blank ? CH_EXT_NAME_START : http_tchar(b) ? CH_EXT_NAME : -1;
    case CH_EXT_NAME:
        if (http_tchar(b)) {
            return CH_EXT_NAME;
        }
        return b == '=' ? CH_EXT_VALUE_START : blank ? CH_EXT_NAME_BWS : http_chunked_ext_next(b);
    case CH_EXT_NAME_BWS:
        return blank ? CH_EXT_NAME_BWS : b == '=' ? CH_EXT_VALUE_START : b == ';' ? CH_EXT_NAME_START : -1;
    case CH_EXT_VALUE_START:
        return blank ? CH_EXT_VALUE_START : b == '"' ? CH_EXT_QUOTED : http_tchar(b) ? CH_EXT_TOKEN : -1;
    case CH_EXT_TOKEN:
        return http_tchar(b) ? CH_EXT_TOKEN : http_chunked_ext_next(b);
    case CH_EXT_QUOTED:
        /* qdtext: HTAB, SP, VCHAR but '"' and '\', obs-text */
        return b == '"' ? CH_EXT_END : b == '\\' ? CH_EXT_ESCAPE
             : b == '\t' || (b >= ' ' && b != 0x7f) ? CH_EXT_QUOTED : -1;
    case CH_EXT_ESCAPE:
        return b == '\t' || (b >= ' ' && b != 0x7f) ? CH_EXT_QUOTED : -1;
    default:    /* CH_EXT_END */
        return http_chunked_ext_next(b);
    }
}

/* Takes in one byte outside chunk data; returns PL_AGAIN, 0 at the end of
 * the body, or a status. */
static int http_chunked_byte(struct http_chunked *c, unsigned char b)
{
    int was_size = c->state == CH_SIZE;

    switch (c->state) {
    case CH_LF:
        if (b != '\n') {
            break;
        }
        c->line = 0;
        c->state = c->size > 0 ? CH_DATA : CH_TRAILER;
        return PL_AGAIN;
    case CH_DATA_CR:
        c->state = CH_DATA_LF;
        return b == '\r' ? PL_AGAIN : http_chunked_refuse(c, 400, "chunk data not followed by CRLF");
    case CH_DATA_LF:
        c->state = CH_SIZE_FIRST;
        c->size = 0;
        c->digits = 0;
        return b == '\n' ? PL_AGAIN : http_chunked_refuse(c, 400, "chunk data not followed by CRLF");
    case CH_TRAILER:
        if (++c->line > c->max_trailer) {
            return http_chunked_refuse(c, 431, "the trailer fields are too large");
        }
        switch (http_field_feed(&c->field, b)) {
        case HTTP_FIELD_END:
            return 0;
        case HTTP_FIELD_BAD:
            return http_chunked_refuse(c, 400, "malformed trailer field");
        case HTTP_FIELD_LINE:
            /* The framing is settled by now: a trailer claiming otherwise
             * is refused rather than dropped. */
            return c->field.framing ? http_chunked_refuse(c, 400, "Content-Length or Transfer-Encoding "
                                                                  "in the trailer fields")
                                    : PL_AGAIN;
        default:
            return PL_AGAIN;
        }
    default:
        if (++c->line > HTTP_CHUNK_LINE_MAX || (c->state = http_chunked_line_byte(c, b)) < 0) {
            break;
        }
        if (was_size && c->state != CH_SIZE && c->size > c->max_body - c->body) {
            return http_chunked_refuse(c, 413, "the request body is larger than max_body");
        }
        return PL_AGAIN;
    }
    return http_chunked_refuse(c, 400, "malformed chunk line (RFC 9112 7.1)");
}

int http_chunked_decode(struct http_chunked *c, const char *in, size_t len, size_t *used,
                        char *out, size_t *outlen)
{
    size_t i = 0, o = 0;
    int status = PL_AGAIN;

    while (i < len && status == PL_AGAIN) {
        if (c->state == CH_DATA) {
            size_t n = len - i < c->size ? len - i : (size_t)c->size;

            memmove(out + o, in + i, n);
            o += n;
            i += n;
            c->size -= n;
            c->body += n;
            c->state = c->size == 0 ? CH_DATA_CR : CH_DATA;
            continue;
        }
        status = http_chunked_byte(c, (unsigned char)in[i++]);
    }
    *used = i;
    *outlen = o;
    return status;
}
