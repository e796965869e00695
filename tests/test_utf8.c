/* test_utf8.c - UTF-8 validation: known sequences cut everywhere, every
 * sequence of up to four bytes against a reference, random buffers. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "parley.h"
#include "unit.h"
#include "utf8.h"

/* UTF-8 sequences: whether they are valid and complete, and at which
 * byte an incremental check must give up (-1: never). */
static const struct {
    const char *what;
    const char *s;
    size_t n;
    int valid, fail_at;
} utf8_cases[] = {
#define U(what, s, valid, fail_at) { what, s, sizeof(s) - 1, valid, fail_at }
    U("empty", "", 1, -1),
    U("ASCII", "hello, world", 1, -1),
    U("NUL", "a\0b", 1, -1),
    U("kosme", "\xce\xba\xe1\xbd\xb9\xcf\x83\xce\xbc\xce\xb5", 1, -1),
    U("U+0080", "\xc2\x80", 1, -1),
    U("U+07FF", "\xdf\xbf", 1, -1),
    U("U+0800", "\xe0\xa0\x80", 1, -1),
    U("U+D7FF", "\xed\x9f\xbf", 1, -1),
    U("U+E000", "\xee\x80\x80", 1, -1),
    U("U+FFFF", "\xef\xbf\xbf", 1, -1),
    U("U+10000", "\xf0\x90\x80\x80", 1, -1),
    U("U+10FFFF", "\xf4\x8f\xbf\xbf", 1, -1),
    U("ASCII run then emoji", "0123456789abcdef\xf0\x9f\x98\x80" "0123456789abcdef", 1, -1),
    U("overlong C0 AF", "\xc0\xaf", 0, 0),
    U("overlong C1 BF", "\xc1\xbf", 0, 0),
    U("overlong E0 80 AF", "\xe0\x80\xaf", 0, 1),
    U("overlong E0 9F BF", "\xe0\x9f\xbf", 0, 1),
    U("overlong F0 80 80 AF", "\xf0\x80\x80\xaf", 0, 1),
    U("overlong F0 8F BF BF", "\xf0\x8f\xbf\xbf", 0, 1),
    U("surrogate ED A0 80", "\xed\xa0\x80", 0, 1),
    U("surrogate ED BF BF", "\xed\xbf\xbf", 0, 1),
    U("U+110000 F4 90 80 80", "\xf4\x90\x80\x80", 0, 1),
    U("F5", "\xf5\x80\x80\x80", 0, 0),
    U("F8", "\xf8\x88\x80\x80\x80", 0, 0),
    U("FE", "\xfe", 0, 0),
    U("FF", "\xff", 0, 0),
    U("stray continuation", "ab\x80" "cd", 0, 2),
    U("continuation after a character", "\xc3\xa9\xa9", 0, 2),
    U("lead then ASCII", "\xe2\x82" "a", 0, 2),
    U("lead then lead", "\xc3\xc3\xa9", 0, 1),
    U("invalid after 8 ASCII bytes", "abcdefgh\xff", 0, 8),
    U("truncated 2-byte", "\xc3", 0, -1),
    U("truncated 3-byte", "ab\xe2\x82", 0, -1),
    U("truncated 4-byte", "\xf0\x9f\x98", 0, -1),
#undef U
};

/* Feeds S cut at the given points and returns the verdict (-1 invalid,
 * 0 incomplete, 1 valid). */
static int utf8_pieces(const uint8_t *s, size_t n, size_t cut1, size_t cut2)
{
    struct utf8 u = { 0 };
    int rc = 0;

    rc |= utf8_feed(&u, s, cut1);
    rc |= utf8_feed(&u, s + cut1, cut2 - cut1);
    rc |= utf8_feed(&u, s + cut2, n - cut2);
    return rc < 0 ? -1 : utf8_complete(&u);
}

START_TEST(utf8_sequences)
{
    const uint8_t *s = (const uint8_t *)utf8_cases[_i].s;
    size_t n = utf8_cases[_i].n;
    int want = utf8_cases[_i].valid ? 1 : utf8_cases[_i].fail_at >= 0 ? -1 : 0;
    struct utf8 u = { 0 };

    ck_assert_msg(utf8_valid(s, n) == utf8_cases[_i].valid, "%s", utf8_cases[_i].what);
    for (size_t a = 0; a <= n; a++) {
        for (size_t b = a; b <= n; b++) {
            ck_assert_msg(utf8_pieces(s, n, a, b) == want, "%s cut at %zu, %zu", utf8_cases[_i].what, a, b);
        }
    }
    /* Byte by byte: fails exactly at fail_at and stays failed. */
    for (size_t j = 0; j < n; j++) {
        int rc = utf8_feed(&u, s + j, 1);

        ck_assert_msg(rc == (utf8_cases[_i].fail_at >= 0 && j >= (size_t)utf8_cases[_i].fail_at ? -1 : 0),
                      "%s byte %zu", utf8_cases[_i].what, j);
    }
    if (want == -1) {
        ck_assert_int_eq(utf8_feed(&u, (const uint8_t *)"a", 1), -1);
        ck_assert_int_eq(utf8_feed(&u, NULL, 0), -1);
        ck_assert_int_eq(utf8_complete(&u), 0);
    }
}
END_TEST

/* An independent, obviously correct decoder: builds each code point and
 * checks it against the limits of its encoded length. */
static int ref_utf8_valid(const uint8_t *s, size_t n)
{
    static const uint32_t min[] = { 0, 0x80, 0x800, 0x10000 };
    size_t i = 0, k;
    uint32_t cp;

    while (i < n) {
        if (s[i] < 0x80) {
            i++;
            continue;
        }
        if ((s[i] & 0xE0) == 0xC0) {
            k = 1, cp = s[i] & 0x1F;
        } else if ((s[i] & 0xF0) == 0xE0) {
            k = 2, cp = s[i] & 0x0F;
        } else if ((s[i] & 0xF8) == 0xF0) {
            k = 3, cp = s[i] & 0x07;
        } else {
            return 0;
        }
        if (n - i - 1 < k) {
            return 0;
        }
        for (size_t j = 1; j <= k; j++) {
            if ((s[i + j] & 0xC0) != 0x80) {
                return 0;
            }
            cp = cp << 6 | (s[i + j] & 0x3F);
        }
        if (cp < min[k] || cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF)) {
            return 0;
        }
        i += k + 1;
    }
    return 1;
}

/* Every string of 1 to 3 bytes, and 4-byte strings over the bytes that
 * matter, against the reference decoder. */
START_TEST(utf8_exhaustive)
{
    static const uint8_t third[] = { 0x00, 0x41, 0x7f, 0x80, 0x8f, 0x90, 0x9f, 0xa0, 0xbf, 0xc0, 0xf4, 0xff };
    uint8_t s[4];

    for (uint32_t v = 0; v < (1u << 24); v++) {
        s[0] = (uint8_t)(v >> 16), s[1] = (uint8_t)(v >> 8), s[2] = (uint8_t)v;
        if (utf8_valid(s, 3) != ref_utf8_valid(s, 3)) {
            ck_abort_msg("%02x %02x %02x", s[0], s[1], s[2]);
        }
        if (v < (1u << 16) && utf8_valid(s + 1, 2) != ref_utf8_valid(s + 1, 2)) {
            ck_abort_msg("%02x %02x", s[1], s[2]);
        }
        if (v < (1u << 8) && utf8_valid(s + 2, 1) != ref_utf8_valid(s + 2, 1)) {
            ck_abort_msg("%02x", s[2]);
        }
    }
    for (uint32_t v = 0; v < (1u << 12); v++) {
        for (size_t t = 0; t < PL_ARRAY_LEN(third); t++) {
            for (uint32_t last = 0; last < 256; last += 0x3f) {
                s[0] = (uint8_t)(0xF0 | v >> 8), s[1] = (uint8_t)v, s[2] = third[t], s[3] = (uint8_t)last;
                if (utf8_valid(s, 4) != ref_utf8_valid(s, 4)) {
                    ck_abort_msg("%02x %02x %02x %02x", s[0], s[1], s[2], s[3]);
                }
            }
        }
    }
}
END_TEST

/* Random strings, mostly valid text with ASCII runs long enough for the
 * word-at-a-time path, against the reference, whole and in pieces. */
START_TEST(utf8_random)
{
    /* The first VALID_ATOMS are valid text. */
    static const char *const atoms[] = {
        "a", "abcdefghijklmnop", "0123456", "\xc3\xa9", "\xe2\x82\xac", "\xf0\x9f\x98\x80", "\xed\x9f\xbf",
        "\xf4\x8f\xbf\xbf", "\x80", "\xc0\xaf", "\xed\xa0\x80", "\xf4\x90\x80\x80", "\xe2\x82", "\xff",
    };
    enum { VALID_ATOMS = 8 };
    unsigned seed = 42;
    uint8_t s[256];

    for (int round = 0; round < 20000; round++) {
        size_t n = 0;
        int atoms_n = 1 + rand_r(&seed) % 12, ref;

        for (int a = 0; a < atoms_n; a++) {
            /* Mostly valid atoms, so the rare bad one lands anywhere. */
            size_t pick = (size_t)rand_r(&seed) % (rand_r(&seed) % 8 == 0 ? PL_ARRAY_LEN(atoms) : VALID_ATOMS);
            size_t len = strlen(atoms[pick]);

            if (n + len > sizeof(s)) {
                break;
            }
            memcpy(s + n, atoms[pick], len);
            n += len;
        }
        ref = ref_utf8_valid(s, n);
        ck_assert_int_eq(utf8_valid(s, n), ref);
        for (size_t cut = 0; cut <= n; cut += 1 + (size_t)rand_r(&seed) % 5) {
            int got = utf8_pieces(s, n, cut, cut + (n - cut) / 2);

            ck_assert_msg((got == 1) == ref, "round %d cut %zu", round, cut);
        }
    }
}
END_TEST

Suite *suite_utf8(void)
{
    Suite *s = suite_create("utf8");
    TCase *tc = tcase_create("utf8");

    tcase_set_timeout(tc, 60);
    srandom(3629);
    tcase_add_loop_test(tc, utf8_sequences, 0, PL_ARRAY_LEN(utf8_cases));
    tcase_add_test(tc, utf8_exhaustive);
    tcase_add_test(tc, utf8_random);
    suite_add_tcase(s, tc);
    return s;
}
