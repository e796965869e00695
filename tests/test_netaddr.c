/* test_netaddr.c - address lists, prefix matching and X-Forwarded-For. */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <string.h>

#include "netaddr.h"
#include "parley.h"
#include "unit.h"

static struct sockaddr_storage addr(const char *text)
{
    struct sockaddr_storage ss;

    memset(&ss, 0, sizeof(ss));
    if (strchr(text, ':') != NULL) {
        struct sockaddr_in6 *s6 = (struct sockaddr_in6 *)&ss;
        s6->sin6_family = AF_INET6;
        ck_assert_int_eq(inet_pton(AF_INET6, text, &s6->sin6_addr), 1);
    } else {
        struct sockaddr_in *s4 = (struct sockaddr_in *)&ss;
        s4->sin_family = AF_INET;
        ck_assert_int_eq(inet_pton(AF_INET, text, &s4->sin_addr), 1);
    }
    return ss;
}

START_TEST(set_parse)
{
    static const char *const good[] = {
        "", "   ", "127.0.0.1", "10.0.0.0/8", "10.0.0.0/8, 192.168.1.7 ::1", "fd00::/8,,\t::ffff:1.2.3.4",
        "0.0.0.0/0", "::/0", "1.2.3.4/32", "::1/128",
    };
    static const char *const bad[] = {
        "x", "1.2.3", "1.2.3.4/33", "::1/129", "1.2.3.4/", "1.2.3.4/-1", "1.2.3.4/8x", "/8",
        "1.2.3.4:80", "[::1]", "1.2.3.256", "localhost", "1.2.3.4 nope",
    };
    struct netaddr_set set;
    char err[128];

    for (size_t i = 0; i < PL_ARRAY_LEN(good); i++) {
        ck_assert_msg(netaddr_set_parse(good[i], &set, err, sizeof(err)) == PL_OK, "'%s': %s", good[i], err);
    }
    for (size_t i = 0; i < PL_ARRAY_LEN(bad); i++) {
        ck_assert_msg(netaddr_set_parse(bad[i], &set, err, sizeof(err)) == PL_ERR, "'%s' accepted", bad[i]);
        ck_assert_ptr_nonnull(strstr(err, "is not an IP address"));
    }
    ck_assert_int_eq(netaddr_set_parse("1.1.1.1 2.2.2.2 3.3.3.3 4.4.4.4 5.5.5.5 6.6.6.6 7.7.7.7 8.8.8.8 "
                                       "1.1.1.1 2.2.2.2 3.3.3.3 4.4.4.4 5.5.5.5 6.6.6.6 7.7.7.7 8.8.8.8 "
                                       "1.1.1.1 2.2.2.2 3.3.3.3 4.4.4.4 5.5.5.5 6.6.6.6 7.7.7.7 8.8.8.8 "
                                       "1.1.1.1 2.2.2.2 3.3.3.3 4.4.4.4 5.5.5.5 6.6.6.6 7.7.7.7 8.8.8.8 9.9.9.9",
                                       &set, err, sizeof(err)), PL_ERR);
    ck_assert_ptr_nonnull(strstr(err, "more than"));
}
END_TEST

START_TEST(set_contains)
{
    static const struct { const char *list, *addr; int in; } cases[] = {
        { "10.0.0.0/8", "10.255.1.2", 1 }, { "10.0.0.0/8", "11.0.0.1", 0 },
        { "192.168.1.0/25", "192.168.1.127", 1 }, { "192.168.1.0/25", "192.168.1.128", 0 },
        { "192.168.1.7", "192.168.1.7", 1 }, { "192.168.1.7", "192.168.1.8", 0 },
        { "0.0.0.0/0", "203.0.113.9", 1 }, { "0.0.0.0/0", "::1", 0 },
        { "::1", "::1", 1 }, { "::1", "::2", 0 }, { "fd00::/8", "fdab::1", 1 }, { "fd00::/8", "fe80::1", 0 },
        { "2001:db8::/33", "2001:db8:7fff::1", 1 }, { "2001:db8::/33", "2001:db8:8000::1", 0 },
        { "", "127.0.0.1", 0 }, { "127.0.0.1", "::ffff:127.0.0.1", 0 },
    };
    struct netaddr_set set;
    char err[128];

    for (size_t i = 0; i < PL_ARRAY_LEN(cases); i++) {
        struct sockaddr_storage ss = addr(cases[i].addr);
        ck_assert_int_eq(netaddr_set_parse(cases[i].list, &set, err, sizeof(err)), PL_OK);
        ck_assert_msg(netaddr_set_contains(&set, (struct sockaddr *)&ss) == cases[i].in,
                      "%s in %s", cases[i].addr, cases[i].list);
    }
}
END_TEST

START_TEST(client)
{
    static const struct { const char *trusted, *peer, *xff, *want; } cases[] = {
        /* Nobody trusted: the header is the client's own word, ignored. */
        { "", "203.0.113.5", "1.2.3.4", "203.0.113.5" },
        { "10.0.0.0/8", "203.0.113.5", "1.2.3.4", "203.0.113.5" },
        /* A trusted proxy: the address it saw, the rightmost. */
        { "10.0.0.1", "10.0.0.1", "1.2.3.4", "1.2.3.4" },
        { "10.0.0.1", "10.0.0.1", "6.6.6.6, 1.2.3.4", "1.2.3.4" },
        { "10.0.0.1", "10.0.0.1", " 6.6.6.6 ,1.2.3.4 ", "1.2.3.4" },
        /* Through two trusted proxies: past the second one too. */
        { "10.0.0.0/8", "10.0.0.1", "6.6.6.6, 1.2.3.4, 10.9.9.9", "1.2.3.4" },
        /* All trusted: the leftmost. */
        { "10.0.0.0/8", "10.0.0.1", "10.1.1.1, 10.2.2.2", "10.1.1.1" },
        /* No header, or garbage in it: the last address believed. */
        { "10.0.0.1", "10.0.0.1", NULL, "10.0.0.1" },
        { "10.0.0.1", "10.0.0.1", "", "10.0.0.1" },
        { "10.0.0.1", "10.0.0.1", "unknown", "10.0.0.1" },
        { "10.0.0.0/8", "10.0.0.1", "1.2.3.4, garbage, 10.2.2.2", "10.2.2.2" },
        { "10.0.0.1", "10.0.0.1", "1.2.3.4,", "10.0.0.1" },
        /* Ports and brackets as some proxies write them; IPv6. */
        { "10.0.0.1", "10.0.0.1", "1.2.3.4:5678", "1.2.3.4" },
        { "::1", "::1", "[2001:db8::7]:443", "2001:db8::7" },
        { "::1", "::1", "2001:db8::7", "2001:db8::7" },
        { "::1", "::1", "[2001:db8::7", "::1" },
        /* IPv4 written as IPv6 is IPv4. */
        { "10.0.0.1", "10.0.0.1", "::ffff:198.51.100.4", "198.51.100.4" },
    };
    struct netaddr_set set;
    char err[128], out[NETADDR_TEXT_MAX];

    for (size_t i = 0; i < PL_ARRAY_LEN(cases); i++) {
        struct sockaddr_storage ss = addr(cases[i].peer);
        ck_assert_int_eq(netaddr_set_parse(cases[i].trusted, &set, err, sizeof(err)), PL_OK);
        netaddr_client((struct sockaddr *)&ss, cases[i].xff, &set, out, sizeof(out));
        ck_assert_msg(strcmp(out, cases[i].want) == 0, "case %zu: got %s, want %s", i, out, cases[i].want);
    }
}
END_TEST

START_TEST(limit_key)
{
    static const struct { const char *addr, *want; } cases[] = {
        { "203.0.113.5", "203.0.113.5" },
        { "::ffff:203.0.113.5", "203.0.113.5" },
        { "2001:db8:1:2:3:4:5:6", "2001:db8:1:2::/64" },
        { "2001:db8:1:2::7", "2001:db8:1:2::/64" },
        { "::1", "::/64" },
        { "-", "-" },
    };
    char out[NETADDR_TEXT_MAX];

    for (size_t i = 0; i < PL_ARRAY_LEN(cases); i++) {
        netaddr_limit_key(cases[i].addr, out, sizeof(out));
        ck_assert_msg(strcmp(out, cases[i].want) == 0, "%s: %s, want %s", cases[i].addr, out, cases[i].want);
    }
}
END_TEST

Suite *suite_netaddr(void)
{
    Suite *s = suite_create("netaddr");
    TCase *tc = tcase_create("netaddr");

    tcase_add_test(tc, set_parse);
    tcase_add_test(tc, set_contains);
    tcase_add_test(tc, client);
    tcase_add_test(tc, limit_key);
    suite_add_tcase(s, tc);
    return s;
}
