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

int http_head_check(const char *buf, size_t len, size_t max_headers, uint64_t max_body)
{
    const char *first = memchr(buf, '\n', len < HTTP_MAX_REQUEST_LINE ? len : HTTP_MAX_REQUEST_LINE);
    const char *end = buf + len, *line, *value, *nl;
    size_t vlen;
    int have_length = 0, chunked = 0;
    uint64_t length = 0;

    if (first == NULL) {
        return len >= HTTP_MAX_REQUEST_LINE ? 414 : -1;
    }
    for (line = first + 1; (nl = memchr(line, '\n', (size_t)(end - line))) != NULL; line = nl + 1) {
        size_t n = (size_t)(nl - line);

        if (n == 0 || (n == 1 && line[0] == '\r')) {
            if (chunked && have_length) {
                return 400;     /* both framings: refuse rather than guess (smuggling) */
            }
            return have_length && length > max_body ? 413 : 0;
        }
        if (http_head_field(line, n, "Content-Length", &value, &vlen)) {
            uint64_t v = 0;
            size_t i;

            for (i = 0; i < vlen && isdigit((unsigned char)value[i]); i++) {
                v = i < 19 ? v * 10 + (uint64_t)(value[i] - '0') : UINT64_MAX;
            }
            if (vlen == 0 || i != vlen || (have_length && v != length)) {
                return 400;
            }
            have_length = 1;
            length = v;
        } else if (http_head_field(line, n, "Transfer-Encoding", &value, &vlen)) {
            chunked = 1;
        }
    }
    return (size_t)(end - first) > max_headers ? 431 : -1;
}
