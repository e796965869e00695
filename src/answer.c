/* answer.c - an answer in progress, from the agent's chunks to its end. */
#include "answer.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/queue.h>
#include <sys/random.h>

#include <event2/buffer.h>
#include <event2/event.h>

#include "bus.h"
#include "clock.h"
#include "log.h"
#include "metrics.h"
#include "parley.h"
#include "store.h"
#include "worker_env.h"

struct answer {
    char rid[ANSWER_ID_LEN + 1];
    char room[ANSWER_SCOPE_MAX];    /* its scope */
    char context[PL_NAME_MAX + 1];  /* the room the agent reads for context, "" */
    char asker[PL_NAME_MAX + 1];
    char *query;                    /* until the agent is asked */
    int private;
    int64_t watched_ms;             /* a private answer: last known followed */
    struct event *linger_ev;        /* gives it up once nobody follows */
    struct agent_request *agent;    /* NULL once the agent has stopped */
    struct evbuffer *text;          /* chunks not stored yet */
    struct event *flush_ev;         /* stores them when agent_coalesce is up */
    int64_t stored_ms;              /* when a chunk was last stored; 0: never */
    int stored;                     /* chunk events stored */
    int pending;                    /* store calls that will come back */
    int ended;                      /* ended, here or elsewhere: store nothing more */
    struct bus_sub sub;             /* the room: an end from elsewhere stops the agent */
    answer_done_cb on_done;
    void *arg;
    LIST_ENTRY(answer) link;
};

/* A long answer's chunks are capped: past ANSWER_MANY_CHUNKS events, chunks
 * share an event at least ANSWER_MANY_WINDOW_MS apart, so that even a fast
 * upstream running to agent_total_timeout leaves a bounded number behind. */
#define ANSWER_MANY_CHUNKS 256
#define ANSWER_MANY_WINDOW_MS 250

static struct {
    const struct conf *cfg;
    struct event_base *base;
    LIST_HEAD(, answer) all;
} answers;

int answer_init(const struct worker_env *w)
{
    answers.cfg = w->cfg;
    answers.base = w->base;
    LIST_INIT(&answers.all);
    return PL_OK;
}

int answer_id_valid(const char *s)
{
    return strlen(s) == ANSWER_ID_LEN && strspn(s, "0123456789abcdef") == ANSWER_ID_LEN;
}

const char *answer_id(const struct answer *a)
{
    return a->rid;
}

const char *answer_private_scope(const char *asker, char *out)
{
    snprintf(out, ANSWER_SCOPE_MAX, "~%s", asker);
    return out;
}

static void answer_linger_arm(struct answer *a)
{
    int64_t left = a->watched_ms + answers.cfg->agent_linger_ms - clock_ms();
    struct timeval tv = { left > 0 ? left / 1000 : 0, left > 0 ? (left % 1000) * 1000 : 0 };

    event_add(a->linger_ev, &tv);
}

void answer_detach(struct answer *a)
{
    a->on_done = NULL;
    a->arg = NULL;
    if (a->private && !a->ended) {
        a->watched_ms = clock_ms();
        answer_linger_arm(a);
    }
}

/* Frees A once nothing refers to it any more. */
static void answer_release(struct answer *a)
{
    if (!a->ended || a->agent != NULL || a->pending > 0) {
        return;
    }
    bus_sub_remove(&a->sub);
    if (a->flush_ev != NULL) {
        event_free(a->flush_ev);
    }
    if (a->linger_ev != NULL) {
        event_free(a->linger_ev);
    }
    if (a->text != NULL) {
        evbuffer_free(a->text);
    }
    LIST_REMOVE(a, link);
    free(a);
}

/* The agent stops producing for A (ended elsewhere, or a store failed). */
static void answer_stop(struct answer *a)
{
    answer_done_cb done = a->on_done;

    a->ended = 1;
    if (a->flush_ev != NULL) {
        event_del(a->flush_ev);
    }
    if (a->linger_ev != NULL) {
        event_del(a->linger_ev);
    }
    if (a->agent != NULL) {
        agent_cancel(a->agent);
        a->agent = NULL;
        if (done != NULL) {
            a->on_done = NULL;
            done(AGENT_OK, "the answer was stopped", a->arg);
        }
    }
}

static void answer_on_stored(enum store_status st, const char *id, void *arg)
{
    struct answer *a = arg;

    PL_UNUSED(id);
    a->pending--;
    if (st == STORE_NOT_FOUND && !a->ended) {
        answer_stop(a);             /* cancelled, or given up as incomplete */
    } else if (st == STORE_UNAVAILABLE) {
        log_warn("event=answer_chunk_lost room=%s request_id=%s", a->room, a->rid);
    }
    answer_release(a);
}

static void answer_flush(struct answer *a)
{
    size_t len = evbuffer_get_length(a->text);

    event_del(a->flush_ev);
    if (len == 0 || a->ended) {
        return;
    }
    if (store_answer_chunk(a->room, a->rid, (const char *)evbuffer_pullup(a->text, -1), len,
                           answer_on_stored, a) == PL_OK) {
        a->pending++;
    } else {
        log_warn("event=answer_chunk_lost room=%s request_id=%s", a->room, a->rid);
    }
    evbuffer_drain(a->text, len);
    a->stored_ms = clock_ms();
    a->stored++;
}

static void answer_on_flush_due(evutil_socket_t fd, short what, void *arg)
{
    PL_UNUSED(fd);
    PL_UNUSED(what);
    answer_flush(arg);
}

static void answer_on_chunk(const char *text, size_t len, void *arg)
{
    struct answer *a = arg;
    int64_t since, window = answers.cfg->agent_coalesce_ms;

    if (a->ended || evbuffer_add(a->text, text, len) != 0) {
        return;
    }
    if (a->stored >= ANSWER_MANY_CHUNKS && window < ANSWER_MANY_WINDOW_MS) {
        window = ANSWER_MANY_WINDOW_MS;
    }
    since = clock_ms() - a->stored_ms;
    if (a->stored_ms == 0 || since >= window) {
        answer_flush(a);
    } else if (!event_pending(a->flush_ev, EV_TIMEOUT, NULL)) {
        int64_t wait = window - since;
        struct timeval tv = { wait / 1000, (wait % 1000) * 1000 };
        event_add(a->flush_ev, &tv);
    }
}

static void answer_on_ended(enum store_status st, const char *id, void *arg)
{
    struct answer *a = arg;

    PL_UNUSED(id);
    a->pending--;
    if (st == STORE_UNAVAILABLE) {
        /* Its chunks stay until this worker's answers are ended for it
         * (the bus does that when the worker goes). */
        log_warn("event=answer_end_failed room=%s request_id=%s", a->room, a->rid);
    }
    answer_release(a);
}

static void answer_on_agent_done(enum agent_status st, const char *message, void *arg)
{
    struct answer *a = arg;
    answer_done_cb done = a->on_done;

    a->agent = NULL;
    answer_flush(a);
    if (!a->ended) {
        a->ended = 1;
        if (store_answer_end(a->room, a->rid, st == AGENT_OK ? "complete" : "incomplete",
                             answer_on_ended, a) == PL_OK) {
            a->pending++;
        } else {
            log_warn("event=answer_end_failed room=%s request_id=%s", a->room, a->rid);
        }
    }
    if (done != NULL) {
        a->on_done = NULL;
        done(st, message, a->arg);
    }
    answer_release(a);
}

/* Nobody followed a private answer for agent_linger: give it up. */
static void answer_on_linger(evutil_socket_t fd, short what, void *arg)
{
    struct answer *a = arg;

    PL_UNUSED(fd);
    PL_UNUSED(what);
    if (a->ended || a->on_done != NULL) {
        return;
    }
    if (clock_ms() - a->watched_ms < answers.cfg->agent_linger_ms) {
        answer_linger_arm(a);       /* a follower said it watches meanwhile */
        return;
    }
    log_info("event=answer_abandoned scope=%s request_id=%s", a->room, a->rid);
    answer_stop(a);
    if (store_answer_end(a->room, a->rid, "incomplete", answer_on_ended, a) == PL_OK) {
        a->pending++;
    }
    answer_release(a);
}

/* Watches the scope for this answer's end published by someone else, and
 * for followers saying they watch it. */
static void answer_on_room_event(struct bus_sub *sub, struct bus_event *ev)
{
    struct answer *a = PL_CONTAINER_OF(sub, struct answer, sub);
    char needle[32 + ANSWER_ID_LEN];
    int done;

    if (a->ended || ((done = strcmp(ev->type, "ai_done") == 0) == 0 && strcmp(ev->type, "ai_watch") != 0)) {
        return;
    }
    snprintf(needle, sizeof(needle), "\"request_id\":\"%s\"", a->rid);
    if (strstr(ev->json, needle) == NULL) {
        return;
    }
    if (!done) {
        a->watched_ms = clock_ms();
        return;
    }
    answer_stop(a);
    answer_release(a);
}

static void answer_on_room_ready(struct bus_sub *sub)
{
    PL_UNUSED(sub);
}

/* Redis took the answer (or not): ask the agent. */
static void answer_on_started(enum store_status st, long long n, void *arg)
{
    struct answer *a = arg;
    answer_done_cb done = a->on_done;
    enum agent_status why = AGENT_UNAVAILABLE;
    const char *message = "the answer cannot be stored now; try again later";

    a->pending--;
    if (!a->ended && st == STORE_OK && n == 1) {
        a->agent = agent_ask(a->query, a->context[0] ? a->context : NULL, a->asker, answer_on_chunk,
                             answer_on_agent_done, a);
        if (a->agent == NULL) {
            why = AGENT_BUSY;
            message = "the agent is busy; try again shortly";
            if (store_answer_end(a->room, a->rid, "incomplete", answer_on_ended, a) == PL_OK) {
                a->pending++;
            }
        }
    } else if (!a->ended && st == STORE_OK) {
        why = n == 0 ? AGENT_BUSY : AGENT_FORBIDDEN;
        message = n == 0 ? "you have the most answers running at once; wait for one to end"
                         : "the session has ended";
        if (n == 0) {
            metrics_add(METRIC_AGENT_BUSY, 1);
        }
    }
    free(a->query);
    a->query = NULL;
    if (a->agent == NULL && !a->ended) {
        a->ended = 1;
        if (done != NULL) {
            a->on_done = NULL;
            done(why, message, a->arg);
        }
    }
    answer_release(a);
}

struct answer *answer_start(const char *scope, const char *room, const char *asker, const char *session,
                            const char *query, int private, answer_done_cb on_done, void *arg)
{
    struct answer *a;
    unsigned char r[ANSWER_ID_LEN / 2];
    char channel[256];

    if (!agent_has_room()) {
        metrics_add(METRIC_AGENT_BUSY, 1);
        return NULL;
    }
    if (!store_is_up() || (a = calloc(1, sizeof(*a))) == NULL) {
        return NULL;
    }
    if (getrandom(r, sizeof(r), 0) != (ssize_t)sizeof(r)) {
        free(a);
        return NULL;
    }
    for (size_t i = 0; i < sizeof(r); i++) {
        snprintf(a->rid + 2 * i, 3, "%02x", r[i]);
    }
    snprintf(a->room, sizeof(a->room), "%s", scope);
    snprintf(a->context, sizeof(a->context), "%s", room ? room : "");
    snprintf(a->asker, sizeof(a->asker), "%s", asker);
    a->private = private;
    a->query = strdup(query);
    a->text = evbuffer_new();
    a->flush_ev = evtimer_new(answers.base, answer_on_flush_due, a);
    a->linger_ev = evtimer_new(answers.base, answer_on_linger, a);
    a->sub.on_event = answer_on_room_event;
    a->sub.on_ready = answer_on_room_ready;
    a->on_done = on_done;
    a->arg = arg;
    LIST_INSERT_HEAD(&answers.all, a, link);
    if (a->query == NULL || a->text == NULL || a->flush_ev == NULL || a->linger_ev == NULL
        || store_room_channel(scope, channel, sizeof(channel)) == NULL || bus_sub_add(&a->sub, channel) != PL_OK
        || store_answer_start(scope, a->rid, asker, session, answer_on_started, a) != PL_OK) {
        free(a->query);
        a->ended = 1;
        a->on_done = NULL;
        answer_release(a);
        return NULL;
    }
    /* The agent is asked once Redis has the answer: its chunks and its
     * end are only ever stored after it. */
    a->pending++;
    return a;
}
