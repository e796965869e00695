/* sse.h - Server-Sent Events room streams: GET /api/rooms/{room}/events.
 *
 * After authentication the connection is taken from libevhtp and written to
 * directly: "retry:" first, then every event of the room and every direct
 * message of the user, each encoded once per worker and shared by reference
 * between streams.  With Last-Event-ID (header or ?last_event_id=) the
 * stored events after that id are replayed first; live events that arrive
 * meanwhile are held and de-duplicated by id, so the seam has neither gap
 * nor duplicate.  An id that is unknown or older than the kept history gets
 * "event: reset".  A ": ping" comment every sse_heartbeat keeps proxies
 * from timing out; a client whose unsent backlog passes sse_max_backlog is
 * cut off. */
#ifndef PARLEY_SSE_H
#define PARLEY_SSE_H

#include "conf.h"

struct worker_env;


int sse_init(const struct worker_env *w);

/* Graceful stop: ends up to N room streams (clients reconnect elsewhere
 * and resume); returns how many. */
int sse_close_some(int n);

/* Open streams in this worker. */
int sse_count(void);

/* For the other event streams (sse_answer.c). */
struct bufferevent;
struct http_hold;

/* Answers the request HOLD waits for with the head of an event stream and
 * takes its connection over.  Returns the connection, or NULL for a HEAD
 * request: that gets the head alone and the connection ends once it is
 * written; no stream starts. */
struct bufferevent *sse_open(struct http_hold *hold);

/* A read callback: clients send nothing on an event stream. */
void sse_discard_input(struct bufferevent *bev, void *arg);

#endif
