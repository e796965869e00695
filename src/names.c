/* names.c - room and user name rules, and the Redis key builders. */
#include "names.h"

#include <limits.h>
#include <string.h>

#include "parley.h"

int name_valid(const char *s)
{
    size_t len;

    if (s == NULL) {
        return 0;
    }
    len = strspn(s, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_.-");
    if (len == 0 || len > PL_NAME_MAX || s[len] != '\0') {
        return 0;
    }
    /* "." and ".." would read as path segments once a name is in a URL. */
    return strcmp(s, ".") != 0 && strcmp(s, "..") != 0;
}

/* Joins NPARTS strings into OUT.  Returns the length, or -1 when a part is
 * NULL or the whole does not fit.  On failure OUT holds the empty string
 * (when OUTLEN > 0): a caller that ignores the result then uses an obviously
 * wrong key instead of a truncated one, which could name another room's. */
static int key_join(char *out, size_t outlen, size_t nparts, const char *const *parts)
{
    size_t len = 0, n;

    for (size_t i = 0; i < nparts; i++) {
        if (parts[i] == NULL) {
            goto fail;
        }
        n = strlen(parts[i]);
        if (n >= outlen - len) {        /* keeps room for the NUL */
            goto fail;
        }
        memcpy(out + len, parts[i], n);
        len += n;
    }
    if (len >= outlen || len > INT_MAX) {
        goto fail;
    }
    out[len] = '\0';
    return (int)len;

fail:
    if (outlen > 0) {
        out[0] = '\0';
    }
    return -1;
}

#define KEY_JOIN(out, outlen, ...) \
    key_join(out, outlen, PL_ARRAY_LEN(((const char *[]){ __VA_ARGS__ })), (const char *[]){ __VA_ARGS__ })

int key_session(char *out, size_t outlen, const char *prefix, const char *token)
{
    return KEY_JOIN(out, outlen, prefix, "session:", token);
}

int key_ticket(char *out, size_t outlen, const char *prefix, const char *ticket)
{
    return KEY_JOIN(out, outlen, prefix, "ticket:", ticket);
}

int key_user_sessions(char *out, size_t outlen, const char *prefix, const char *user)
{
    return KEY_JOIN(out, outlen, prefix, "user:", user, ":sessions");
}

int key_signin(char *out, size_t outlen, const char *prefix, const char *address)
{
    return KEY_JOIN(out, outlen, prefix, "signin:", address);
}

int key_room_log(char *out, size_t outlen, const char *prefix, const char *room)
{
    return KEY_JOIN(out, outlen, prefix, "room:", room, ":log");
}

int key_room_members(char *out, size_t outlen, const char *prefix, const char *room)
{
    return KEY_JOIN(out, outlen, prefix, "room:", room, ":members");
}

int key_room_answers(char *out, size_t outlen, const char *prefix, const char *room)
{
    return KEY_JOIN(out, outlen, prefix, "room:", room, ":answers");
}

int key_room_gone(char *out, size_t outlen, const char *prefix, const char *room)
{
    return KEY_JOIN(out, outlen, prefix, "room:", room, ":gone");
}

int key_room_channel(char *out, size_t outlen, const char *prefix, const char *room)
{
    return KEY_JOIN(out, outlen, prefix, "room:", room);
}

int key_user_channel(char *out, size_t outlen, const char *prefix, const char *user)
{
    return KEY_JOIN(out, outlen, prefix, "user:", user);
}

int key_instance(char *out, size_t outlen, const char *prefix, const char *instance)
{
    return KEY_JOIN(out, outlen, prefix, "instance:", instance);
}

int key_instance_presence(char *out, size_t outlen, const char *prefix, const char *instance)
{
    return KEY_JOIN(out, outlen, prefix, "instance:", instance, ":presence");
}

int key_instances(char *out, size_t outlen, const char *prefix)
{
    return KEY_JOIN(out, outlen, prefix, "instances");
}

int key_rate(char *out, size_t outlen, const char *prefix, const char *user)
{
    return KEY_JOIN(out, outlen, prefix, "rate:", user);
}
