/* ws.h - WebSocket connections: the upgrade and RFC 6455 on a bufferevent.
 *
 * GET /ws/chat/{room} is checked in the contract's order before anything
 * is upgraded (405, 426, 426, 400, 403, 401); then the connection is taken
 * from libevhtp and framed here (ws_frame.h does the pure parsing).  The
 * layer above (chat.h) gets whole text messages and sends text back; it
 * never sees frames, pings or close handshakes.
 *
 * Output is shared by reference where it can be (a frame encoded once per
 * worker goes to every subscriber), several pending frames go out in one
 * write, reading pauses while a client's output is backed up, and a client
 * whose backlog passes ws_max_backlog is closed with 1011. */
#ifndef PARLEY_WS_H
#define PARLEY_WS_H

#include <stddef.h>

#include "auth.h"
#include "chunk.h"
#include "conf.h"

struct ws_conn;

/* What the layer above provides.  on_open returns its per-connection state
 * (NULL refuses the connection with 1011); on_close is called exactly once
 * when the connection goes away, after which C must not be used.
 *
 * owes_replies says whether replies to the client's own requests are still
 * to come.  When the client's close frame arrives while they are, reading
 * stops and the echo of the close waits until the layer above calls
 * ws_replies_done (or redis_timeout, at least 2 s, has passed);
 * meanwhile replies (ws_send_text) still go out, room events do not. */
struct ws_handlers {
    /* RESUME: the id the client resumes from ("": none; event_resume_id). */
    void *(*on_open)(struct ws_conn *c, const struct auth_identity *who, const char *room,
                     const char *resume);
    /* Whether the message that has just come is to be read at all (the
     * rate limit), asked before it is inflated: a dropped message costs
     * nothing to decompress.  on_text follows only when it says yes. */
    int (*admit)(struct ws_conn *c, void *state);
    void (*on_text)(struct ws_conn *c, void *state, const char *text, size_t len);
    void (*on_close)(struct ws_conn *c, void *state);
    int (*owes_replies)(struct ws_conn *c, void *state);
};

struct event_base;

void ws_register(struct event_base *base, const struct conf *cfg, const struct ws_handlers *handlers);

/* A room event as every client of the worker gets it: its text frame, and
 * the compressed frame made when the first client that negotiated
 * permessage-deflate needs it (ws_deflate.h), both shared by reference. */
struct ws_event;

struct ws_event *ws_event_new(const char *text, size_t len);
void ws_event_free(void *ev);

/* Queues a room event (it may wait up to write_delay to share a write) /
 * a reply (compressed, or copied, for this client only, sent at once). */
void ws_send_event(struct ws_conn *c, struct ws_event *ev);
void ws_send_text(struct ws_conn *c, const char *text, size_t len);

/* The layer above has queued the last reply it owed C: a close that
 * waited for it is echoed now. */
void ws_replies_done(struct ws_conn *c);

/* Starts the closing handshake with CODE; REASON is sent (up to 123
 * bytes) and may be NULL. */
void ws_close(struct ws_conn *c, int code, const char *reason);

/* Graceful stop: starts the close (1001) of up to N open connections;
 * returns how many. */
int ws_close_some(int n);
int ws_count(void);

#endif
