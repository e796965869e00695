/* test_origin.c - same-origin and allowed_origins verdicts. */
#include <string.h>

#include "origin.h"
#include "parley.h"
#include "unit.h"

START_TEST(verdicts)
{
    static const struct { const char *origin, *host, *allowed; enum origin_verdict want; } cases[] = {
        { NULL, "chat.example", "", ORIGIN_NONE },
        { NULL, NULL, "https://a.example", ORIGIN_NONE },
        /* Same origin: host and port of the Host header, default ports. */
        { "https://chat.example", "chat.example", "", ORIGIN_SAME },
        { "http://chat.example", "chat.example", "", ORIGIN_SAME },
        { "https://chat.example", "chat.example:443", "", ORIGIN_SAME },
        { "http://chat.example:8080", "chat.example:8080", "", ORIGIN_SAME },
        { "HTTP://Chat.Example:8080", "chat.example:8080", "", ORIGIN_SAME },
        { "http://[::1]:8080", "[::1]:8080", "", ORIGIN_SAME },
        { "http://127.0.0.1:8080", "127.0.0.1:8080", "", ORIGIN_SAME },
        /* Not the same: host, port, suffixes, schemes, garbage. */
        { "https://chat.example", "chat.example:8443", "", ORIGIN_REFUSED },
        { "http://chat.example:8080", "chat.example", "", ORIGIN_REFUSED },
        { "https://chat.example.evil", "chat.example", "", ORIGIN_REFUSED },
        { "https://evil.chat.example", "chat.example", "", ORIGIN_REFUSED },
        { "https://chat.exampl", "chat.example", "", ORIGIN_REFUSED },
        { "null", "chat.example", "", ORIGIN_REFUSED },
        { "file://", "chat.example", "", ORIGIN_REFUSED },
        { "chrome-extension://abc", "chat.example", "", ORIGIN_REFUSED },
        { "https://chat.example", NULL, "", ORIGIN_REFUSED },
        { "https://chat.example:", "chat.example", "", ORIGIN_REFUSED },
        { "https://chat.example:0", "chat.example:0", "", ORIGIN_REFUSED },
        { "https://chat.example:99999", "chat.example:99999", "", ORIGIN_REFUSED },
        { "https://chat.example:443x", "chat.example", "", ORIGIN_REFUSED },
        { "https://", "", "", ORIGIN_REFUSED },
        { "https://[::1", "[::1", "", ORIGIN_REFUSED },
        { "https://chat.example/path", "chat.example", "", ORIGIN_REFUSED },
        /* Listed: exactly, in any case, from a list. */
        { "https://app.example", "chat.example", "https://app.example", ORIGIN_LISTED },
        { "https://APP.example", "chat.example", "https://a.example, https://app.example", ORIGIN_LISTED },
        { "https://app.example", "chat.example", "https://app.example:443", ORIGIN_REFUSED },
        { "https://app.example.evil", "chat.example", "https://app.example", ORIGIN_REFUSED },
        { "https://app.exampl", "chat.example", "https://app.example", ORIGIN_REFUSED },
        { "null", "chat.example", "https://app.example", ORIGIN_REFUSED },
        /* "*": any origin, never with credentials; the own one still is. */
        { "https://evil.example", "chat.example", "*", ORIGIN_ANY },
        { "null", "chat.example", "*", ORIGIN_ANY },
        { "https://chat.example", "chat.example", "*", ORIGIN_SAME },
    };

    for (size_t i = 0; i < PL_ARRAY_LEN(cases); i++) {
        enum origin_verdict v = origin_check(cases[i].origin, cases[i].host, cases[i].allowed);
        ck_assert_msg(v == cases[i].want, "case %zu (%s, %s, %s): %d, want %d", i,
                      cases[i].origin ? cases[i].origin : "-", cases[i].host ? cases[i].host : "-",
                      cases[i].allowed, v, cases[i].want);
    }
    ck_assert(origin_credentials_ok(ORIGIN_NONE) && origin_credentials_ok(ORIGIN_SAME)
              && origin_credentials_ok(ORIGIN_LISTED));
    ck_assert(!origin_credentials_ok(ORIGIN_ANY) && !origin_credentials_ok(ORIGIN_REFUSED));
}
END_TEST

Suite *suite_origin(void)
{
    Suite *s = suite_create("origin");
    TCase *tc = tcase_create("origin");

    tcase_add_test(tc, verdicts);
    suite_add_tcase(s, tc);
    return s;
}
