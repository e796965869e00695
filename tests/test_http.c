/* test_http.c - route pattern matching and percent-decoding. */
#include <string.h>

#include "http.h"
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

Suite *suite_http(void)
{
    Suite *s = suite_create("http");
    TCase *tc = tcase_create("routes");

    tcase_add_test(tc, literal_paths);
    tcase_add_test(tc, captures);
    tcase_add_test(tc, bad_escapes);
    tcase_add_test(tc, overlong_segment);
    suite_add_tcase(s, tc);
    return s;
}
