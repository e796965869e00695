/* fuzz_http_chunked.c - libFuzzer target for the chunked body decoder: any
 * bytes, split anywhere, decoded into another buffer and in place.  The
 * answer is one of the documented ones and the same however the bytes
 * were split; so are the data and where the body ends, which does not
 * depend on what follows it; the data never passes max_body.
 * links: http_head.c */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "http_chunked.h"
#include "parley.h"

#define MAX_BODY 4096
#define MAX_TRAILER 256

struct result {
    int status;
    size_t used, len;
};

/* Decodes BUF (LEN bytes, changed when IN_PLACE) in two pieces cut at CUT;
 * the data goes to OUT. */
static struct result decode(char *buf, size_t len, size_t cut, int in_place, char *out)
{
    struct http_chunked c;
    struct result r = { PL_AGAIN, 0, 0 };
    size_t ends[2] = { cut, len };

    http_chunked_init(&c, MAX_BODY, MAX_TRAILER);
    for (int i = 0; i < 2 && r.status == PL_AGAIN; i++) {
        size_t used, n;
        char *dst = in_place ? buf + r.used : out + r.len;

        r.status = http_chunked_decode(&c, buf + r.used, ends[i] - r.used, &used, dst, &n);
        if (n > used || (r.status == PL_AGAIN && used != ends[i] - r.used)) {
            abort();
        }
        if (in_place) {
            memmove(out + r.len, dst, n);
        }
        r.used += used;
        r.len += n;
    }
    if (r.len > MAX_BODY) {
        abort();
    }
    return r;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    size_t cut = size > 0 ? data[0] * size / 256 : 0;
    char *buf = malloc(size + 8), *copy = malloc(size + 8);
    char *out1 = malloc(size + 1), *out2 = malloc(size + 1);
    struct result whole, split, more;

    if (buf == NULL || copy == NULL || out1 == NULL || out2 == NULL) {
        abort();
    }
    memcpy(buf, data, size);
    memcpy(copy, data, size);
    whole = decode(buf, size, size, 0, out1);
    if (whole.status != PL_AGAIN && whole.status != 0 && whole.status != 400 && whole.status != 413
        && whole.status != 431) {
        abort();
    }
    split = decode(copy, size, cut, 1, out2);
    if (split.status != whole.status
        || (whole.status <= 0 && (split.used != whole.used || split.len != whole.len
                                  || memcmp(out1, out2, whole.len) != 0))) {
        abort();
    }
    if (whole.status == 0) {
        memcpy(buf + size, "0\r\n\r\nGET", 8);
        more = decode(buf, size + 8, cut, 0, out2);
        if (more.status != 0 || more.used != whole.used || more.len != whole.len) {
            abort();
        }
    }
    free(out2);
    free(out1);
    free(copy);
    free(buf);
    return 0;
}
