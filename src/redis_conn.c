/* redis_conn.c - async Redis connection: connect, backoff, timeouts. */
#include "redis_conn.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/queue.h>
#include <time.h>

#include <event2/event.h>
#include <hiredis/async.h>

#include "clock.h"
#include "log.h"
#include "parley.h"

#define REDIS_BACKOFF_MIN_MS 100
#define REDIS_BACKOFF_MAX_MS 5000
#define REDIS_WATCHDOG_MS    100

struct redis_pending {
    struct redis_conn *rc;
    redis_reply_cb cb;
    void *arg;
    int64_t deadline_ms;
    TAILQ_ENTRY(redis_pending) link;
};

struct redis_conn {
    struct event_base *base;
    struct redis_url url;
    char name[32];
    int timeout_ms;
    redisAsyncContext *ac;      /* NULL while disconnected */
    int up;
    int64_t connect_deadline_ms;
    int backoff_ms;
    struct event *retry;
    struct event *watchdog;
    TAILQ_HEAD(, redis_pending) pending;    /* in the order replies arrive */
    redis_state_cb on_state;
    void *arg;
    struct redis_pending push;  /* pub/sub handler; hiredis holds it per channel */
    char error[128];
};

static void redis_conn_connect(struct redis_conn *rc);

static void redis_conn_schedule_retry(struct redis_conn *rc)
{
    struct timeval tv = { rc->backoff_ms / 1000, (rc->backoff_ms % 1000) * 1000 };

    evtimer_add(rc->retry, &tv);
    rc->backoff_ms = rc->backoff_ms * 2 > REDIS_BACKOFF_MAX_MS ? REDIS_BACKOFF_MAX_MS : rc->backoff_ms * 2;
}

static void redis_conn_set_error(struct redis_conn *rc, const char *why)
{
    snprintf(rc->error, sizeof(rc->error), "%s", why && why[0] ? why : "connection lost");
}

static void redis_conn_lost(struct redis_conn *rc)
{
    int was_up = rc->up;

    rc->ac = NULL;
    rc->up = 0;
    log_write(was_up ? LOG_LEVEL_WARN : LOG_LEVEL_DEBUG, 0,
              "event=redis_down conn=%s redis=%s reason=\"%s\" retry_ms=%d",
              rc->name, rc->url.text, rc->error, rc->backoff_ms);
    redis_conn_schedule_retry(rc);
    if (was_up && rc->on_state != NULL) {
        rc->on_state(rc, 0, rc->arg);
    }
}

static void redis_conn_on_disconnect(const redisAsyncContext *ac, int status)
{
    struct redis_conn *rc = ac->data;

    PL_UNUSED(status);
    if (rc != NULL) {
        redis_conn_set_error(rc, ac->errstr);
        redis_conn_lost(rc);
    }
}

/* AUTH and SELECT must succeed, or the connection is useless: drop it and
 * let the backoff retry (the operator sees why in the log). */
static void redis_conn_on_setup(redisReply *reply, void *arg)
{
    struct redis_conn *rc = arg;

    if (reply != NULL && reply->type == REDIS_REPLY_ERROR && rc->ac != NULL) {
        log_error(0, "event=redis_setup_failed conn=%s redis=%s reply=\"%.200s\"",
                  rc->name, rc->url.text, reply->str);
        redis_conn_set_error(rc, reply->str);
        redisAsyncFree(rc->ac);     /* deferred by hiredis until this callback returns */
    }
}

static void redis_conn_on_connect(const redisAsyncContext *ac, int status)
{
    struct redis_conn *rc = ac->data;

    if (rc == NULL) {
        return;
    }
    if (status != REDIS_OK) {
        /* hiredis frees the context after this callback. */
        redis_conn_set_error(rc, ac->errstr);
        redis_conn_lost(rc);
        return;
    }
    rc->up = 1;
    rc->backoff_ms = REDIS_BACKOFF_MIN_MS;
    rc->error[0] = '\0';
    if (rc->url.password[0] != '\0') {
        const char *argv[] = { "AUTH", rc->url.password };
        redis_conn_command(rc, redis_conn_on_setup, rc, 2, argv, NULL);
    }
    if (rc->url.db != 0) {
        char db[16];
        const char *argv[] = { "SELECT", db };
        snprintf(db, sizeof(db), "%d", rc->url.db);
        redis_conn_command(rc, redis_conn_on_setup, rc, 2, argv, NULL);
    }
    log_info("event=redis_up conn=%s redis=%s", rc->name, rc->url.text);
    if (rc->on_state != NULL) {
        rc->on_state(rc, 1, rc->arg);
    }
}

/* --- hiredis on the loop --------------------------------------------------
 * hiredis's own libevent adapter arms the socket's write event for every
 * command and disarms it once written: two epoll_ctl calls and a trip
 * through epoll_wait per command, most of what a publish costs in system
 * calls.  Here a command is written at the end of the loop pass that issued
 * it (one write for all of the pass's commands), and the write event is
 * armed only while the kernel cannot take everything (or while connecting).
 * The read event stays armed. */
struct redis_events {
    redisAsyncContext *ac;
    struct event *rev, *wev;
    struct event *flush;        /* made active: runs at the end of this pass */
};

/* The context whose buffered commands are being written by the flush:
 * what it still cannot write waits for the write event. */
static const redisAsyncContext *redis_flushing;

static void redis_ev_on_read(evutil_socket_t fd, short what, void *arg)
{
    PL_UNUSED(fd);
    PL_UNUSED(what);
    redisAsyncHandleRead(((struct redis_events *)arg)->ac);
}

static void redis_ev_on_write(evutil_socket_t fd, short what, void *arg)
{
    PL_UNUSED(fd);
    PL_UNUSED(what);
    redisAsyncHandleWrite(((struct redis_events *)arg)->ac);
}

static void redis_ev_on_flush(evutil_socket_t fd, short what, void *arg)
{
    redisAsyncContext *ac = ((struct redis_events *)arg)->ac;

    PL_UNUSED(fd);
    PL_UNUSED(what);
    redis_flushing = ac;
    redisAsyncHandleWrite(ac);      /* may free the context (and ARG) on an error */
    redis_flushing = NULL;
}

static void redis_ev_add_read(void *data)
{
    struct redis_events *e = data;

    if (!event_pending(e->rev, EV_READ, NULL)) {
        event_add(e->rev, NULL);
    }
}

static void redis_ev_del_read(void *data)
{
    event_del(((struct redis_events *)data)->rev);
}

static void redis_ev_add_write(void *data)
{
    struct redis_events *e = data;

    if (!(e->ac->c.flags & REDIS_CONNECTED) || redis_flushing == e->ac) {
        event_add(e->wev, NULL);
    } else if (!event_pending(e->flush, EV_TIMEOUT, NULL)) {
        event_active(e->flush, EV_TIMEOUT, 0);
    }
}

static void redis_ev_del_write(void *data)
{
    event_del(((struct redis_events *)data)->wev);
}

static void redis_ev_cleanup(void *data)
{
    struct redis_events *e = data;

    event_free(e->rev);
    event_free(e->wev);
    event_free(e->flush);
    free(e);
}

static int redis_ev_attach(redisAsyncContext *ac, struct event_base *base)
{
    struct redis_events *e = calloc(1, sizeof(*e));

    if (e == NULL) {
        return PL_ERR;
    }
    e->ac = ac;
    e->rev = event_new(base, ac->c.fd, EV_READ | EV_PERSIST, redis_ev_on_read, e);
    e->wev = event_new(base, ac->c.fd, EV_WRITE, redis_ev_on_write, e);
    e->flush = event_new(base, -1, 0, redis_ev_on_flush, e);
    if (e->rev == NULL || e->wev == NULL || e->flush == NULL) {
        redis_ev_cleanup(e);
        return PL_ERR;
    }
    ac->ev.data = e;
    ac->ev.addRead = redis_ev_add_read;
    ac->ev.delRead = redis_ev_del_read;
    ac->ev.addWrite = redis_ev_add_write;
    ac->ev.delWrite = redis_ev_del_write;
    ac->ev.cleanup = redis_ev_cleanup;
    event_add(e->rev, NULL);
    event_add(e->wev, NULL);        /* writable: the connection is made */
    return PL_OK;
}

static void redis_conn_connect(struct redis_conn *rc)
{
    redisAsyncContext *ac;

    ac = rc->url.path[0] ? redisAsyncConnectUnix(rc->url.path)
                         : redisAsyncConnect(rc->url.host, rc->url.port);
    if (ac == NULL || ac->err) {
        redis_conn_set_error(rc, ac ? ac->errstr : "out of memory");
        if (ac != NULL) {
            redisAsyncFree(ac);
        }
        rc->ac = NULL;
        redis_conn_lost(rc);
        return;
    }
    if (redis_ev_attach(ac, rc->base) != PL_OK) {
        redis_conn_set_error(rc, "out of memory");
        redisAsyncFree(ac);
        rc->ac = NULL;
        redis_conn_lost(rc);
        return;
    }
    ac->data = rc;
    rc->ac = ac;
    rc->connect_deadline_ms = clock_ms() + rc->timeout_ms;
    redisAsyncSetConnectCallback(ac, redis_conn_on_connect);
    redisAsyncSetDisconnectCallback(ac, redis_conn_on_disconnect);
}

static void redis_conn_on_retry(evutil_socket_t fd, short what, void *arg)
{
    PL_UNUSED(fd);
    PL_UNUSED(what);
    redis_conn_connect(arg);
}

/* Drops a connection that does not answer, so that nobody waits forever on
 * a Redis that is slow or gone without a FIN. */
static void redis_conn_on_watchdog(evutil_socket_t fd, short what, void *arg)
{
    struct redis_conn *rc = arg;
    struct redis_pending *head = TAILQ_FIRST(&rc->pending);
    int64_t now = clock_ms();

    PL_UNUSED(fd);
    PL_UNUSED(what);
    if (rc->ac == NULL) {
        return;
    }
    if ((!rc->up && now > rc->connect_deadline_ms) || (head != NULL && now > head->deadline_ms)) {
        redis_conn_set_error(rc, rc->up ? "command timed out" : "connect timed out");
        log_warn("event=redis_timeout conn=%s redis=%s reason=\"%s\"", rc->name, rc->url.text, rc->error);
        /* Runs every pending callback with NULL, then the disconnect callback
         * (only if it had connected; otherwise account for the loss here). */
        if (rc->up) {
            redisAsyncFree(rc->ac);
        } else {
            rc->ac->data = NULL;
            redisAsyncFree(rc->ac);
            redis_conn_lost(rc);
        }
    }
}

struct redis_conn *redis_conn_new(struct event_base *base, const struct redis_url *url,
                                  const char *name, int timeout_ms,
                                  redis_state_cb on_state, void *arg)
{
    struct redis_conn *rc = calloc(1, sizeof(*rc));
    struct timeval tick = { 0, REDIS_WATCHDOG_MS * 1000 };

    if (rc == NULL) {
        return NULL;
    }
    rc->base = base;
    rc->url = *url;
    snprintf(rc->name, sizeof(rc->name), "%s", name);
    rc->timeout_ms = timeout_ms;
    rc->backoff_ms = REDIS_BACKOFF_MIN_MS;
    rc->on_state = on_state;
    rc->arg = arg;
    TAILQ_INIT(&rc->pending);
    rc->retry = evtimer_new(base, redis_conn_on_retry, rc);
    rc->watchdog = event_new(base, -1, EV_PERSIST, redis_conn_on_watchdog, rc);
    event_add(rc->watchdog, &tick);
    redis_conn_connect(rc);
    return rc;
}

void redis_conn_free(struct redis_conn *rc)
{
    if (rc == NULL) {
        return;
    }
    rc->on_state = NULL;
    if (rc->ac != NULL) {
        rc->ac->data = NULL;
        redisAsyncFree(rc->ac);     /* pending callbacks run with NULL */
    }
    event_free(rc->retry);
    event_free(rc->watchdog);
    free(rc);
}

int redis_conn_is_up(const struct redis_conn *rc)
{
    return rc != NULL && rc->up;
}

const char *redis_conn_error(const struct redis_conn *rc)
{
    return rc->error;
}

static void redis_conn_on_reply(redisAsyncContext *ac, void *reply, void *privdata)
{
    struct redis_pending *p = privdata;

    PL_UNUSED(ac);
    TAILQ_REMOVE(&p->rc->pending, p, link);
    if (reply != NULL && ((redisReply *)reply)->type == REDIS_REPLY_ERROR && p->cb == NULL) {
        log_warn("event=redis_error conn=%s reply=\"%.200s\"", p->rc->name, ((redisReply *)reply)->str);
    }
    if (p->cb != NULL) {
        p->cb(reply, p->arg);
    }
    free(p);
}

int redis_conn_command(struct redis_conn *rc, redis_reply_cb cb, void *arg,
                       int argc, const char **argv, const size_t *lens)
{
    struct redis_pending *p;

    if (!rc->up) {
        return PL_ERR;
    }
    p = malloc(sizeof(*p));
    if (p == NULL) {
        return PL_ERR;
    }
    *p = (struct redis_pending){ rc, cb, arg, clock_ms() + rc->timeout_ms, { NULL, NULL } };
    TAILQ_INSERT_TAIL(&rc->pending, p, link);
    if (redisAsyncCommandArgv(rc->ac, redis_conn_on_reply, p, argc, argv, lens) != REDIS_OK) {
        TAILQ_REMOVE(&rc->pending, p, link);
        free(p);
        return PL_ERR;
    }
    return PL_OK;
}

static void redis_conn_on_push(redisAsyncContext *ac, void *reply, void *privdata)
{
    struct redis_pending *sub = privdata;

    PL_UNUSED(ac);
    sub->cb(reply, sub->arg);
}

int redis_conn_pubsub(struct redis_conn *rc, const char *verb, const char *channel,
                      redis_reply_cb cb, void *arg)
{
    const char *argv[] = { verb, channel };

    if (!rc->up) {
        return PL_ERR;
    }
    /* hiredis keeps this privdata for the life of each subscription, so it
     * lives in the connection; one handler serves every channel. */
    rc->push.rc = rc;
    rc->push.cb = cb;
    rc->push.arg = arg;
    return redisAsyncCommandArgv(rc->ac, redis_conn_on_push, &rc->push, 2, argv, NULL) == REDIS_OK
           ? PL_OK : PL_ERR;
}
