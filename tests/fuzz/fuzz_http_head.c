/* fuzz_http_head.c - libFuzzer target for the request head scan: any
 * bytes, split anywhere.  The answer is one of the documented ones, it is
 * the same however the bytes were split between calls, a head judged
 * complete is judged the same whatever follows it, and its rewrite for
 * libevhtp is a head framed by that Content-Length alone.
 * links: http_head.c */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "http_head.h"
#include "parley.h"

#define MAX_HEADERS 512         /* small, so that the limit is reached */
#define MAX_BODY 65536

static int scan_all(struct http_head_scan *s, const char *buf, size_t len, size_t max_headers)
{
    memset(s, 0, sizeof(*s));
    return http_head_scan(s, buf, len, max_headers, MAX_BODY);
}

/* The rewritten head of the accepted head S (scanned from BUF) must scan
 * as a head with the same request line, framed by BODY bytes. */
static void check_rewrite(const struct http_head_scan *s, const char *buf, uint64_t body)
{
    size_t len = s->scanned - s->start;
    char *out = malloc(len + HTTP_HEAD_REWRITE_EXTRA);
    struct http_head_scan again;
    size_t n;

    if (out == NULL) {
        return;
    }
    n = http_head_rewrite(buf + s->start, len, body, out);
    if (n > len + HTTP_HEAD_REWRITE_EXTRA || scan_all(&again, out, n, MAX_HEADERS + 64) != 0
        || again.scanned != n || again.chunked || !again.have_length || again.length != body
        || again.framing_fields != 1 || again.hosts != s->hosts || again.version != s->version
        || memcmp(out, buf + s->start, s->headers - s->start) != 0) {
        abort();
    }
    free(out);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct http_head_scan whole, split = { 0 }, more;
    size_t cut = size > 0 ? data[0] * size / 256 : 0;
    char *buf = malloc(size + 16);
    int r, r2;

    if (buf == NULL) {
        return 0;
    }
    memcpy(buf, data, size);
    r = scan_all(&whole, buf, size, MAX_HEADERS);
    if (r != PL_AGAIN && r != 0 && r != 400 && r != 413 && r != 414 && r != 431 && r != 501 && r != 505) {
        abort();
    }
    r2 = http_head_scan(&split, buf, cut, MAX_HEADERS, MAX_BODY);
    if (r2 == PL_AGAIN) {
        r2 = http_head_scan(&split, buf, size, MAX_HEADERS, MAX_BODY);
    }
    if (r2 != r || split.scanned != whole.scanned || split.chunked != whole.chunked) {
        abort();
    }
    if (r == 0) {
        memcpy(buf + size, "\r\nX: 1\r\n\r\n\n\n\n\n\n\n", 16);
        if (scan_all(&more, buf, size + 16, MAX_HEADERS) != 0 || more.scanned != whole.scanned) {
            abort();
        }
        check_rewrite(&whole, buf, whole.chunked ? 12345 : whole.length);
    }
    free(buf);
    return 0;
}
