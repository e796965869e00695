/* redis_conn.h - one self-healing asynchronous Redis connection.
 *
 * Wraps a hiredis async context on a libevent loop; the commands issued in
 * one pass of the loop are written together at its end.
 * It connects by itself, authenticates and selects the database from the
 * URL, and when the connection fails or drops it reconnects from a timer
 * with exponential backoff (100 ms doubling to 5 s).  The owner hears every
 * change through its state callback, which is where it re-subscribes.
 *
 * Commands never hang and never queue while Redis is down: redis_conn_command
 * fails at once (and then its callback is never called).  A command that
 * gets no reply within the timeout drops the connection, so every pending
 * callback runs with a NULL reply and the reconnect starts.
 *
 * Free a connection only outside its own callbacks (at process exit). */
#ifndef PARLEY_REDIS_CONN_H
#define PARLEY_REDIS_CONN_H

#include <stddef.h>

#include <hiredis/hiredis.h>

#include "redis_url.h"

struct event_base;
struct redis_conn;

/* REPLY is NULL when the command did not complete (connection lost, timed
 * out).  hiredis frees the reply after the callback returns. */
typedef void (*redis_reply_cb)(redisReply *reply, void *arg);

/* UP is 1 when the connection has just become usable, 0 when it was lost. */
typedef void (*redis_state_cb)(struct redis_conn *rc, int up, void *arg);

struct redis_conn *redis_conn_new(struct event_base *base, const struct redis_url *url,
                                  const char *name, int timeout_ms,
                                  redis_state_cb on_state, void *arg);
void redis_conn_free(struct redis_conn *rc);

int redis_conn_is_up(const struct redis_conn *rc);

/* Sends ARGV (binary-safe, LENS may be NULL for C strings).  CB may be NULL.
 * Returns PL_OK, or PL_ERR when Redis is down (CB will not be called). */
int redis_conn_command(struct redis_conn *rc, redis_reply_cb cb, void *arg,
                       int argc, const char **argv, const size_t *lens);

/* Sends SUBSCRIBE or UNSUBSCRIBE for CHANNEL on a connection used only for
 * pub/sub.  CB receives every push for the channel (subscribe confirmation,
 * messages, unsubscribe confirmation) and a NULL reply when the connection
 * is lost.  Returns PL_OK, or PL_ERR when Redis is down. */
int redis_conn_pubsub(struct redis_conn *rc, const char *verb, const char *channel,
                      redis_reply_cb cb, void *arg);

/* The reason for the last failure, for logs ("" when none). */
const char *redis_conn_error(const struct redis_conn *rc);

#endif
