/* test_http_response.c - the HTTP/1.1 response reader, fed whole, byte by
 * byte and cut at every position. */
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "http_response.h"
#include "parley.h"
#include "unit.h"

/* An assertion for the inner loops: Check records where every ck_assert
 * passed (a write in fork mode), which costs seconds over all the cuts. */
#define QUIET(cond)                                         \
    do {                                                    \
        if (!(cond)) {                                      \
            ck_abort_msg("assertion failed: %s", #cond);    \
        }                                                   \
    } while (0)

/* What reading a response made of it. */
struct got {
    int heads;                  /* HEAD events */
    enum http_response_event last;  /* END, ERROR, or AGAIN when all was fed */
    enum http_response_event eof;   /* http_response_eof after that */
    enum http_response_error error;
    int status, chunked, json;
    int64_t length;
    char reason[64];
    size_t used;                /* bytes taken, up to the END or ERROR */
    size_t len;
    char data[32 * 1024];
};

/* Feeds the LEN bytes at IN in pieces that end at the offsets in CUTS
 * (ascending, the last one LEN). */
static void read_cuts(const char *in, size_t len, const size_t *cuts, size_t ncuts, struct got *g)
{
    struct http_response *r = malloc(sizeof(*r));
    char *copy = malloc(len + 1);
    size_t from = 0;

    QUIET(r != NULL && copy != NULL);
    memcpy(copy, in, len);
    memset(g, 0, offsetof(struct got, data));   /* the data is only read up to len */
    http_response_init(r);
    g->last = HTTP_RESPONSE_AGAIN;
    for (size_t i = 0; i < ncuts && g->last == HTTP_RESPONSE_AGAIN; i++) {
        enum http_response_event ev;

        do {
            const char *data;
            size_t used, n;

            ev = http_response_feed(r, copy + from, cuts[i] - from, &used, &data, &n);
            QUIET(used <= cuts[i] - from);
            from += used;
            if (ev == HTTP_RESPONSE_HEAD) {
                g->heads++;
            } else if (ev == HTTP_RESPONSE_DATA) {
                QUIET(n > 0 && g->len + n <= sizeof(g->data));
                memcpy(g->data + g->len, data, n);
                g->len += n;
            } else if (ev != HTTP_RESPONSE_AGAIN) {
                g->last = ev;
            }
        } while (ev != HTTP_RESPONSE_AGAIN && g->last == HTTP_RESPONSE_AGAIN);
        if (g->last == HTTP_RESPONSE_AGAIN) {
            QUIET(from == cuts[i]);
        }
    }
    g->used = from;
    g->eof = http_response_eof(r);
    g->error = r->error;
    g->status = r->status;
    g->chunked = r->chunked;
    g->json = r->json;
    g->length = r->length;
    memcpy(g->reason, r->reason, sizeof(g->reason));
    free(copy);
    free(r);
}

static void got_same(const struct got *a, const struct got *b, size_t cut)
{
    if (a->last != b->last || a->eof != b->eof || a->heads != b->heads) {
        ck_abort_msg("cut at %zu: last %d eof %d heads %d, whole: %d %d %d", cut, a->last, a->eof, a->heads,
                     b->last, b->eof, b->heads);
    }
    QUIET(a->last != HTTP_RESPONSE_ERROR || a->error == b->error);
    QUIET(a->eof != HTTP_RESPONSE_ERROR || a->error == b->error);
    QUIET(a->used == b->used && a->len == b->len && memcmp(a->data, b->data, a->len) == 0);
    QUIET(a->heads == 0 || (a->status == b->status && strcmp(a->reason, b->reason) == 0
                            && a->chunked == b->chunked && a->json == b->json && a->length == b->length));
}

static struct got got, other;

/* Reads TEXT whole, byte by byte and cut at every STEPth position: every
 * way must give the same events, head and data.  The whole's result is in
 * GOT. */
static void read_step(const char *text, size_t step)
{
    size_t len = strlen(text), *cuts = malloc((len + 1) * sizeof(*cuts));

    ck_assert_ptr_nonnull(cuts);
    read_cuts(text, len, &len, 1, &got);
    for (size_t i = 0; i < len; i++) {
        cuts[i] = i + 1;
    }
    read_cuts(text, len, cuts, len, &other);
    got_same(&other, &got, 1);
    for (size_t cut = 0; cut <= len; cut += step) {
        size_t two[2] = { cut, len };

        read_cuts(text, len, two, 2, &other);
        got_same(&other, &got, cut);
    }
    free(cuts);
}

static void read_all(const char *text)
{
    read_step(text, 1);
}

/* TEXT must be a complete response with status STATUS and body BODY, and
 * end where "NEXT" starts (or at its end). */
static void reads_to(const char *text, int status, const char *body)
{
    const char *next = strstr(text, "NEXT");

    read_all(text);
    ck_assert_msg(got.last == HTTP_RESPONSE_END, "%.80s: %d", text, got.last);
    ck_assert_int_eq(got.heads, 1);
    ck_assert_int_eq(got.status, status);
    ck_assert_uint_eq(got.len, strlen(body));
    ck_assert(memcmp(got.data, body, got.len) == 0);
    ck_assert_uint_eq(got.used, next != NULL ? (size_t)(next - text) : strlen(text));
    ck_assert_int_eq(got.eof, HTTP_RESPONSE_END);
}

/* TEXT must fail with ERROR, after the body bytes BODY. */
static void fails(const char *text, enum http_response_error error, const char *body)
{
    read_all(text);
    ck_assert_msg(got.last == HTTP_RESPONSE_ERROR && got.error == error, "%.80s: %d %d", text, got.last, got.error);
    ck_assert_uint_eq(got.len, strlen(body));
    ck_assert(memcmp(got.data, body, got.len) == 0);
    ck_assert_int_eq(got.eof, HTTP_RESPONSE_ERROR);
}

START_TEST(response_framings)
{
    reads_to("HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nTransfer-Encoding: chunked\r\n\r\n"
             "5\r\nhello\r\n6;x=y\r\n world\r\n0\r\nX-Trailer: 1\r\n\r\nNEXT", 200, "hello world");
    ck_assert_str_eq(got.reason, "OK");
    ck_assert(got.chunked && !got.json && got.length == -1);
    reads_to("HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhelloNEXT", 200, "hello");
    ck_assert(!got.chunked && got.length == 5);
    reads_to("HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\nNEXT", 200, "");
    /* Chunked wins over a Content-Length. */
    reads_to("HTTP/1.1 200 OK\r\nContent-Length: 2\r\nTransfer-Encoding: gzip, chunked\r\n\r\n"
             "3\r\nabc\r\n0\r\n\r\nNEXT", 200, "abc");
    /* No body whatever the head says. */
    reads_to("HTTP/1.1 204 No Content\r\nContent-Length: 10\r\n\r\nNEXT", 204, "");
    reads_to("HTTP/1.1 304 Not Modified\r\nTransfer-Encoding: chunked\r\n\r\nNEXT", 304, "");
    /* Until the connection closes. */
    read_all("HTTP/1.0 200 OK\r\nContent-Type: text/event-stream\r\n\r\ndata: x\n\n");
    ck_assert_int_eq(got.last, HTTP_RESPONSE_AGAIN);
    ck_assert_int_eq(got.eof, HTTP_RESPONSE_END);
    ck_assert_uint_eq(got.len, 9);
    ck_assert(memcmp(got.data, "data: x\n\n", 9) == 0);
    read_all("HTTP/1.1 200 OK\r\nContent-Length: nope\r\n\r\nbody");
    ck_assert(got.last == HTTP_RESPONSE_AGAIN && got.eof == HTTP_RESPONSE_END && got.len == 4);
    ck_assert_int_eq(got.length, -1);
}
END_TEST

START_TEST(response_heads)
{
    /* Interim responses are skipped, their fields with them. */
    reads_to("HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 103 Early Hints\r\nLink: </x>\r\nContent-Length: 9\r\n\r\n"
             "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nokNEXT", 200, "ok");
    /* Bare LF line ends, blanks around values, any case, the last field wins. */
    reads_to("HTTP/1.1 500 Internal Server Error\ncontent-type: \t APPLICATION/JSON; charset=utf-8\n"
             "Content-Length: 9\nCONTENT-LENGTH: 2 \nno colon here\n\n{}NEXT", 500, "{}");
    ck_assert_str_eq(got.reason, "Internal Server Error");
    ck_assert(got.json && got.length == 2);
    read_all("HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Type: text/plain\r\n\r\n");
    ck_assert(got.heads == 1 && !got.json);
    read_all("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nTransfer-Encoding: identity\r\n\r\n");
    ck_assert(got.heads == 1 && !got.chunked);
    read_all("HTTP/1.1 200 OK\r\nContent-Length: -5\r\n\r\n");
    ck_assert(got.heads == 1 && got.length == -1);
    read_all("HTTP/1.1 200 OK\r\nContent-Length: 99999999999999999999\r\n\r\n");
    ck_assert(got.heads == 1 && got.length == -1);
    /* No reason phrase; a long one is cut. */
    reads_to("HTTP/1.1 200\r\nContent-Length: 0\r\n\r\n", 200, "");
    ck_assert_str_eq(got.reason, "");
    reads_to("HTTP/1.0 401 Unauthorized and then some words that go on past sixty-three bytes\r\n"
             "Content-Length: 0\r\n\r\n", 401, "");
    ck_assert_uint_eq(strlen(got.reason), sizeof(got.reason) - 1);
    /* Not there yet. */
    read_all("HTTP/1.1 200 OK\r\nContent-Len");
    ck_assert(got.last == HTTP_RESPONSE_AGAIN && got.heads == 0);
    ck_assert(got.eof == HTTP_RESPONSE_ERROR && got.error == HTTP_RESPONSE_CUT);
}
END_TEST

START_TEST(response_bad_status)
{
    static const char *const bad[] = {
        "HTTP/2 200 OK\r\n", "HTTP/1.1 99 Low\r\n", "HTTP/1.1 2000 OK\r\n", "HTTP/1.1 20x OK\r\n",
        "HTTP/1.1 OK\r\n", "SSH-2.0-OpenSSH\r\n", "\r\n", "http/1.1 200 OK\r\n",
    };
    struct http_response r;
    const char *data;
    char line[] = "HTTP/1.1 abc\r\nmore";
    size_t used, n;

    for (size_t i = 0; i < PL_ARRAY_LEN(bad); i++) {
        fails(bad[i], HTTP_RESPONSE_BAD_STATUS, "");
    }
    /* The line is kept for the message; the error sticks. */
    http_response_init(&r);
    ck_assert_int_eq(http_response_feed(&r, line, strlen(line), &used, &data, &n), HTTP_RESPONSE_ERROR);
    ck_assert_uint_eq(used, 14);
    ck_assert_str_eq(r.line, "HTTP/1.1 abc");
    ck_assert_int_eq(http_response_feed(&r, line + used, 4, &used, &data, &n), HTTP_RESPONSE_ERROR);
    ck_assert_uint_eq(used, 0);
}
END_TEST

START_TEST(response_limits)
{
    static char text[HTTP_RESPONSE_HEAD_MAX + 16 * 1024];
    int n;

    /* A line of HTTP_RESPONSE_LINE_MAX bytes, with CRLF or LF; one more
     * fails.  (Byte by byte covers every cut; two pieces, every 7th.) */
    snprintf(text, sizeof(text), "HTTP/1.1 200 %0*d\r\nContent-Length: 0\r\n\r\n", HTTP_RESPONSE_LINE_MAX - 13, 0);
    read_step(text, 7);
    ck_assert(got.heads == 1 && got.last == HTTP_RESPONSE_END);
    snprintf(text, sizeof(text), "HTTP/1.1 200 OK\r\nX: %0*d\n\n", HTTP_RESPONSE_LINE_MAX - 3, 0);
    read_step(text, 7);
    ck_assert_int_eq(got.heads, 1);
    snprintf(text, sizeof(text), "HTTP/1.1 200 OK\r\nX: %0*d\r\n\r\n", HTTP_RESPONSE_LINE_MAX - 2, 0);
    read_step(text, 7);
    ck_assert(got.last == HTTP_RESPONSE_ERROR && got.error == HTTP_RESPONSE_LONG_LINE);
    snprintf(text, sizeof(text), "HTTP/1.1 200 OK\r\nX: %0*d\n\n", HTTP_RESPONSE_LINE_MAX - 2, 0);
    read_step(text, 7);
    ck_assert(got.last == HTTP_RESPONSE_ERROR && got.error == HTTP_RESPONSE_LONG_LINE);
    /* Heads over HTTP_RESPONSE_HEAD_MAX together, 1xx heads counted too. */
    n = snprintf(text, sizeof(text), "HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 200 OK\r\n");
    while (n < HTTP_RESPONSE_HEAD_MAX) {
        n += snprintf(text + n, sizeof(text) - (size_t)n, "X: %08000d\r\n", 0);
    }
    snprintf(text + n, sizeof(text) - (size_t)n, "\r\n");
    read_step(text, 997);
    ck_assert(got.last == HTTP_RESPONSE_ERROR && got.error == HTTP_RESPONSE_LONG_HEAD);
}
END_TEST

START_TEST(response_chunked_strictly)
{
    static const char head[] = "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n";
    static const char *const bad[] = {
        "5\nhello\n0\n\n",              /* bare LF: refused, unlike in the head */
        "5 ;x\r\nhello\r\n0\r\n\r\n",   /* a blank before the extension */
        "5\r\nhelloX\r\n0\r\n\r\n",     /* data not followed by CRLF */
        "00000000000000005\r\nhello\r\n",
        "0\r\nContent-Length: 1\r\n\r\n",
        "x\r\n",
    };
    char text[256];

    for (size_t i = 0; i < PL_ARRAY_LEN(bad); i++) {
        snprintf(text, sizeof(text), "%s%s", head, bad[i]);
        fails(text, HTTP_RESPONSE_BAD_CHUNK, i == 2 ? "hello" : "");
    }
    /* The data before a bad chunk arrives first. */
    snprintf(text, sizeof(text), "%s5\r\nhello\r\nzz\r\n", head);
    fails(text, HTTP_RESPONSE_BAD_CHUNK, "hello");
}
END_TEST

START_TEST(response_cut)
{
    read_all("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n");
    ck_assert(got.last == HTTP_RESPONSE_AGAIN && got.len == 5);
    ck_assert(got.eof == HTTP_RESPONSE_ERROR && got.error == HTTP_RESPONSE_CUT);
    read_all("HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nhello");
    ck_assert(got.eof == HTTP_RESPONSE_ERROR && got.error == HTTP_RESPONSE_CUT && got.len == 5);
    read_all("");
    ck_assert(got.eof == HTTP_RESPONSE_ERROR && got.error == HTTP_RESPONSE_CUT);
}
END_TEST

Suite *suite_http_response(void)
{
    Suite *s = suite_create("http_response");
    TCase *tc = tcase_create("http_response");

    tcase_add_test(tc, response_framings);
    tcase_add_test(tc, response_heads);
    tcase_add_test(tc, response_bad_status);
    tcase_add_test(tc, response_limits);
    tcase_add_test(tc, response_chunked_strictly);
    tcase_add_test(tc, response_cut);
    suite_add_tcase(s, tc);
    return s;
}
