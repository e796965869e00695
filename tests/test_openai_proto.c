/* test_openai_proto.c - the OpenAI chat completions JSON: the request, what
 * the answer says, upstream text made fit to show. */
#include <stdio.h>
#include <string.h>

#include "openai_proto.h"
#include "parley.h"
#include "store.h"
#include "unit.h"

START_TEST(proto_request)
{
    char e1[] = "{\"id\":\"1-0\",\"from\":\"alice\",\"content\":\"first\"}";
    char e2[] = "{\"id\":\"2-0\",\"from\":\"agent\",\"content\":\"an answer\"}";
    char e3[] = "not json";
    char e4[] = "{\"id\":\"3-0\",\"content\":\"no sender\"}";
    struct store_event items[] = { { .id = "1-0", .json = e1 }, { .id = "2-0", .json = e2 },
                                   { .id = "3-0", .json = e3 }, { .id = "4-0", .json = e4 } };
    struct store_events evs = { .items = items, .count = 4 };
    json_object *req = openai_proto_request("m1", "Be brief.", "agent", &evs, "why?");

    ck_assert_str_eq(json_object_to_json_string_ext(req, JSON_C_TO_STRING_PLAIN),
                     "{\"model\":\"m1\",\"stream\":true,\"messages\":["
                     "{\"role\":\"system\",\"content\":\"Be brief.\"},"
                     "{\"role\":\"user\",\"content\":\"alice: first\"},"
                     "{\"role\":\"assistant\",\"content\":\"an answer\"},"
                     "{\"role\":\"user\",\"content\":\"why?\"}]}");
    json_object_put(req);
    /* No system prompt, no room. */
    req = openai_proto_request("m2", "", "agent", NULL, "q");
    ck_assert_str_eq(json_object_to_json_string_ext(req, JSON_C_TO_STRING_PLAIN),
                     "{\"model\":\"m2\",\"stream\":true,\"messages\":[{\"role\":\"user\",\"content\":\"q\"}]}");
    json_object_put(req);
}
END_TEST

/* TEXT parsed as the answer's JSON, or NULL. */
static json_object *parse(const char *text)
{
    return openai_proto_parse(text, strlen(text));
}

START_TEST(proto_parse)
{
    static const char *const good[] = { "{}", " {\"a\":1} \r\n", "{\"choices\":[]}\n\n" };
    static const char *const bad[] = { "", " ", "[]", "\"x\"", "{} {}", "{}x", "{", "{\"a\":}", "[DONE]" };
    json_object *obj;

    for (size_t i = 0; i < PL_ARRAY_LEN(good); i++) {
        ck_assert_msg((obj = parse(good[i])) != NULL, "refused '%s'", good[i]);
        json_object_put(obj);
    }
    for (size_t i = 0; i < PL_ARRAY_LEN(bad); i++) {
        ck_assert_msg(parse(bad[i]) == NULL, "accepted '%s'", bad[i]);
    }
    ck_assert_ptr_null(openai_proto_parse(NULL, 0));
}
END_TEST

START_TEST(proto_error)
{
    static const struct { const char *json, *message; } cases[] = {
        { "{\"error\":{\"message\":\"model overloaded\",\"code\":503}}", "model overloaded" },
        { "{\"error\":\"plain text\"}", "plain text" },
        { "{\"error\":{\"code\":1}}", "{ \"code\": 1 }" },
        { "{\"error\":{\"message\":7}}", "{ \"message\": 7 }" },
        { "{\"choices\":[]}", NULL },
    };

    for (size_t i = 0; i < PL_ARRAY_LEN(cases); i++) {
        json_object *obj = parse(cases[i].json);
        const char *m = openai_proto_error(obj);

        ck_assert_ptr_nonnull(obj);
        if (cases[i].message == NULL) {
            ck_assert_ptr_null(m);
        } else {
            ck_assert_str_eq(m, cases[i].message);
        }
        json_object_put(obj);
    }
    ck_assert_ptr_null(openai_proto_error(NULL));
}
END_TEST

START_TEST(proto_choices)
{
    static const struct { const char *json; int n, finished; const char *delta, *message; } cases[] = {
        { "{\"choices\":[{\"delta\":{\"content\":\"Hi\"},\"finish_reason\":null}]}", 1, 0, "Hi", NULL },
        { "{\"choices\":[{\"delta\":{\"content\":\"\"},\"finish_reason\":\"stop\"}]}", 1, 1, "", NULL },
        { "{\"choices\":[{\"delta\":{\"role\":\"assistant\"}}]}", 1, 0, NULL, NULL },
        { "{\"choices\":[{\"delta\":{\"content\":null}}]}", 1, 0, NULL, NULL },
        { "{\"choices\":[{\"delta\":\"x\"}]}", 1, 0, NULL, NULL },
        { "{\"choices\":[{\"message\":{\"content\":\"whole\"},\"finish_reason\":\"length\"}]}", 1, 1, NULL, "whole" },
        { "{\"choices\":[],\"usage\":{}}", 0, 0, NULL, NULL },
        { "{\"choices\":[1]}", -1, 0, NULL, NULL },
        { "{\"choices\":{}}", -1, 0, NULL, NULL },
        { "{\"object\":\"chat.completion.chunk\"}", -1, 0, NULL, NULL },
    };

    for (size_t i = 0; i < PL_ARRAY_LEN(cases); i++) {
        json_object *obj = parse(cases[i].json), *choice = NULL;
        const char *text;
        size_t len = 99;

        ck_assert_msg(openai_proto_choice(obj, &choice) == cases[i].n, "%s", cases[i].json);
        if (cases[i].n == 1) {
            ck_assert_int_eq(openai_proto_finished(choice), cases[i].finished);
            text = openai_proto_text(choice, "delta", &len);
            ck_assert(cases[i].delta == NULL ? text == NULL : text != NULL && strcmp(text, cases[i].delta) == 0);
            ck_assert(text == NULL || len == strlen(text));
            text = openai_proto_text(choice, "message", &len);
            ck_assert(cases[i].message == NULL ? text == NULL : text != NULL && strcmp(text, cases[i].message) == 0);
        }
        json_object_put(obj);
    }
}
END_TEST

/* IN cleaned with KEY must read WANT. */
static void cleans_to(const char *in, const char *key, const char *want)
{
    char msg[256];

    snprintf(msg, sizeof(msg), "%s", in);
    openai_proto_clean(msg, key);
    ck_assert_str_eq(msg, want);
}

START_TEST(proto_clean)
{
    cleans_to("Incorrect API key provided: sk-123, sk-123.", "sk-123", "Incorrect API key provided: ******, ******.");
    cleans_to("no key here", "", "no key here");
    cleans_to("line\none\t\"quoted\"\x7f", "k", "line one 'quoted' ");
    /* Valid UTF-8 stays; a character cut at the end goes. */
    cleans_to("caf\xc3\xa9", "k", "caf\xc3\xa9");
    cleans_to("x\xc3\xa9\xc3", "k", "x\xc3\xa9");
    cleans_to("x\xe2\x82", "k", "x");
    cleans_to("x\xf0\x9f\x98", "k", "x");
    cleans_to("x\xf0\x9f\x98\x80", "k", "x\xf0\x9f\x98\x80");
    /* Bytes that were never UTF-8: every non-ASCII byte becomes '?'. */
    cleans_to("bad \xfe\xff bytes, caf\xc3\xa9", "k", "bad ?? bytes, caf??");
    cleans_to("\x80", "k", "?");
}
END_TEST

START_TEST(proto_ascii)
{
    char s[] = "caf\xc3\xa9 \xff!";

    openai_proto_ascii(s, strlen(s));
    ck_assert_str_eq(s, "caf?? ?!");
}
END_TEST

Suite *suite_openai_proto(void)
{
    Suite *s = suite_create("openai_proto");
    TCase *tc = tcase_create("openai_proto");

    tcase_add_test(tc, proto_request);
    tcase_add_test(tc, proto_parse);
    tcase_add_test(tc, proto_error);
    tcase_add_test(tc, proto_choices);
    tcase_add_test(tc, proto_clean);
    tcase_add_test(tc, proto_ascii);
    suite_add_tcase(s, tc);
    return s;
}
