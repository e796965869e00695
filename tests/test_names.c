/* test_names.c - name validation and the Redis key builders. */
#include <stdlib.h>
#include <string.h>

#include "names.h"
#include "parley.h"
#include "unit.h"

#define A16 "aaaaaaaaaaaaaaaa"
#define A64 A16 A16 A16 A16

START_TEST(names)
{
    static const struct { const char *name; int ok; } cases[] = {
        { "a", 1 }, { "Z", 1 }, { "0", 1 }, { "_", 1 }, { "-", 1 },
        { "lobby", 1 }, { "a.b", 1 }, { "...", 1 }, { ".hidden", 1 }, { "x..", 1 },
        { "Alice_Bob-2.0", 1 }, { A64, 1 },
        { A64 "a", 0 }, { "", 0 }, { ".", 0 }, { "..", 0 }, { NULL, 0 },
        { "caf\xc3\xa9", 0 }, { "\xff", 0 }, { "a b", 0 }, { " a", 0 }, { "a/b", 0 }, { "a:b", 0 },
        { "a%20b", 0 }, { "a\nb", 0 }, { "a\tb", 0 }, { "a*", 0 }, { "a+b", 0 }, { "a@b", 0 },
    };

    for (size_t i = 0; i < PL_ARRAY_LEN(cases); i++) {
        ck_assert_msg(name_valid(cases[i].name) == cases[i].ok, "'%s'", cases[i].name ? cases[i].name : "(null)");
    }
}
END_TEST

/* Builds the key CASE names, so that one table drives every builder. */
enum key_kind {
    K_SESSION, K_ROOM_LOG, K_ROOM_MEMBERS, K_ROOM_CHANNEL, K_USER_CHANNEL,
    K_INSTANCE, K_INSTANCE_PRESENCE, K_INSTANCES,
};

static int key_build(enum key_kind kind, char *out, size_t outlen, const char *prefix, const char *a)
{
    switch (kind) {
    case K_SESSION:           return key_session(out, outlen, prefix, a);
    case K_ROOM_LOG:          return key_room_log(out, outlen, prefix, a);
    case K_ROOM_MEMBERS:      return key_room_members(out, outlen, prefix, a);
    case K_ROOM_CHANNEL:      return key_room_channel(out, outlen, prefix, a);
    case K_USER_CHANNEL:      return key_user_channel(out, outlen, prefix, a);
    case K_INSTANCE:          return key_instance(out, outlen, prefix, a);
    case K_INSTANCE_PRESENCE: return key_instance_presence(out, outlen, prefix, a);
    case K_INSTANCES:         return key_instances(out, outlen, prefix);
    }
    return -2;
}

static const struct key_case {
    enum key_kind kind;
    const char *prefix, *a;
    const char *want;
} key_cases[] = {
    { K_SESSION, "parley:", "tok_-123", "parley:session:tok_-123" },
    { K_ROOM_LOG, "parley:", "lobby", "parley:room:lobby:log" },
    { K_ROOM_MEMBERS, "parley:", "lobby", "parley:room:lobby:members" },
    { K_ROOM_CHANNEL, "parley:", "lobby", "parley:room:lobby" },
    { K_USER_CHANNEL, "parley:", "alice", "parley:user:alice" },
    { K_INSTANCE, "parley:", "host1-42", "parley:instance:host1-42" },
    { K_INSTANCE_PRESENCE, "parley:", "host1-42", "parley:instance:host1-42:presence" },
    { K_INSTANCES, "parley:", NULL, "parley:instances" },

    { K_SESSION, "x:", "t", "x:session:t" },
    { K_ROOM_LOG, "x:", "a.b", "x:room:a.b:log" },
    { K_ROOM_MEMBERS, "x:", "a.b", "x:room:a.b:members" },
    { K_ROOM_CHANNEL, "x:", "a.b", "x:room:a.b" },
    { K_USER_CHANNEL, "x:", "bob", "x:user:bob" },
    { K_INSTANCE, "x:", "i", "x:instance:i" },
    { K_INSTANCE_PRESENCE, "x:", "i", "x:instance:i:presence" },
    { K_INSTANCES, "x:", NULL, "x:instances" },

    /* The prefix is used verbatim, even empty or without a colon. */
    { K_ROOM_CHANNEL, "", "lobby", "room:lobby" },
    { K_INSTANCES, "", NULL, "instances" },
    { K_USER_CHANNEL, "app1.", "alice", "app1.user:alice" },
};

START_TEST(keys)
{
    const struct key_case *c = &key_cases[_i];
    size_t len = strlen(c->want);
    char out[256], *exact;

    ck_assert_int_eq(key_build(c->kind, out, sizeof(out), c->prefix, c->a), (int)len);
    ck_assert_str_eq(out, c->want);

    /* Exactly big enough works; one byte less fails and leaves "", never a
     * truncated key.  Heap buffers sized to the byte let ASan catch any
     * write past the end. */
    for (size_t size = 0; size <= len + 1; size++) {
        exact = malloc(size > 0 ? size : 1);
        memset(exact, '#', size);
        ck_assert_int_eq(key_build(c->kind, exact, size, c->prefix, c->a), size == len + 1 ? (int)len : -1);
        if (size == len + 1) {
            ck_assert_str_eq(exact, c->want);
        } else if (size > 0) {
            ck_assert_str_eq(exact, "");
        }
        free(exact);
    }
}
END_TEST

START_TEST(keys_null_parts)
{
    char out[64];

    ck_assert_int_eq(key_room_log(out, sizeof(out), "parley:", NULL), -1);
    ck_assert_str_eq(out, "");
    ck_assert_int_eq(key_instances(out, sizeof(out), NULL), -1);
    ck_assert_int_eq(key_user_channel(out, sizeof(out), "parley:", NULL), -1);
    ck_assert_str_eq(out, "");
}
END_TEST

Suite *suite_names(void)
{
    Suite *s = suite_create("names");
    TCase *tc = tcase_create("names");

    tcase_add_test(tc, names);
    tcase_add_loop_test(tc, keys, 0, (int)PL_ARRAY_LEN(key_cases));
    tcase_add_test(tc, keys_null_parts);
    suite_add_tcase(s, tc);
    return s;
}
