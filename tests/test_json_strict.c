/* test_json_strict.c - the strict JSON check, case by case and byte by byte. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "json_strict.h"
#include "parley.h"
#include "unit.h"

/* Each text with the fault it must get and where; JSON_STRICT_OK: valid. */
static const struct strict_case {
    const char *text;
    enum json_strict_fault fault;
    size_t offset;
} strict_cases[] = {
    /* valid */
    { "{}", JSON_STRICT_OK, 0 },
    { " \t\r\n{ }\n", JSON_STRICT_OK, 0 },
    { "{\"a\":1}", JSON_STRICT_OK, 0 },
    { "{\"a\":[1,2,{\"b\":null}],\"c\":[],\"d\":{}}", JSON_STRICT_OK, 0 },
    { "{\"a\":true,\"b\":false,\"c\":null}", JSON_STRICT_OK, 0 },
    { "{\"a\":0,\"b\":-0,\"c\":-0.5e+10,\"d\":1E5,\"e\":1e-5,\"f\":12.25,\"g\":1e999}", JSON_STRICT_OK, 0 },
    { "{\"a\":\"\\\" \\\\ \\/ \\b \\f \\n \\r \\t \\u00e9 \\ud83d\\ude00 \\uDBFF\\uDFFF\"}", JSON_STRICT_OK, 0 },
    { "{\"\xc3\xa9\":\"\xe2\x82\xac \xf0\x9f\x98\x80 \x7f\"}", JSON_STRICT_OK, 0 },
    { "{\"a\":\"\\u0000\"}", JSON_STRICT_OK, 0 },   /* a NUL value: json_field.h refuses it */
    { "{\"a\":1,\"A\":2,\"a \":3,\"\":4}", JSON_STRICT_OK, 0 },
    { "{\"a\":{\"a\":1},\"b\":{\"a\":2},\"c\":[{\"a\":1},{\"a\":1}]}", JSON_STRICT_OK, 0 },
    { "{\"\\u00e9\":1,\"\\u00e8\":2}", JSON_STRICT_OK, 0 },
    { "[1]", JSON_STRICT_OK, 0 },
    { "\"x\"", JSON_STRICT_OK, 0 },
    { "0", JSON_STRICT_OK, 0 },
    { "null", JSON_STRICT_OK, 0 },

    /* nothing there */
    { "", JSON_STRICT_EMPTY, 0 },
    { " \r\n\t ", JSON_STRICT_EMPTY, 0 },

    /* repeated member names, compared after unescaping */
    { "{\"user\":\"alice\",\"user\":\"bob\"}", JSON_STRICT_DUPLICATE, 16 },
    { "{\"a\":1,\"\\u0061\":2}", JSON_STRICT_DUPLICATE, 7 },
    { "{\"\\u0061\":1,\"a\":2}", JSON_STRICT_DUPLICATE, 12 },
    { "{\"\xc3\xa9\":1,\"\\u00e9\":2}", JSON_STRICT_DUPLICATE, 8 },
    { "{\"\xf0\x9f\x98\x80\":1,\"\\ud83d\\ude00\":2}", JSON_STRICT_DUPLICATE, 10 },
    { "{\"a\\/b\":1,\"a/b\":2}", JSON_STRICT_DUPLICATE, 10 },
    { "{\"\\n\":1,\"\\u000a\":2}", JSON_STRICT_DUPLICATE, 8 },
    { "{\"\":1,\"\":2}", JSON_STRICT_DUPLICATE, 6 },
    { "{\"a\":1,\"b\":2,\"a\":3,\"b\":4}", JSON_STRICT_DUPLICATE, 13 },
    { "{\"b\":1,\"a\":1,\"b\":2,\"a\":2}", JSON_STRICT_DUPLICATE, 13 },  /* the first repeat, not the least */
    { "{\"x\":{\"a\":1,\"a\":2}}", JSON_STRICT_DUPLICATE, 12 },
    { "[{\"a\":1},{\"a\":1,\"a\":1}]", JSON_STRICT_DUPLICATE, 16 },
    { "{\"a\":{},\"a\":[]}", JSON_STRICT_DUPLICATE, 8 },
    { "{\"a\":{\"b\":1},\"b\":2,\"a\":3}", JSON_STRICT_DUPLICATE, 19 },
    { "{\"a\\u0000\":1}", JSON_STRICT_NUL_NAME, 3 },

    /* NaN and Infinity */
    { "{\"a\":NaN}", JSON_STRICT_NAN, 5 },
    { "{\"a\":Infinity}", JSON_STRICT_NAN, 5 },
    { "{\"a\":-Infinity}", JSON_STRICT_NAN, 5 },
    { "{\"a\":-NaN}", JSON_STRICT_NAN, 5 },
    { "{\"a\":nan}", JSON_STRICT_LITERAL, 5 },
    { "{\"a\":+Infinity}", JSON_STRICT_UNEXPECTED, 5 },

    /* raw control characters in strings */
    { "{\"a\":\"x\ny\"}", JSON_STRICT_CONTROL, 7 },
    { "{\"a\":\"\x01\"}", JSON_STRICT_CONTROL, 6 },
    { "{\"a\":\"\x1f\"}", JSON_STRICT_CONTROL, 6 },
    { "{\"a\":\"\t\"}", JSON_STRICT_CONTROL, 6 },
    { "{\"a\tb\":1}", JSON_STRICT_CONTROL, 3 },

    /* numbers */
    { "{\"a\":01}", JSON_STRICT_NUMBER, 5 },
    { "{\"a\":-01}", JSON_STRICT_NUMBER, 5 },
    { "{\"a\":1.}", JSON_STRICT_NUMBER, 5 },
    { "{\"a\":1.e5}", JSON_STRICT_NUMBER, 5 },
    { "{\"a\":1e}", JSON_STRICT_NUMBER, 5 },
    { "{\"a\":1e+}", JSON_STRICT_NUMBER, 5 },
    { "{\"a\":-}", JSON_STRICT_NUMBER, 5 },
    { "{\"a\":-.5}", JSON_STRICT_NUMBER, 5 },
    { "{\"a\":.5}", JSON_STRICT_UNEXPECTED, 5 },
    { "{\"a\":+1}", JSON_STRICT_UNEXPECTED, 5 },
    { "{\"a\":0x10}", JSON_STRICT_UNEXPECTED, 6 },
    { "{\"a\":1 2}", JSON_STRICT_UNEXPECTED, 7 },

    /* literals */
    { "{\"a\":tru}", JSON_STRICT_LITERAL, 5 },
    { "{\"a\":nul", JSON_STRICT_LITERAL, 5 },
    { "{\"a\":True}", JSON_STRICT_UNEXPECTED, 5 },
    { "{\"a\":nulll}", JSON_STRICT_UNEXPECTED, 9 },
    { "{\"a\":undefined}", JSON_STRICT_UNEXPECTED, 5 },

    /* escapes */
    { "{\"a\":\"\\x\"}", JSON_STRICT_ESCAPE, 6 },
    { "{\"a\":\"\\'\"}", JSON_STRICT_ESCAPE, 6 },
    { "{\"a\":\"\\U0041\"}", JSON_STRICT_ESCAPE, 6 },
    { "{\"a\":\"\\u12\"}", JSON_STRICT_ESCAPE, 6 },
    { "{\"a\":\"\\u12g4\"}", JSON_STRICT_ESCAPE, 6 },
    { "{\"a\":\"\\u12", JSON_STRICT_ESCAPE, 6 },
    { "{\"a\":\"\\", JSON_STRICT_TRUNCATED, 7 },

    /* surrogates in escapes */
    { "{\"a\":\"\\ud800\"}", JSON_STRICT_SURROGATE, 6 },
    { "{\"a\":\"\\udc00\"}", JSON_STRICT_SURROGATE, 6 },
    { "{\"a\":\"x\\ud800\\u0041\"}", JSON_STRICT_SURROGATE, 7 },
    { "{\"a\":\"\\ud800x\"}", JSON_STRICT_SURROGATE, 6 },
    { "{\"a\":\"\\ud83d\\ud83d\"}", JSON_STRICT_SURROGATE, 6 },
    { "{\"a\":\"\\ude00\\ud83d\"}", JSON_STRICT_SURROGATE, 6 },
    { "{\"a\":\"\\ud83d\\", JSON_STRICT_SURROGATE, 6 },

    /* UTF-8 */
    { "{\"a\":\"\xff\"}", JSON_STRICT_UTF8, 6 },
    { "{\"a\":\"\x80\"}", JSON_STRICT_UTF8, 6 },
    { "{\"a\":\"\xc3\"}", JSON_STRICT_UTF8, 7 },                /* cut short by the quote */
    { "{\"a\":\"\xc3\\n\"}", JSON_STRICT_UTF8, 7 },
    { "{\"a\":\"\xc0\xaf\"}", JSON_STRICT_UTF8, 6 },            /* overlong '/' */
    { "{\"a\":\"\xe0\x80\xaf\"}", JSON_STRICT_UTF8, 7 },
    { "{\"a\":\"\xed\xa0\x80\"}", JSON_STRICT_UTF8, 7 },        /* an encoded surrogate */
    { "{\"a\":\"\xf4\x90\x80\x80\"}", JSON_STRICT_UTF8, 7 },    /* past U+10FFFF */
    { "{\"\xe2\x82\":1}", JSON_STRICT_UTF8, 4 },
    { "{\"a\":\"ok\xe2\x82", JSON_STRICT_TRUNCATED, 10 },
    { "{\"a\":1}\xc3\xa9", JSON_STRICT_TRAILING, 7 },
    { "\xef\xbb\xbf{}", JSON_STRICT_UNEXPECTED, 0 },            /* a byte order mark */
    { "{\xc2\xa0}", JSON_STRICT_UNEXPECTED, 1 },                /* no-break space */

    /* structure */
    { "{\"a\":1,}", JSON_STRICT_UNEXPECTED, 7 },
    { "[1,]", JSON_STRICT_UNEXPECTED, 3 },
    { "[,1]", JSON_STRICT_UNEXPECTED, 1 },
    { "{,}", JSON_STRICT_UNEXPECTED, 1 },
    { "{\"a\":1,,\"b\":2}", JSON_STRICT_UNEXPECTED, 7 },
    { "{'a':1}", JSON_STRICT_UNEXPECTED, 1 },
    { "{a:1}", JSON_STRICT_UNEXPECTED, 1 },
    { "{\"a\" 1}", JSON_STRICT_UNEXPECTED, 5 },
    { "{\"a\"::1}", JSON_STRICT_UNEXPECTED, 5 },
    { "{\"a\":1 \"b\":2}", JSON_STRICT_UNEXPECTED, 7 },
    { "{1:2}", JSON_STRICT_UNEXPECTED, 1 },
    { "{]", JSON_STRICT_UNEXPECTED, 1 },
    { "[}", JSON_STRICT_UNEXPECTED, 1 },
    { "{\"a\":[}", JSON_STRICT_UNEXPECTED, 6 },
    { "{\"a\":]", JSON_STRICT_UNEXPECTED, 5 },
    { "]", JSON_STRICT_UNEXPECTED, 0 },
    { "/* c */{}", JSON_STRICT_UNEXPECTED, 0 },
    { "\f{}", JSON_STRICT_UNEXPECTED, 0 },
    { "{\v}", JSON_STRICT_UNEXPECTED, 1 },
    { "{\"a\":1}}", JSON_STRICT_TRAILING, 7 },
    { "{\"a\":1} x", JSON_STRICT_TRAILING, 8 },
    { "{}{}", JSON_STRICT_TRAILING, 2 },
    { "{} //", JSON_STRICT_TRAILING, 3 },
    { "{", JSON_STRICT_TRUNCATED, 1 },
    { "[", JSON_STRICT_TRUNCATED, 1 },
    { "{\"a", JSON_STRICT_TRUNCATED, 3 },
    { "{\"a\"", JSON_STRICT_TRUNCATED, 4 },
    { "{\"a\":", JSON_STRICT_TRUNCATED, 5 },
    { "{\"a\":1", JSON_STRICT_TRUNCATED, 6 },
    { "{\"a\":1 ", JSON_STRICT_TRUNCATED, 7 },
    { "{\"a\":[1,", JSON_STRICT_TRUNCATED, 8 },
};

static const char *fault_name(enum json_strict_fault f)
{
    return json_strict_fault_text(f);
}

START_TEST(cases)
{
    const struct strict_case *c = &strict_cases[_i];
    struct json_strict_error err = { JSON_STRICT_NOMEM, 99 };
    int rc = json_strict_check(c->text, strlen(c->text), &err);

    ck_assert_msg(rc == (c->fault == JSON_STRICT_OK ? 0 : -1) && err.fault == c->fault && err.offset == c->offset,
                  "'%s': got %d '%s' at %zu, want '%s' at %zu", c->text, rc, fault_name(err.fault), err.offset,
                  fault_name(c->fault), c->offset);
}
END_TEST

/* A NUL byte is a control character in a string and unexpected elsewhere;
 * the length given is what counts, not a terminator. */
START_TEST(nul_bytes)
{
    static const char in_string[] = "{\"a\":\"x\0y\"}", outside[] = "{\"a\":1}\0", before[] = "\0{}";
    struct json_strict_error err;

    ck_assert_int_eq(json_strict_check(in_string, sizeof(in_string) - 1, &err), -1);
    ck_assert_int_eq(err.fault, JSON_STRICT_CONTROL);
    ck_assert_uint_eq(err.offset, 7);
    ck_assert_int_eq(json_strict_check(outside, sizeof(outside) - 1, &err), -1);
    ck_assert_int_eq(err.fault, JSON_STRICT_TRAILING);
    ck_assert_uint_eq(err.offset, 7);
    ck_assert_int_eq(json_strict_check(before, sizeof(before) - 1, &err), -1);
    ck_assert_int_eq(err.fault, JSON_STRICT_UNEXPECTED);
    ck_assert_uint_eq(err.offset, 0);
    /* Only the first LEN bytes are looked at. */
    ck_assert_int_eq(json_strict_check("{}garbage", 2, &err), 0);
    ck_assert_int_eq(json_strict_check(NULL, 0, &err), -1);
    ck_assert_int_eq(err.fault, JSON_STRICT_EMPTY);
}
END_TEST

/* Copies LEN bytes into a buffer of exactly that size, so that ASan sees
 * any read past the end, and checks it. */
static int check_exact(const char *text, size_t len, struct json_strict_error *err)
{
    char *copy = malloc(len ? len : 1);
    int rc;

    memcpy(copy, text, len);
    rc = json_strict_check(copy, len, err);
    free(copy);
    return rc;
}

static const char *const documents[] = {
    "{\"ab\":[\"c d\",12,{\"e\":\"f\"}],\"g\":-3.5e+2,\"h\":[true,false,null]}",
    "{\"\\u00e9\\ud83d\\ude00\":\"\xc3\xa9\xf0\x9f\x98\x80\\n\",\"x\":{\"y\":{\"z\":[[]]}}}",
};

/* Every proper prefix of a valid document is refused, at or before its
 * end, and never read past. */
START_TEST(every_prefix)
{
    const char *doc = documents[_i];
    size_t len = strlen(doc);
    struct json_strict_error err;

    ck_assert_int_eq(check_exact(doc, len, &err), 0);
    for (size_t n = 0; n < len; n++) {
        ck_assert_msg(check_exact(doc, n, &err) == -1, "prefix %zu of '%s' passed", n, doc);
        ck_assert_msg(err.offset <= n, "prefix %zu: offset %zu", n, err.offset);
        ck_assert_int_ne(err.fault, JSON_STRICT_OK);
    }
}
END_TEST

/* A raw control byte put in at any position is caught exactly there: as
 * a control character inside a string, as unexpected elsewhere - or, in
 * the middle of a number or a literal, as a bad one where that starts. */
START_TEST(control_byte_everywhere)
{
    const char *doc = documents[0];     /* no escaped quotes */
    size_t len = strlen(doc);
    char buf[256];
    struct json_strict_error err;
    int in_string = 0;

    for (size_t i = 0; i <= len; i++) {
        memcpy(buf, doc, i);
        buf[i] = '\x01';
        memcpy(buf + i + 1, doc + i, len - i);
        ck_assert_int_eq(check_exact(buf, len + 1, &err), -1);
        if (err.offset == i) {
            enum json_strict_fault want = in_string ? JSON_STRICT_CONTROL
                                        : i == len ? JSON_STRICT_TRAILING : JSON_STRICT_UNEXPECTED;
            ck_assert_msg(err.fault == want, "at %zu: '%s'", i, fault_name(err.fault));
        } else {
            ck_assert_msg(err.offset < i && (err.fault == JSON_STRICT_LITERAL || err.fault == JSON_STRICT_NUMBER),
                          "at %zu: '%s' at %zu", i, fault_name(err.fault), err.offset);
        }
        in_string ^= i < len && doc[i] == '"';
    }
}
END_TEST

/* Every byte value in place of a string's plain character: only the ones
 * RFC 8259 allows raw (and that are UTF-8 on their own) pass. */
START_TEST(every_byte_in_a_string)
{
    char doc[] = "{\"a\":\"?\"}";
    struct json_strict_error err;

    for (int b = 0; b < 256; b++) {
        int ok = b >= 0x20 && b < 0x80 && b != '"' && b != '\\';

        doc[6] = (char)b;
        ck_assert_msg(check_exact(doc, sizeof(doc) - 1, &err) == (ok ? 0 : -1), "byte %#x", b);
        if (b < 0x20) {
            ck_assert_int_eq(err.fault, JSON_STRICT_CONTROL);
        } else if (b >= 0x80) {
            ck_assert_int_eq(err.fault, JSON_STRICT_UTF8);
        }
    }
}
END_TEST

/* A text of N arrays (or objects) nested. */
static char *nested(int n, int objects)
{
    char *s = malloc((size_t)n * 6 + 8), *p = s;

    for (int i = 0; i < n; i++) {
        p += sprintf(p, objects ? "{\"a\":" : "[");
    }
    p += sprintf(p, "1");
    for (int i = 0; i < n; i++) {
        *p++ = objects ? '}' : ']';
    }
    *p = '\0';
    return s;
}

START_TEST(depth_limit)
{
    struct json_strict_error err;
    char msg[160];

    for (int objects = 0; objects < 2; objects++) {
        char *ok = nested(JSON_STRICT_DEPTH, objects), *deep = nested(JSON_STRICT_DEPTH + 1, objects);
        json_object *obj;

        ck_assert_int_eq(json_strict_check(ok, strlen(ok), &err), 0);
        ck_assert_int_eq(json_strict_check(deep, strlen(deep), &err), -1);
        ck_assert_int_eq(err.fault, JSON_STRICT_TOO_DEEP);
        ck_assert_uint_eq(err.offset, (size_t)JSON_STRICT_DEPTH * (objects ? 5 : 1));
        /* What the check lets through, json-c builds. */
        if (objects) {
            obj = json_strict_parse(ok, strlen(ok), "the body", msg, sizeof(msg));
            ck_assert_ptr_nonnull(obj);
            json_object_put(obj);
        }
        free(ok);
        free(deep);
    }
    /* Far deeper than the limit costs nothing more: no recursion. */
    {
        char *abyss = nested(100000, 0);
        ck_assert_int_eq(json_strict_check(abyss, strlen(abyss), &err), -1);
        ck_assert_int_eq(err.fault, JSON_STRICT_TOO_DEEP);
        free(abyss);
    }
}
END_TEST

static double seconds_since(const struct timespec *t0)
{
    struct timespec t1;

    clock_gettime(CLOCK_MONOTONIC, &t1);
    return (double)(t1.tv_sec - t0->tv_sec) + (double)(t1.tv_nsec - t0->tv_nsec) / 1e9;
}

/* A 64 KiB body of one object with thousands of members whose names share
 * a long prefix: checked in far less than a second, and a repeat among
 * them is still found. */
START_TEST(many_members)
{
    enum { BODY = 64 * 1024 };
    char *s = malloc(BODY + 64), *p = s;
    struct json_strict_error err;
    struct timespec t0;
    int n = 0;

    *p++ = '{';
    while (p - s < BODY - 64) {
        p += sprintf(p, "%s\"%s%d\":0", n ? "," : "", "k", n);
        n++;
    }
    strcpy(p, "}");
    clock_gettime(CLOCK_MONOTONIC, &t0);
    ck_assert_int_eq(json_strict_check(s, strlen(s), &err), 0);
    /* Repeat the first name at the end. */
    strcpy(p, ",\"k0\":1}");
    ck_assert_int_eq(json_strict_check(s, strlen(s), &err), -1);
    ck_assert_int_eq(err.fault, JSON_STRICT_DUPLICATE);
    ck_assert_uint_eq(err.offset, (size_t)(p - s) + 1);
    ck_assert_msg(seconds_since(&t0) < 0.5, "%d members took %.3f s", n, seconds_since(&t0));

    /* Long names alike up to their last bytes. */
    p = s;
    *p++ = '{';
    for (n = 0; p - s < BODY - 300; n++) {
        p += sprintf(p, "%s\"%0240d\":0", n ? "," : "", n);
    }
    strcpy(p, "}");
    clock_gettime(CLOCK_MONOTONIC, &t0);
    ck_assert_int_eq(json_strict_check(s, strlen(s), &err), 0);
    ck_assert_msg(seconds_since(&t0) < 0.5, "%d long members took %.3f s", n, seconds_since(&t0));
    free(s);
}
END_TEST

START_TEST(parse_messages)
{
    static const struct { const char *text, *message; } cases[] = {
        { "", "the body is empty; send a JSON object" },
        { "  \n", "the body is empty; send a JSON object" },
        { "[1]", "the body must be a JSON object, not an array" },
        { " \"x\"", "the body must be a JSON object, not a string" },
        { "-1", "the body must be a JSON object, not a number" },
        { "true", "the body must be a JSON object, not a boolean" },
        { "null", "the body must be a JSON object, not null" },
        { "{\"user\":\"a\",\"user\":\"b\"}", "the body is not valid JSON: duplicate member name at offset 12" },
        { "{\"a\":NaN}", "the body is not valid JSON: NaN and Infinity are not JSON numbers at offset 5" },
        { "{\"a\":\"\n\"}", "the body is not valid JSON: unescaped control character in a string at offset 6" },
        { "{\"a\":", "the body is not valid JSON: the text ends inside the value at offset 5" },
        { "{\"a\":\"\\ud800\"}", "the body is not valid JSON: unpaired surrogate in a \\u escape at offset 6" },
    };
    char msg[160];

    for (size_t i = 0; i < PL_ARRAY_LEN(cases); i++) {
        strcpy(msg, "untouched");
        ck_assert_ptr_null(json_strict_parse(cases[i].text, strlen(cases[i].text), "the body", msg, sizeof(msg)));
        ck_assert_str_eq(msg, cases[i].message);
    }
    /* A short buffer is cut, a missing one allowed. */
    ck_assert_ptr_null(json_strict_parse("", 0, "the body", msg, 9));
    ck_assert_str_eq(msg, "the body");
    ck_assert_ptr_null(json_strict_parse("", 0, "the body", NULL, 0));
}
END_TEST

/* Every fault has its own words, none of them json-c's. */
START_TEST(fault_texts)
{
    for (int f = JSON_STRICT_OK; f <= JSON_STRICT_NOMEM; f++) {
        const char *t = json_strict_fault_text((enum json_strict_fault)f);

        ck_assert(t != NULL && t[0] != '\0');
        ck_assert_ptr_null(strstr(t, "continue"));
        for (int g = JSON_STRICT_OK; g < f; g++) {
            ck_assert_str_ne(t, json_strict_fault_text((enum json_strict_fault)g));
        }
    }
}
END_TEST

START_TEST(parse_values)
{
    static const char text[] = " {\"s\":\"\\u00e9\\ud83d\\ude00\\n\",\"n\":-12,\"d\":2.5,\"a\":[true,null],\"o\":{}} ";
    char msg[160] = "untouched";
    json_object *obj = json_strict_parse(text, sizeof(text) - 1, "the body", msg, sizeof(msg)), *v;

    ck_assert_ptr_nonnull(obj);
    ck_assert_str_eq(msg, "untouched");
    ck_assert_int_eq(json_object_object_length(obj), 5);
    ck_assert(json_object_object_get_ex(obj, "s", &v));
    ck_assert_str_eq(json_object_get_string(v), "\xc3\xa9\xf0\x9f\x98\x80\n");
    ck_assert(json_object_object_get_ex(obj, "n", &v));
    ck_assert_int_eq(json_object_get_int64(v), -12);
    ck_assert(json_object_object_get_ex(obj, "d", &v));
    ck_assert(json_object_get_double(v) == 2.5);
    ck_assert(json_object_object_get_ex(obj, "a", &v));
    ck_assert_int_eq((int)json_object_array_length(v), 2);
    json_object_put(obj);
}
END_TEST

Suite *suite_json_strict(void)
{
    Suite *s = suite_create("json_strict");
    TCase *tc = tcase_create("json_strict");

    tcase_add_loop_test(tc, cases, 0, (int)PL_ARRAY_LEN(strict_cases));
    tcase_add_test(tc, nul_bytes);
    tcase_add_loop_test(tc, every_prefix, 0, (int)PL_ARRAY_LEN(documents));
    tcase_add_test(tc, control_byte_everywhere);
    tcase_add_test(tc, every_byte_in_a_string);
    tcase_add_test(tc, depth_limit);
    tcase_add_test(tc, many_members);
    tcase_add_test(tc, parse_messages);
    tcase_add_test(tc, fault_texts);
    tcase_add_test(tc, parse_values);
    suite_add_tcase(s, tc);
    return s;
}
