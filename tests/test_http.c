/* test_http.c - route pattern matching, percent-decoding and request head checks. */
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

/* http_head_scan on a NUL-terminated head, all at once; checks that
 * feeding it byte by byte gives the same answer. */
static int head(const char *h)
{
    struct http_head_scan all = { 0 }, bytes = { 0 };
    size_t len = strlen(h);
    int r = http_head_scan(&all, h, len, 4096, 2048), b = -1;

    for (size_t i = 1; i <= len && b == -1; i++) {
        b = http_head_scan(&bytes, h, i, 4096, 2048);
    }
    ck_assert_int_eq(b, r);
    return r;
}

static int scan_once(const char *buf, size_t len)
{
    struct http_head_scan s = { 0 };

    return http_head_scan(&s, buf, len, 4096, 2048);
}

START_TEST(head_complete_or_not)
{
    ck_assert_int_eq(head(""), -1);
    ck_assert_int_eq(head("GET /healthz HTTP/1.1"), -1);
    ck_assert_int_eq(head("GET / HTTP/1.1\r\nHost: x\r\n"), -1);
    ck_assert_int_eq(head("GET / HTTP/1.1\r\nHost: x\r\n\r"), -1);
    ck_assert_int_eq(head("GET / HTTP/1.1\r\nHost: x\r\n\r\n"), 0);
    ck_assert_int_eq(head("GET / HTTP/1.1\nHost: x\n\n"), 0);
    ck_assert_int_eq(head("GET / HTTP/1.1\r\n\r\n"), 0);
    /* The body that follows a complete head is not looked at. */
    ck_assert_int_eq(head("POST / HTTP/1.1\r\nContent-Length: 3\r\n\r\nabc\r\n\r\n"), 0);
}
END_TEST

START_TEST(head_content_length)
{
    ck_assert_int_eq(head("POST / HTTP/1.1\r\nContent-Length: 2048\r\n\r\n"), 0);
    ck_assert_int_eq(head("POST / HTTP/1.1\r\ncontent-length:\t2048 \r\n\r\n"), 0);
    ck_assert_int_eq(head("POST / HTTP/1.1\r\nContent-Length: 2049\r\n\r\n"), 413);
    ck_assert_int_eq(head("POST / HTTP/1.1\r\nContent-Length: 99999999999999999999999\r\n\r\n"), 413);
    ck_assert_int_eq(head("POST / HTTP/1.1\r\nContent-Length: 18446744073709551617\r\n\r\n"), 413);
    ck_assert_int_eq(head("POST / HTTP/1.1\r\nContent-Length: -1\r\n\r\n"), 400);
    ck_assert_int_eq(head("POST / HTTP/1.1\r\nContent-Length: 1e3\r\n\r\n"), 400);
    ck_assert_int_eq(head("POST / HTTP/1.1\r\nContent-Length:\r\n\r\n"), 400);
    ck_assert_int_eq(head("POST / HTTP/1.1\r\nContent-Length: 5, 5\r\n\r\n"), 400);
    ck_assert_int_eq(head("POST / HTTP/1.1\r\nContent-Length: 5\r\nContent-Length: 5\r\n\r\n"), 0);
    ck_assert_int_eq(head("POST / HTTP/1.1\r\nContent-Length: 5\r\nContent-Length: 6\r\n\r\n"), 400);
    ck_assert_int_eq(head("POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\nContent-Length: 5\r\n\r\n"), 400);
    ck_assert_int_eq(head("POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n"), 0);
    /* Not the header, only alike. */
    ck_assert_int_eq(head("POST / HTTP/1.1\r\nX-Content-Length: -1\r\nContent-Lengthy: x\r\n\r\n"), 0);
}
END_TEST

START_TEST(head_sizes)
{
    static char buf[20000];
    size_t n;

    /* A request line of HTTP_MAX_REQUEST_LINE bytes without its end: 414. */
    memset(buf, 'a', HTTP_MAX_REQUEST_LINE);
    ck_assert_int_eq(scan_once(buf, HTTP_MAX_REQUEST_LINE - 1), -1);
    ck_assert_int_eq(scan_once(buf, HTTP_MAX_REQUEST_LINE), 414);
    /* Header lines past the limit without the blank line: 431. */
    n = (size_t)sprintf(buf, "GET / HTTP/1.1\r\n");
    while (n < 4096 + 100) {
        n += (size_t)sprintf(buf + n, "X-Pad: 0123456789\r\n");
    }
    ck_assert_int_eq(scan_once(buf, 4000), -1);
    ck_assert_int_eq(scan_once(buf, n), 431);
    /* The same once the blank line is in: the answer does not depend on
     * how much had arrived. */
    n += (size_t)sprintf(buf + n, "\r\n");
    ck_assert_int_eq(scan_once(buf, n), 431);
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
    tcase_add_test(heads, head_content_length);
    tcase_add_test(heads, head_sizes);
    suite_add_tcase(s, heads);
    return s;
}
