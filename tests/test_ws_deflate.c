/* test_ws_deflate.c - permessage-deflate negotiation, compressing and inflating with limits. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <zlib.h>

#include "parley.h"
#include "unit.h"
#include "ws_deflate.h"

#define ANSWER "permessage-deflate; server_no_context_takeover; client_no_context_takeover"

/* An offer header, the widest window parley compresses with, and what it
 * must answer: the window (0 declined) and the response. */
static const struct offer_case {
    const char *offers;
    int max_bits;
    int bits;
    const char *response;
} offer_cases[] = {
    /* What browsers and common libraries send. */
    { "permessage-deflate; client_max_window_bits", 15, 15, ANSWER },
    { "permessage-deflate", 15, 15, ANSWER },
    { "permessage-deflate; server_no_context_takeover; client_no_context_takeover", 15, 15, ANSWER },
    { "permessage-deflate; client_max_window_bits=15; server_no_context_takeover", 15, 15, ANSWER },
    { "permessage-deflate; client_max_window_bits=8", 15, 15, ANSWER },
    { "permessage-deflate; client_max_window_bits=\"10\"", 15, 15, ANSWER },
    { "  permessage-deflate\t;\tclient_max_window_bits  ", 15, 15, ANSWER },
    { "PERMESSAGE-DEFLATE; Client_Max_Window_Bits", 15, 15, ANSWER },
    /* The server's window: the smaller of the offer and the setting, named. */
    { "permessage-deflate; server_max_window_bits=10", 15, 10, ANSWER "; server_max_window_bits=10" },
    { "permessage-deflate; server_max_window_bits=9", 15, 9, ANSWER "; server_max_window_bits=9" },
    { "permessage-deflate; server_max_window_bits=15", 12, 12, ANSWER "; server_max_window_bits=12" },
    { "permessage-deflate; server_max_window_bits=\"11\"", 15, 11, ANSWER "; server_max_window_bits=11" },
    /* A smaller setting is used without being named (not offered). */
    { "permessage-deflate", 10, 10, ANSWER },
    /* Offers it cannot honour are declined. */
    { "permessage-deflate; server_max_window_bits=8", 15, 0, NULL },
    { "permessage-deflate; server_max_window_bits", 15, 0, NULL },
    { "permessage-deflate; server_max_window_bits=16", 15, 0, NULL },
    { "permessage-deflate; server_max_window_bits=7", 15, 0, NULL },
    { "permessage-deflate; server_max_window_bits=09", 15, 0, NULL },
    { "permessage-deflate; server_max_window_bits=+9", 15, 0, NULL },
    { "permessage-deflate; server_max_window_bits=1a", 15, 0, NULL },
    { "permessage-deflate; server_max_window_bits=99999999999999999999", 15, 0, NULL },
    { "permessage-deflate; client_max_window_bits=16", 15, 0, NULL },
    { "permessage-deflate; client_max_window_bits=", 15, 0, NULL },
    { "permessage-deflate; server_no_context_takeover=true", 15, 0, NULL },
    { "permessage-deflate; client_no_context_takeover=\"\"", 15, 0, NULL },
    { "permessage-deflate; server_no_context_takeover; server_no_context_takeover", 15, 0, NULL },
    { "permessage-deflate; client_no_context_takeover; client_no_context_takeover", 15, 0, NULL },
    { "permessage-deflate; server_max_window_bits=10; server_max_window_bits=10", 15, 0, NULL },
    { "permessage-deflate; client_max_window_bits; client_max_window_bits", 15, 0, NULL },
    { "permessage-deflate; unknown_parameter", 15, 0, NULL },
    { "x-webkit-deflate-frame", 15, 0, NULL },
    { "deflate-frame; server_max_window_bits=10", 15, 0, NULL },
    { "permessage-deflatex", 15, 0, NULL },
    { "", 15, 0, NULL },
    /* The first offer it can honour wins. */
    { "permessage-deflate; server_max_window_bits=8, permessage-deflate; client_max_window_bits", 15, 15, ANSWER },
    { "x-other; a=1, permessage-deflate; server_max_window_bits=12, permessage-deflate", 15, 12,
      ANSWER "; server_max_window_bits=12" },
    { "permessage-deflate; mystery, permessage-deflate; server_max_window_bits=13", 15, 13,
      ANSWER "; server_max_window_bits=13" },
    { ",, permessage-deflate ,", 15, 15, ANSWER },
    { "x-other; q=\"a,b;c\\\"d\", permessage-deflate", 15, 15, ANSWER },
    /* A header that cannot be parsed declines every offer. */
    { "permessage-deflate, @", 15, 0, NULL },
    { "permessage-deflate; client_max_window_bits=\"12", 15, 0, NULL },
    { "permessage-deflate;; client_max_window_bits", 15, 0, NULL },
    { "permessage-deflate; =15", 15, 0, NULL },
    { "permessage-deflate client_max_window_bits", 15, 0, NULL },
    { "permessage-deflate; client_max_window_bits=10 11", 15, 0, NULL },
    { "; permessage-deflate", 15, 0, NULL },
    { "permessage-deflate; a=\"\\", 15, 0, NULL },
    { "permessage-deflate\r\n", 15, 0, NULL },
};

START_TEST(negotiation)
{
    const struct offer_case *c = &offer_cases[_i];
    char response[WS_DEFLATE_RESPONSE_MAX] = "untouched";
    int bits = ws_deflate_negotiate(c->offers, c->max_bits, response, sizeof(response));

    ck_assert_msg(bits == c->bits, "'%s': window %d, want %d", c->offers, bits, c->bits);
    ck_assert_msg(strcmp(response, c->response ? c->response : "untouched") == 0, "'%s': answered '%s'", c->offers,
                  response);
}
END_TEST

START_TEST(negotiation_null)
{
    char response[WS_DEFLATE_RESPONSE_MAX] = "";

    ck_assert_int_eq(ws_deflate_negotiate(NULL, 15, response, sizeof(response)), 0);
}
END_TEST

/* Chat-like text of N bytes. */
static char *chat_text(size_t n)
{
    static const char words[] = "{\"type\":\"message\",\"content\":\"the deploy logs from this morning show the "
                                "second host restarting after every health check\",\"from\":\"alice\"} ";
    char *s = malloc(n + 1);

    ck_assert_ptr_nonnull(s);
    for (size_t i = 0; i < n; i++) {
        s[i] = words[(i * 3 + i / 97) % (sizeof(words) - 1)];
    }
    s[n] = '\0';
    return s;
}

/* Inflates with zlib directly, the way a browser does: a fresh raw stream
 * in a window of BITS, the tail appended. */
static size_t reference_inflate(const uint8_t *in, size_t len, int bits, uint8_t *out, size_t cap)
{
    z_stream z = { 0 };
    uint8_t *all = malloc(len + 4);
    int rc;

    ck_assert_ptr_nonnull(all);
    memcpy(all, in, len);
    memcpy(all + len, "\x00\x00\xff\xff", 4);
    ck_assert_int_eq(inflateInit2(&z, -bits), Z_OK);
    z.next_in = all;
    z.avail_in = (uInt)(len + 4);
    z.next_out = out;
    z.avail_out = (uInt)cap;
    rc = inflate(&z, Z_SYNC_FLUSH);
    ck_assert_msg(rc == Z_OK || rc == Z_STREAM_END, "inflate: %d %s", rc, z.msg ? z.msg : "");
    ck_assert_uint_eq(z.avail_in, 0);
    inflateEnd(&z);
    free(all);
    return cap - z.avail_out;
}

START_TEST(round_trip)
{
    static const size_t sizes[] = { 200, 1000, 4096, 65536, 300000 };
    static const int levels[] = { 1, 6, 9 };
    static const int windows[] = { 9, 12, 15 };

    for (size_t w = 0; w < PL_ARRAY_LEN(windows); w++) {
        for (size_t l = 0; l < PL_ARRAY_LEN(levels); l++) {
            ws_deflate_setup(levels[l], windows[w]);
            for (size_t s = 0; s < PL_ARRAY_LEN(sizes); s++) {
                size_t len = sizes[s], n, got;
                char *text = chat_text(len), *back;
                uint8_t *packed = malloc(ws_deflate_bound(len)), *ref = malloc(len);

                ck_assert_ptr_nonnull(packed);
                ck_assert_ptr_nonnull(ref);
                n = ws_deflate_compress(text, len, packed);
                ck_assert_msg(n > 0 && n < len / 2, "%zu bytes at level %d: %zu", len, levels[l], n);
                /* Valid for a client inflating in exactly the worker's window. */
                ck_assert_uint_eq(reference_inflate(packed, n, windows[w], ref, len), len);
                ck_assert_mem_eq(ref, text, len);
                /* And for parley's own inflater. */
                ck_assert_int_eq(ws_deflate_inflate(packed, n, len, &back, &got), WS_INFLATE_OK);
                ck_assert_uint_eq(got, len);
                ck_assert_mem_eq(back, text, len);
                ck_assert_int_eq(back[len], '\0');
                free(back);
                free(text);
                free(packed);
                free(ref);
            }
        }
    }
    ws_deflate_setup(1, 15);
}
END_TEST

START_TEST(not_worth_it)
{
    uint8_t random_bytes[600], packed[sizeof(random_bytes) + 4];
    unsigned seed = 7692;

    for (size_t i = 0; i < sizeof(random_bytes); i++) {
        random_bytes[i] = (uint8_t)rand_r(&seed);
    }
    ck_assert_uint_eq(ws_deflate_compress(random_bytes, sizeof(random_bytes), packed), 0);
    ck_assert_uint_eq(ws_deflate_compress("hi", 2, packed), 0);
    ck_assert_uint_eq(ws_deflate_compress("", 0, packed), 0);
}
END_TEST

START_TEST(window_fits)
{
    ws_deflate_setup(1, 15);
    ck_assert(ws_deflate_fits(1 << 20, 15));
    ck_assert(ws_deflate_fits(512, 9));
    ck_assert(!ws_deflate_fits(513, 9));
    ck_assert(ws_deflate_fits(1024, 10));
    ck_assert(!ws_deflate_fits(1025, 10));
    ws_deflate_setup(1, 12);
    ck_assert(ws_deflate_fits(1 << 20, 12));
    ck_assert(ws_deflate_fits(1 << 20, 13));
    ck_assert(!ws_deflate_fits(4097, 11));
    ws_deflate_setup(1, 15);
}
END_TEST

/* TEXT compressed by zlib as a client would, in WBITS, the tail removed
 * (or, FINAL, ending in a final block and kept whole). */
static size_t client_compress(const void *text, size_t len, int wbits, int final, uint8_t **out)
{
    z_stream z = { 0 };
    size_t cap = len + len / 100 + 64;

    *out = malloc(cap);
    ck_assert_ptr_nonnull(*out);
    ck_assert_int_eq(deflateInit2(&z, 6, Z_DEFLATED, -wbits, 8, Z_DEFAULT_STRATEGY), Z_OK);
    z.next_in = (Bytef *)(uintptr_t)text;
    z.avail_in = (uInt)len;
    z.next_out = *out;
    z.avail_out = (uInt)cap;
    ck_assert_int_eq(deflate(&z, final ? Z_FINISH : Z_SYNC_FLUSH), final ? Z_STREAM_END : Z_OK);
    deflateEnd(&z);
    cap -= z.avail_out;
    if (!final) {
        ck_assert_mem_eq(*out + cap - 4, "\x00\x00\xff\xff", 4);
        cap -= 4;
    }
    return cap;
}

START_TEST(inflate_limits)
{
    size_t max = 64 * 1024, n, got;
    char *text = chat_text(max + 1), *out;
    uint8_t *in;

    /* Exactly the limit inflates; one byte more does not. */
    n = client_compress(text, max, 15, 0, &in);
    ck_assert_int_eq(ws_deflate_inflate(in, n, max, &out, &got), WS_INFLATE_OK);
    ck_assert_uint_eq(got, max);
    free(out);
    free(in);
    n = client_compress(text, max + 1, 15, 0, &in);
    ck_assert_int_eq(ws_deflate_inflate(in, n, max, &out, &got), WS_INFLATE_TOO_BIG);
    free(in);
    /* Any window the client used inflates. */
    for (int bits = 8; bits <= 15; bits++) {
        n = client_compress(text, 5000, bits == 8 ? 9 : bits, bits % 2, &in);
        ck_assert_int_eq(ws_deflate_inflate(in, n, max, &out, &got), WS_INFLATE_OK);
        ck_assert_uint_eq(got, 5000);
        ck_assert_mem_eq(out, text, 5000);
        free(out);
        free(in);
    }
    free(text);
}
END_TEST

START_TEST(inflate_bomb)
{
    size_t big = 64u << 20, n, got;
    char *zeros = calloc(1, big), *out = NULL;
    uint8_t *in;

    ck_assert_ptr_nonnull(zeros);
    n = client_compress(zeros, big, 15, 0, &in);
    free(zeros);
    ck_assert_uint_lt(n, big / 1000);
    /* Stops at the limit: 64 MiB would take noticeably long and much
     * memory; this is bounded by 64 KiB of output. */
    ck_assert_int_eq(ws_deflate_inflate(in, n, 64 * 1024, &out, &got), WS_INFLATE_TOO_BIG);
    ck_assert_ptr_null(out);
    ck_assert_int_eq(ws_deflate_inflate(in, n, 0, &out, &got), WS_INFLATE_TOO_BIG);
    free(in);
}
END_TEST

START_TEST(inflate_invalid)
{
    const char *text = "{\"type\":\"message\",\"content\":\"hello hello hello hello\"}";
    uint8_t *in, *junk;
    char *out;
    size_t n, got;

    /* Not deflate. */
    ck_assert_int_eq(ws_deflate_inflate((const uint8_t *)"\xff\xff\xff\xff", 4, 1024, &out, &got),
                     WS_INFLATE_INVALID);
    /* An empty payload is cut short (an empty message is one 00 byte). */
    ck_assert_int_eq(ws_deflate_inflate((const uint8_t *)"", 0, 1024, &out, &got), WS_INFLATE_INVALID);
    ck_assert_int_eq(ws_deflate_inflate((const uint8_t *)"\x00", 1, 1024, &out, &got), WS_INFLATE_OK);
    ck_assert_uint_eq(got, 0);
    free(out);
    /* Cut short anywhere. */
    n = client_compress(text, strlen(text), 15, 0, &in);
    for (size_t cut = 1; cut < n; cut++) {
        enum ws_inflate_result rc = ws_deflate_inflate(in, cut, 1024, &out, &got);

        if (rc == WS_INFLATE_OK) {
            /* Only where a block happens to end; then it is a prefix. */
            ck_assert_uint_lt(got, strlen(text));
            ck_assert_mem_eq(out, text, got);
            free(out);
        } else {
            ck_assert_int_eq(rc, WS_INFLATE_INVALID);
        }
    }
    free(in);
    /* A final block ends the message; nothing may follow it. */
    n = client_compress(text, strlen(text), 15, 1, &in);
    ck_assert_int_eq(ws_deflate_inflate(in, n, 1024, &out, &got), WS_INFLATE_OK);
    ck_assert_str_eq(out, text);
    free(out);
    /* Cut short, a final block must not be completed by the bits of the
     * tail parley appends (found by an outsider: one byte less inflated). */
    for (size_t cut = 1; cut < n; cut++) {
        ck_assert_msg(ws_deflate_inflate(in, cut, 1024, &out, &got) == WS_INFLATE_INVALID, "cut at %zu of %zu", cut,
                      n);
    }
    junk = malloc(n + 3);
    ck_assert_ptr_nonnull(junk);
    memcpy(junk, in, n);
    memcpy(junk + n, "xyz", 3);
    ck_assert_int_eq(ws_deflate_inflate(junk, n + 3, 1024, &out, &got), WS_INFLATE_INVALID);
    free(junk);
    free(in);
}
END_TEST

Suite *suite_ws_deflate(void)
{
    Suite *s = suite_create("ws_deflate");
    TCase *neg = tcase_create("negotiation");
    TCase *data = tcase_create("data");

    tcase_add_loop_test(neg, negotiation, 0, PL_ARRAY_LEN(offer_cases));
    tcase_add_test(neg, negotiation_null);
    tcase_set_timeout(data, 60);
    tcase_add_test(data, round_trip);
    tcase_add_test(data, not_worth_it);
    tcase_add_test(data, window_fits);
    tcase_add_test(data, inflate_limits);
    tcase_add_test(data, inflate_bomb);
    tcase_add_test(data, inflate_invalid);
    suite_add_tcase(s, neg);
    suite_add_tcase(s, data);
    return s;
}
