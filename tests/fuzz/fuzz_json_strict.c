/* fuzz_json_strict.c - libFuzzer target for the strict JSON check: its
 * verdict agrees with a plain recursive reference written straight from
 * RFC 8259 (with a quadratic search for repeated names), what it passes
 * json-c builds, and what json-c writes back passes again.
 * links: utf8.c */
#include <ctype.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fuzz.h"
#include "json_strict.h"

/* --- the reference: slow and obvious ------------------------------------ */

struct ref {
    const uint8_t *s;
    size_t len, pos;
};

/* A decoded string: its code points. */
struct ref_str {
    uint32_t *cp;
    size_t n;
};

static int ref_is_ws(uint8_t c)
{
    return c == ' ' || c == '\t' || c == '\r' || c == '\n';
}

static void ref_ws(struct ref *r)
{
    while (r->pos < r->len && ref_is_ws(r->s[r->pos])) {
        r->pos++;
    }
}

static int ref_eat(struct ref *r, uint8_t c)
{
    if (r->pos < r->len && r->s[r->pos] == c) {
        r->pos++;
        return 1;
    }
    return 0;
}

static long ref_hex4(struct ref *r)
{
    long v = 0;

    if (r->len - r->pos < 4) {
        return -1;
    }
    for (int i = 0; i < 4; i++) {
        uint8_t c = r->s[r->pos++];

        if (!isxdigit(c)) {
            return -1;
        }
        v = v * 16 + (isdigit(c) ? c - '0' : tolower(c) - 'a' + 10);
    }
    return v;
}

/* One character of a string (the quote already handled): its code point,
 * or -1. */
static long ref_char(struct ref *r)
{
    static const uint32_t least[] = { 0, 0x80, 0x800, 0x10000 };
    uint8_t c = r->s[r->pos++];
    long u, lo;
    size_t more;
    uint32_t cp;

    if (c < 0x20) {
        return -1;
    }
    if (c == '\\') {
        if (r->pos == r->len) {
            return -1;
        }
        switch (r->s[r->pos++]) {
        case '"': return '"';
        case '\\': return '\\';
        case '/': return '/';
        case 'b': return 8;
        case 'f': return 12;
        case 'n': return 10;
        case 'r': return 13;
        case 't': return 9;
        case 'u':
            u = ref_hex4(r);
            if (u >= 0xDC00 && u <= 0xDFFF) {
                return -1;
            }
            if (u >= 0xD800 && u <= 0xDBFF) {
                if (!ref_eat(r, '\\') || !ref_eat(r, 'u') || (lo = ref_hex4(r)) < 0xDC00 || lo > 0xDFFF) {
                    return -1;
                }
                return 0x10000 + (u - 0xD800) * 0x400 + (lo - 0xDC00);
            }
            return u;
        default:
            return -1;
        }
    }
    if (c < 0x80) {
        return c;
    }
    more = c >= 0xC0 && c < 0xE0 ? 1 : c >= 0xE0 && c < 0xF0 ? 2 : c >= 0xF0 && c < 0xF8 ? 3 : 0;
    if (more == 0 || r->len - r->pos < more) {
        return -1;
    }
    cp = c & (0x3F >> more);
    for (size_t i = 0; i < more; i++) {
        c = r->s[r->pos++];
        if ((c & 0xC0) != 0x80) {
            return -1;
        }
        cp = cp << 6 | (c & 0x3F);
    }
    if (cp < least[more] || cp > 0x10FFFF || (cp >= 0xD800 && cp < 0xE000)) {
        return -1;
    }
    return cp;
}

static int ref_string(struct ref *r, struct ref_str *out)
{
    long cp;

    out->cp = malloc((r->len + 1) * sizeof(uint32_t));
    out->n = 0;
    CHECK(out->cp != NULL);
    if (!ref_eat(r, '"')) {
        return 0;
    }
    while (r->pos < r->len) {
        if (ref_eat(r, '"')) {
            return 1;
        }
        if ((cp = ref_char(r)) < 0) {
            return 0;
        }
        out->cp[out->n++] = (uint32_t)cp;
    }
    return 0;
}

static int ref_digits(struct ref *r)
{
    size_t from = r->pos;

    while (r->pos < r->len && r->s[r->pos] >= '0' && r->s[r->pos] <= '9') {
        r->pos++;
    }
    return r->pos > from;
}

static int ref_number(struct ref *r)
{
    ref_eat(r, '-');
    if (!ref_eat(r, '0') && !(r->pos < r->len && r->s[r->pos] >= '1' && r->s[r->pos] <= '9' && ref_digits(r))) {
        return 0;
    }
    if (ref_eat(r, '.') && !ref_digits(r)) {
        return 0;
    }
    if (ref_eat(r, 'e') || ref_eat(r, 'E')) {
        if (!ref_eat(r, '+')) {
            ref_eat(r, '-');
        }
        return ref_digits(r);
    }
    return 1;
}

static int ref_value(struct ref *r, int depth);

static int ref_same(const struct ref_str *a, const struct ref_str *b)
{
    return a->n == b->n && (a->n == 0 || memcmp(a->cp, b->cp, a->n * sizeof(uint32_t)) == 0);
}

static int ref_has_nul(const struct ref_str *a)
{
    for (size_t i = 0; i < a->n; i++) {
        if (a->cp[i] == 0) {
            return 1;
        }
    }
    return 0;
}

static int ref_object(struct ref *r, int depth)
{
    struct ref_str *names = NULL;
    size_t n = 0;
    int ok = 0;

    ref_ws(r);
    if (ref_eat(r, '}')) {
        return 1;
    }
    for (;;) {
        names = realloc(names, (n + 1) * sizeof(*names));
        CHECK(names != NULL);
        if (!ref_string(r, &names[n++])) {
            break;
        }
        if (ref_has_nul(&names[n - 1])) {
            break;
        }
        ref_ws(r);
        if (!ref_eat(r, ':') || !ref_value(r, depth + 1)) {
            break;
        }
        ref_ws(r);
        if (ref_eat(r, '}')) {
            ok = 1;
            break;
        }
        if (!ref_eat(r, ',')) {
            break;
        }
        ref_ws(r);
    }
    for (size_t i = 0; ok && i < n; i++) {
        for (size_t k = 0; k < i; k++) {
            ok &= !ref_same(&names[i], &names[k]);
        }
    }
    for (size_t i = 0; i < n; i++) {
        free(names[i].cp);
    }
    free(names);
    return ok;
}

static int ref_array(struct ref *r, int depth)
{
    ref_ws(r);
    if (ref_eat(r, ']')) {
        return 1;
    }
    for (;;) {
        if (!ref_value(r, depth + 1)) {
            return 0;
        }
        ref_ws(r);
        if (ref_eat(r, ']')) {
            return 1;
        }
        if (!ref_eat(r, ',')) {
            return 0;
        }
    }
}

/* A value inside DEPTH open containers. */
static int ref_value(struct ref *r, int depth)
{
    struct ref_str str;
    int ok;

    ref_ws(r);
    if (r->pos == r->len) {
        return 0;
    }
    switch (r->s[r->pos]) {
    case '{':
    case '[':
        if (depth == JSON_STRICT_DEPTH) {
            return 0;
        }
        return r->s[r->pos++] == '{' ? ref_object(r, depth) : ref_array(r, depth);
    case '"':
        ok = ref_string(r, &str);
        free(str.cp);
        return ok;
    case 't':
        return r->len - r->pos >= 4 && memcmp(r->s + r->pos, "true", 4) == 0 && (r->pos += 4);
    case 'f':
        return r->len - r->pos >= 5 && memcmp(r->s + r->pos, "false", 5) == 0 && (r->pos += 5);
    case 'n':
        return r->len - r->pos >= 4 && memcmp(r->s + r->pos, "null", 4) == 0 && (r->pos += 4);
    default:
        return ref_number(r);
    }
}

static int ref_valid(const uint8_t *s, size_t len)
{
    struct ref r = { s, len, 0 };

    if (!ref_value(&r, 0)) {
        return 0;
    }
    ref_ws(&r);
    return r.pos == len;
}

/* --- the target --------------------------------------------------------- */

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct json_strict_error err;
    const char *text = (const char *)data;
    int valid = json_strict_check(text, size, &err) == 0;
    size_t first = 0;
    json_object *obj;
    char msg[160];

    CHECK(valid == ref_valid(data, size));
    CHECK(valid ? err.fault == JSON_STRICT_OK : err.fault != JSON_STRICT_OK && err.offset <= size);
    while (first < size && ref_is_ws(data[first])) {
        first++;
    }
    obj = json_strict_parse(text, size, "the input", msg, sizeof(msg));
    /* An object exactly when the check passed a text that is one. */
    CHECK((obj != NULL) == (valid && data[first] == '{'));
    CHECK(obj != NULL || strncmp(msg, "the input ", 10) == 0);
    if (obj != NULL) {
        const char *again = json_object_to_json_string_ext(obj, JSON_C_TO_STRING_PLAIN);

        CHECK(json_strict_check(again, strlen(again), &err) == 0);
        json_object_put(obj);
    }
    return 0;
}
