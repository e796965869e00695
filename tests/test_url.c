/* test_url.c - the server part of URLs, shared by "redis" and agent_url. */
#include <string.h>

#include "parley.h"
#include "unit.h"
#include "url.h"

static struct url u;
static const char *why;

/* TEXT must split into HOST, PORT, AUTHORITY and PATH, without userinfo. */
static void splits(const char *text, const char *host, int port, const char *authority, const char *path)
{
    ck_assert_msg(url_parse(text, &u, &why) == PL_OK, "refused '%s': %s", text, why);
    ck_assert_str_eq(u.host, host);
    ck_assert_int_eq(u.port, port);
    ck_assert_uint_eq(u.authority_len, strlen(authority));
    ck_assert(memcmp(u.authority, authority, u.authority_len) == 0);
    ck_assert_str_eq(u.path, path);
    ck_assert_ptr_null(u.userinfo);
}

START_TEST(url_hosts)
{
    splits("localhost", "localhost", 0, "localhost", "");
    splits("127.0.0.1:6380", "127.0.0.1", 6380, "127.0.0.1:6380", "");
    splits("llm.example:8081/prefix/v1/", "llm.example", 8081, "llm.example:8081", "/prefix/v1/");
    splits("h:1/", "h", 1, "h:1", "/");
    splits("h:65535", "h", 65535, "h:65535", "");
    splits("h:00080", "h", 80, "h:00080", "");
    /* IPv6 in brackets, with and without a port. */
    splits("[::1]:6379", "::1", 6379, "[::1]:6379", "");
    splits("[::1]", "::1", 0, "[::1]", "");
    splits("[fe80::1%eth0]:80/x", "fe80::1%eth0", 80, "[fe80::1%eth0]:80", "/x");
}
END_TEST

START_TEST(url_userinfo)
{
    ck_assert_int_eq(url_parse(":s3cret@cache.local:7000/3", &u, &why), PL_OK);
    ck_assert_uint_eq(u.userinfo_len, 7);
    ck_assert(memcmp(u.userinfo, ":s3cret", 7) == 0);
    ck_assert_str_eq(u.host, "cache.local");
    ck_assert_int_eq(u.port, 7000);
    ck_assert_str_eq(u.path, "/3");
    /* The userinfo ends at the last "@": a password may hold "/" and "@". */
    ck_assert_int_eq(url_parse(":a/b@c@h/1", &u, &why), PL_OK);
    ck_assert_uint_eq(u.userinfo_len, 6);
    ck_assert_str_eq(u.host, "h");
    ck_assert_str_eq(u.path, "/1");
    ck_assert_int_eq(url_parse("@h", &u, &why), PL_OK);
    ck_assert_ptr_nonnull(u.userinfo);
    ck_assert_uint_eq(u.userinfo_len, 0);
}
END_TEST

START_TEST(url_rejects)
{
    static const struct { const char *text, *why; } bad[] = {
        { "", "missing or too long host" },
        { ":6379", "missing or too long host" },
        { "/path", "missing or too long host" },
        { "u@", "missing or too long host" },
        { "[]:80", "missing or too long host" },
        { "[::1", "expected [IPv6 address]" },
        { "[::1]x", "expected [IPv6 address]" },
        { "h:", "invalid port (1..65535)" },
        { "h:0", "invalid port (1..65535)" },
        { "h:65536", "invalid port (1..65535)" },
        { "h:99999999999999999999", "invalid port (1..65535)" },
        { "h:-1", "invalid port (1..65535)" },
        { "h:+1", "invalid port (1..65535)" },
        { "h: 1", "invalid port (1..65535)" },
        { "h:12ab", "invalid port (1..65535)" },
        { "[::1]:", "invalid port (1..65535)" },
        /* An IPv6 address needs its brackets: a host has no colon. */
        { "::1:6379", "missing or too long host" },
        { "a:b:80", "invalid port (1..65535)" },
    };
    char host[URL_HOST_MAX + 8];

    for (size_t i = 0; i < PL_ARRAY_LEN(bad); i++) {
        why = NULL;
        ck_assert_msg(url_parse(bad[i].text, &u, &why) == PL_ERR, "accepted '%s'", bad[i].text);
        ck_assert_str_eq(why, bad[i].why);
    }
    memset(host, 'h', URL_HOST_MAX);
    host[URL_HOST_MAX] = '\0';
    ck_assert_int_eq(url_parse(host, &u, &why), PL_OK);
    strcat(host, "h");
    ck_assert_int_eq(url_parse(host, &u, &why), PL_ERR);
    ck_assert_str_eq(why, "missing or too long host");
}
END_TEST

START_TEST(url_templates)
{
    const char *vars[] = { "query", "what's 1+1?/é", "room", "lobby", NULL };
    char out[128];

    ck_assert_int_eq(url_expand(out, sizeof(out), "/ask?q={query}&r={room}", vars), 43);
    ck_assert_str_eq(out, "/ask?q=what%27s%201%2B1%3F%2F%C3%A9&r=lobby");
    ck_assert_int_eq(url_expand(out, sizeof(out), "/plain", vars), 6);
    ck_assert_str_eq(out, "/plain");
    ck_assert_int_eq(url_expand(out, sizeof(out), "/x?{nope}", vars), -1);
    ck_assert_int_eq(url_expand(out, sizeof(out), "/x?{query", vars), -1);
    ck_assert_int_eq(url_expand(out, 10, "/ask?q={query}", vars), -1);
    ck_assert_int_eq(url_expand(out, 7, "/plain", vars), 6);
    ck_assert_int_eq(url_expand(out, 6, "/plain", vars), -1);
}
END_TEST

Suite *suite_url(void)
{
    Suite *s = suite_create("url");
    TCase *tc = tcase_create("url");

    tcase_add_test(tc, url_hosts);
    tcase_add_test(tc, url_userinfo);
    tcase_add_test(tc, url_rejects);
    tcase_add_test(tc, url_templates);
    suite_add_tcase(s, tc);
    return s;
}
