/* sse_answer.c - an agent answer followed as an event stream. */
#include "sse_answer.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/event.h>

#include "accept.h"
#include "answer.h"
#include "auth.h"
#include "bus.h"
#include "clock.h"
#include "event.h"
#include "http.h"
#include "http_head.h"
#include "metrics.h"
#include "parley.h"
#include "sse.h"
#include "store.h"
#include "utf8.h"
#include "worker_env.h"

#define SSA_WATCH_MIN_MS 100    /* a resumed stream says it watches at most this often */

struct sse_answer {
    struct bufferevent *bev;        /* once the head is written */
    struct http_hold *hold;         /* until then */
    struct answer *answer;          /* this stream asked it, while the agent works */
    struct bus_sub sub;             /* the asker's private scope */
    struct bus_held held;           /* live events while the past is read */
    struct event *timer;            /* the deadline to get going, then ai_watch */
    struct event_id last;           /* the newest chunk written (0-0: none) */
    int live;                       /* past the replay: events are written as they come */
    int ended;                      /* the end is written */
    int closed;
    int pending;                    /* store calls that hold a pointer to it */
    char fail_code[24];             /* why the agent failed, told at the end */
    char fail_message[512];         /* the agent caps its messages well below */
    char user[PL_NAME_MAX + 1];
    char session[TOKEN_SESSION_LEN + 1];    /* the asker's, "" for a JWT */
    char scope[ANSWER_SCOPE_MAX];
    char room[PL_NAME_MAX + 1];     /* the agent's context, "" for none */
    char rid[ANSWER_ID_LEN + 1];    /* "" until asked */
    char after[EVENT_ID_MAX];       /* resuming: the chunk the client had last */
    char query[];                   /* a new question, 1..max_content bytes */
};

static struct {
    const struct conf *cfg;
} ssa;

static void ssa_free(struct sse_answer *a)
{
    bus_held_clear(&a->held);
    free(a);
}

static void ssa_close(struct sse_answer *a)
{
    if (a->closed) {
        return;
    }
    a->closed = 1;
    if (a->answer != NULL) {
        answer_detach(a->answer);   /* it lingers for the asker to come back */
        a->answer = NULL;
    }
    bus_sub_remove(&a->sub);
    if (a->timer != NULL) {
        event_free(a->timer);
    }
    if (a->bev != NULL) {
        bufferevent_free(a->bev);
        accept_conn_add(METRIC_CONN_SSE, -1);
    }
    if (a->pending == 0) {
        ssa_free(a);
    }
}

/* A store call for A came back: 0 when A is gone (then freed). */
static int ssa_unpin(struct sse_answer *a)
{
    if (--a->pending == 0 && a->closed) {
        ssa_free(a);
        return 0;
    }
    return !a->closed;
}

static void ssa_on_written(struct bufferevent *bev, void *arg)
{
    PL_UNUSED(bev);
    ssa_close(arg);
}

static void ssa_on_conn_event(struct bufferevent *bev, short what, void *arg)
{
    PL_UNUSED(bev);
    PL_UNUSED(what);
    ssa_close(arg);
}

static void ssa_fail(struct sse_answer *a, const char *code, const char *message)
{
    snprintf(a->fail_code, sizeof(a->fail_code), "%s", code);
    snprintf(a->fail_message, sizeof(a->fail_message), "%s", message);
}

/* Writes the end for STATUS and ends the response once it is out. */
static void ssa_end(struct sse_answer *a, const char *status)
{
    struct evbuffer *out = bufferevent_get_output(a->bev);
    long long now = (long long)clock_wall_ms();

    if (strcmp(status, "complete") == 0) {
        evbuffer_add_printf(out, "event: ai_done\ndata: {\"content\":\"\",\"done\":true,\"timestamp\":%lld}\n\n", now);
    } else if (strcmp(status, "cancelled") == 0) {
        evbuffer_add_printf(out, "event: ai_done\ndata: {\"content\":\"\",\"done\":true,\"status\":\"cancelled\","
                                 "\"timestamp\":%lld}\n\n", now);
    } else {
        const char *why = a->fail_message[0] ? a->fail_message : "the answer ended before it was complete";

        evbuffer_add_printf(out, "event: error\ndata: {\"type\":\"error\",\"code\":\"%s\",\"message\":\"",
                            a->fail_code[0] ? a->fail_code : "agent_unavailable");
        event_escape(out, why, strlen(why));
        evbuffer_add(out, "\"}\n\n", 4);
    }
    a->ended = 1;
    bus_sub_remove(&a->sub);
    event_del(a->timer);
    bufferevent_setcb(a->bev, NULL, ssa_on_written, ssa_on_conn_event, a);
    bufferevent_setwatermark(a->bev, EV_WRITE, 0, 0);
}

/* One event of the scope, stored or live (JSON: LEN bytes and a NUL):
 * what it says of this answer.  The layouts are event.h's (the scripts
 * build the same bytes). */
static void ssa_event(struct sse_answer *a, const char *type, const char *id, const char *json, size_t len)
{
    char needle[32 + ANSWER_ID_LEN], status[16] = "complete";
    const char *p;

    snprintf(needle, sizeof(needle), "\"request_id\":\"%s\"", a->rid);
    if (a->ended || a->rid[0] == '\0' || strstr(json, needle) == NULL) {
        return;
    }
    if (strcmp(type, "ai_chunk") == 0) {
        struct event_id sid;
        struct evbuffer *out = bufferevent_get_output(a->bev);

        /* ..."content":"<escaped>"} is the chunk's last field. */
        if (event_id_parse(id, &sid) != 0 || event_id_order(&sid, &a->last) <= 0
            || (p = strstr(json, "\"content\":\"")) == NULL || len < 2) {
            return;
        }
        a->last = sid;
        p += 11;
        evbuffer_add_printf(out, "id: %s/%s\nevent: ai_chunk\ndata: {\"content\":\"", a->rid, id);
        evbuffer_add(out, p, (size_t)(json + len - 2 - p));
        evbuffer_add_printf(out, "\",\"done\":false,\"timestamp\":%lld,\"request_id\":\"%s\"}\n\n",
                            (long long)event_id_ms(id), a->rid);
        metrics_add(METRIC_MESSAGES_OUT, 1);
    } else if (strcmp(type, "ai_done") == 0 || strcmp(type, "message") == 0) {
        /* ai_done live; the stored message when the end came before. */
        if ((p = strstr(json, "\"status\":\"")) != NULL) {
            p += 10;
            snprintf(status, sizeof(status), "%.*s", (int)strcspn(p, "\""), p);
        }
        ssa_end(a, status);
    }
}

static void ssa_watch(struct sse_answer *a)
{
    char channel[256], payload[128];
    int n = snprintf(payload, sizeof(payload), "ai_watch - %s\n{\"type\":\"ai_watch\",\"request_id\":\"%s\"}",
                     a->user, a->rid);

    if (store_room_channel(a->scope, channel, sizeof(channel)) != NULL) {
        store_publish_live(channel, payload, (size_t)n, NULL, NULL);
    }
}

static void ssa_on_timer(evutil_socket_t fd, short what, void *arg)
{
    struct sse_answer *a = arg;
    int every = ssa.cfg->agent_linger_ms / 3;
    struct timeval tv = { 0, 0 };

    PL_UNUSED(fd);
    PL_UNUSED(what);
    if (!a->live) {
        ssa_fail(a, "redis_unavailable", "the answer cannot be followed now; try again later");
        ssa_end(a, "incomplete");
        return;
    }
    /* A resumed stream: keep its answer from being given up. */
    ssa_watch(a);
    every = every < SSA_WATCH_MIN_MS ? SSA_WATCH_MIN_MS : every;
    tv.tv_sec = every / 1000;
    tv.tv_usec = (every % 1000) * 1000;
    event_add(a->timer, &tv);
}

/* The past is written: the events held meanwhile, then live. */
static void ssa_go_live(struct sse_answer *a)
{
    for (int i = 0; i < a->held.n && !a->ended; i++) {
        struct bus_event *ev = a->held.ev[i];
        ssa_event(a, ev->type, ev->id, ev->json, ev->json_len);
    }
    bus_held_clear(&a->held);
    a->live = 1;
    event_del(a->timer);
}

static void ssa_on_exists(enum store_status st, long long n, void *arg)
{
    struct sse_answer *a = arg;

    if (!ssa_unpin(a) || a->ended) {
        return;
    }
    if (st != STORE_OK) {
        ssa_fail(a, "redis_unavailable", "the answer cannot be followed now; try again later");
        ssa_end(a, "incomplete");
    } else if (n == 0) {
        ssa_fail(a, "not_found", "that answer is no longer available");
        ssa_end(a, "incomplete");
    } else if (ssa.cfg->agent_linger_ms > 0) {
        event_active(a->timer, EV_TIMEOUT, 0);     /* ai_watch now, then now and then */
    }
}

static void ssa_on_ready(struct bus_sub *sub);

static void ssa_on_replay(enum store_status st, const struct store_events *evs, void *arg)
{
    struct sse_answer *a = arg;

    if (!ssa_unpin(a)) {
        return;
    }
    if (st != STORE_OK) {
        ssa_fail(a, "redis_unavailable", "the answer cannot be followed now; try again later");
        ssa_end(a, "incomplete");
        return;
    }
    for (int i = 0; i < evs->count && !a->ended; i++) {
        ssa_event(a, evs->items[i].type, evs->items[i].id, evs->items[i].json, evs->items[i].len);
    }
    if (!a->ended && evs->count >= ssa.cfg->history_length) {
        /* A full page: there may be more of it. */
        snprintf(a->after, sizeof(a->after), "%s", evs->items[evs->count - 1].id);
        ssa_on_ready(&a->sub);
        return;
    }
    if (!a->ended) {
        ssa_go_live(a);
    }
    /* Still going, or gone (expired, never was)?  Its end, if it comes
     * later, arrives live. */
    if (!a->ended) {
        if (store_answer_exists(a->scope, a->rid, ssa_on_exists, a) == PL_OK) {
            a->pending++;
        } else {
            ssa_fail(a, "redis_unavailable", "the answer cannot be followed now; try again later");
            ssa_end(a, "incomplete");
        }
    }
}

static void ssa_on_agent_done(enum agent_status st, const char *message, void *arg)
{
    struct sse_answer *a = arg;

    a->answer = NULL;
    if (st != AGENT_OK) {
        ssa_fail(a, agent_error_code(st), message);
    }
    if (st == AGENT_BUSY || st == AGENT_FORBIDDEN) {
        ssa_end(a, "incomplete");       /* never registered: no end will come */
    }
}

static void ssa_on_bus_event(struct bus_sub *sub, struct bus_event *ev)
{
    struct sse_answer *a = PL_CONTAINER_OF(sub, struct sse_answer, sub);

    if (a->live) {
        ssa_event(a, ev->type, ev->id, ev->json, ev->json_len);
    } else if (bus_held_push(&a->held, ev) != PL_OK) {
        ssa_fail(a, "unavailable", "out of memory");
        ssa_end(a, "incomplete");
    }
}

/* Subscribed to the scope: nothing of the answer can be missed from here
 * on.  Ask, or read what came after the client's last chunk. */
static void ssa_on_ready(struct bus_sub *sub)
{
    struct sse_answer *a = PL_CONTAINER_OF(sub, struct sse_answer, sub);

    if (a->after[0] != '\0') {
        if (store_history(a->scope, a->after, NULL, ssa.cfg->history_length, 1, ssa_on_replay, a) == PL_OK) {
            a->pending++;
        } else {
            ssa_fail(a, "redis_unavailable", "the answer cannot be followed now; try again later");
            ssa_end(a, "incomplete");
        }
        return;
    }
    a->answer = answer_start(a->scope, a->room[0] ? a->room : NULL, a->user, a->session[0] ? a->session : NULL,
                             a->query, 1, ssa_on_agent_done, a);
    if (a->answer == NULL) {
        if (store_is_up()) {
            ssa_fail(a, "agent_busy", "the agent is busy; try again shortly");
        } else {
            ssa_fail(a, "redis_unavailable", "the answer cannot be stored now; try again later");
        }
        ssa_end(a, "incomplete");
        return;
    }
    snprintf(a->rid, sizeof(a->rid), "%s", answer_id(a->answer));
    ssa_go_live(a);
}

/* Writes the head and follows the scope. */
static void ssa_open(struct sse_answer *a, struct http_hold *hold)
{
    int64_t wait = 2 * (int64_t)ssa.cfg->redis_timeout_ms;
    struct timeval tv = { wait / 1000, (wait % 1000) * 1000 };
    char channel[256];

    a->bev = sse_open(hold);
    bufferevent_setcb(a->bev, sse_discard_input, NULL, ssa_on_conn_event, a);
    bufferevent_enable(a->bev, EV_READ | EV_WRITE);
    a->sub.on_event = ssa_on_bus_event;
    a->sub.on_ready = ssa_on_ready;
    if ((a->timer = evtimer_new(bufferevent_get_base(a->bev), ssa_on_timer, a)) == NULL
        || store_room_channel(a->scope, channel, sizeof(channel)) == NULL || bus_sub_add(&a->sub, channel) != PL_OK) {
        ssa_close(a);
        return;
    }
    event_add(a->timer, &tv);
}

/* The asker may ask (its rate, as for publishing over HTTP): follow. */
static void ssa_allowed(enum store_status st, long long wait_ms, void *arg)
{
    struct sse_answer *a = arg;
    struct http_hold *hold = a->hold;
    evhtp_request_t *req = hold->req;

    if (req == NULL || st != STORE_OK || wait_ms > 0) {
        if (req != NULL && st != STORE_OK) {
            http_error(req, 503, "redis_unavailable", "the message store is unavailable");
        } else if (req != NULL) {
            http_rate_limited(req, wait_ms, "questions");
        }
        http_release(hold);
        ssa_free(a);
        return;
    }
    ssa_open(a, hold);
}

static void ssa_authed(struct http_hold *hold, const struct auth_identity *who, void *arg)
{
    struct sse_answer *a = arg;
    evhtp_request_t *req = hold->req;

    if (req->method == htp_method_HEAD) {
        sse_open(hold);             /* the headers alone: no agent answer */
        ssa_free(a);
        return;
    }
    a->hold = hold;
    snprintf(a->user, sizeof(a->user), "%s", who->user);
    snprintf(a->session, sizeof(a->session), "%s", who->session);
    answer_private_scope(a->user, a->scope);
    if (a->after[0] != '\0') {
        ssa_open(a, hold);          /* resuming asks nothing */
        return;
    }
    if (!agent_has_room()) {
        metrics_add(METRIC_AGENT_BUSY, 1);
        http_error(req, 503, "agent_busy", "the agent is busy; try again shortly");
        http_release(hold);
        ssa_free(a);
        return;
    }
    if (store_user_take(a->user, ssa_allowed, a) != PL_OK) {
        http_error(req, 503, "redis_unavailable", "the message store is unavailable");
        http_release(hold);
        ssa_free(a);
    }
}

/* Last-Event-ID "<request id>/<stream id>" into A; 0 when malformed. */
static int ssa_resume_id(struct sse_answer *a, const char *given)
{
    const char *slash = strchr(given, '/');
    char id[EVENT_ID_MAX];

    if (slash == NULL || slash - given != ANSWER_ID_LEN) {
        return 0;
    }
    memcpy(a->rid, given, ANSWER_ID_LEN);
    a->rid[ANSWER_ID_LEN] = '\0';
    event_resume_id(slash + 1, id);
    if (!answer_id_valid(a->rid) || strcmp(id, "0-0") == 0 || id[0] == '\0') {
        return 0;
    }
    memcpy(a->after, id, sizeof(id));
    return 1;
}

static void ssa_request(evhtp_request_t *req, const struct http_params *params)
{
    struct sse_answer *a;
    const char *last = evhtp_header_find(req->headers_in, "Last-Event-ID");
    char room[HTTP_PARAM_MAX], query[HTTP_MAX_REQUEST_LINE], qlast[128];
    size_t len = 0;

    PL_UNUSED(params);
    if (last == NULL && (last = http_query(req, "last_event_id", qlast, sizeof(qlast))) == NULL
        && http_query_has(req, "last_event_id")) {
        last = "-";             /* not even decodable: refused below */
    }
    if (last != NULL && last[strspn(last, " \t")] != '\0') {
        if ((a = calloc(1, sizeof(*a) + 1)) == NULL) {
            http_error(req, 503, "unavailable", "out of memory");
            return;
        }
        if (!ssa_resume_id(a, last + strspn(last, " \t"))) {
            free(a);
            http_error(req, 400, "bad_request", "Last-Event-ID must be an id this stream sent (<request id>/<stream id>)");
            return;
        }
    } else {
        if (http_query(req, "query", query, sizeof(query)) == NULL || query[0] == '\0'
            || !utf8_valid((const uint8_t *)query, (len = strlen(query)))) {
            http_error(req, 400, "bad_request", "\"query\" is required, in UTF-8");
            return;
        }
        if (len > ssa.cfg->max_content) {
            http_error(req, 413, "too_large", "\"query\" is longer than %zu bytes", ssa.cfg->max_content);
            return;
        }
        if ((a = calloc(1, sizeof(*a) + len + 1)) == NULL) {
            http_error(req, 503, "unavailable", "out of memory");
            return;
        }
        memcpy(a->query, query, len + 1);
        if (http_query(req, "room", room, sizeof(room)) != NULL) {
            if (!http_room_ok(req, room)) {
                free(a);
                return;
            }
            snprintf(a->room, sizeof(a->room), "%s", room);
        }
    }
    if (auth_request(req, ssa_authed, a) != PL_OK) {
        free(a);
    }
}

int sse_answer_init(const struct worker_env *w)
{
    ssa.cfg = w->cfg;
    http_route_add("/api/chat/stream", HTTP_GET, ssa_request);
    return PL_OK;
}
