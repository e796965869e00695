/* store.h - parley's data in Redis, from a worker: sessions, room history,
 * publishing, presence.
 *
 * Each worker has one command connection (redis_conn.h).  Every call either
 * returns PL_ERR at once (Redis is down: answer redis_unavailable) or calls
 * its callback exactly once, with STORE_UNAVAILABLE if the connection was
 * lost or timed out meanwhile.  Key layout: names.h and docs/redis.md. */
#ifndef PARLEY_STORE_H
#define PARLEY_STORE_H

#include <stddef.h>
#include <stdint.h>

#include "event.h"
#include "conf.h"

struct worker_env;

struct event_base;

enum store_status {
    STORE_OK,
    STORE_NOT_FOUND,            /* unknown or expired session; unknown resume id */
    STORE_UNAVAILABLE,          /* Redis down, slow or answering errors */
    STORE_LIMITED,              /* the sender is over its rate limit */
    STORE_TAKEN,                /* an open sign-in's name is held by someone */
    STORE_RESERVED,             /* a session's name is reserved */
};

/* One stored event read back from a room's stream: a message, or a chunk
 * of an answer in progress. */
struct store_event {
    char type[16];              /* "message" or "ai_chunk" */
    char id[EVENT_ID_MAX];
    char *json;                 /* the event, as delivered live */
    size_t len;
};

struct store_events {
    struct store_event *items;  /* oldest first */
    int count;
    char oldest[EVENT_ID_MAX];  /* the oldest id still kept (resume only) */
    char newest[EVENT_ID_MAX];  /* the newest id when read (resume only; "": none) */
};

typedef void (*store_token_cb)(enum store_status st, const char *token, void *arg);
/* DETAIL: 1 when stored, 0 for a repeated client_msg_id; with
 * STORE_LIMITED, the milliseconds until the sender may publish again. */
typedef void (*store_publish_cb)(enum store_status st, const char *id, long detail, void *arg);
typedef void (*store_events_cb)(enum store_status st, const struct store_events *evs, void *arg);
typedef void (*store_count_cb)(enum store_status st, long long n, void *arg);
typedef void (*store_names_cb)(enum store_status st, const char *const *names, int n, void *arg);

int store_init(const struct worker_env *w);
void store_shutdown(void);
int store_is_up(void);

/* A session to make: for USER, ending TTL_S seconds from now.  OPEN is an
 * open sign-in: the name must be free, and ADDR (the client's address, also
 * kept in the session) is held to session_rate_limit. */
struct store_session {
    const char *user;
    int ttl_s;
    int open;
    const char *addr;
    const char *limit_key;      /* what the sign-in limit counts ADDR under */
};

/* Makes the session (parley:session:<token>, indexed under the user).  CB
 * gets the token with STORE_OK, and DETAIL: when it ends (ms since the
 * epoch); with STORE_LIMITED the ms to wait; or STORE_TAKEN. */
typedef void (*store_session_cb)(enum store_status st, const char *token, long long detail, void *arg);
int store_session_create(const struct store_session *s, store_session_cb cb, void *arg);

/* Finds the user of a session token, and when the session ends (seconds
 * since the epoch, 0 if unknown); STORE_NOT_FOUND for none. */
typedef void (*store_lookup_cb)(enum store_status st, const char *user, int64_t expires, void *arg);
int store_session_lookup(const char *token, store_lookup_cb cb, void *arg);

/* Makes a single-use ticket (TOKEN_SESSION_LEN characters, like a session
 * token) standing for USER - signed in with session SESSION ("" for a JWT),
 * until EXPIRES (s) - for TTL_MS; CB gets it with STORE_OK. */
int store_ticket_create(const char *user, const char *session, int64_t expires, int ttl_ms,
                        store_token_cb cb, void *arg);

/* Uses ticket TICKET up: CB gets the identity it stood for, or
 * STORE_NOT_FOUND (unknown, used, expired, or its session revoked). */
typedef void (*store_ticket_cb)(enum store_status st, const char *user, const char *session,
                                int64_t expires, void *arg);
int store_ticket_redeem(const char *ticket, store_ticket_cb cb, void *arg);

/* Revokes session TOKEN (its open connections close): CB's N is 1, or 0
 * when there was none. */
int store_session_revoke(const char *token, store_count_cb cb, void *arg);

/* Whether session TOKEN still exists: CB's N is 1 or 0. */
int store_session_exists(const char *token, store_count_cb cb, void *arg);

/* Counts a sign-in attempt of an address (its netaddr_limit_key) against
 * session_rate_limit: CB's N is 0 when allowed, else the ms until the
 * next one is. */
int store_signin_take(const char *limit_key, store_count_cb cb, void *arg);

/* Counts one message of USER against rate_limit/rate_burst, in the same
 * bucket as HTTP publishing: CB's N is 0 when allowed, else the ms until
 * the next one is. */
int store_user_take(const char *user, store_count_cb cb, void *arg);

/* A message to store and publish. */
struct store_message {
    const char *room;
    const char *from;           /* the sender; NULL: the user of SESSION */
    const char *session;        /* the sender's session token, checked in the
                                 * same round trip (NULL: none, a JWT) */
    const char *reserved;       /* with SESSION and no FROM: the names its user
                                 * may not have (auth_reserved_names()) */
    const char *content;
    size_t len;
    const char *cmid;           /* client_msg_id, NULL: none */
    int limited;                /* hold FROM to rate_limit/rate_burst across all
                                 * workers and hosts (HTTP publishing; WebSocket
                                 * connections have their own buckets) */
};

/* Stores and publishes message M (idempotent on its cmid).  With a
 * session, CB gets STORE_NOT_FOUND when it is gone (revoked, expired) or
 * not FROM's, and STORE_RESERVED with its user's name as ID when that name
 * is one of M's reserved; nothing is stored then. */
int store_message_publish(const struct store_message *m, store_publish_cb cb, void *arg);

/* Reads up to LIMIT messages of ROOM strictly after AFTER and/or strictly
 * before BEFORE (either may be NULL), oldest first; without AFTER, the
 * newest ones before BEFORE.  With CHUNKS, the chunks of answers in
 * progress count as events too (catching up); without, they are skipped. */
int store_history(const char *room, const char *after, const char *before, int limit, int chunks,
                  store_events_cb cb, void *arg);

/* Everything after LAST in ROOM, for resuming; STORE_NOT_FOUND (with
 * evs->oldest set) when LAST is unknown or older than the kept history.
 * LAST NULL: a fresh join.  A fresh join and an unknown LAST get the chunks
 * so far of the answers in progress.  Either way evs->newest is the cut:
 * the newest id at the time. */
int store_history_resume(const char *room, const char *last, store_events_cb cb, void *arg);

/* Answers in progress (answer.h), each a chunk at a time in its room's
 * stream.  ASKER (with SESSION, NULL for a JWT) asked request RID in ROOM;
 * this worker produces it.  CB's N: 1 registered, 0 the asker has
 * agent_max_per_user running, -1 the session is gone. */
int store_answer_start(const char *room, const char *rid, const char *asker, const char *session,
                       store_count_cb cb, void *arg);
/* Stores and publishes a chunk: CB gets its id, or STORE_NOT_FOUND when the
 * answer has ended meanwhile (cancelled, given up). */
int store_answer_chunk(const char *room, const char *rid, const char *text, size_t len,
                       store_token_cb cb, void *arg);
/* Ends the answer with STATUS ("complete", "incomplete"): CB gets the
 * stored message's id ("" when it had no text), or STORE_NOT_FOUND when it
 * had already ended. */
int store_answer_end(const char *room, const char *rid, const char *status, store_token_cb cb, void *arg);
/* Whether answer RID is in progress in SCOPE: CB's N is 1 or 0. */
int store_answer_exists(const char *scope, const char *rid, store_count_cb cb, void *arg);
/* USER stops answer RID: CB's N is 1 (cancelled), -1 (USER did not ask it)
 * or 0 (no such answer in progress). */
int store_answer_cancel(const char *room, const char *rid, const char *user, store_count_cb cb, void *arg);

/* The newest id of ROOM's stream ("" when empty). */
int store_last_id(const char *room, store_token_cb cb, void *arg);

/* Publishes a live-only event (PAYLOAD has the routing header) on CHANNEL;
 * CB (may be NULL) gets the number of hosts that received it. */
int store_publish_live(const char *channel, const char *payload, size_t len,
                       store_count_cb cb, void *arg);

/* Makes Redis count USER in ROOM for this worker (once, however many of
 * its connections) if PRESENT, not if not; repeating it changes nothing, so
 * it also puts things right after Redis lost data or missed a change.  The
 * first worker on any host to count a user in publishes "join", the last to
 * count it out "leave".  CB (may be NULL) learns whether Redis took it. */
int store_presence(const char *room, const char *user, int present, store_count_cb cb, void *arg);

/* CB runs each time this worker's Redis connection comes up (again). */
void store_on_up(void (*cb)(void));

/* The users present in ROOM. */
int store_members(const char *room, store_names_cb cb, void *arg);

/* Builds "<prefix>room:<room>" (or user:) into OUT. */
const char *store_room_channel(const char *room, char *out, size_t outlen);
const char *store_user_channel(const char *user, char *out, size_t outlen);

#endif
