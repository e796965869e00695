/* http_verdict.c - prints parley's framing decision on request bytes, for
 * the differential test against h11 (tests/integration/test_http_differential.py).
 *
 *   http_verdict MAX_HEADERS MAX_BODY < cases
 *
 * Each case on stdin is "<length>\n" and that many bytes: a request,
 * possibly followed by the next one.  For each, one line: "reject STATUS",
 * "incomplete" (the first request needs more bytes), or "accept END BODY"
 * where END is where the next request starts and BODY the first request's
 * body in hex ("-" when empty).  The decision is the head gate's (see
 * http.c): http_head_scan on at most the bytes the gate looks at, then the
 * Content-Length bytes or http_chunked_decode (trailers up to MAX_HEADERS). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "http_chunked.h"
#include "http_head.h"
#include "parley.h"

static void print_accept(size_t end, const char *body, size_t len)
{
    printf("accept %zu ", end);
    if (len == 0) {
        putchar('-');
    }
    for (size_t i = 0; i < len; i++) {
        printf("%02x", (unsigned char)body[i]);
    }
    putchar('\n');
}

static void verdict(const char *buf, size_t len, size_t max_headers, uint64_t max_body)
{
    size_t look = max_headers + HTTP_MAX_REQUEST_LINE + 1, used, n;
    struct http_head_scan s = { 0 };
    struct http_chunked c;
    char *out;
    int r = http_head_scan(&s, buf, len < look ? len : look, max_headers, max_body);

    if (r > 0) {
        printf("reject %d\n", r);
    } else if (r == PL_AGAIN || (!s.chunked && len - s.scanned < s.length)) {
        printf("incomplete\n");
    } else if (!s.chunked) {
        print_accept(s.scanned + s.length, buf + s.scanned, s.length);
    } else if ((out = malloc(len - s.scanned + 1)) != NULL) {
        http_chunked_init(&c, max_body, max_headers);
        r = http_chunked_decode(&c, buf + s.scanned, len - s.scanned, &used, out, &n);
        if (r > 0) {
            printf("reject %d\n", r);
        } else if (r == PL_AGAIN) {
            printf("incomplete\n");
        } else {
            print_accept(s.scanned + used, out, n);
        }
        free(out);
    } else {
        abort();
    }
}

int main(int argc, char **argv)
{
    size_t max_headers, len;
    unsigned long long max_body;
    char *buf;

    if (argc != 3 || sscanf(argv[1], "%zu", &max_headers) != 1 || sscanf(argv[2], "%llu", &max_body) != 1) {
        fprintf(stderr, "usage: http_verdict MAX_HEADERS MAX_BODY < cases\n");
        return 2;
    }
    while (scanf("%zu", &len) == 1 && getchar() == '\n') {
        if ((buf = malloc(len + 1)) == NULL || fread(buf, 1, len, stdin) != len) {
            fprintf(stderr, "http_verdict: short case\n");
            return 2;
        }
        verdict(buf, len, max_headers, max_body);
        free(buf);
    }
    return 0;
}
