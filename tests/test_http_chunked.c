/* test_http_chunked.c - the chunked body decoder, fed whole, byte by byte
 * and cut at every position, into a separate buffer and in place. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "http_chunked.h"
#include "parley.h"
#include "unit.h"

#define MAX_BODY 2048
#define MAX_TRAILER 64

struct decoded {
    int status;
    size_t used;                /* when status is 0 */
    size_t len;
    char data[4096];
};

/* Feeds the LEN bytes at IN in pieces that end at the offsets in CUTS
 * (ascending, the last one LEN), decoding in place when IN_PLACE. */
static void decode_cuts(const char *in, size_t len, const size_t *cuts, size_t ncuts, int in_place,
                        struct decoded *d)
{
    struct http_chunked c;
    char *copy = malloc(len + 1), out[4096];
    size_t from = 0;

    ck_assert_ptr_nonnull(copy);
    memcpy(copy, in, len);
    http_chunked_init(&c, MAX_BODY, MAX_TRAILER);
    d->status = PL_AGAIN;
    d->len = 0;
    d->used = 0;
    for (size_t i = 0; i < ncuts && d->status == PL_AGAIN; i++) {
        size_t used, outlen;
        char *dst = in_place ? copy + from : out;

        d->status = http_chunked_decode(&c, copy + from, cuts[i] - from, &used, dst, &outlen);
        ck_assert_uint_le(outlen, used);
        ck_assert_uint_le(d->len + outlen, sizeof(d->data));
        memcpy(d->data + d->len, dst, outlen);
        d->len += outlen;
        if (d->status == PL_AGAIN) {
            ck_assert_uint_eq(used, cuts[i] - from);
        }
        from += used;
        d->used = from;
    }
    free(copy);
}

/* Decodes BODY (LEN bytes) whole, byte by byte and cut at every position,
 * in a separate buffer and in place: every way must give the same answer,
 * data and end.  Returns the answer of the whole. */
static int decode_n(const char *body, size_t len, struct decoded *whole)
{
    size_t *cuts = malloc((len + 1) * sizeof(*cuts));
    struct decoded *d = malloc(sizeof(*d));

    ck_assert(cuts != NULL && d != NULL);
    decode_cuts(body, len, &len, 1, 0, whole);
    for (size_t i = 0; i < len; i++) {
        cuts[i] = i + 1;
    }
    for (int in_place = 0; in_place <= 1; in_place++) {
        decode_cuts(body, len, cuts, len, in_place, d);
        ck_assert_int_eq(d->status, whole->status);
        for (size_t cut = 0; cut <= len; cut++) {
            size_t two[2] = { cut, len };

            decode_cuts(body, len, two, 2, in_place, d);
            ck_assert_msg(d->status == whole->status, "cut at %zu: %d, whole: %d", cut, d->status, whole->status);
            if (whole->status == 0) {
                ck_assert_uint_eq(d->used, whole->used);
                ck_assert_uint_eq(d->len, whole->len);
                ck_assert(memcmp(d->data, whole->data, d->len) == 0);
            }
        }
    }
    free(d);
    free(cuts);
    return whole->status;
}

static struct decoded got;

static int decode(const char *body)
{
    return decode_n(body, strlen(body), &got);
}

/* BODY must decode to WANT and end where the text "NEXT" starts (or at
 * its end). */
static void decodes_to(const char *body, const char *want)
{
    const char *next = strstr(body, "NEXT");

    ck_assert_int_eq(decode(body), 0);
    ck_assert_uint_eq(got.len, strlen(want));
    ck_assert(memcmp(got.data, want, got.len) == 0);
    ck_assert_uint_eq(got.used, next != NULL ? (size_t)(next - body) : strlen(body));
}

START_TEST(chunked_bodies)
{
    decodes_to("5\r\nhello\r\n0\r\n\r\n", "hello");
    decodes_to("5\r\nhello\r\n0\r\n\r\nNEXTGET / HTTP/1.1\r\n\r\n", "hello");
    decodes_to("0\r\n\r\nNEXT", "");
    decodes_to("3\r\nabc\r\nA\r\n0123456789\r\n1\r\n\r\r\n000\r\n\r\nNEXT", "abc0123456789\r");
    decodes_to("0000000000000005\r\nhello\r\n0\r\n\r\n", "hello");
    decodes_to("9\r\n\r\n0\r\n\r\n\r\n\r\n0\r\n\r\n", "\r\n0\r\n\r\n\r\n");
    ck_assert_int_eq(decode("5\r\nhel"), PL_AGAIN);
    ck_assert_int_eq(decode("5\r\nhello\r\n0\r\n"), PL_AGAIN);
    ck_assert_int_eq(decode("5\r\nhello\r\n0\r\nX: y\r\n"), PL_AGAIN);
}
END_TEST

START_TEST(chunked_sizes)
{
    static char big[MAX_BODY + 64];
    int n;


    /* Seventeen digits and more: refused, never wrapped around (the audit's
     * 1000000000000000f was read as 15). */
    ck_assert_int_eq(decode("1000000000000000f\r\nhello\r\n0\r\n\r\n"), 400);
    ck_assert_int_eq(decode("00000000000000005\r\nhello\r\n0\r\n\r\n"), 400);
    ck_assert_int_eq(decode("1000000000000000000f\r\n"), 400);
    /* Past max_body: 413 as soon as the size line ends, before its data. */
    ck_assert_int_eq(decode("ffffffffffffffff\r"), 413);
    ck_assert_int_eq(decode("801;"), 413);
    ck_assert_int_eq(decode("801\r"), 413);
    ck_assert_int_eq(decode("800\r\n"), PL_AGAIN);
    /* Two chunks of 1 KiB: exactly max_body; one byte more: 413. */
    n = snprintf(big, sizeof(big), "400\r\n%01024d\r\n400\r\n%01024d\r\n0\r\n\r\n", 0, 0);
    ck_assert_int_eq(decode_n(big, (size_t)n, &got), 0);
    big[1024 + 9] = '1';        /* the second size: 401 */
    ck_assert_int_eq(decode_n(big, (size_t)n, &got), 413);
    big[1024 + 9] = '0';
    ck_assert_int_eq(decode_n(big, (size_t)n, &got), 0);
    ck_assert_uint_eq(got.len, MAX_BODY);
    /* Not a size. */
    ck_assert_int_eq(decode("\r\n"), 400);
    ck_assert_int_eq(decode("x\r\n"), 400);
    ck_assert_int_eq(decode(" 5\r\n"), 400);
    ck_assert_int_eq(decode("+5\r\n"), 400);
    ck_assert_int_eq(decode("0x5\r\n"), 400);
    ck_assert_int_eq(decode("-0\r\n"), 400);
}
END_TEST

START_TEST(chunked_extensions)
{
    decodes_to("5;a\r\nhello\r\n0\r\n\r\n", "hello");
    decodes_to("5; a = b ;c;d=\"e f;\\\"g\"\t;h\r\nhello\r\n0;z=1\r\n\r\n", "hello");
    decodes_to("5;a=\"\x80\"\r\nhello\r\n0\r\n\r\n", "hello");
    /* BWS only around ";" and "=": no blanks before the CRLF. */
    ck_assert_int_eq(decode("5 \r\nhello\r\n0\r\n\r\n"), 400);
    ck_assert_int_eq(decode("5 ;a\r\nhello\r\n0\r\n\r\n"), 400);
    ck_assert_int_eq(decode("5\t;a\r\nhello\r\n0\r\n\r\n"), 400);
    ck_assert_int_eq(decode("5;a \r\nhello\r\n0\r\n\r\n"), 400);
    ck_assert_int_eq(decode("5;a=b \r\nhello\r\n0\r\n\r\n"), 400);
    ck_assert_int_eq(decode("5;\r\nhello\r\n0\r\n\r\n"), 400);
    ck_assert_int_eq(decode("5;;a\r\nhello\r\n0\r\n\r\n"), 400);
    ck_assert_int_eq(decode("5;=b\r\nhello\r\n0\r\n\r\n"), 400);
    ck_assert_int_eq(decode("5;a=\r\nhello\r\n0\r\n\r\n"), 400);
    ck_assert_int_eq(decode("5;a b\r\nhello\r\n0\r\n\r\n"), 400);
    ck_assert_int_eq(decode("5;a=b c\r\nhello\r\n0\r\n\r\n"), 400);
    ck_assert_int_eq(decode("5;a=\"b\r\nhello\r\n0\r\n\r\n"), 400);
    ck_assert_int_eq(decode("5;a=\"b\"c\r\nhello\r\n0\r\n\r\n"), 400);
    ck_assert_int_eq(decode("5;a=\"\x01\"\r\nhello\r\n0\r\n\r\n"), 400);
    ck_assert_int_eq(decode("5;a=(b)\r\nhello\r\n0\r\n\r\n"), 400);
    ck_assert_int_eq(decode_n("5;a\0\r\nhello\r\n0\r\n\r\n", 18, &got), 400);
}
END_TEST

START_TEST(chunked_line_ends)
{
    /* CRLF everywhere: no bare LF, no bare CR, data not followed by CRLF. */
    ck_assert_int_eq(decode("5\nhello\r\n0\r\n\r\n"), 400);
    ck_assert_int_eq(decode("5\rhello\r\n0\r\n\r\n"), 400);
    ck_assert_int_eq(decode("5\r\nhelloX\r\n0\r\n\r\n"), 400);
    ck_assert_int_eq(decode("5\r\nhello\n0\r\n\r\n"), 400);
    ck_assert_int_eq(decode("5\r\nhello\r0\r\n\r\n"), 400);
    ck_assert_int_eq(decode("5\r\nhello\r\n0\n\r\n"), 400);
    ck_assert_int_eq(decode("5\r\nhello\r\n0\r\n\n"), 400);
    ck_assert_int_eq(decode("5\r\nhello\r\n0\r\n\rX"), 400);
    /* A smuggled request where the body was cut short is data, not a request. */
    decodes_to("5\r\nGET /\r\n0\r\n\r\n", "GET /");
}
END_TEST

START_TEST(chunked_trailers)
{
    static char line[HTTP_CHUNK_LINE_MAX + 16];

    decodes_to("5\r\nhello\r\n0\r\nX-T: 1\r\nX-U:\t2 \r\n\r\nNEXT", "hello");
    ck_assert_int_eq(decode("0\r\nX-T : 1\r\n\r\n"), 400);
    ck_assert_int_eq(decode("0\r\nX-T: a\r\n b\r\n\r\n"), 400);
    ck_assert_int_eq(decode("0\r\nX-T: \x01\r\n\r\n"), 400);
    ck_assert_int_eq(decode("0\r\nX-T 1\r\n\r\n"), 400);
    ck_assert_int_eq(decode("0\r\n X-T: 1\r\n\r\n"), 400);
    ck_assert_int_eq(decode("0\r\nX-T: 1\n\r\n"), 400);
    /* Framing fields cannot come after the body they would frame. */
    ck_assert_int_eq(decode("0\r\nContent-Length: 5\r\n\r\n"), 400);
    ck_assert_int_eq(decode("0\r\ntransfer-encoding: chunked\r\n\r\n"), 400);
    decodes_to("0\r\nContent-Lengt: 5\r\nContent-Lengths: 5\r\nX-Transfer-Encoding: x\r\n\r\n", "");
    /* Trailers past max_trailer: 431; a chunk line past its limit: 400. */
    ck_assert_int_eq(decode("0\r\nX-T: 0123456789012345678901234567890123456789012345678901234567\r\n\r\n"), 431);
    memset(line, 'a', sizeof(line) - 1);
    memcpy(line, "5;", 2);
    ck_assert_int_eq(decode_n(line, HTTP_CHUNK_LINE_MAX, &got), PL_AGAIN);
    ck_assert_int_eq(decode_n(line, HTTP_CHUNK_LINE_MAX + 1, &got), 400);
}
END_TEST

Suite *suite_http_chunked(void)
{
    Suite *s = suite_create("http_chunked");
    TCase *tc = tcase_create("decode");

    tcase_add_test(tc, chunked_bodies);
    tcase_add_test(tc, chunked_sizes);
    tcase_add_test(tc, chunked_extensions);
    tcase_add_test(tc, chunked_line_ends);
    tcase_add_test(tc, chunked_trailers);
    suite_add_tcase(s, tc);
    return s;
}
