/* openai_proto.h - the OpenAI chat completions JSON, pure: the request's
 * body, what the answer's JSON says, and upstream text made fit to show.
 *
 * agent_http.c moves the bytes; this module knows what they mean (no
 * sockets, no state), so it is unit-tested on its own
 * (tests/test_openai_proto.c).  An answer is either a stream of
 * chat.completion.chunk events, each with choices[0].delta.content and at
 * the end a finish_reason, or one chat.completion with
 * choices[0].message.content; an error is {"error":{"message":"..."}} or
 * {"error":"..."}. */
#ifndef PARLEY_OPENAI_PROTO_H
#define PARLEY_OPENAI_PROTO_H

#include <stddef.h>

#include <json-c/json.h>

struct store_events;

/* The request's JSON (the caller puts it), or NULL without memory: MODEL,
 * "stream": true, then the messages: SYSTEM (unless ""), the room's last
 * messages CONTEXT (may be NULL; those from AGENT_NAME as the "assistant"'s
 * turns, the others' as "user" turns "from: content") and QUERY. */
json_object *openai_proto_request(const char *model, const char *system, const char *agent_name,
                                  const struct store_events *context, const char *query);

/* LEN bytes at S as one JSON object with nothing but white space after it
 * (the caller puts it), or NULL. */
json_object *openai_proto_parse(const char *s, size_t len);

/* The message of OBJ when it is an error object (OBJ may be NULL), else
 * NULL.  The text is OBJ's. */
const char *openai_proto_error(json_object *obj);

/* choices[0] of OBJ: 1 with *CHOICE set, 0 for an empty list (a usage
 * report), -1 when there is no list of objects. */
int openai_proto_choice(json_object *obj, json_object **choice);

/* CHOICE.PART.content, PART "delta" (streamed) or "message" (whole), with
 * its length in *LEN; NULL when there is none. */
const char *openai_proto_text(json_object *choice, const char *part, size_t *len);

/* Whether CHOICE has a finish_reason (the last piece of the answer). */
int openai_proto_finished(json_object *choice);

/* Makes the NUL-terminated MSG fit to show and to log, in place: KEY (if
 * not "") blanked out with '*', no quotes or control characters, valid
 * UTF-8 (a character cut at the end goes; other bad bytes make every
 * non-ASCII byte a '?'). */
void openai_proto_clean(char *msg, const char *key);

/* Replaces each non-ASCII byte of the LEN bytes at S by '?'. */
void openai_proto_ascii(char *s, size_t len);

#endif
