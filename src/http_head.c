/* http_head.c - request head checks ahead of the HTTP parser. */
#include "http_head.h"

#include <ctype.h>
#include <string.h>
#include <strings.h>

/* Whether the LEN bytes at S, without surrounding blanks, are NAME (any
 * case) followed by a colon; sets *VALUE and *VLEN to the value. */
static int http_head_field(const char *s, size_t len, const char *name, const char **value, size_t *vlen)
{
    size_t n = strlen(name);

    if (len <= n || s[n] != ':' || strncasecmp(s, name, n) != 0) {
        return 0;
    }
    s += n + 1;
    len -= n + 1;
    while (len > 0 && (*s == ' ' || *s == '\t')) {
        s++;
        len--;
    }
    while (len > 0 && (s[len - 1] == ' ' || s[len - 1] == '\t' || s[len - 1] == '\r')) {
        len--;
    }
    *value = s;
    *vlen = len;
    return 1;
}

/* Takes in one complete header line (LEN bytes before its '\n'); returns
 * 400 when it makes the framing invalid or ambiguous, else 0. */
static int http_head_line(struct http_head_scan *s, const char *line, size_t len)
{
    const char *value;
    size_t vlen, i;
    uint64_t v = 0;

    if (http_head_field(line, len, "Transfer-Encoding", &value, &vlen)) {
        s->chunked = 1;
    } else if (http_head_field(line, len, "Content-Length", &value, &vlen)) {
        for (i = 0; i < vlen && isdigit((unsigned char)value[i]); i++) {
            v = i < 19 ? v * 10 + (uint64_t)(value[i] - '0') : UINT64_MAX;
        }
        if (vlen == 0 || i != vlen || (s->have_length && v != s->length)) {
            return 400;
        }
        s->have_length = 1;
        s->length = v;
    }
    return s->chunked && s->have_length ? 400 : 0;  /* both framings: refuse, not guess */
}

int http_head_scan(struct http_head_scan *s, const char *buf, size_t len, size_t max_headers, uint64_t max_body)
{
    int status;

    for (; s->scanned < len; s->scanned++) {
        const char *line = buf + s->line;
        size_t n = s->scanned - s->line;

        if (buf[s->scanned] != '\n') {
            continue;
        }
        s->line = s->scanned + 1;
        if (s->headers == 0) {
            if (n >= HTTP_MAX_REQUEST_LINE) {
                return 414;
            }
            s->headers = s->line;           /* the request line is in */
            continue;
        }
        if (s->line - s->headers > max_headers) {
            return 431;
        }
        if (n == 0 || (n == 1 && line[0] == '\r')) {
            s->scanned++;
            return s->have_length && s->length > max_body ? 413 : 0;
        }
        if ((status = http_head_line(s, line, n)) != 0) {
            return status;
        }
    }
    if (s->headers == 0) {
        return len >= HTTP_MAX_REQUEST_LINE ? 414 : -1;
    }
    return len - s->headers > max_headers ? 431 : -1;
}
