/* json_strict.c - client JSON checked against RFC 8259 before json-c builds it. */
#include "json_strict.h"

#include <limits.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "parley.h"
#include "utf8.h"

#define JSON_STRICT_STR_(x) #x
#define JSON_STRICT_STR(x) JSON_STRICT_STR_(x)

/* What reading a value did: failed, read it whole, or opened an array or
 * object whose first value comes next. */
enum { JSON_STRICT_FAILED = -1, JSON_STRICT_VALUE_DONE, JSON_STRICT_VALUE_NEXT };

/* The checker's state: a position in the text and the open containers. */
struct json_strict_scan {
    const uint8_t *s;
    size_t len, pos;
    struct json_strict_error *err;
    int depth;
    uint8_t open[JSON_STRICT_DEPTH];    /* '{' or '[' of each open container */
    size_t base[JSON_STRICT_DEPTH];     /* an open object's first entry in names */
    /* the member names of every open object, innermost last, each
     * pointing just past its opening quote */
    const uint8_t **names;
    size_t nnames, cap;
};

static int json_strict_fail(struct json_strict_scan *j, enum json_strict_fault fault, size_t offset)
{
    j->err->fault = fault;
    j->err->offset = offset;
    return JSON_STRICT_FAILED;
}

static int json_strict_at(const struct json_strict_scan *j, uint8_t c)
{
    return j->pos < j->len && j->s[j->pos] == c;
}

static int json_strict_digit_at(const struct json_strict_scan *j)
{
    return j->pos < j->len && j->s[j->pos] >= '0' && j->s[j->pos] <= '9';
}

static int json_strict_ws(uint8_t c)
{
    return c == ' ' || c == '\t' || c == '\n' || c == '\r';
}

static void json_strict_skip_ws(struct json_strict_scan *j)
{
    while (j->pos < j->len && json_strict_ws(j->s[j->pos])) {
        j->pos++;
    }
}

/* --- strings ------------------------------------------------------------ */

/* The value of the four hex digits at P, or -1. */
static long json_strict_hex4(const uint8_t *p)
{
    long v = 0;

    for (int i = 0; i < 4; i++) {
        uint8_t c = p[i], lower = c | 0x20;
        int d = c >= '0' && c <= '9' ? c - '0' : lower >= 'a' && lower <= 'f' ? lower - 'a' + 10 : -1;

        if (d < 0) {
            return -1;
        }
        v = v << 4 | d;
    }
    return v;
}

/* The UTF-16 code unit of a \uXXXX at AT, or -1 when there is none. */
static long json_strict_unit_at(const struct json_strict_scan *j, size_t at)
{
    if (j->len - at < 6 || j->s[at] != '\\' || j->s[at + 1] != 'u') {
        return -1;
    }
    return json_strict_hex4(j->s + at + 2);
}

/* The escape at the backslash at j->pos; NAME: inside a member name. */
static int json_strict_escape(struct json_strict_scan *j, int name)
{
    size_t at = j->pos;
    long unit, low;

    if (at + 1 == j->len) {
        return json_strict_fail(j, JSON_STRICT_TRUNCATED, j->len);
    }
    if (memchr("\"\\/bfnrt", j->s[at + 1], 8) != NULL) {
        j->pos += 2;
        return 0;
    }
    if ((unit = json_strict_unit_at(j, at)) < 0) {
        return json_strict_fail(j, JSON_STRICT_ESCAPE, at);
    }
    j->pos += 6;
    if (unit >= 0xDC00 && unit <= 0xDFFF) {
        return json_strict_fail(j, JSON_STRICT_SURROGATE, at);
    }
    if (unit >= 0xD800 && unit <= 0xDBFF) {
        low = json_strict_unit_at(j, j->pos);
        if (low < 0xDC00 || low > 0xDFFF) {
            return json_strict_fail(j, JSON_STRICT_SURROGATE, at);
        }
        j->pos += 6;
    }
    if (unit == 0 && name) {
        return json_strict_fail(j, JSON_STRICT_NUL_NAME, at);
    }
    return 0;
}

/* Where in S[FROM, TO) - bytes that failed as UTF-8 - the first bad byte
 * is; TO when they only stop inside a character. */
static size_t json_strict_utf8_fault(const uint8_t *s, size_t from, size_t to)
{
    struct utf8 u = { 0 };

    for (size_t i = from; i < to; i++) {
        if (utf8_feed(&u, s + i, 1) < 0) {
            return i;
        }
    }
    return to;
}

/* The string whose opening quote is at j->pos. */
static int json_strict_string(struct json_strict_scan *j, int name)
{
    struct utf8 u = { 0 };
    size_t run;

    j->pos++;
    for (;;) {
        /* A run of plain bytes, checked as UTF-8 in one go: they must end
         * on a character boundary, since a quote, a backslash or a control
         * byte can never continue a character. */
        run = j->pos;
        while (j->pos < j->len && j->s[j->pos] >= 0x20 && j->s[j->pos] != '"' && j->s[j->pos] != '\\') {
            j->pos++;
        }
        if (utf8_feed(&u, j->s + run, j->pos - run) < 0 || (j->pos < j->len && !utf8_complete(&u))) {
            return json_strict_fail(j, JSON_STRICT_UTF8, json_strict_utf8_fault(j->s, run, j->pos));
        }
        if (j->pos == j->len) {
            return json_strict_fail(j, JSON_STRICT_TRUNCATED, j->len);
        }
        if (j->s[j->pos] == '"') {
            j->pos++;
            return 0;
        }
        if (j->s[j->pos] < 0x20) {
            return json_strict_fail(j, JSON_STRICT_CONTROL, j->pos);
        }
        if (json_strict_escape(j, name) < 0) {
            return JSON_STRICT_FAILED;
        }
    }
}

/* --- member names ------------------------------------------------------- */

/* What the one-letter escape \C stands for. */
static long json_strict_unescape(uint8_t c)
{
    switch (c) {
    case 'b':
        return '\b';
    case 'f':
        return '\f';
    case 'n':
        return '\n';
    case 'r':
        return '\r';
    case 't':
        return '\t';
    default:
        return c;               /* " \ / */
    }
}

/* The next code point of a checked member name at *P, moving *P past it;
 * -1 at the closing quote. */
static long json_strict_name_next(const uint8_t **p)
{
    const uint8_t *s = *p;
    long cp;
    int more;

    if (s[0] == '"') {
        return -1;
    }
    if (s[0] == '\\' && s[1] != 'u') {
        *p += 2;
        return json_strict_unescape(s[1]);
    }
    if (s[0] == '\\') {
        cp = json_strict_hex4(s + 2);
        *p += 6;
        if (cp >= 0xD800 && cp <= 0xDBFF) {
            cp = 0x10000 + ((cp - 0xD800) << 10) + (json_strict_hex4(s + 8) - 0xDC00);
            *p += 6;
        }
        return cp;
    }
    more = s[0] < 0x80 ? 0 : s[0] < 0xE0 ? 1 : s[0] < 0xF0 ? 2 : 3;
    cp = s[0] & (0x7F >> more);
    for (int i = 1; i <= more; i++) {
        cp = cp << 6 | (s[i] & 0x3F);
    }
    *p += more + 1;
    return cp;
}

/* Orders two member names by their unescaped code points. */
static int json_strict_name_order(const uint8_t *p, const uint8_t *q)
{
    long a, b;

    do {
        a = json_strict_name_next(&p);
        b = json_strict_name_next(&q);
    } while (a == b && a >= 0);
    return a < b ? -1 : a > b;
}

/* For qsort: by name, and the same name in the order of the text. */
static int json_strict_name_cmp(const void *x, const void *y)
{
    const uint8_t *p = *(const uint8_t *const *)x, *q = *(const uint8_t *const *)y;
    int order = json_strict_name_order(p, q);

    return order != 0 ? order : p < q ? -1 : p > q;
}

static int json_strict_name_push(struct json_strict_scan *j, const uint8_t *name)
{
    if (j->nnames == j->cap) {
        size_t cap = j->cap ? j->cap * 2 : 16;
        const uint8_t **v = realloc(j->names, cap * sizeof(*v));

        if (v == NULL) {
            return json_strict_fail(j, JSON_STRICT_NOMEM, j->pos);
        }
        j->names = v;
        j->cap = cap;
    }
    j->names[j->nnames++] = name;
    return 0;
}

/* Sorting makes repeats neighbours, so an object of n members costs
 * n log n comparisons whatever the names are (a hash table could be
 * flooded with colliding names).  Reports the earliest repeat in the text
 * and forgets the object's names. */
static int json_strict_names_check(struct json_strict_scan *j, size_t base)
{
    const uint8_t **v = j->names + base, *repeat = NULL;
    size_t n = j->nnames - base;

    qsort(v, n, sizeof(*v), json_strict_name_cmp);
    for (size_t i = 1; i < n; i++) {
        if (json_strict_name_order(v[i - 1], v[i]) == 0 && (repeat == NULL || v[i] < repeat)) {
            repeat = v[i];
        }
    }
    j->nnames = base;
    return repeat != NULL ? json_strict_fail(j, JSON_STRICT_DUPLICATE, (size_t)(repeat - j->s) - 1) : 0;
}

/* A member's name and colon, at j->pos. */
static int json_strict_member(struct json_strict_scan *j)
{
    if (j->pos == j->len) {
        return json_strict_fail(j, JSON_STRICT_TRUNCATED, j->len);
    }
    if (!json_strict_at(j, '"')) {
        return json_strict_fail(j, JSON_STRICT_UNEXPECTED, j->pos);
    }
    if (json_strict_name_push(j, j->s + j->pos + 1) < 0 || json_strict_string(j, 1) < 0) {
        return JSON_STRICT_FAILED;
    }
    json_strict_skip_ws(j);
    if (j->pos == j->len) {
        return json_strict_fail(j, JSON_STRICT_TRUNCATED, j->len);
    }
    if (!json_strict_at(j, ':')) {
        return json_strict_fail(j, JSON_STRICT_UNEXPECTED, j->pos);
    }
    j->pos++;
    return 0;
}

/* --- values ------------------------------------------------------------- */

static int json_strict_digits(struct json_strict_scan *j)
{
    size_t from = j->pos;

    while (json_strict_digit_at(j)) {
        j->pos++;
    }
    return j->pos > from;
}

static int json_strict_number(struct json_strict_scan *j)
{
    size_t at = j->pos;

    if (json_strict_at(j, '-')) {
        j->pos++;
    }
    if (json_strict_at(j, 'I') || json_strict_at(j, 'N')) {
        return json_strict_fail(j, JSON_STRICT_NAN, at);
    }
    if (json_strict_at(j, '0')) {
        j->pos++;
        if (json_strict_digit_at(j)) {
            return json_strict_fail(j, JSON_STRICT_NUMBER, at);      /* a leading zero */
        }
    } else if (!json_strict_digits(j)) {
        return json_strict_fail(j, JSON_STRICT_NUMBER, at);
    }
    if (json_strict_at(j, '.')) {
        j->pos++;
        if (!json_strict_digits(j)) {
            return json_strict_fail(j, JSON_STRICT_NUMBER, at);
        }
    }
    if (json_strict_at(j, 'e') || json_strict_at(j, 'E')) {
        j->pos++;
        if (json_strict_at(j, '+') || json_strict_at(j, '-')) {
            j->pos++;
        }
        if (!json_strict_digits(j)) {
            return json_strict_fail(j, JSON_STRICT_NUMBER, at);
        }
    }
    return JSON_STRICT_VALUE_DONE;
}

static int json_strict_literal(struct json_strict_scan *j)
{
    static const char *const words[] = { "true", "false", "null" };

    for (size_t i = 0; i < PL_ARRAY_LEN(words); i++) {
        size_t n = strlen(words[i]);

        if (j->len - j->pos >= n && memcmp(j->s + j->pos, words[i], n) == 0) {
            j->pos += n;
            return JSON_STRICT_VALUE_DONE;
        }
    }
    return json_strict_fail(j, JSON_STRICT_LITERAL, j->pos);
}

/* Opens the array or object at j->pos; an empty one is closed at once. */
static int json_strict_open(struct json_strict_scan *j)
{
    uint8_t c = j->s[j->pos];

    if (j->depth == JSON_STRICT_DEPTH) {
        return json_strict_fail(j, JSON_STRICT_TOO_DEEP, j->pos);
    }
    j->pos++;
    json_strict_skip_ws(j);
    if (json_strict_at(j, c == '{' ? '}' : ']')) {
        j->pos++;
        return JSON_STRICT_VALUE_DONE;
    }
    j->open[j->depth] = c;
    j->base[j->depth] = j->nnames;
    j->depth++;
    if (c == '{' && json_strict_member(j) < 0) {
        return JSON_STRICT_FAILED;
    }
    return JSON_STRICT_VALUE_NEXT;
}

/* The value at j->pos (after whitespace). */
static int json_strict_value(struct json_strict_scan *j)
{
    uint8_t c;

    json_strict_skip_ws(j);
    if (j->pos == j->len) {
        return json_strict_fail(j, JSON_STRICT_TRUNCATED, j->len);
    }
    c = j->s[j->pos];
    if (c == '{' || c == '[') {
        return json_strict_open(j);
    }
    if (c == '"') {
        return json_strict_string(j, 0) < 0 ? JSON_STRICT_FAILED : JSON_STRICT_VALUE_DONE;
    }
    if (c == '-' || (c >= '0' && c <= '9')) {
        return json_strict_number(j);
    }
    if (c == 't' || c == 'f' || c == 'n') {
        return json_strict_literal(j);
    }
    return json_strict_fail(j, c == 'N' || c == 'I' ? JSON_STRICT_NAN : JSON_STRICT_UNEXPECTED, j->pos);
}

/* After a value inside a container: a comma and the next value, or the
 * container's end (where an object's names are checked). */
static int json_strict_next(struct json_strict_scan *j)
{
    uint8_t open = j->open[j->depth - 1];

    json_strict_skip_ws(j);
    if (j->pos == j->len) {
        return json_strict_fail(j, JSON_STRICT_TRUNCATED, j->len);
    }
    if (json_strict_at(j, open == '{' ? '}' : ']')) {
        j->pos++;
        j->depth--;
        if (open == '{' && json_strict_names_check(j, j->base[j->depth]) < 0) {
            return JSON_STRICT_FAILED;
        }
        return JSON_STRICT_VALUE_DONE;
    }
    if (!json_strict_at(j, ',')) {
        return json_strict_fail(j, JSON_STRICT_UNEXPECTED, j->pos);
    }
    j->pos++;
    json_strict_skip_ws(j);
    return open == '{' && json_strict_member(j) < 0 ? JSON_STRICT_FAILED : JSON_STRICT_VALUE_NEXT;
}

/* No recursion: open containers live on the scan's own stack, so the depth
 * limit is the only bound and no input can exhaust the C stack. */
static int json_strict_text(struct json_strict_scan *j)
{
    int rc = JSON_STRICT_VALUE_NEXT;

    json_strict_skip_ws(j);
    if (j->pos == j->len) {
        return json_strict_fail(j, JSON_STRICT_EMPTY, 0);
    }
    do {
        while (rc == JSON_STRICT_VALUE_NEXT) {
            rc = json_strict_value(j);
        }
        while (rc == JSON_STRICT_VALUE_DONE && j->depth > 0) {
            rc = json_strict_next(j);
        }
    } while (rc == JSON_STRICT_VALUE_NEXT);
    if (rc == JSON_STRICT_FAILED) {
        return JSON_STRICT_FAILED;
    }
    json_strict_skip_ws(j);
    return j->pos == j->len ? 0 : json_strict_fail(j, JSON_STRICT_TRAILING, j->pos);
}

int json_strict_check(const char *text, size_t len, struct json_strict_error *err)
{
    struct json_strict_scan j = { .s = (const uint8_t *)text, .len = len, .err = err };
    int rc;

    err->fault = JSON_STRICT_OK;
    err->offset = 0;
    rc = json_strict_text(&j);
    free(j.names);
    return rc == 0 ? 0 : -1;
}

const char *json_strict_fault_text(enum json_strict_fault fault)
{
    static const char *const text[] = {
        [JSON_STRICT_OK] = "valid",
        [JSON_STRICT_EMPTY] = "empty",
        [JSON_STRICT_UNEXPECTED] = "unexpected character",
        [JSON_STRICT_TRUNCATED] = "the text ends inside the value",
        [JSON_STRICT_TRAILING] = "more text after the value",
        [JSON_STRICT_NUMBER] = "malformed number",
        [JSON_STRICT_NAN] = "NaN and Infinity are not JSON numbers",
        [JSON_STRICT_LITERAL] = "a word other than true, false or null",
        [JSON_STRICT_CONTROL] = "unescaped control character in a string",
        [JSON_STRICT_ESCAPE] = "invalid escape in a string",
        [JSON_STRICT_SURROGATE] = "unpaired surrogate in a \\u escape",
        [JSON_STRICT_UTF8] = "invalid UTF-8",
        [JSON_STRICT_TOO_DEEP] = "nested more than " JSON_STRICT_STR(JSON_STRICT_DEPTH) " levels deep",
        [JSON_STRICT_DUPLICATE] = "duplicate member name",
        [JSON_STRICT_NUL_NAME] = "member name containing \\u0000",
        [JSON_STRICT_NOMEM] = "out of memory",
    };

    return (size_t)fault < PL_ARRAY_LEN(text) ? text[fault] : "invalid";
}

/* What a JSON value that is not an object is, by its first byte. */
static const char *json_strict_kind(char c)
{
    switch (c) {
    case '[':
        return "an array";
    case '"':
        return "a string";
    case 't':
    case 'f':
        return "a boolean";
    case 'n':
        return "null";
    default:
        return "a number";
    }
}

json_object *json_strict_parse(const char *text, size_t len, const char *subject, char *msg, size_t msglen)
{
    struct json_strict_error err;
    struct json_tokener *tok;
    json_object *obj = NULL;
    char none[1];
    size_t first = 0;

    if (msg == NULL || msglen == 0) {
        msg = none;
        msglen = sizeof(none);
    }
    if (len > INT_MAX) {
        snprintf(msg, msglen, "%s is too long", subject);
        return NULL;
    }
    if (json_strict_check(text, len, &err) != 0) {
        if (err.fault == JSON_STRICT_EMPTY) {
            snprintf(msg, msglen, "%s is empty; send a JSON object", subject);
        } else {
            snprintf(msg, msglen, "%s is not valid JSON: %s at offset %zu", subject,
                     json_strict_fault_text(err.fault), err.offset);
        }
        return NULL;
    }
    while (json_strict_ws((uint8_t)text[first])) {
        first++;                /* stops at the value the check found */
    }
    if (text[first] != '{') {
        snprintf(msg, msglen, "%s must be a JSON object, not %s", subject, json_strict_kind(text[first]));
        return NULL;
    }
    /* json-c counts the levels it may open, plus one. */
    tok = json_tokener_new_ex(JSON_STRICT_DEPTH + 1);
    if (tok != NULL) {
        obj = json_tokener_parse_ex(tok, text, (int)len);
        json_tokener_free(tok);
    }
    if (obj == NULL || !json_object_is_type(obj, json_type_object)) {
        json_object_put(obj);
        snprintf(msg, msglen, "%s could not be read (out of memory)", subject);
        return NULL;
    }
    return obj;
}
