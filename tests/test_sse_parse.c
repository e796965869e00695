/* test_sse_parse.c - the event-stream reader fed whole, byte by byte, split everywhere, and over its limits. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "parley.h"
#include "sse_parse.h"
#include "unit.h"

#define OUT_MAX 4096

/* An input and the events it must give, each written "type|data;". */
struct scase {
    const char *what;
    const char *in;
    const char *out;
    unsigned long comments;
};

static const struct scase cases[] = {
    { "one event", "data: hello\n\n", "message|hello;", 0 },
    { "CRLF", "data: a\r\n\r\ndata: b\r\n\r\n", "message|a;message|b;", 0 },
    { "CR alone", "data: a\r\rdata: b\r\r", "message|a;message|b;", 0 },
    { "mixed line ends", "data: a\r\ndata: b\n\r\ndata: c\r\r\n", "message|a\nb;message|c;", 0 },
    { "CR, CR, LF", "data: a\r\r\n", "message|a;", 0 },
    { "multi-line data", "data: line1\ndata: line2\ndata: line3\n\n", "message|line1\nline2\nline3;", 0 },
    { "comments", ": keep-alive\n\ndata: x\n: mid-event\ndata: y\n\n:\n\n", "message|x\ny;", 3 },
    { "done marker", "data: {\"a\":1}\n\ndata: [DONE]\n\n", "message|{\"a\":1};message|[DONE];", 0 },
    { "named event", "event: ping\ndata: 1\n\ndata: 2\n\n", "ping|1;message|2;", 0 },
    { "no space, two spaces", "data:x\n\ndata:  y\n\n", "message|x;message| y;", 0 },
    { "colon inside the value", "data: a: b\n\n", "message|a: b;", 0 },
    { "field without colon", "data\n\ndata\ndata\n\n", "message|;message|\n;", 0 },
    { "blank lines without data", "\n\n\r\nevent: x\n\ndata: b\n\n", "message|b;", 0 },
    { "other fields ignored", "id: 5\nretry: 10\nfoo: bar\nDATA: no\ndata: q\n\n", "message|q;", 0 },
    { "unfinished last event", "data: a\n\ndata: b\n", "message|a;", 0 },
    { "unfinished last line", "data: a\n\ndata: b", "message|a;", 0 },
    { "empty input", "", "", 0 },
    { "utf-8 and escapes", "data: {\"c\":\"h\\u00e9 \xc3\xa9\"}\n\n", "message|{\"c\":\"h\\u00e9 \xc3\xa9\"};", 0 },
    { "an agent's stream",
      ": OPENROUTER PROCESSING\r\n\r\n"
      "data: {\"choices\":[{\"index\":0,\"delta\":{\"role\":\"assistant\"}}]}\r\n\r\n"
      "data: {\"choices\":[{\"index\":0,\"delta\":{\"content\":\"Hi\"}}]}\r\n\r\n"
      "data: {\"choices\":\r\ndata: [{\"index\":0,\"delta\":{\"content\":\" there\"},\"finish_reason\":\"stop\"}]}\r\n\r\n"
      "data: [DONE]\r\n\r\n",
      "message|{\"choices\":[{\"index\":0,\"delta\":{\"role\":\"assistant\"}}]};"
      "message|{\"choices\":[{\"index\":0,\"delta\":{\"content\":\"Hi\"}}]};"
      "message|{\"choices\":\n[{\"index\":0,\"delta\":{\"content\":\" there\"},\"finish_reason\":\"stop\"}]};"
      "message|[DONE];", 1 },
};

struct collected {
    char out[OUT_MAX];
    size_t len;
    int failed;
};

static void collect_add(struct collected *c, const struct sse_event *ev)
{
    int n = snprintf(c->out + c->len, sizeof(c->out) - c->len, "%s|%.*s;", ev->type, (int)ev->len, ev->data);

    ck_assert_int_gt(n, 0);
    ck_assert_uint_eq(strlen(ev->data), ev->len);
    c->len += (size_t)n;
    ck_assert_uint_lt(c->len, sizeof(c->out));
}

/* Feeds BUF as one piece, taking every event out of it the way a caller
 * does: the rest after each event in the next call. */
static void feed_piece(struct sse_parser *p, const char *buf, size_t len, struct collected *c)
{
    while (len > 0 && !c->failed) {
        struct sse_event ev;
        size_t used = 12345;
        int rc = sse_parse_feed(p, buf, len, &used, &ev);

        ck_assert_uint_le(used, len);
        if (rc == PL_OK) {
            ck_assert_uint_gt(used, 0);
            collect_add(c, &ev);
        } else if (rc == PL_AGAIN) {
            ck_assert_uint_eq(used, len);
        } else {
            ck_assert_int_eq(rc, PL_ERR);
            c->failed = 1;
        }
        buf += used;
        len -= used;
    }
}

/* Feeds IN cut at the offsets in CUTS (ascending, NCUTS of them). */
static void feed_cut(const struct scase *t, const size_t *cuts, int ncuts, const char *how)
{
    struct sse_parser p;
    struct collected c = { .len = 0 };
    size_t n = strlen(t->in), from = 0;

    sse_parser_init(&p, 0);
    for (int i = 0; i <= ncuts; i++) {
        size_t to = i < ncuts ? cuts[i] : n;
        feed_piece(&p, t->in + from, to - from, &c);
        from = to;
    }
    c.out[c.len] = '\0';
    ck_assert_msg(!c.failed && strcmp(c.out, t->out) == 0 && p.comments == t->comments,
                  "%s, %s: got \"%s\" (failed=%d, %lu comments), want \"%s\"",
                  t->what, how, c.out, c.failed, p.comments, t->out);
    sse_parser_free(&p);
}

START_TEST(test_whole)
{
    feed_cut(&cases[_i], NULL, 0, "whole");
}
END_TEST

START_TEST(test_byte_at_a_time)
{
    const struct scase *t = &cases[_i];
    size_t n = strlen(t->in);
    size_t *cuts = calloc(n + 1, sizeof(*cuts));

    for (size_t i = 0; i + 1 < n; i++) {
        cuts[i] = i + 1;
    }
    feed_cut(t, cuts, n > 1 ? (int)n - 1 : 0, "byte at a time");
    free(cuts);
}
END_TEST

/* Every way of cutting the input in two and in three pieces. */
START_TEST(test_split_everywhere)
{
    const struct scase *t = &cases[_i];
    size_t n = strlen(t->in), cuts[2];
    char how[64];

    for (size_t a = 0; a <= n; a++) {
        cuts[0] = a;
        snprintf(how, sizeof(how), "cut at %zu", a);
        feed_cut(t, cuts, 1, how);
        for (size_t b = a; b <= n && n < 200; b++) {
            cuts[1] = b;
            snprintf(how, sizeof(how), "cut at %zu and %zu", a, b);
            feed_cut(t, cuts, 2, how);
        }
    }
}
END_TEST

/* Three events in one buffer come out one per call, in order. */
START_TEST(test_one_event_per_call)
{
    static const char in[] = "data: 1\n\ndata: 2\n\ndata: 3\n\n";
    struct sse_parser p;
    struct sse_event ev;
    size_t used, off = 0;

    sse_parser_init(&p, 0);
    for (int i = 1; i <= 3; i++) {
        char want[2] = { (char)('0' + i), '\0' };
        ck_assert_int_eq(sse_parse_feed(&p, in + off, sizeof(in) - 1 - off, &used, &ev), PL_OK);
        ck_assert_str_eq(ev.data, want);
        off += used;
        ck_assert_uint_eq(off, 9u * (size_t)i);
    }
    ck_assert_int_eq(sse_parse_feed(&p, in + off, sizeof(in) - 1 - off, &used, &ev), PL_AGAIN);
    ck_assert_uint_eq(used, 0);
    sse_parser_free(&p);
}
END_TEST

/* Feeds IN to a parser limited to MAX, in pieces of STEP bytes; returns
 * the offset after which it failed, or -1. */
static long feed_limited(size_t max, const char *in, size_t n, size_t step, struct collected *c)
{
    struct sse_parser p;
    long failed_at = -1;

    sse_parser_init(&p, max);
    for (size_t off = 0; off < n && failed_at < 0; off += step) {
        size_t len = off + step <= n ? step : n - off;
        feed_piece(&p, in + off, len, c);
        if (c->failed) {
            failed_at = (long)(off + len);
        }
    }
    /* Sticky: nothing more comes out once it failed. */
    if (failed_at >= 0) {
        struct sse_event ev;
        size_t used;
        ck_assert_int_eq(sse_parse_feed(&p, "data: x\n\n", 9, &used, &ev), PL_ERR);
    }
    ck_assert_uint_le(p.line_cap, 2 * (p.max > 256 ? p.max : 256));
    ck_assert_uint_le(p.data_cap, 2 * (p.max > 256 ? p.max : 256));
    sse_parser_free(&p);
    return failed_at;
}

START_TEST(test_line_limit)
{
    struct collected c = { .len = 0 };

    /* A line of exactly the limit (16) is fine; one byte more fails as
     * soon as that byte arrives, not at the end of the line. */
    ck_assert_int_eq(feed_limited(16, "data: 0123456789\n\n", 18, 1, &c), -1);
    c.out[c.len] = '\0';
    ck_assert_str_eq(c.out, "message|0123456789;");
    memset(&c, 0, sizeof(c));
    ck_assert_int_eq(feed_limited(16, "data: 01234567890\n\n", 19, 1, &c), 17);
    memset(&c, 0, sizeof(c));
    ck_assert_int_eq(feed_limited(16, "data: 01234567890\n\n", 19, 19, &c), 19);
    /* A long comment is a long line too; CRLF does not count. */
    memset(&c, 0, sizeof(c));
    ck_assert_int_eq(feed_limited(16, ": 345678901234567\r\n", 19, 1, &c), 17);
    memset(&c, 0, sizeof(c));
    ck_assert_int_eq(feed_limited(16, ": 34567890123456\r\n\r\n", 20, 1, &c), -1);
}
END_TEST

START_TEST(test_data_limit)
{
    static const char in[] = "data: 12345\ndata: 12345\ndata: 1234\n\ndata: 12345\ndata: 12345\ndata: 12345\n\n";
    struct collected c = { .len = 0 };

    /* 5 + 1 + 5 + 1 + 4 + 1 = 17 with the separators: over 16 at the
     * third line; then 6 + 6 + 6 = 18. */
    ck_assert_int_eq(feed_limited(16, in, 36, 1, &c), 35);
    memset(&c, 0, sizeof(c));
    ck_assert_int_eq(feed_limited(17, in, sizeof(in) - 1, 1, &c), (long)sizeof(in) - 2);
    c.out[c.len] = '\0';
    ck_assert_str_eq(c.out, "message|12345\n12345\n1234;");
}
END_TEST

/* The default limit: a line of exactly SSE_PARSE_MAX_DEFAULT bytes passes
 * whole and in 1000-byte pieces; one more byte fails without buffering it. */
START_TEST(test_default_limit)
{
    size_t max = SSE_PARSE_MAX_DEFAULT, over = max + 8192;
    char *in = malloc(over);
    struct collected c = { .len = 0 };
    struct sse_parser p;
    struct sse_event ev;
    size_t used;

    memcpy(in, "data: ", 6);
    memset(in + 6, 'x', max - 6);
    memcpy(in + max, "\n\n", 3);
    for (size_t step = 1000; step <= max + 2; step += max + 2 - 1000) {
        sse_parser_init(&p, 0);
        ck_assert_int_eq(sse_parse_feed(&p, in, 0, &used, &ev), PL_AGAIN);
        for (size_t off = 0; off < max + 2; off += used) {
            size_t len = off + step <= max + 2 ? step : max + 2 - off;
            int rc = sse_parse_feed(&p, in + off, len, &used, &ev);
            if (rc == PL_OK) {
                ck_assert_uint_eq(ev.len, max - 6);
                ck_assert_uint_eq(off + used, max + 2);
            } else {
                ck_assert_int_eq(rc, PL_AGAIN);
            }
        }
        sse_parser_free(&p);
    }
    memset(in + max, 'x', over - max - 2);
    memcpy(in + over - 2, "\n\n", 2);
    ck_assert_int_eq(feed_limited(0, in, over, 4096, &c), (long)((max / 4096 + 1) * 4096));
    free(in);
}
END_TEST

Suite *suite_sse_parse(void)
{
    Suite *s = suite_create("sse_parse");
    TCase *tc = tcase_create("core");
    int n = (int)PL_ARRAY_LEN(cases);

    tcase_add_loop_test(tc, test_whole, 0, n);
    tcase_add_loop_test(tc, test_byte_at_a_time, 0, n);
    tcase_add_loop_test(tc, test_split_everywhere, 0, n);
    tcase_add_test(tc, test_one_event_per_call);
    tcase_add_test(tc, test_line_limit);
    tcase_add_test(tc, test_data_limit);
    tcase_add_test(tc, test_default_limit);
    suite_add_tcase(s, tc);
    return s;
}
