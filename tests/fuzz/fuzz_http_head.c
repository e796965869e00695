/* fuzz_http_head.c - libFuzzer target for the request head scan: any
 * bytes, split anywhere.  The answer is one of the documented ones, it is
 * the same however the bytes were split between calls, and a head judged
 * complete is judged the same whatever follows it. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "http_head.h"

#define MAX_HEADERS 512         /* small, so that the limit is reached */
#define MAX_BODY 65536

static int scan_all(const char *buf, size_t len)
{
    struct http_head_scan s = { 0 };

    return http_head_scan(&s, buf, len, MAX_HEADERS, MAX_BODY);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct http_head_scan split = { 0 };
    size_t cut = size > 0 ? data[0] * size / 256 : 0;
    char *buf = malloc(size + 16);
    int r, r2;

    if (buf == NULL) {
        return 0;
    }
    memcpy(buf, data, size);
    r = scan_all(buf, size);
    if (r != -1 && r != 0 && r != 400 && r != 413 && r != 414 && r != 431) {
        abort();
    }
    r2 = http_head_scan(&split, buf, cut, MAX_HEADERS, MAX_BODY);
    if (r2 == -1) {
        r2 = http_head_scan(&split, buf, size, MAX_HEADERS, MAX_BODY);
    }
    if (r2 != r) {
        abort();
    }
    if (r == 0) {
        memcpy(buf + size, "\r\nX: 1\r\n\r\n\n\n\n\n\n\n", 16);
        if (scan_all(buf, size + 16) != 0) {
            abort();
        }
    }
    free(buf);
    return 0;
}
