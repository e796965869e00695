/* event.h - the chat events' JSON, built the same way everywhere.
 *
 * Events are the contract's JSON objects, always one line, always with
 * "type" first.  The live copy of a message is assembled by a Lua script
 * (scripts.c) with exactly the layout event_message() produces here from the
 * stored fields, so a message read from history is byte-identical to the one
 * delivered live.  Pure: bytes in, bytes out. */
#ifndef PARLEY_EVENT_H
#define PARLEY_EVENT_H

#include <stddef.h>
#include <stdint.h>

struct evbuffer;

/* Appends S (LEN bytes of UTF-8) as a JSON string body (no quotes). */
void event_escape(struct evbuffer *out, const char *s, size_t len);

/* {"type":"message","id":ID,"room":ROOM,"from":FROM,"content":CONTENT,"ts":TS} */
void event_message(struct evbuffer *out, const char *id, const char *room, const char *from,
                   const char *content, size_t content_len, int64_t ts);

/* The agent's answer as a message: event_message's, then
 * ,"request_id":REQUEST_ID and, unless STATUS is NULL (complete),
 * ,"status":STATUS ("incomplete", "cancelled"). */
void event_answer(struct evbuffer *out, const char *id, const char *room, const char *from,
                  const char *content, size_t content_len, int64_t ts, const char *request_id,
                  const char *status);

/* {"type":"ai_chunk","id":ID,"request_id":REQUEST_ID,"asker":ASKER,
 * "content":CONTENT} (content last: sse_answer.c relies on it) */
void event_ai_chunk(struct evbuffer *out, const char *id, const char *request_id, const char *asker,
                    const char *content, size_t content_len);

/* The parts of a message the publish script puts around "from" (which it
 * may learn from the session): "room":ROOM to BEFORE and ,"content":CONTENT
 * to AFTER. */
void event_message_split(struct evbuffer *before, struct evbuffer *after, const char *room,
                         const char *content, size_t content_len);

/* {"type":"presence","event":"join"|"leave","user":USER,"room":ROOM} */
void event_presence(struct evbuffer *out, int join, const char *user, const char *room);

/* {"type":"typing","user":USER,"room":ROOM} */
void event_typing(struct evbuffer *out, const char *user, const char *room);

/* {"type":"direct","id":ID,"from":FROM,"to":TO,"content":CONTENT,"ts":TS} */
void event_direct(struct evbuffer *out, const char *id, const char *from, const char *to,
                  const char *content, size_t content_len, int64_t ts);

/* Prepends the pub/sub routing header "TYPE ID USER\n" ("-" for empty). */
void event_header(struct evbuffer *out, const char *type, const char *id, const char *user);

/* The millisecond part of a stream id "<ms>-<seq>", or -1 if malformed. */
int64_t event_id_ms(const char *id);

/* The id a client resumes from, as it gave it (Last-Event-ID, or the
 * last_event_id parameter): blanks around it trimmed, "" when it gave
 * none, and "0-0" for a malformed one - never in a stream, so resuming
 * from it answers with a reset.  OUT holds EVENT_ID_MAX bytes. */
void event_resume_id(const char *given, char *out);

/* Non-zero when ID is a well-formed stream id "<ms>-<seq>". */
int event_id_valid(const char *id);

/* Room for a stream id ("<ms>-<seq>", two 64-bit numbers) and its NUL. */
#define EVENT_ID_MAX 42

/* A stream id parsed once, for comparisons on hot paths. */
struct event_id {
    uint64_t ms;
    uint64_t seq;
};

/* Parses "<ms>-<seq>" into OUT.  Returns 0, or -1 when malformed. */
int event_id_parse(const char *id, struct event_id *out);

/* Orders parsed ids: <0, 0, >0. */
int event_id_order(const struct event_id *a, const struct event_id *b);

/* Compares stream ids numerically: <0, 0, >0. */
int event_id_cmp(const char *a, const char *b);

#endif
