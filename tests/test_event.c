/* test_event.c - event JSON encoding and stream id helpers. */
#include <stdio.h>
#include <string.h>

#include <event2/buffer.h>
#include <json-c/json.h>

#include "event.h"
#include "parley.h"
#include "unit.h"

static struct evbuffer *out;

static const char *text(void)
{
    evbuffer_add(out, "", 1);
    return (const char *)evbuffer_pullup(out, -1);
}

static void setup(void)
{
    out = evbuffer_new();
}

static void teardown(void)
{
    evbuffer_free(out);
}

START_TEST(escape_controls_quotes_and_keeps_utf8)
{
    const char in[] = "a\"b\\c\n\r\t\b\f\x01\x1f/\xc3\xa9";

    event_escape(out, in, sizeof(in) - 1);
    ck_assert_str_eq(text(), "a\\\"b\\\\c\\n\\r\\t\\b\\f\\u0001\\u001f/\xc3\xa9");
}
END_TEST

START_TEST(escape_embedded_nul)
{
    event_escape(out, "a\0b", 3);
    ck_assert_str_eq(text(), "a\\u0000b");
}
END_TEST

START_TEST(message_layout_is_the_contract_and_parses)
{
    json_object *o;

    event_message(out, "1700000000000-3", "lobby", "alice", "say \"hi\"", 8, 1700000000000LL);
    ck_assert_str_eq(text(), "{\"type\":\"message\",\"id\":\"1700000000000-3\",\"room\":\"lobby\","
                             "\"from\":\"alice\",\"content\":\"say \\\"hi\\\"\",\"ts\":1700000000000}");
    o = json_tokener_parse(text());
    ck_assert_ptr_nonnull(o);
    ck_assert_str_eq(json_object_get_string(json_object_object_get(o, "content")), "say \"hi\"");
    json_object_put(o);
}
END_TEST

START_TEST(message_split_matches_message)
{
    /* The publish script puts the parts around "from" exactly as
     * event_message does. */
    struct evbuffer *before = evbuffer_new(), *after = evbuffer_new();
    char expect[512];

    event_message_split(before, after, "r", "c\n", 2);
    evbuffer_add(before, "", 1);
    evbuffer_add(after, "", 1);
    snprintf(expect, sizeof(expect), "{\"type\":\"message\",\"id\":\"5-0\",%s,\"from\":\"u\"%s,\"ts\":5}",
             (const char *)evbuffer_pullup(before, -1), (const char *)evbuffer_pullup(after, -1));
    event_message(out, "5-0", "r", "u", "c\n", 2, 5);
    ck_assert_str_eq(text(), expect);
    evbuffer_free(before);
    evbuffer_free(after);
}
END_TEST

START_TEST(answer_and_chunk_layouts)
{
    /* The answer scripts (scripts.c) build these same bytes live. */
    event_answer(out, "7-0", "r", "agent", "a\"b", 3, 7, "00ff00ff00ff00ff", NULL);
    ck_assert_str_eq(text(), "{\"type\":\"message\",\"id\":\"7-0\",\"room\":\"r\",\"from\":\"agent\","
                             "\"content\":\"a\\\"b\",\"ts\":7,\"request_id\":\"00ff00ff00ff00ff\"}");
    evbuffer_drain(out, evbuffer_get_length(out));
    event_answer(out, "7-0", "r", "agent", "x", 1, 7, "00ff00ff00ff00ff", "cancelled");
    ck_assert_str_eq(text(), "{\"type\":\"message\",\"id\":\"7-0\",\"room\":\"r\",\"from\":\"agent\","
                             "\"content\":\"x\",\"ts\":7,\"request_id\":\"00ff00ff00ff00ff\",\"status\":\"cancelled\"}");
    evbuffer_drain(out, evbuffer_get_length(out));
    event_ai_chunk(out, "8-1", "00ff00ff00ff00ff", "bob", "line\n", 5);
    ck_assert_str_eq(text(), "{\"type\":\"ai_chunk\",\"id\":\"8-1\",\"request_id\":\"00ff00ff00ff00ff\","
                             "\"asker\":\"bob\",\"content\":\"line\\n\"}");
}
END_TEST

START_TEST(resume_ids)
{
    char id[EVENT_ID_MAX];

    event_resume_id(NULL, id);
    ck_assert_str_eq(id, "");
    event_resume_id(" \t ", id);
    ck_assert_str_eq(id, "");
    event_resume_id(" 5-1\t", id);
    ck_assert_str_eq(id, "5-1");
    event_resume_id("5-", id);
    ck_assert_str_eq(id, "0-0");
    event_resume_id("123456789012345678901234567890123456789012345-1", id);
    ck_assert_str_eq(id, "0-0");
}
END_TEST

START_TEST(presence_typing_direct)
{
    event_presence(out, 1, "bob", "lobby");
    ck_assert_str_eq(text(), "{\"type\":\"presence\",\"event\":\"join\",\"user\":\"bob\",\"room\":\"lobby\"}");
    evbuffer_drain(out, evbuffer_get_length(out));
    event_presence(out, 0, "bob", "lobby");
    ck_assert_str_eq(text(), "{\"type\":\"presence\",\"event\":\"leave\",\"user\":\"bob\",\"room\":\"lobby\"}");
    evbuffer_drain(out, evbuffer_get_length(out));
    event_typing(out, "alice", "lobby");
    ck_assert_str_eq(text(), "{\"type\":\"typing\",\"user\":\"alice\",\"room\":\"lobby\"}");
    evbuffer_drain(out, evbuffer_get_length(out));
    event_direct(out, "9-1", "alice", "bob", "psst", 4, 9);
    ck_assert_str_eq(text(), "{\"type\":\"direct\",\"id\":\"9-1\",\"from\":\"alice\",\"to\":\"bob\","
                             "\"content\":\"psst\",\"ts\":9}");
}
END_TEST

START_TEST(header)
{
    event_header(out, "message", "1-0", "alice");
    ck_assert_str_eq(text(), "message 1-0 alice\n");
    evbuffer_drain(out, evbuffer_get_length(out));
    event_header(out, "typing", NULL, "");
    ck_assert_str_eq(text(), "typing - -\n");
}
END_TEST

START_TEST(ids)
{
    static const char *const good[] = { "0-0", "1700000000000-0", "1-18446744073709551615",
                                        "18446744073709551615-18446744073709551615" };
    static const char *const bad[] = { "", "-", "1-", "-1", "1", "a-1", "1-a", "1-1-1", " 1-1", "1-1 ",
                                       "123456789012345678901-0", "18446744073709551616-0",
                                       "1-18446744073709551616", "99999999999999999999-0" };

    for (size_t i = 0; i < PL_ARRAY_LEN(good); i++) {
        ck_assert_msg(event_id_valid(good[i]), "%s", good[i]);
    }
    for (size_t i = 0; i < PL_ARRAY_LEN(bad); i++) {
        ck_assert_msg(!event_id_valid(bad[i]), "%s", bad[i]);
        ck_assert_int_eq(event_id_ms(bad[i]), -1);
    }
    ck_assert_int_eq(event_id_ms("1700000000000-7"), 1700000000000LL);
    ck_assert_int_lt(event_id_cmp("9-5", "10-0"), 0);     /* numeric, not lexical */
    ck_assert_int_lt(event_id_cmp("10-2", "10-10"), 0);
    ck_assert_int_eq(event_id_cmp("10-10", "10-10"), 0);
    ck_assert_int_gt(event_id_cmp("11-0", "10-99"), 0);
}
END_TEST

START_TEST(parsed_ids)
{
    struct event_id a, b, untouched = { 7, 7 };

    ck_assert_int_eq(event_id_parse("1700000000000-18446744073709551615", &a), 0);
    ck_assert_uint_eq(a.ms, 1700000000000ULL);
    ck_assert_uint_eq(a.seq, 18446744073709551615ULL);
    ck_assert_int_eq(event_id_parse("9-5", &a), 0);
    ck_assert_int_eq(event_id_parse("10-0", &b), 0);
    ck_assert_int_lt(event_id_order(&a, &b), 0);
    ck_assert_int_gt(event_id_order(&b, &a), 0);
    ck_assert_int_eq(event_id_order(&a, &a), 0);
    ck_assert_int_eq(event_id_parse("x-1", &untouched), -1);
    ck_assert_uint_eq(untouched.ms, 7);             /* left as it was */
}
END_TEST

Suite *suite_event(void)
{
    Suite *s = suite_create("event");
    TCase *tc = tcase_create("event");

    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_add_test(tc, escape_controls_quotes_and_keeps_utf8);
    tcase_add_test(tc, escape_embedded_nul);
    tcase_add_test(tc, message_layout_is_the_contract_and_parses);
    tcase_add_test(tc, message_split_matches_message);
    tcase_add_test(tc, answer_and_chunk_layouts);
    tcase_add_test(tc, resume_ids);
    tcase_add_test(tc, presence_typing_direct);
    tcase_add_test(tc, header);
    tcase_add_test(tc, ids);
    tcase_add_test(tc, parsed_ids);
    suite_add_tcase(s, tc);
    return s;
}
