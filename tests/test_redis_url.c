/* test_redis_url.c - parsing of the "redis" setting. */
#include <string.h>

#include "parley.h"
#include "redis_url.h"
#include "unit.h"

static struct redis_url url;
static char err[256];

START_TEST(tcp_forms)
{
    ck_assert_int_eq(redis_url_parse("redis://127.0.0.1:6380", &url, err, sizeof(err)), PL_OK);
    ck_assert_str_eq(url.host, "127.0.0.1");
    ck_assert_int_eq(url.port, 6380);
    ck_assert_int_eq(url.db, 0);
    ck_assert_str_eq(url.path, "");

    ck_assert_int_eq(redis_url_parse("redis://:s3cret@cache.local:7000/3", &url, err, sizeof(err)), PL_OK);
    ck_assert_str_eq(url.password, "s3cret");
    ck_assert_str_eq(url.host, "cache.local");
    ck_assert_int_eq(url.port, 7000);
    ck_assert_int_eq(url.db, 3);
    ck_assert_ptr_null(strstr(url.text, "s3cret"));    /* never in logs */

    ck_assert_int_eq(redis_url_parse("redis://localhost", &url, err, sizeof(err)), PL_OK);
    ck_assert_int_eq(url.port, 6379);
    ck_assert_int_eq(redis_url_parse("redis://[::1]:6379", &url, err, sizeof(err)), PL_OK);
    ck_assert_str_eq(url.host, "::1");
    ck_assert_int_eq(redis_url_parse("redis://[::1]", &url, err, sizeof(err)), PL_OK);
    ck_assert_str_eq(url.host, "::1");
    ck_assert_int_eq(url.port, 6379);
    /* A password may hold "/" and "@"; the database number has leading zeros. */
    ck_assert_int_eq(redis_url_parse("redis://:a/b@c@h:1/0007", &url, err, sizeof(err)), PL_OK);
    ck_assert_str_eq(url.password, "a/b@c");
    ck_assert_str_eq(url.host, "h");
    ck_assert_int_eq(url.db, 7);
}
END_TEST

START_TEST(unix_form)
{
    ck_assert_int_eq(redis_url_parse("unix:/tmp/redis.sock", &url, err, sizeof(err)), PL_OK);
    ck_assert_str_eq(url.path, "/tmp/redis.sock");
    ck_assert_str_eq(url.host, "");
}
END_TEST

START_TEST(rejects)
{
    static const char *const bad[] = {
        "", "localhost:6379", "http://x:1", "redis://", "redis://:6379", "redis://h:0",
        "redis://h:65536", "redis://h:12ab", "redis://h:1/x", "redis://user:pw@h:1",
        "unix:relative.sock", "redis://h:-1", "redis://h:1/", "redis://h/1000001", "redis://h:1:2",
        "redis://::1:6379", "redis://[::1", "redis://@h", "redis://h/-1",
    };
    for (size_t i = 0; i < PL_ARRAY_LEN(bad); i++) {
        ck_assert_msg(redis_url_parse(bad[i], &url, err, sizeof(err)) == PL_ERR, "accepted '%s'", bad[i]);
        ck_assert_ptr_nonnull(strstr(err, "expected redis://"));
    }
}
END_TEST

Suite *suite_redis_url(void)
{
    Suite *s = suite_create("redis_url");
    TCase *tc = tcase_create("redis_url");

    tcase_add_test(tc, tcp_forms);
    tcase_add_test(tc, unix_form);
    tcase_add_test(tc, rejects);
    suite_add_tcase(s, tc);
    return s;
}
