/* scripts.h - the Lua scripts that keep parley's Redis data consistent.
 *
 * Each script runs atomically in Redis, so a message is stored and published
 * in one step and presence counts never go wrong under concurrency.  Calls
 * use EVALSHA and fall back to EVAL when Redis has not seen the script yet
 * (after a restart or SCRIPT FLUSH).
 *
 * Messages published on room and user channels carry a one-line header,
 * "TYPE ID USER\n" ("-" for none), before the event JSON, so that workers
 * route them without parsing JSON.  docs/redis.md describes the format. */
#ifndef PARLEY_SCRIPTS_H
#define PARLEY_SCRIPTS_H

#include "redis_conn.h"

enum script_id {
    /* KEYS: the room's stream.  ARGV: prefix, maxlen, the room's channel,
     * the sender ("": the session's user), the sender's session token ("":
     * none to check), content, the event's JSON before and after "from"
     * ("room":.. and ,"content":..), client_msg_id or "", its ttl, rate
     * (per second, 0: no limit), burst, room ttl (s, 0: none), the names a
     * session may not publish as (" a b ", lower case).  Returns {id, 1}
     * when stored, {first id, 0} for a repeated id, {"", -ms} when the
     * sender's bucket is empty (ms until the next token), {"", "unknown"}
     * for a session that is not there (or not the sender's), {user,
     * "reserved"} for a session whose name is reserved.  The session is
     * checked in the same round trip, so a revoked one stops publishing at
     * once.  Storing renews the room's lifetime. */
    SCRIPT_PUBLISH_MESSAGE,
    /* KEYS: members, instance presence.  ARGV: user, owner field
     * ("RUN.PID|ROOM|USER": the master's run_id, the worker), "in" or
     * "out", channel, event.  Makes the owner
     * field exist ("in") or not ("out"), counting the user up or down once
     * when it changes - so repeating it is harmless; publishes EVENT when
     * the user's count goes 0 -> 1 (join) or 1 -> 0 (leave). */
    SCRIPT_PRESENCE,
    /* KEYS: instance presence.  ARGV: prefix, field prefix ("RUN.PID|",
     * or "" for all), and "others" to take back the fields that do NOT
     * start with it instead.  Takes back that presence and publishes
     * leaves. */
    SCRIPT_RELEASE,
    /* KEYS: instances set.  ARGV: prefix, own instance id.  Releases the
     * presence of every instance whose heartbeat key has expired. */
    SCRIPT_REAP,
    /* KEYS: instance presence, instances set, instance heartbeat.  ARGV:
     * prefix, instance id.  A graceful stop: releases all of the instance's
     * presence and forgets the instance, all or nothing. */
    SCRIPT_RETIRE,
    /* KEYS: bucket.  ARGV: rate (per second), burst.  Takes a token:
     * returns 0, or the ms until one is there. */
    SCRIPT_RATE,
    /* KEYS: session, the user's session index, the address's sign-in
     * bucket.  ARGV: token, user, ttl (s), mode ("key" or "open"), client
     * address, sign-ins per minute per address (0: no limit), the user's
     * channel, most sessions per user.  Returns {1, expires_at ms} when
     * made, {0, ms to wait} when the address is over its limit, {-1, 0}
     * when an open sign-in finds the name held (a live session, or a
     * connection on any host).  Past the per-user maximum the session that
     * ends first is revoked. */
    SCRIPT_SESSION_CREATE,
    /* ARGV: prefix, token.  Deletes the session, takes it out of its
     * user's index and publishes "revoked" on the user's channel.
     * Returns 1, or 0 when there was no such session. */
    SCRIPT_SESSION_REVOKE,
    /* KEYS: ticket.  ARGV: user, session token or "", expires (s), ttl
     * (ms).  Makes a ticket that stands for that identity for TTL. */
    SCRIPT_TICKET_CREATE,
    /* KEYS: ticket.  ARGV: prefix.  Uses the ticket up: returns {user,
     * session, expires}, or nil when there is none or its session has
     * been revoked meanwhile. */
    SCRIPT_TICKET_REDEEM,
    /* KEYS: log, answers, gone.  ARGV: last id, or "" for a fresh join.
     * Returns {0, oldest, chunks, newest} when LAST is neither in the
     * stream nor among the chunks of an ended answer, else {1, oldest,
     * entries, newest}: the entries after LAST; CHUNKS (and the entries of
     * a fresh join) are the chunks so far of the answers in progress. */
    SCRIPT_RESUME,
    /* KEYS: log.  ARGV: lower bound, upper bound (XRANGE syntax), count,
     * "1" to read backwards (newest COUNT), "1" to include answer chunks.
     * Returns up to COUNT entries, in the order read. */
    SCRIPT_HISTORY,
    /* ARGV: prefix, room, request id, asker, agent name, maxlen, room ttl,
     * instance id, owner ("RUN.PID"), the asker's session token ("": a
     * JWT), the most answers a user may have running (0: no limit), how
     * long one can run at most (ms).  Registers an answer in progress:
     * returns {the id no chunk of it is older than, "ok"}, {"", "unknown"}
     * when the session is gone, {"", "busy"} when the asker has the most
     * running already. */
    SCRIPT_ANSWER_START,
    /* ARGV: prefix, room, request id, content, agent name, content as a
     * JSON string body.  Stores and publishes one chunk; returns its id, or
     * nil when the answer has ended (cancelled, its producer given up). */
    SCRIPT_ANSWER_CHUNK,
    /* ARGV: prefix, room, request id, status ("complete", "incomplete").
     * Ends the answer: returns the stored message's id, "" when it had no
     * text, nil when it had already ended. */
    SCRIPT_ANSWER_END,
    /* ARGV: prefix, room, request id, user.  Ends the answer as
     * "cancelled" if USER asked it: 1; -1 when someone else did; 0 when
     * there is no such answer in progress. */
    SCRIPT_ANSWER_CANCEL,
    SCRIPT_COUNT
};

/* Computes the scripts' SHA1s; call once per process. */
void scripts_init(void);

/* Loads every script into Redis (SCRIPT LOAD); call when a connection comes
 * up, so that EVALSHA works from the first command and commands queued
 * behind a script keep their order (a NOSCRIPT retry would overtake them). */
void scripts_load(struct redis_conn *rc);

/* Loads (FUNCTION LOAD REPLACE) the operators' functions for keys under
 * PREFIX: <lib>_revoke_user and <lib>_revoke_session, where <lib> is what
 * scripts_library_name makes of PREFIX ("parley:" gives "parley"). */
void scripts_load_library(struct redis_conn *rc, const char *prefix);
void scripts_library_name(const char *prefix, char *out, size_t outlen);

/* Runs script ID with NKEYS keys then the rest of ARGV (ARGC entries in
 * all).  Same contract as redis_conn_command. */
int script_run(struct redis_conn *rc, enum script_id id, redis_reply_cb cb, void *arg,
               int nkeys, int argc, const char **argv, const size_t *lens);

#endif
