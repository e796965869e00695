/* event.c - JSON encoding of chat events and stream id helpers. */
#include "event.h"

#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <event2/buffer.h>

void event_escape(struct evbuffer *out, const char *s, size_t len)
{
    static const char hex[] = "0123456789abcdef";
    size_t start = 0;

    for (size_t i = 0; i < len; i++) {
        unsigned char c = (unsigned char)s[i];
        const char *rep = NULL;
        char u[7];

        if (c >= 0x20 && c != '"' && c != '\\') {
            continue;
        }
        switch (c) {
        case '"': rep = "\\\""; break;
        case '\\': rep = "\\\\"; break;
        case '\n': rep = "\\n"; break;
        case '\r': rep = "\\r"; break;
        case '\t': rep = "\\t"; break;
        case '\b': rep = "\\b"; break;
        case '\f': rep = "\\f"; break;
        default:
            memcpy(u, "\\u00", 4);
            u[4] = hex[c >> 4];
            u[5] = hex[c & 15];
            u[6] = '\0';
            rep = u;
            break;
        }
        evbuffer_add(out, s + start, i - start);
        evbuffer_add(out, rep, strlen(rep));
        start = i + 1;
    }
    evbuffer_add(out, s + start, len - start);
}

static void event_string(struct evbuffer *out, const char *key, const char *s, size_t len, int comma)
{
    evbuffer_add_printf(out, "%s\"%s\":\"", comma ? "," : "", key);
    event_escape(out, s, len);
    evbuffer_add(out, "\"", 1);
}

void event_message_split(struct evbuffer *before, struct evbuffer *after, const char *room,
                         const char *content, size_t content_len)
{
    event_string(before, "room", room, strlen(room), 0);
    event_string(after, "content", content, content_len, 1);
}

/* A message without its closing brace. */
static void event_message_open(struct evbuffer *out, const char *id, const char *room, const char *from,
                               const char *content, size_t content_len, int64_t ts)
{
    evbuffer_add_printf(out, "{\"type\":\"message\",\"id\":\"%s\",", id);
    event_string(out, "room", room, strlen(room), 0);
    event_string(out, "from", from, strlen(from), 1);
    event_string(out, "content", content, content_len, 1);
    evbuffer_add_printf(out, ",\"ts\":%lld", (long long)ts);
}

void event_message(struct evbuffer *out, const char *id, const char *room, const char *from,
                   const char *content, size_t content_len, int64_t ts)
{
    event_message_open(out, id, room, from, content, content_len, ts);
    evbuffer_add(out, "}", 1);
}

void event_answer(struct evbuffer *out, const char *id, const char *room, const char *from,
                  const char *content, size_t content_len, int64_t ts, const char *request_id,
                  const char *status)
{
    event_message_open(out, id, room, from, content, content_len, ts);
    event_string(out, "request_id", request_id, strlen(request_id), 1);
    if (status != NULL) {
        event_string(out, "status", status, strlen(status), 1);
    }
    evbuffer_add(out, "}", 1);
}

void event_ai_chunk(struct evbuffer *out, const char *id, const char *request_id, const char *asker,
                    const char *content, size_t content_len)
{
    evbuffer_add_printf(out, "{\"type\":\"ai_chunk\",\"id\":\"%s\",", id);
    event_string(out, "request_id", request_id, strlen(request_id), 0);
    event_string(out, "asker", asker, strlen(asker), 1);
    event_string(out, "content", content, content_len, 1);
    evbuffer_add(out, "}", 1);
}

void event_presence(struct evbuffer *out, int join, const char *user, const char *room)
{
    evbuffer_add_printf(out, "{\"type\":\"presence\",\"event\":\"%s\"", join ? "join" : "leave");
    event_string(out, "user", user, strlen(user), 1);
    event_string(out, "room", room, strlen(room), 1);
    evbuffer_add(out, "}", 1);
}

void event_typing(struct evbuffer *out, const char *user, const char *room)
{
    evbuffer_add_printf(out, "{\"type\":\"typing\"");
    event_string(out, "user", user, strlen(user), 1);
    event_string(out, "room", room, strlen(room), 1);
    evbuffer_add(out, "}", 1);
}

void event_direct(struct evbuffer *out, const char *id, const char *from, const char *to,
                  const char *content, size_t content_len, int64_t ts)
{
    evbuffer_add_printf(out, "{\"type\":\"direct\",\"id\":\"%s\"", id);
    event_string(out, "from", from, strlen(from), 1);
    event_string(out, "to", to, strlen(to), 1);
    event_string(out, "content", content, content_len, 1);
    evbuffer_add_printf(out, ",\"ts\":%lld}", (long long)ts);
}

void event_header(struct evbuffer *out, const char *type, const char *id, const char *user)
{
    evbuffer_add_printf(out, "%s %s %s\n", type, id && id[0] ? id : "-", user && user[0] ? user : "-");
}

/* The length of the decimal number at S if it fits in 64 bits (as both
 * halves of a Redis stream id must), else 0. */
static size_t event_id_part(const char *s)
{
    size_t n = 0;

    while (isdigit((unsigned char)s[n])) {
        n++;
    }
    if (n > 20 || (n == 20 && strncmp(s, "18446744073709551615", 20) > 0)) {
        return 0;
    }
    return n;
}

int event_id_valid(const char *id)
{
    size_t ms = event_id_part(id), seq;

    if (ms == 0 || id[ms] != '-') {
        return 0;
    }
    seq = event_id_part(id + ms + 1);
    return seq > 0 && id[ms + 1 + seq] == '\0';
}

int64_t event_id_ms(const char *id)
{
    return event_id_valid(id) ? strtoll(id, NULL, 10) : -1;
}

int event_id_parse(const char *id, struct event_id *out)
{
    if (!event_id_valid(id)) {
        return -1;
    }
    out->ms = strtoull(id, NULL, 10);
    out->seq = strtoull(strchr(id, '-') + 1, NULL, 10);
    return 0;
}

int event_id_order(const struct event_id *a, const struct event_id *b)
{
    if (a->ms != b->ms) {
        return a->ms < b->ms ? -1 : 1;
    }
    return a->seq < b->seq ? -1 : a->seq > b->seq;
}

int event_id_cmp(const char *a, const char *b)
{
    struct event_id x = { 0, 0 }, y = { 0, 0 };

    event_id_parse(a, &x);
    event_id_parse(b, &y);
    return event_id_order(&x, &y);
}

void event_resume_id(const char *given, char *out)
{
    size_t n;

    out[0] = '\0';
    if (given == NULL) {
        return;
    }
    given += strspn(given, " \t");
    for (n = strlen(given); n > 0 && (given[n - 1] == ' ' || given[n - 1] == '\t'); n--) {
    }
    if (n == 0) {
        return;
    }
    if (n >= EVENT_ID_MAX) {
        snprintf(out, EVENT_ID_MAX, "0-0");
        return;
    }
    memcpy(out, given, n);
    out[n] = '\0';
    if (!event_id_valid(out)) {
        snprintf(out, EVENT_ID_MAX, "0-0");
    }
}
