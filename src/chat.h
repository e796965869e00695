/* chat.h - the chat protocol over WebSocket (see docs/protocol.md).
 *
 * Each connection is one user in one room.  It is subscribed to the room's
 * channel and to the user's own channel (direct messages); once both are
 * confirmed the user joins the room's presence and gets
 * {"type":"welcome",...,"last_id":...}, and only then the live events, so
 * that the history up to last_id plus the live events miss nothing.
 * Client messages are validated field by field; a bad one gets an
 * {"type":"error",...} and the connection stays open. */
#ifndef PARLEY_CHAT_H
#define PARLEY_CHAT_H

#include "conf.h"

struct worker_env;

struct event_base;

int chat_init(const struct worker_env *w);

#endif
