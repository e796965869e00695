/* test_http.c - route pattern matching, percent-decoding and request head checks
 * (fed whole, byte by byte and cut at every position). */
#include <stdio.h>
#include <string.h>

#include "http.h"
#include "http_head.h"
#include "parley.h"
#include "unit.h"

static struct http_params p;

START_TEST(literal_paths)
{
    ck_assert_int_eq(http_route_match("/healthz", "/healthz", &p), 1);
    ck_assert_int_eq(p.count, 0);
    ck_assert_int_eq(http_route_match("/healthz", "/healthz/", &p), 0);
    ck_assert_int_eq(http_route_match("/healthz", "/health", &p), 0);
    ck_assert_int_eq(http_route_match("/healthz", "/", &p), 0);
}
END_TEST

START_TEST(captures)
{
    ck_assert_int_eq(http_route_match("/api/rooms/{}/messages", "/api/rooms/lobby/messages", &p), 1);
    ck_assert_int_eq(p.count, 1);
    ck_assert_str_eq(p.value[0], "lobby");
    ck_assert_int_eq(http_route_match("/ws/chat/{}", "/ws/chat/a%2Eb%20c", &p), 1);
    ck_assert_str_eq(p.value[0], "a.b c");
    /* A missing segment is no match (404), not a bad name. */
    ck_assert_int_eq(http_route_match("/api/rooms/{}/messages", "/api/rooms//messages", &p), 0);
    ck_assert_int_eq(http_route_match("/ws/chat/{}", "/ws/chat/", &p), 0);
    ck_assert_int_eq(http_route_match("/ws/chat/{}", "/ws/chat/a/b", &p), 0);
}
END_TEST

START_TEST(bad_escapes)
{
    ck_assert_int_eq(http_route_match("/ws/chat/{}", "/ws/chat/%zz", &p), -1);
    ck_assert_int_eq(http_route_match("/ws/chat/{}", "/ws/chat/ab%4", &p), -1);
    ck_assert_int_eq(http_route_match("/ws/chat/{}", "/ws/chat/%00", &p), -1);
}
END_TEST

START_TEST(overlong_segment)
{
    char path[600];

    strcpy(path, "/ws/chat/");
    memset(path + 9, 'a', 300);
    path[309] = '\0';
    ck_assert_int_eq(http_route_match("/ws/chat/{}", path, &p), -1);
}
END_TEST

#define MAX_HEADERS 4096
#define MAX_BODY 2048

/* http_head_scan on the LEN bytes at H: all at once, byte by byte, and cut
 * at every position; all must agree (verdict and framing).  *OUT gets the
 * scan of the whole. */
static int head_scan_n(const char *h, size_t len, struct http_head_scan *out)
{
    struct http_head_scan all = { 0 }, bytes = { 0 };
    int r = http_head_scan(&all, h, len, MAX_HEADERS, MAX_BODY), b = PL_AGAIN;

    for (size_t i = 1; i <= len && b == PL_AGAIN; i++) {
        b = http_head_scan(&bytes, h, i, MAX_HEADERS, MAX_BODY);
    }
    ck_assert_int_eq(b, r);
    for (size_t cut = 0; cut <= len; cut++) {
        struct http_head_scan split = { 0 };
        int c = http_head_scan(&split, h, cut, MAX_HEADERS, MAX_BODY);

        if (c == PL_AGAIN) {
            c = http_head_scan(&split, h, len, MAX_HEADERS, MAX_BODY);
        }
        ck_assert_msg(c == r, "cut at %zu: %d, whole: %d (%s)", cut, c, r, h);
        ck_assert_uint_eq(split.scanned, all.scanned);
        ck_assert_int_eq(split.chunked, all.chunked);
        ck_assert_uint_eq(split.length, all.length);
    }
    if (out != NULL) {
        *out = all;
    }
    return r;
}

static int head(const char *h)
{
    return head_scan_n(h, strlen(h), NULL);
}

/* A POST head with Host and the field lines FIELDS. */
static int post(const char *fields)
{
    char h[1024];

    snprintf(h, sizeof(h), "POST / HTTP/1.1\r\nHost: x\r\n%s\r\n", fields);
    return head(h);
}

static int scan_once(const char *buf, size_t len)
{
    struct http_head_scan s = { 0 };

    return http_head_scan(&s, buf, len, MAX_HEADERS, MAX_BODY);
}

START_TEST(head_complete_or_not)
{
    struct http_head_scan s;
    static const char with_body[] = "POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\n\r\nabc\r\n\r\n";

    ck_assert_int_eq(head(""), PL_AGAIN);
    ck_assert_int_eq(head("GET /healthz HTTP/1.1"), PL_AGAIN);
    ck_assert_int_eq(head("GET / HTTP/1.1\r\nHost: x\r\n"), PL_AGAIN);
    ck_assert_int_eq(head("GET / HTTP/1.1\r\nHost: x\r\n\r"), PL_AGAIN);
    ck_assert_int_eq(head("GET / HTTP/1.1\r\nHost: x\r\n\r\n"), 0);
    ck_assert_int_eq(head("GET / HTTP/1.0\r\n\r\n"), 0);
    /* The body that follows a complete head is not looked at. */
    ck_assert_int_eq(head_scan_n(with_body, sizeof(with_body) - 1, &s), 0);
    ck_assert_uint_eq(s.scanned, sizeof(with_body) - 1 - 7);
    ck_assert_uint_eq(s.length, 3);
    ck_assert_int_eq(s.chunked, 0);
}
END_TEST

START_TEST(head_line_ends)
{
    struct http_head_scan s;
    static const char empty_lines[] = "\r\n\r\nGET / HTTP/1.1\r\nHost: x\r\n\r\n";

    /* Empty lines before the request line are skipped... */
    ck_assert_int_eq(head_scan_n(empty_lines, sizeof(empty_lines) - 1, &s), 0);
    ck_assert_uint_eq(s.start, 4);
    /* ...but every line ends in CRLF: no bare LF, no bare CR. */
    ck_assert_int_eq(head("GET / HTTP/1.1\nHost: x\n\n"), 400);
    ck_assert_int_eq(head("GET / HTTP/1.1\r\nHost: x\n\r\n"), 400);
    ck_assert_int_eq(head("GET / HTTP/1.1\r\nHost: x\r\n\n"), 400);
    ck_assert_int_eq(head("\nGET / HTTP/1.1\r\nHost: x\r\n\r\n"), 400);
    ck_assert_int_eq(head("\rGET / HTTP/1.1\r\nHost: x\r\n\r\n"), 400);
    ck_assert_int_eq(head("GET / HTTP/1.1\rHost: x\r\n\r\n"), 400);
    ck_assert_int_eq(head("GET / HTTP/1.1\r\nHost: x\rY: z\r\n\r\n"), 400);
    ck_assert_int_eq(head("GET / HTTP/1.1\r\nHost: x\r\n\rX"), 400);
}
END_TEST

START_TEST(head_request_line)
{
    ck_assert_int_eq(head("M_SEARCH / HTTP/1.1\r\nHost: x\r\n\r\n"), 0);
    ck_assert_int_eq(head("GET http://example.org/healthz?a=%20 HTTP/1.1\r\nHost: x\r\n\r\n"), 0);
    ck_assert_int_eq(head("GET /a/b?c=d&e=[f]~!$'()*+,;=:@ HTTP/1.1\r\nHost: x\r\n\r\n"), 0);
    /* Methods are what libevhtp can parse; targets origin- or absolute-form. */
    ck_assert_int_eq(head("get / HTTP/1.1\r\nHost: x\r\n\r\n"), 400);
    ck_assert_int_eq(head("G-T / HTTP/1.1\r\nHost: x\r\n\r\n"), 400);
    ck_assert_int_eq(head(" GET / HTTP/1.1\r\nHost: x\r\n\r\n"), 400);
    ck_assert_int_eq(head("GET  / HTTP/1.1\r\nHost: x\r\n\r\n"), 400);
    ck_assert_int_eq(head("GET\t/ HTTP/1.1\r\nHost: x\r\n\r\n"), 400);
    ck_assert_int_eq(head("OPTIONS * HTTP/1.1\r\nHost: x\r\n\r\n"), 400);
    ck_assert_int_eq(head("CONNECT example.org:443 HTTP/1.1\r\nHost: x\r\n\r\n"), 400);
    ck_assert_int_eq(head("GET http:/x HTTP/1.1\r\nHost: x\r\n\r\n"), 400);
    ck_assert_int_eq(head("GET h1://x HTTP/1.1\r\nHost: x\r\n\r\n"), 400);
    ck_assert_int_eq(head("GET /a b HTTP/1.1\r\nHost: x\r\n\r\n"), 400);
    ck_assert_int_eq(head("GET /\x7f HTTP/1.1\r\nHost: x\r\n\r\n"), 400);
    ck_assert_int_eq(head("GET /\x80 HTTP/1.1\r\nHost: x\r\n\r\n"), 400);
    ck_assert_int_eq(head("GET /\t HTTP/1.1\r\nHost: x\r\n\r\n"), 400);
    ck_assert_int_eq(head_scan_n("GET /\0 HTTP/1.1\r\nHost: x\r\n\r\n", 30, NULL), 400);
    ck_assert_int_eq(head("GET / HTTP/1.1 \r\nHost: x\r\n\r\n"), 400);
    ck_assert_int_eq(head("GET /\r\nHost: x\r\n\r\n"), 400);
    ck_assert_int_eq(head("GARBAGE\r\n\r\n"), 400);
}
END_TEST

START_TEST(head_versions)
{
    ck_assert_int_eq(head("GET / HTTP/1.0\r\nHost: x\r\n\r\n"), 0);
    ck_assert_int_eq(head("GET / HTTP/1.1\r\nHost: x\r\n\r\n"), 0);
    /* Well-formed but not served: 505, as soon as the request line is in. */
    ck_assert_int_eq(head("GET / HTTP/2.0\r\n"), 505);
    ck_assert_int_eq(head("GET / HTTP/9.9\r\nHost: x\r\n\r\n"), 505);
    ck_assert_int_eq(head("GET / HTTP/0.9\r\nHost: x\r\n\r\n"), 505);
    ck_assert_int_eq(head("GET / HTTP/1.2\r\nHost: x\r\n\r\n"), 505);
    /* Malformed: 400. */
    ck_assert_int_eq(head("GET / HTTP/1.10\r\nHost: x\r\n\r\n"), 400);
    ck_assert_int_eq(head("GET / HTTP/1\r\nHost: x\r\n\r\n"), 400);
    ck_assert_int_eq(head("GET / HTTP/9.x\r\nHost: x\r\n\r\n"), 400);
    ck_assert_int_eq(head("GET / http/1.1\r\nHost: x\r\n\r\n"), 400);
    ck_assert_int_eq(head("GET / HTTP/11\r\nHost: x\r\n\r\n"), 400);
    ck_assert_int_eq(head("GET / HTTPS/1.1\r\nHost: x\r\n\r\n"), 400);
}
END_TEST

START_TEST(head_field_lines)
{
    ck_assert_int_eq(post("X-A:b\r\nX-B: \t c d \t\r\nX-C:\r\nX-D: \x80\xff\r\n!#$%&'*+-.^_`|~09az:x\r\n"), 0);
    /* RFC 9112 5.1: no whitespace between the field name and the colon. */
    ck_assert_int_eq(post("Content-Length : 15\r\n"), 400);
    ck_assert_int_eq(post("Transfer-Encoding : chunked\r\n"), 400);
    ck_assert_int_eq(post("X-A\t: b\r\n"), 400);
    ck_assert_int_eq(post("X A: b\r\n"), 400);
    ck_assert_int_eq(post(": b\r\n"), 400);
    ck_assert_int_eq(post("X-A b\r\n"), 400);
    ck_assert_int_eq(post("X(A): b\r\n"), 400);
    /* obs-fold, and whitespace before the first field. */
    ck_assert_int_eq(post("X-A: b\r\n c\r\n"), 400);
    ck_assert_int_eq(post("X-A: b\r\n\tc\r\n"), 400);
    ck_assert_int_eq(head("GET / HTTP/1.1\r\n Host: x\r\n\r\n"), 400);
    /* Values: HTAB, SP, VCHAR, obs-text; no NUL, DEL or other control. */
    ck_assert_int_eq(head_scan_n("POST / HTTP/1.1\r\nHost: x\r\nX-A: b\0c\r\n\r\n", 40, NULL), 400);
    ck_assert_int_eq(post("X-A: b\x01\r\n"), 400);
    ck_assert_int_eq(post("X-A: b\x1f\r\n"), 400);
    ck_assert_int_eq(post("X-A: b\x7f\r\n"), 400);
    ck_assert_int_eq(post("X-A: b\x0b\r\n"), 400);
}
END_TEST

START_TEST(head_host)
{
    struct http_head_scan s;
    static const char expect[] = "POST / HTTP/1.1\r\nHost: x\r\nExpect: 100-Continue\r\nContent-Length: 1\r\n\r\n";
    static const char expect10[] = "POST / HTTP/1.0\r\nExpect: 100-continue\r\nContent-Length: 1\r\n\r\n";

    ck_assert_int_eq(head("GET / HTTP/1.1\r\n\r\n"), 400);
    ck_assert_int_eq(head("GET / HTTP/1.1\r\nX-Host: x\r\n\r\n"), 400);
    ck_assert_int_eq(head("GET / HTTP/1.0\r\n\r\n"), 0);
    ck_assert_int_eq(head("GET / HTTP/1.1\r\nHost: x\r\nhost: x\r\n\r\n"), 400);
    ck_assert_int_eq(head("GET / HTTP/1.0\r\nHost: x\r\nHost: y\r\n\r\n"), 400);
    ck_assert_int_eq(head("GET / HTTP/1.1\r\nHost:\r\n\r\n"), 0);
    ck_assert_int_eq(head("GET / HTTP/1.1\r\nhOsT: chat.example:8080\r\n\r\n"), 0);
    ck_assert_int_eq(head("GET / HTTP/1.1\r\nHost: [::1]:80\r\n\r\n"), 0);
    ck_assert_int_eq(head("GET / HTTP/1.1\r\nHost: a b\r\n\r\n"), 400);
    ck_assert_int_eq(head("GET / HTTP/1.1\r\nHost: a/b\r\n\r\n"), 400);
    ck_assert_int_eq(head("GET / HTTP/1.1\r\nHost: a@b\r\n\r\n"), 400);
    /* Expect: 100-continue is noted for HTTP/1.1 only (RFC 9110 10.1.1). */
    ck_assert_int_eq(head_scan_n(expect, sizeof(expect) - 1, &s), 0);
    ck_assert_int_eq(s.expect_continue, 1);
    ck_assert_int_eq(head_scan_n(expect10, sizeof(expect10) - 1, &s), 0);
    ck_assert_int_eq(s.expect_continue, 0);
}
END_TEST

START_TEST(head_content_length)
{
    ck_assert_int_eq(post("Content-Length: 2048\r\n"), 0);
    ck_assert_int_eq(post("content-length:\t2048 \r\n"), 0);
    ck_assert_int_eq(post("Content-Length: 2049\r\n"), 413);
    ck_assert_int_eq(post("Content-Length: 99999999999999999999999\r\n"), 413);
    ck_assert_int_eq(post("Content-Length: 18446744073709551617\r\n"), 413);
    ck_assert_int_eq(post("Content-Length: -1\r\n"), 400);
    ck_assert_int_eq(post("Content-Length: +1\r\n"), 400);
    ck_assert_int_eq(post("Content-Length: 1e3\r\n"), 400);
    ck_assert_int_eq(post("Content-Length: 0x10\r\n"), 400);
    ck_assert_int_eq(post("Content-Length:\r\n"), 400);
    ck_assert_int_eq(post("Content-Length: 5, 5\r\n"), 400);
    ck_assert_int_eq(post("Content-Length: 5 5\r\n"), 400);
    /* Repeated verbatim: one length; any other difference: refused. */
    ck_assert_int_eq(post("Content-Length: 5\r\nContent-Length: 5\r\n"), 0);
    ck_assert_int_eq(post("Content-Length: 5\r\nContent-Length: 6\r\n"), 400);
    ck_assert_int_eq(post("Content-Length: 5\r\nContent-Length: 05\r\n"), 400);
    /* Not the field, only alike. */
    ck_assert_int_eq(post("X-Content-Length: -1\r\nContent-Lengthy: x\r\n"), 0);
}
END_TEST

START_TEST(head_transfer_encoding)
{
    struct http_head_scan s;
    static const char chunked[] = "POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n";

    ck_assert_int_eq(head_scan_n(chunked, sizeof(chunked) - 1, &s), 0);
    ck_assert_int_eq(s.chunked, 1);
    ck_assert_int_eq(s.framing_fields, 1);
    ck_assert_int_eq(post("Transfer-Encoding: ChunKed \t\r\n"), 0);
    /* Only chunked as the final coding frames a request (RFC 9112 6.3). */
    ck_assert_int_eq(post("Transfer-Encoding: xchunked\r\n"), 400);
    ck_assert_int_eq(post("Transfer-Encoding: chunked, identity\r\n"), 400);
    ck_assert_int_eq(post("Transfer-Encoding: identity\r\n"), 400);
    ck_assert_int_eq(post("Transfer-Encoding: gzip\r\n"), 400);
    ck_assert_int_eq(post("Transfer-Encoding:\r\n"), 400);
    ck_assert_int_eq(post("Transfer-Encoding: chunked;a=1\r\n"), 400);
    ck_assert_int_eq(post("Transfer-Encoding: chunked\r\nTransfer-Encoding: gzip\r\n"), 400);
    /* chunked twice, empty list elements, bad parameters: 400. */
    ck_assert_int_eq(post("Transfer-Encoding: chunked, chunked\r\n"), 400);
    ck_assert_int_eq(post("Transfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n"), 400);
    ck_assert_int_eq(post("Transfer-Encoding: chunked,\r\n"), 400);
    ck_assert_int_eq(post("Transfer-Encoding: , chunked\r\n"), 400);
    ck_assert_int_eq(post("Transfer-Encoding: gzip,,chunked\r\n"), 400);
    ck_assert_int_eq(post("Transfer-Encoding: gzip;q, chunked\r\n"), 400);
    ck_assert_int_eq(post("Transfer-Encoding: gzip;a=\"b, chunked\r\n"), 400);
    ck_assert_int_eq(post("Transfer-Encoding: \"chunked\"\r\n"), 400);
    /* Another coding before a final chunked: understood, not implemented. */
    ck_assert_int_eq(post("Transfer-Encoding: gzip, chunked\r\n"), 501);
    ck_assert_int_eq(post("Transfer-Encoding: gzip ; q = 1 , chunked\r\n"), 501);
    ck_assert_int_eq(post("Transfer-Encoding: x;a=\"b,\\\"c\", chunked\r\n"), 501);
    ck_assert_int_eq(post("Transfer-Encoding: gzip\r\nTransfer-Encoding: chunked\r\n"), 501);
    /* With Content-Length, or in HTTP/1.0: 400. */
    ck_assert_int_eq(post("Transfer-Encoding: chunked\r\nContent-Length: 5\r\n"), 400);
    ck_assert_int_eq(post("Content-Length: 5\r\nTransfer-Encoding: chunked\r\n"), 400);
    ck_assert_int_eq(head("POST / HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n"), 400);
}
END_TEST

START_TEST(head_sizes)
{
    static char buf[20000];
    size_t n;

    /* A request line of HTTP_MAX_REQUEST_LINE bytes is taken, one more: 414. */
    memset(buf, 'a', HTTP_MAX_REQUEST_LINE + 1);
    memcpy(buf, "GET /", 5);
    ck_assert_int_eq(scan_once(buf, HTTP_MAX_REQUEST_LINE), PL_AGAIN);
    ck_assert_int_eq(scan_once(buf, HTTP_MAX_REQUEST_LINE + 1), 414);
    n = HTTP_MAX_REQUEST_LINE - 11;
    memcpy(buf + n, " HTTP/1.1\r\nHost: x\r\n\r\n", 22);
    ck_assert_int_eq(scan_once(buf, n + 22), 0);
    buf[4] = '\r';
    buf[5] = '\n';
    ck_assert_int_eq(scan_once(buf, n + 22), 400);
    /* Empty lines before it count. */
    memset(buf, 'a', sizeof(buf));
    for (n = 0; n < HTTP_MAX_REQUEST_LINE; n += 2) {
        memcpy(buf + n, "\r\n", 2);
    }
    ck_assert_int_eq(scan_once(buf, n), PL_AGAIN);
    ck_assert_int_eq(scan_once(buf, n + 1), 414);
    /* Header lines past the limit without the blank line: 431. */
    n = (size_t)sprintf(buf, "GET / HTTP/1.1\r\n");
    while (n < MAX_HEADERS + 100) {
        n += (size_t)sprintf(buf + n, "X-Pad: 0123456789\r\n");
    }
    ck_assert_int_eq(scan_once(buf, 4000), PL_AGAIN);
    ck_assert_int_eq(scan_once(buf, n), 431);
    /* The same once the blank line is in: the answer does not depend on
     * how much had arrived. */
    n += (size_t)sprintf(buf + n, "\r\n");
    ck_assert_int_eq(scan_once(buf, n), 431);
}
END_TEST

static void rewritten(const char *head_text, uint64_t body, const char *want)
{
    char out[512];
    size_t n = http_head_rewrite(head_text, strlen(head_text), body, out);

    ck_assert_uint_le(n, strlen(head_text) + HTTP_HEAD_REWRITE_EXTRA);
    ck_assert_uint_eq(n, strlen(want));
    ck_assert(memcmp(out, want, n) == 0);
}

START_TEST(head_rewrite)
{
    rewritten("POST /a:b HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\nX-Y: z\r\n\r\n", 5,
              "POST /a:b HTTP/1.1\r\nHost: x\r\nX-Y: z\r\nContent-Length: 5\r\n\r\n");
    rewritten("POST http://h/ HTTP/1.1\r\ncontent-length:\t7 \r\nHost: x\r\nCONTENT-LENGTH: 7\r\n"
              "Content-Lengthy: 1\r\n\r\n", 7,
              "POST http://h/ HTTP/1.1\r\nHost: x\r\nContent-Lengthy: 1\r\nContent-Length: 7\r\n\r\n");
    rewritten("POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n", 18446744073709551615ULL,
              "POST / HTTP/1.1\r\nContent-Length: 18446744073709551615\r\n\r\n");
}
END_TEST

Suite *suite_http(void)
{
    Suite *s = suite_create("http");
    TCase *tc = tcase_create("routes");
    TCase *heads = tcase_create("heads");

    tcase_add_test(tc, literal_paths);
    tcase_add_test(tc, captures);
    tcase_add_test(tc, bad_escapes);
    tcase_add_test(tc, overlong_segment);
    suite_add_tcase(s, tc);
    tcase_add_test(heads, head_complete_or_not);
    tcase_add_test(heads, head_line_ends);
    tcase_add_test(heads, head_request_line);
    tcase_add_test(heads, head_versions);
    tcase_add_test(heads, head_field_lines);
    tcase_add_test(heads, head_host);
    tcase_add_test(heads, head_content_length);
    tcase_add_test(heads, head_transfer_encoding);
    tcase_add_test(heads, head_sizes);
    tcase_add_test(heads, head_rewrite);
    suite_add_tcase(s, heads);
    return s;
}
