/* fuzz_http_response.c - libFuzzer target for the HTTP/1.1 response
 * reader: any bytes, fed whole, in two pieces cut where the first byte
 * says, and one byte at a time.  Every way gives the same events, head,
 * body bytes, stopping point and verdict at the end of the connection; the
 * body is never longer than the input, HEAD comes at most once and before
 * any data, and END and ERROR stick.
 * links: http_chunked.c http_head.c */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "fuzz.h"
#include "http_response.h"

struct result {
    int heads;
    enum http_response_event last, eof;
    enum http_response_error error;
    int status, chunked, json;
    int64_t length;
    size_t used, len;
    char *data;
};

/* Feeds the SIZE bytes at IN in pieces of at most STEP bytes, the first
 * one ending at CUT. */
static void feed(const uint8_t *in, size_t size, size_t cut, size_t step, struct result *res)
{
    struct http_response *r = malloc(sizeof(*r));
    char *buf = malloc(size + 1);
    size_t from = 0;

    CHECK(r != NULL && buf != NULL);
    memcpy(buf, in, size);
    memset(res, 0, sizeof(*res));
    res->data = malloc(size + 1);
    CHECK(res->data != NULL);
    res->last = HTTP_RESPONSE_AGAIN;
    http_response_init(r);
    while (res->last == HTTP_RESPONSE_AGAIN) {
        size_t end = from < cut ? cut : from + step < size ? from + step : size;
        enum http_response_event ev;

        do {
            const char *data;
            size_t used, n;

            ev = http_response_feed(r, buf + from, end - from, &used, &data, &n);
            CHECK(used <= end - from);
            from += used;
            if (ev == HTTP_RESPONSE_HEAD) {
                CHECK(res->heads == 0 && res->len == 0);
                CHECK(r->status >= 200 && r->status <= 999);
                res->heads++;
            } else if (ev == HTTP_RESPONSE_DATA) {
                CHECK(res->heads == 1 && n > 0 && res->len + n <= size);
                memcpy(res->data + res->len, data, n);
                res->len += n;
            } else if (ev != HTTP_RESPONSE_AGAIN) {
                res->last = ev;
            } else {
                CHECK(from == end);
            }
        } while (ev != HTTP_RESPONSE_AGAIN && res->last == HTTP_RESPONSE_AGAIN);
        if (from == size) {
            break;
        }
    }
    if (res->last != HTTP_RESPONSE_AGAIN) {
        const char *data;
        size_t used, n;

        CHECK(http_response_feed(r, buf + from, size - from, &used, &data, &n) == res->last && used == 0);
    }
    res->used = from;
    res->eof = http_response_eof(r);
    CHECK(res->last != HTTP_RESPONSE_END || res->eof == HTTP_RESPONSE_END);
    res->error = r->error;
    res->status = r->status;
    res->chunked = r->chunked;
    res->json = r->json;
    res->length = r->length;
    free(buf);
    free(r);
}

static void same(const struct result *a, const struct result *b)
{
    CHECK(a->heads == b->heads && a->last == b->last && a->eof == b->eof);
    CHECK(a->eof != HTTP_RESPONSE_ERROR || a->error == b->error);
    CHECK(a->used == b->used && a->len == b->len && memcmp(a->data, b->data, a->len) == 0);
    CHECK(a->heads == 0 || (a->status == b->status && a->chunked == b->chunked && a->json == b->json
                            && a->length == b->length));
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    size_t cut = size > 0 ? data[0] * size / 256 : 0;
    struct result whole, split, bytes;

    feed(data, size, size, size, &whole);
    feed(data, size, cut, size, &split);
    feed(data, size, 0, 1, &bytes);
    same(&split, &whole);
    same(&bytes, &whole);
    free(whole.data);
    free(split.data);
    free(bytes.data);
    return 0;
}
