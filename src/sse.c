/* sse.c - event streams with resume, heartbeats and backlog limits. */
#include "sse.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/time.h>
#include <time.h>

#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/event.h>

#include "clock.h"
#include "auth.h"
#include "bus.h"
#include "chunk.h"
#include "event.h"
#include "feed.h"
#include "http.h"
#include "http_head.h"
#include "accept.h"
#include "log.h"
#include "metrics.h"
#include "names.h"
#include "outq.h"
#include "store.h"
#include "worker_env.h"

struct sse_client {
    struct bufferevent *bev;
    struct outq_item out;
    struct event *ping;
    struct feed feed;               /* the room and the user's direct messages */
    char resume[EVENT_ID_MAX];        /* Last-Event-ID, "" for none */
    int pending;                    /* store calls that hold a pointer to us */
    int closed;
    int answered;                   /* the response head has been let go */
    LIST_ENTRY(sse_client) link;
};

static struct {
    const struct conf *cfg;
    LIST_HEAD(, sse_client) clients;
    int nclients;
} sse;

int sse_count(void)
{
    return sse.nclients;
}

/* "id: ID\nevent: TYPE\ndata: JSON\n\n" (no id line for live-only events). */
static struct chunk *sse_chunk_build(const char *type, const char *id, const char *json, size_t len)
{
    char head[128];
    int h = id[0] ? snprintf(head, sizeof(head), "id: %s\nevent: %s\ndata: ", id, type)
                  : snprintf(head, sizeof(head), "event: %s\ndata: ", type);
    struct chunk *c = chunk_new((size_t)h + len + 2);

    if (c != NULL) {
        memcpy(c->data, head, (size_t)h);
        memcpy(c->data + h, json, len);
        memcpy(c->data + h + len, "\n\n", 2);
    }
    return c;
}

static void *sse_encode(struct bus_event *ev)
{
    /* Only a stored message is a place to resume from: "id:" for it alone. */
    return sse_chunk_build(ev->type, ev->stored ? ev->id : "", ev->json, ev->json_len);
}

static void sse_free(struct sse_client *c)
{
    free(c);
}

/* Ends the stream now.  The memory waits while store calls still point at
 * it (pending); the last one's callback frees it (sse_unpin). */
static void sse_close(struct sse_client *c, const char *why)
{
    if (c->closed) {
        return;
    }
    c->closed = 1;
    log_debug("event=sse_closed room=%s user=%s reason=%s", c->feed.room, c->feed.who.user, why);
    LIST_REMOVE(c, link);
    sse.nclients--;
    accept_conn_add(METRIC_CONN_SSE, -1);
    feed_close(&c->feed);
    event_free(c->ping);
    outq_detach(&c->out);
    bufferevent_free(c->bev);
    if (c->pending == 0) {
        sse_free(c);
    }
}

/* A store call for C came back: returns 0 when C is gone (then freed). */
static int sse_unpin(struct sse_client *c)
{
    if (--c->pending == 0 && c->closed) {
        sse_free(c);
        return 0;
    }
    return !c->closed;
}

static int sse_backlogged(struct sse_client *c)
{
    if (outq_queued(&c->out) <= sse.cfg->sse_max_backlog) {
        return 0;
    }
    log_warn("event=slow_consumer transport=sse room=%s user=%s", c->feed.room, c->feed.who.user);
    metrics_add(METRIC_SLOW_CLOSED, 1);
    sse_close(c, "backlog");
    return 1;
}

/* Writes CHUNK; a live room event (BATCHED) may wait up to write_delay to
 * share a write. */
static void sse_write_chunk(struct sse_client *c, struct chunk *chunk, int batched)
{
    if (outq_push(&c->out, chunk, batched) >= 0) {
        metrics_add(METRIC_MESSAGES_OUT, 1);
        sse_backlogged(c);
    }
}

/* --- the room's feed ---------------------------------------------------- */

static struct sse_client *sse_of(struct feed *f)
{
    return PL_CONTAINER_OF(f, struct sse_client, feed);
}

static void sse_deliver(struct feed *f, void *chunk, const struct bus_event *ev)
{
    PL_UNUSED(ev);
    sse_write_chunk(sse_of(f), chunk, 1);
}

static void sse_end(struct feed *f, enum feed_end why)
{
    static const char *const reasons[] = {
        [FEED_REVOKED] = "session_revoked", [FEED_EXPIRED] = "token_expired",
        [FEED_UNAVAILABLE] = "redis_unavailable", [FEED_NO_MEMORY] = "out_of_memory",
    };
    struct sse_client *c = sse_of(f);

    /* A stream that never got going still gets its head and retry before
     * the end: its client reconnects (resuming from the last id, if the
     * token still allows) rather than seeing a connection cut unanswered. */
    if (!c->answered) {
        outq_write_now(&c->out);
    }
    sse_close(c, reasons[why]);
}

static void sse_pin(struct feed *f)
{
    sse_of(f)->pending++;
}

static int sse_feed_unpin(struct feed *f)
{
    return sse_unpin(sse_of(f));
}

static void sse_write_reset(struct sse_client *c, const char *oldest)
{
    char json[96];
    int n = snprintf(json, sizeof(json), "{\"type\":\"reset\",\"oldest\":%s%s%s}",
                     oldest[0] ? "\"" : "", oldest[0] ? oldest : "null", oldest[0] ? "\"" : "");
    struct chunk *chunk = sse_chunk_build("reset", "", json, (size_t)n);

    sse_write_chunk(c, chunk, 0);
    chunk_unref(chunk);
}

static void sse_on_replay(enum store_status st, const struct store_events *evs, void *arg)
{
    struct sse_client *c = arg;
    struct event_id sid;

    if (!sse_unpin(c)) {
        return;
    }
    if (st == STORE_UNAVAILABLE) {
        /* Nothing lost: the client reconnects with the same Last-Event-ID. */
        sse_close(c, "redis_unavailable");
        return;
    }
    /* After a reset come the chunks so far of the answers in progress. */
    if (st == STORE_NOT_FOUND) {
        sse_write_reset(c, evs->oldest);
    }
    for (int i = 0; i < evs->count && !c->closed; i++) {
        struct chunk *chunk = sse_chunk_build(evs->items[i].type, evs->items[i].id, evs->items[i].json,
                                              evs->items[i].len);
        sse_write_chunk(c, chunk, 0);
        chunk_unref(chunk);
        if (event_id_parse(evs->items[i].id, &sid) == 0) {
            feed_mark(&c->feed, &sid);
        }
    }
    if (st == STORE_OK && event_id_parse(evs->newest, &sid) == 0) {
        feed_mark(&c->feed, &sid);  /* a fresh join's cut */
    }
    if (!c->closed) {
        feed_go_live(&c->feed);
    }
}

/* Subscribed and counted in: replay what came after Last-Event-ID, if
 * given (else the answers in progress so far), then go live. */
static void sse_ready(struct feed *f)
{
    struct sse_client *c = sse_of(f);

    /* The head goes now that nothing published from here on can be
     * missed: a client that has its 200 hears every later event. */
    c->answered = 1;
    outq_schedule(&c->out);
    if (store_history_resume(f->room, c->resume[0] ? c->resume : NULL, sse_on_replay, c) == PL_OK) {
        c->pending++;
    } else {
        sse_close(c, "redis_unavailable");
    }
}

static const struct feed_ops sse_feed_ops = {
    .slot = FEED_SLOT_SSE,
    .encode = sse_encode,
    .free_encoded = chunk_free_cached,
    .ready = sse_ready,
    .deliver = sse_deliver,
    .end = sse_end,
    .pin = sse_pin,
    .unpin = sse_feed_unpin,
};

static void sse_on_ping(evutil_socket_t fd, short what, void *arg)
{
    struct sse_client *c = arg;

    PL_UNUSED(fd);
    PL_UNUSED(what);
    if (!c->answered) {
        return;                 /* the join deadline ends a stream that never gets going */
    }
    evbuffer_add(outq_output(&c->out), ": ping\n\n", 8);
    outq_schedule(&c->out);
    sse_backlogged(c);
}

void sse_discard_input(struct bufferevent *bev, void *arg)
{
    PL_UNUSED(arg);
    /* Clients send nothing on an event stream; discard whatever comes. */
    evbuffer_drain(bufferevent_get_input(bev), evbuffer_get_length(bufferevent_get_input(bev)));
}

static void sse_on_conn_event(struct bufferevent *bev, short what, void *arg)
{
    PL_UNUSED(bev);
    sse_close(arg, (what & BEV_EVENT_EOF) ? "eof" : "error");
}

static void sse_on_write(struct bufferevent *bev, void *arg)
{
    struct sse_client *c = arg;

    PL_UNUSED(bev);
    outq_written(&c->out);
}

static void sse_on_written(struct outq_item *it, int error, size_t queued)
{
    PL_UNUSED(queued);
    if (error) {
        sse_close(PL_CONTAINER_OF(it, struct sse_client, out), "write_error");
    }
}

static void sse_on_head_written(struct bufferevent *bev, void *arg)
{
    PL_UNUSED(arg);
    bufferevent_free(bev);
    accept_conn_add(METRIC_CONN_SSE, -1);
}

static void sse_on_head_event(struct bufferevent *bev, short what, void *arg)
{
    PL_UNUSED(what);
    sse_on_head_written(bev, arg);
}

struct bufferevent *sse_open(struct http_hold *hold)
{
    evhtp_request_t *req = hold->req;
    int head_only = req->method == htp_method_HEAD;
    struct bufferevent *bev;
    char head[512];
    int n;

    n = snprintf(head, sizeof(head),
                 "HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nCache-Control: no-cache\r\n"
                 "X-Accel-Buffering: no\r\nX-Request-Id: %s\r\nConnection: close\r\n\r\n",
                 http_request_id(req));
    http_log_response(req, 200);
    bev = http_take_over(req, METRIC_CONN_SSE);
    hold->req = NULL;               /* freed with the evhtp connection */
    http_release(hold);
    evbuffer_add(bufferevent_get_output(bev), head, (size_t)n);
    if (!head_only) {
        return bev;
    }
    bufferevent_setcb(bev, NULL, sse_on_head_written, sse_on_head_event, NULL);
    bufferevent_setwatermark(bev, EV_WRITE, 0, 0);
    bufferevent_enable(bev, EV_WRITE);
    return NULL;
}

static void sse_start(struct http_hold *hold, const struct auth_identity *who, void *arg)
{
    struct sse_client *c = arg;
    evhtp_request_t *req = hold->req;
    const char *last = evhtp_header_find(req->headers_in, "Last-Event-ID");
    char qlast[64], room[PL_NAME_MAX + 1];
    int64_t every = clock_spread_ms(sse.cfg->sse_heartbeat_ms);     /* not all streams at once */
    struct timeval ping = { every / 1000, (every % 1000) * 1000 };

    if (!store_is_up() || !bus_subscriber_up()) {
        /* Nothing could be replayed or subscribed: say so now rather than
         * open a stream that stays silent. */
        http_error(req, 503, "redis_unavailable", "the message bus is unavailable; try again later");
        http_release(hold);
        free(c);
        return;
    }
    if (last == NULL && (last = http_query(req, "last_event_id", qlast, sizeof(qlast))) == NULL
        && http_query_has(req, "last_event_id")) {
        last = "0-0";           /* not even decodable: a malformed id, a reset */
    }
    event_resume_id(last, c->resume);
    if ((c->bev = sse_open(hold)) == NULL) {
        free(c);                    /* HEAD: the headers were the answer */
        return;
    }
    evbuffer_add_printf(bufferevent_get_output(c->bev), "retry: %d\n\n", sse.cfg->sse_retry_ms);
    bufferevent_setcb(c->bev, sse_discard_input, sse_on_write, sse_on_conn_event, c);
    bufferevent_enable(c->bev, EV_READ);
    outq_attach(&c->out, c->bev, sse_on_written);     /* the head waits for sse_ready */
    c->ping = event_new(bufferevent_get_base(c->bev), -1, EV_PERSIST, sse_on_ping, c);
    event_add(c->ping, &ping);
    LIST_INSERT_HEAD(&sse.clients, c, link);
    sse.nclients++;
    memcpy(room, c->feed.room, sizeof(room));
    if (feed_open(&c->feed, &sse_feed_ops, who, room) != PL_OK) {
        sse_close(c, "out_of_memory");
    }
}

static void sse_events(evhtp_request_t *req, const struct http_params *params)
{
    struct sse_client *c;

    if (!http_room_ok(req, params->value[0])) {
        return;
    }
    c = calloc(1, sizeof(*c));
    if (c == NULL) {
        http_error(req, 503, "unavailable", "out of memory");
        return;
    }
    /* The room waits in the feed's field until the feed opens. */
    snprintf(c->feed.room, sizeof(c->feed.room), "%s", params->value[0]);
    if (auth_request(req, sse_start, c) != PL_OK) {
        free(c);
    }
}

int sse_close_some(int n)
{
    int closed = 0;

    for (; closed < n && !LIST_EMPTY(&sse.clients); closed++) {
        sse_close(LIST_FIRST(&sse.clients), "shutdown");
    }
    return closed;
}

int sse_init(const struct worker_env *w)
{
    sse.cfg = w->cfg;
    http_route_add("/api/rooms/{}/events", HTTP_GET, sse_events);
    return PL_OK;
}
