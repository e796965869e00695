/* names.h - room and user names, and the Redis keys built from them.
 *
 * A name is 1..64 characters of [A-Za-z0-9_.-], and not "." or "..".  Keys
 * and channels all start with the configured prefix (default "parley:"); see
 * docs/redis.md for what each one holds. */
#ifndef PARLEY_NAMES_H
#define PARLEY_NAMES_H

#include <stddef.h>

/* Non-zero when S is a valid room or user name. */
int name_valid(const char *s);

/* Each writes PREFIX + the key into OUT (OUTLEN bytes) and returns the length
 * written, or -1 when it does not fit. */
int key_session(char *out, size_t outlen, const char *prefix, const char *token);
int key_ticket(char *out, size_t outlen, const char *prefix, const char *ticket);
int key_user_sessions(char *out, size_t outlen, const char *prefix, const char *user);
int key_signin(char *out, size_t outlen, const char *prefix, const char *address);
int key_room_log(char *out, size_t outlen, const char *prefix, const char *room);
int key_room_members(char *out, size_t outlen, const char *prefix, const char *room);
int key_room_answers(char *out, size_t outlen, const char *prefix, const char *room);
int key_room_gone(char *out, size_t outlen, const char *prefix, const char *room);
int key_room_channel(char *out, size_t outlen, const char *prefix, const char *room);
int key_user_channel(char *out, size_t outlen, const char *prefix, const char *user);
int key_instance(char *out, size_t outlen, const char *prefix, const char *instance);
int key_instance_presence(char *out, size_t outlen, const char *prefix, const char *instance);
int key_instances(char *out, size_t outlen, const char *prefix);
int key_rate(char *out, size_t outlen, const char *prefix, const char *user);

#endif
