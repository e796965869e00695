/* ws.c - WebSocket upgrade, framing I/O, keepalive and closing. */
#include "ws.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/queue.h>
#include <time.h>

#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/event.h>

#include "clock.h"
#include "auth.h"
#include "event.h"
#include "http.h"
#include "accept.h"
#include "log.h"
#include "metrics.h"
#include "names.h"
#include "outq.h"
#include "parley.h"
#include "utf8.h"
#include "ws_deflate.h"
#include "ws_frame.h"

#define WS_SWEEP_MS        1000     /* keepalive and close deadlines */
#define WS_CLOSE_WAIT_MS   2000     /* for the peer's close frame / our flush */

enum ws_state {
    WS_OPEN,
    WS_CLOSING,                 /* our close frame is queued; waiting for theirs */
    WS_REPLYING,                /* theirs came while replies were owed: those first */
    WS_FLUSHING,                /* nothing more to do but send what is queued */
};

struct ws_conn {
    struct bufferevent *bev;
    struct ws_parser parser;
    void *state;                /* the layer above's */
    enum ws_state st;
    int released;               /* on_close done, waiting to be freed */
    int read_paused;
    int ping_outstanding;
    int peer_code;              /* REPLYING: the close code to echo */
    int deflate_bits;           /* permessage-deflate's window; 0: not negotiated */
    int64_t last_seen_ms;       /* last frame from the peer */
    int64_t ping_sent_ms;
    int64_t ping_every_ms;      /* ws_ping_interval, spread (clock_spread_ms) */
    int64_t deadline_ms;        /* CLOSING/FLUSHING: hard close after this */
    struct evbuffer *fragments; /* a fragmented message being assembled */
    struct outq_item out;
    LIST_ENTRY(ws_conn) link;
};

/* The worker's WebSocket connections. */
static struct {
    const struct conf *cfg;
    const struct ws_handlers *handlers;
    LIST_HEAD(, ws_conn) conns;         /* open or closing */
    LIST_HEAD(, ws_conn) dead;          /* closed, freed from the loop */
    int nconns;
    struct event *sweep_ev;
    struct event *reap_ev;
} ws;


int ws_count(void)
{
    return ws.nconns;
}

/* --- output ------------------------------------------------------------- */

static struct chunk *ws_frame_chunk(int opcode, const void *payload, size_t len)
{
    uint8_t head[WS_HEADER_MAX];
    size_t h = ws_frame_header(head, opcode, 1, len);
    struct chunk *c = chunk_new(h + len);

    if (c != NULL) {
        memcpy(c->data, head, h);
        memcpy(c->data + h, payload, len);
    }
    return c;
}

/* TEXT as a compressed frame for a client that accepted WINDOW_BITS, or
 * NULL when it goes plain: too short to pay, does not shrink, or too long
 * for the client's smaller window. */
static struct chunk *ws_deflated_frame(const char *text, size_t len, int window_bits)
{
    struct chunk *c;
    size_t n, h;

    if (len < ws.cfg->ws_deflate_min_size || !ws_deflate_fits(len, window_bits)
        || (c = chunk_new(WS_HEADER_MAX + ws_deflate_bound(len))) == NULL) {
        return NULL;
    }
    n = ws_deflate_compress(text, len, (uint8_t *)c->data + WS_HEADER_MAX);
    if (n == 0) {
        chunk_unref(c);
        return NULL;
    }
    metrics_add(METRIC_WS_COMPRESSED, 1);
    h = ws_frame_header((uint8_t *)c->data, WS_OP_TEXT, 1, n);
    c->data[0] |= 0x40;         /* RSV1: a compressed message */
    memmove(c->data + h, c->data + WS_HEADER_MAX, n);
    return chunk_shrink(c, h + n);
}

struct ws_event {
    struct chunk *plain;
    struct chunk *deflated;     /* NULL: not made (yet), or it goes plain */
    int deflate_tried;
    size_t len;                 /* of the text, at the end of plain */
};

struct ws_event *ws_event_new(const char *text, size_t len)
{
    struct ws_event *ev = calloc(1, sizeof(*ev));

    if (ev == NULL) {
        return NULL;
    }
    ev->len = len;
    if ((ev->plain = ws_frame_chunk(WS_OP_TEXT, text, len)) == NULL) {
        free(ev);
        return NULL;
    }
    return ev;
}

void ws_event_free(void *arg)
{
    struct ws_event *ev = arg;

    if (ev != NULL) {
        chunk_unref(ev->plain);
        chunk_unref(ev->deflated);
        free(ev);
    }
}

/* The frame C gets for EV: compressed at most once per worker.  A client
 * with a window smaller than the worker's gets the shared compressed frame
 * when the message fits that window, else the plain one. */
static struct chunk *ws_event_frame(struct ws_conn *c, struct ws_event *ev)
{
    if (c->deflate_bits == 0) {
        return ev->plain;
    }
    if (!ev->deflate_tried) {
        const char *text = ev->plain->data + ev->plain->len - ev->len;

        ev->deflate_tried = 1;
        ev->deflated = ws_deflated_frame(text, ev->len, ws.cfg->ws_deflate_window_bits);
    }
    return ev->deflated != NULL && ws_deflate_fits(ev->len, c->deflate_bits) ? ev->deflated : ev->plain;
}

static void ws_release(struct ws_conn *c);

/* Backpressure: stop reading from a client we cannot write to, and cut it
 * off when its backlog passes the limit. */
static void ws_check_backlog(struct ws_conn *c)
{
    size_t queued = outq_queued(&c->out);

    if (c->st == WS_OPEN && queued > ws.cfg->ws_max_backlog) {
        log_warn("event=slow_consumer transport=ws backlog=%zu", queued);
        metrics_add(METRIC_SLOW_CLOSED, 1);
        ws_close(c, 1011, "slow consumer");
        c->st = WS_FLUSHING;
        return;
    }
    if (!c->read_paused && queued > ws.cfg->ws_max_backlog / 2) {
        c->read_paused = 1;
        bufferevent_disable(c->bev, EV_READ);
    }
}

/* BATCHED: a room event, which may wait for write_delay. */
static void ws_queue(struct ws_conn *c, struct chunk *frame, int batched)
{
    if (outq_push(&c->out, frame, batched) >= 0) {
        ws_check_backlog(c);
    }
}

static void ws_send_data(struct ws_conn *c, struct chunk *frame, int batched)
{
    /* After a close nothing but the close goes out - except the replies a
     * peer's close waits for, but no more room events. */
    if (c->st != WS_OPEN && (c->st != WS_REPLYING || batched)) {
        return;
    }
    metrics_add(METRIC_MESSAGES_OUT, 1);
    ws_queue(c, frame, batched);
}

void ws_send_event(struct ws_conn *c, struct ws_event *ev)
{
    if (ev != NULL) {
        ws_send_data(c, ws_event_frame(c, ev), 1);
    }
}

void ws_send_text(struct ws_conn *c, const char *text, size_t len)
{
    struct chunk *frame = c->deflate_bits != 0 ? ws_deflated_frame(text, len, c->deflate_bits) : NULL;

    if (frame == NULL) {
        frame = ws_frame_chunk(WS_OP_TEXT, text, len);
    }

    ws_send_data(c, frame, 0);
    chunk_unref(frame);
}

static void ws_send_control(struct ws_conn *c, int opcode, const void *payload, size_t len)
{
    struct chunk *frame = ws_frame_chunk(opcode, payload, len);

    ws_queue(c, frame, 0);
    chunk_unref(frame);
}

/* --- closing ------------------------------------------------------------ */

static void ws_send_close(struct ws_conn *c, int code, const char *reason)
{
    uint8_t payload[WS_CONTROL_MAX];
    size_t n = 0;

    if (code != 1005) {
        size_t rlen = reason ? strlen(reason) : 0;
        rlen = rlen > WS_CONTROL_MAX - 2 ? WS_CONTROL_MAX - 2 : rlen;
        payload[0] = (uint8_t)(code >> 8);
        payload[1] = (uint8_t)(code & 0xff);
        if (rlen > 0) {
            memcpy(payload + 2, reason, rlen);
        }
        n = 2 + rlen;
    }
    ws_send_control(c, WS_OP_CLOSE, payload, n);
}

void ws_close(struct ws_conn *c, int code, const char *reason)
{
    if (c->st != WS_OPEN) {
        return;
    }
    c->st = WS_CLOSING;         /* first: the close may itself pass the backlog */
    c->deadline_ms = clock_coarse_ms() + WS_CLOSE_WAIT_MS;
    ws_send_close(c, code, reason);
}

/* The closing handshake is complete: hang up as soon as the output is
 * out (at once when nothing is left to send). */
static void ws_hang_up(struct ws_conn *c)
{
    c->st = WS_FLUSHING;
    c->deadline_ms = clock_coarse_ms() + WS_CLOSE_WAIT_MS;
    outq_schedule(&c->out);
}

/* Answers the peer's close with its code (none for none). */
static void ws_echo_close(struct ws_conn *c, int code)
{
    ws_hang_up(c);              /* first: the echo may pass the backlog */
    ws_send_close(c, code, NULL);
}

void ws_replies_done(struct ws_conn *c)
{
    if (c->st == WS_REPLYING) {
        ws_echo_close(c, c->peer_code);
    }
}

/* A protocol violation: say why, then close without waiting for a reply. */
static void ws_fail(struct ws_conn *c, int code, const char *reason)
{
    log_debug("event=ws_fail code=%d reason=\"%s\"", code, reason);
    ws_close(c, code, reason);
    c->st = WS_FLUSHING;
    bufferevent_disable(c->bev, EV_READ);
}

static void ws_on_reap(evutil_socket_t fd, short what, void *arg)
{
    struct ws_conn *c;

    PL_UNUSED(fd);
    PL_UNUSED(what);
    PL_UNUSED(arg);
    while ((c = LIST_FIRST(&ws.dead)) != NULL) {
        LIST_REMOVE(c, link);
        bufferevent_free(c->bev);
        if (c->fragments != NULL) {
            evbuffer_free(c->fragments);
        }
        free(c);
    }
}

/* The one way a connection ends: the layer above hears it once, and the
 * memory goes after the current callback has unwound. */
static void ws_release(struct ws_conn *c)
{
    if (c->released) {
        return;
    }
    c->released = 1;
    LIST_REMOVE(c, link);
    ws.nconns--;
    accept_conn_add(METRIC_CONN_WS, -1);
    bufferevent_disable(c->bev, EV_READ | EV_WRITE);
    outq_detach(&c->out);
    ws.handlers->on_close(c, c->state);
    LIST_INSERT_HEAD(&ws.dead, c, link);
    event_active(ws.reap_ev, EV_TIMEOUT, 0);
}

/* --- input -------------------------------------------------------------- */

/* A whole message has come: once the rate limit admits it, inflate it when
 * it is compressed - held to ws_max_message while inflating, its text
 * checked only now (the parser saw compressed bytes) - and hand it up. */
static void ws_on_message(struct ws_conn *c, const uint8_t *msg, size_t len, int compressed)
{
    const char *text = (const char *)msg;
    char *inflated = NULL;
    enum ws_inflate_result rc;

    if (!ws.handlers->admit(c, c->state)) {
        return;
    }
    if (compressed) {
        rc = ws_deflate_inflate(msg, len, ws.cfg->ws_max_message, &inflated, &len);
        if (rc != WS_INFLATE_OK) {
            ws_fail(c, rc == WS_INFLATE_TOO_BIG ? 1009 : rc == WS_INFLATE_INVALID ? 1007 : 1011,
                    rc == WS_INFLATE_TOO_BIG ? "message too big"
                    : rc == WS_INFLATE_INVALID ? "invalid compressed data" : "out of memory");
            return;
        }
        if (!utf8_valid((const uint8_t *)inflated, len)) {
            ws_fail(c, 1007, "invalid UTF-8");
            free(inflated);
            return;
        }
        text = inflated;
    }
    metrics_add(METRIC_MESSAGES_IN, 1);
    ws.handlers->on_text(c, c->state, text, len);
    free(inflated);
}

static void ws_on_data(struct ws_conn *c, const struct ws_frame *f)
{
    if (c->fragments == NULL && f->fin) {
        ws_on_message(c, f->payload, f->len, f->compressed);
        return;
    }
    if (c->fragments == NULL && (c->fragments = evbuffer_new()) == NULL) {
        ws_fail(c, 1011, "out of memory");
        return;
    }
    evbuffer_add(c->fragments, f->payload, f->len);
    if (f->fin) {
        size_t len = evbuffer_get_length(c->fragments);
        ws_on_message(c, evbuffer_pullup(c->fragments, -1), len, f->compressed);
        evbuffer_free(c->fragments);
        c->fragments = NULL;
    }
}

static void ws_on_frame(struct ws_conn *c, const struct ws_frame *f)
{
    switch (f->opcode) {
    case WS_OP_PING:
        ws_send_control(c, WS_OP_PONG, f->payload, f->len);
        break;
    case WS_OP_PONG:
        c->ping_outstanding = 0;
        break;
    case WS_OP_CLOSE:
        bufferevent_disable(c->bev, EV_READ);
        if (c->st == WS_OPEN && ws.handlers->owes_replies(c, c->state)) {
            /* RFC 6455 5.5.1 lets an endpoint finish sending before it
             * answers a close: a message sent just before the close gets
             * its ack.  A store call answers, if only with an error,
             * within redis_timeout; the wait is bounded by that anyway. */
            c->st = WS_REPLYING;
            c->peer_code = f->close_code;
            c->deadline_ms = clock_coarse_ms()
                             + (ws.cfg->redis_timeout_ms > WS_CLOSE_WAIT_MS ? ws.cfg->redis_timeout_ms : WS_CLOSE_WAIT_MS);
        } else if (c->st == WS_OPEN) {
            ws_echo_close(c, f->close_code);
        } else {
            ws_hang_up(c);      /* we had started the handshake */
        }
        break;
    default:
        if (c->st == WS_OPEN) {
            ws_on_data(c, f);
        }
        break;                  /* data after our close is ignored */
    }
}

static void ws_on_read(struct bufferevent *bev, void *arg)
{
    struct ws_conn *c = arg;
    struct evbuffer *in = bufferevent_get_input(bev);

    c->last_seen_ms = clock_coarse_ms();
    while ((c->st == WS_OPEN || c->st == WS_CLOSING) && !c->released) {
        size_t len = evbuffer_get_length(in);
        struct ws_frame f;
        ssize_t n;

        if (len == 0) {
            break;
        }
        n = ws_parser_feed(&c->parser, evbuffer_pullup(in, -1), len, &f);
        if (n == 0) {
            break;
        }
        if (n < 0) {
            ws_fail(c, (int)-n, n == -1009 ? "message too big" : n == -1007 ? "invalid UTF-8"
                               : n == -1003 ? "binary frames are not supported" : "protocol error");
            break;
        }
        metrics_add(METRIC_BYTES_IN, (uint64_t)n);
        ws_on_frame(c, &f);
        evbuffer_drain(in, (size_t)n);
    }
    if (c->st == WS_REPLYING || c->st == WS_FLUSHING) {
        evbuffer_drain(in, evbuffer_get_length(in));        /* nothing counts after a close */
    }
}

/* What a drained (or draining) output allows: hang up after the last
 * frame, or read again from a client that was backed up. */
static void ws_after_write(struct ws_conn *c, size_t queued)
{
    if (c->st == WS_FLUSHING && queued == 0) {
        ws_release(c);
    } else if (c->read_paused && queued <= ws.cfg->ws_max_backlog / 4 && c->st == WS_OPEN) {
        c->read_paused = 0;
        bufferevent_enable(c->bev, EV_READ);
    }
}

static void ws_on_write(struct bufferevent *bev, void *arg)
{
    struct ws_conn *c = arg;

    PL_UNUSED(bev);
    outq_written(&c->out);
    ws_after_write(c, outq_queued(&c->out));
}

static void ws_on_written(struct outq_item *it, int error, size_t queued)
{
    struct ws_conn *c = PL_CONTAINER_OF(it, struct ws_conn, out);

    if (error) {
        ws_release(c);          /* the peer is gone */
    } else {
        ws_after_write(c, queued);
    }
}

static void ws_on_event(struct bufferevent *bev, short what, void *arg)
{
    PL_UNUSED(bev);
    PL_UNUSED(what);
    ws_release(arg);            /* EOF or error: nobody to talk to */
}

/* Pings idle clients, drops those that do not answer, and enforces the
 * close deadlines: one timer for all connections. */
static void ws_on_sweep(evutil_socket_t fd, short what, void *arg)
{
    int64_t now = clock_coarse_ms();
    struct ws_conn *c, *next;

    PL_UNUSED(fd);
    PL_UNUSED(what);
    PL_UNUSED(arg);
    for (c = LIST_FIRST(&ws.conns); c != NULL; c = next) {
        next = LIST_NEXT(c, link);
        if (c->st == WS_REPLYING && now >= c->deadline_ms) {
            ws_echo_close(c, c->peer_code);     /* the replies did not come in time */
        } else if (c->st != WS_OPEN) {
            if (now >= c->deadline_ms) {
                ws_release(c);
            }
        } else if (c->ping_outstanding && now - c->ping_sent_ms >= ws.cfg->ws_pong_timeout_ms) {
            log_debug("event=ws_pong_timeout");
            ws_fail(c, 1011, "no pong");
            c->deadline_ms = now + WS_CLOSE_WAIT_MS;
        } else if (!c->ping_outstanding && now - c->last_seen_ms >= c->ping_every_ms
                   && now - c->ping_sent_ms >= c->ping_every_ms) {
            c->ping_outstanding = 1;
            c->ping_sent_ms = now;
            ws_send_control(c, WS_OP_PING, "", 0);
        }
    }
}

int ws_close_some(int n)
{
    struct ws_conn *c;
    int closed = 0;

    LIST_FOREACH(c, &ws.conns, link) {
        if (closed == n) {
            break;
        }
        if (c->st == WS_OPEN) {
            ws_close(c, 1001, "server shutting down");
            closed++;
        }
    }
    return closed;
}

/* --- upgrade ------------------------------------------------------------ */

struct ws_pending {
    char room[PL_NAME_MAX + 1];
    char resume[EVENT_ID_MAX];
    char accept[32];
    int deflate_bits;
    char extensions[WS_DEFLATE_RESPONSE_MAX];
};

static void ws_accept(struct http_hold *hold, const struct auth_identity *who, void *arg)
{
    struct ws_pending *pend = arg;
    evhtp_request_t *req = hold->req;
    struct ws_conn *c = calloc(1, sizeof(*c));
    char head[512];
    int n;

    if (c == NULL) {
        http_error(req, 503, "unavailable", "out of memory");
        http_release(hold);
        free(pend);
        return;
    }
    n = snprintf(head, sizeof(head),
                 "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                 "Sec-WebSocket-Accept: %s\r\n%s%s%sX-Request-Id: %s\r\n\r\n", pend->accept,
                 pend->deflate_bits ? "Sec-WebSocket-Extensions: " : "", pend->extensions,
                 pend->deflate_bits ? "\r\n" : "", http_request_id(req));
    http_log_response(req, 101);
    c->bev = http_take_over(req, METRIC_CONN_WS);
    hold->req = NULL;
    http_release(hold);

    c->deflate_bits = pend->deflate_bits;
    ws_parser_init(&c->parser, ws.cfg->ws_max_message, c->deflate_bits != 0);
    c->last_seen_ms = clock_coarse_ms();
    c->ping_sent_ms = c->last_seen_ms;
    c->ping_every_ms = clock_spread_ms(ws.cfg->ws_ping_interval_ms);
    LIST_INSERT_HEAD(&ws.conns, c, link);
    ws.nconns++;
    evbuffer_add(bufferevent_get_output(c->bev), head, (size_t)n);
    bufferevent_setcb(c->bev, ws_on_read, ws_on_write, ws_on_event, c);
    bufferevent_enable(c->bev, EV_READ);
    outq_attach(&c->out, c->bev, ws_on_written);
    outq_schedule(&c->out);
    c->state = ws.handlers->on_open(c, who, pend->room, pend->resume);
    free(pend);
    if (c->state == NULL) {
        ws_fail(c, 1011, "cannot start the session");
    } else if (evbuffer_get_length(bufferevent_get_input(c->bev)) > 0) {
        /* Frames the client sent right behind its handshake are already
         * here: read them now, not at its next write. */
        bufferevent_trigger(c->bev, EV_READ, BEV_TRIG_DEFER_CALLBACKS);
    }
}

/* The Sec-WebSocket-Extensions headers in order, each judged on its own:
 * the first offer that can be honoured wins, and a header that does not
 * parse declines only the offers in it.  No length is too long to read. */
static int ws_negotiate(evhtp_request_t *req, char *response, size_t size)
{
    evhtp_kv_t *kv;
    int bits;

    TAILQ_FOREACH(kv, req->headers_in, next) {
        if (kv->key != NULL && kv->val != NULL && strcasecmp(kv->key, "Sec-WebSocket-Extensions") == 0
            && (bits = ws_deflate_negotiate(kv->val, ws.cfg->ws_deflate_window_bits, response, size)) > 0) {
            return bits;
        }
    }
    return 0;
}

static void ws_upgrade(evhtp_request_t *req, const struct http_params *params)
{
    const char *upgrade = evhtp_header_find(req->headers_in, "Upgrade");
    const char *connection = evhtp_header_find(req->headers_in, "Connection");
    const char *version = evhtp_header_find(req->headers_in, "Sec-WebSocket-Version");
    const char *key = evhtp_header_find(req->headers_in, "Sec-WebSocket-Key");
    struct ws_pending *pend;
    char accept[32], last[64];

    if (!ws_header_has_token(upgrade, "websocket") || !ws_header_has_token(connection, "upgrade")) {
        http_header_set(req, "Upgrade", "websocket");
        http_header_set(req, "Connection", "Upgrade");
        http_error(req, 426, "upgrade_required", "this endpoint speaks WebSocket (Upgrade: websocket)");
        return;
    }
    if (version == NULL || strcmp(version, "13") != 0) {
        http_header_set(req, "Sec-WebSocket-Version", "13");
        http_error(req, 426, "upgrade_required", "unsupported Sec-WebSocket-Version (13 is)");
        return;
    }
    if (key == NULL || ws_accept_key(key, accept) != 0) {
        http_error(req, 400, "bad_request", "missing or invalid Sec-WebSocket-Key");
        return;
    }
    if (http_origin(req) == ORIGIN_REFUSED) {
        http_error(req, 403, "forbidden", "origin not allowed");
        return;
    }
    if (!http_room_ok(req, params->value[0])) {
        return;
    }
    pend = calloc(1, sizeof(*pend));
    if (pend == NULL) {
        http_error(req, 503, "unavailable", "out of memory");
        return;
    }
    snprintf(pend->room, sizeof(pend->room), "%s", params->value[0]);
    /* A last_event_id that cannot even be decoded is a malformed id: a reset. */
    event_resume_id(http_query(req, "last_event_id", last, sizeof(last)) != NULL ? last
                    : http_query_has(req, "last_event_id") ? "0-0" : NULL, pend->resume);
    memcpy(pend->accept, accept, sizeof(accept));
    if (ws.cfg->ws_deflate) {
        pend->deflate_bits = ws_negotiate(req, pend->extensions, sizeof(pend->extensions));
    }
    if (auth_request(req, ws_accept, pend) != PL_OK) {
        free(pend);
    }
}

void ws_register(struct event_base *base, const struct conf *c, const struct ws_handlers *h)
{
    struct timeval tick = { WS_SWEEP_MS / 1000, (WS_SWEEP_MS % 1000) * 1000 };

    ws.cfg = c;
    ws.handlers = h;
    ws_deflate_setup(c->ws_deflate_level, c->ws_deflate_window_bits);
    http_route_add("/ws/chat/{}", HTTP_GET | HTTP_NO_HEAD, ws_upgrade);
    ws.sweep_ev = event_new(base, -1, EV_PERSIST, ws_on_sweep, NULL);
    ws.reap_ev = event_new(base, -1, 0, ws_on_reap, NULL);
    event_add(ws.sweep_ev, &tick);
}
