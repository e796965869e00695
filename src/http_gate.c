/* http_gate.c - holds, frames and hands over requests; refuses the rest. */
#include "http_gate.h"

#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/queue.h>
#include <sys/socket.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <unistd.h>

#include <event2/bufferevent.h>
#include <event2/event.h>

#include "accept.h"
#include "clock.h"
#include "conf.h"
#include "http_chunked.h"
#include "http_head.h"
#include "log.h"
#include "metrics.h"
#include "parley.h"
#include "request_id.h"
#include "worker_env.h"


/* Where the head gate stands with the request it is reading. */
enum http_phase {
    HTTP_PHASE_HEAD,                /* reading a request head */
    HTTP_PHASE_LENGTH,              /* waiting for a Content-Length body */
    HTTP_PHASE_CHUNKED,             /* decoding a chunked body */
};

/* What parley tracks per plain HTTP connection: the bytes read and not yet
 * handed to libevhtp, the framing of the request being read, when its head
 * began (slowloris), and the answer owed when it is refused. */
struct http_conn {
    evhtp_connection_t *conn;
    struct evbuffer *held;          /* read from the socket, not handed to libevhtp yet */
    struct evbuffer *head;          /* a chunked request's head, while its body is decoded */
    struct evbuffer *body;          /* that body, decoded */
    enum http_phase phase;
    struct http_head_scan scan;     /* of the head being read */
    size_t head_len;                /* once it is in: its length from the request line */
    struct http_chunked chunked;
    int64_t request_started_ms;     /* when the request being read began, 0 between requests */
    unsigned handed;                /* requests handed to libevhtp so far */
    int reject_status;              /* the status to send before closing, or 0 */
    const char *reject_reason;
    int read_stopped;               /* reading paused while libevhtp is busy: too much held, or input ended */
    int kick_pending;               /* on gate.kicks */
    struct evbuffer_cb_entry *out_cb;   /* hears what is queued to write */
    int flush_pending;              /* on gate.flushes */
    LIST_ENTRY(http_conn) link;
    TAILQ_ENTRY(http_conn) flush_link;
    TAILQ_ENTRY(http_conn) kick_link;
};

static struct {
    const struct conf *cfg;
    LIST_HEAD(, http_conn) conns;
    struct event *sweep_ev;
    TAILQ_HEAD(, http_conn) flushes;    /* answers to write at the end of this pass */
    struct event *flush_ev;
    TAILQ_HEAD(, http_conn) kicks;      /* connections whose next request may go on */
    struct event *kick_ev;
    /* libevhtp's own bufferevent callbacks, called behind the gate. */
    bufferevent_data_cb evhtp_read_cb, evhtp_write_cb;
    bufferevent_event_cb evhtp_event_cb;
} gate;

static void http_gate_run(struct http_conn *hc);
static void http_conn_free(struct http_conn *hc);
static void http_on_write(struct bufferevent *bev, void *arg);

/* --- answers written straight to the socket ------------------------------
 * libevent writes a bufferevent's output by arming the socket's write event,
 * waiting for epoll to say writable, writing, and disarming it: two
 * epoll_ctl calls and one more loop pass per answer.  The gate keeps
 * EV_WRITE off instead, writes what was queued at the end of the pass that
 * queued it, and tells libevhtp as libevent would (its write callback, once
 * all is out).  Only when the kernel cannot take everything does libevent
 * write the rest. */

/* Queued output (an answer, a 100 Continue): write it at the end of this pass. */
static void http_on_output(struct evbuffer *out, const struct evbuffer_cb_info *info, void *arg)
{
    struct http_conn *hc = arg;

    PL_UNUSED(out);
    if (info->n_added > 0 && !hc->flush_pending) {
        hc->flush_pending = 1;
        TAILQ_INSERT_TAIL(&gate.flushes, hc, flush_link);
        event_active(gate.flush_ev, EV_TIMEOUT, 0);
    }
}

static void http_flush_one(struct http_conn *hc)
{
    struct bufferevent *bev = hc->conn->bev;
    struct evbuffer *out = bufferevent_get_output(bev);
    int n = 1;

    evbuffer_unfreeze(out, 1);      /* a socket bufferevent keeps the start of its output */
    while (n > 0 && evbuffer_get_length(out) > 0) {
        n = evbuffer_write(out, bufferevent_getfd(bev));
    }
    evbuffer_freeze(out, 1);
    if (evbuffer_get_length(out) == 0) {
        http_on_write(bev, hc);     /* may free the connection */
    } else if (n < 0 && errno != EAGAIN && errno != EINTR) {
        gate.evhtp_event_cb(bev, BEV_EVENT_ERROR | BEV_EVENT_WRITING, hc->conn);
    } else {
        bufferevent_enable(bev, EV_WRITE);      /* the kernel is full: libevent writes the rest */
    }
}

static void http_on_flush(evutil_socket_t fd, short what, void *arg)
{
    struct http_conn *hc;

    PL_UNUSED(fd);
    PL_UNUSED(what);
    PL_UNUSED(arg);
    while ((hc = TAILQ_FIRST(&gate.flushes)) != NULL) {
        TAILQ_REMOVE(&gate.flushes, hc, flush_link);
        hc->flush_pending = 0;
        if (hc->conn->bev != NULL) {
            http_flush_one(hc);
        }
    }
}

/* The gate forgets HC's deferred work and stops hearing its output (a
 * stream takes the connection over, or it goes). */
static void http_conn_detach(struct http_conn *hc)
{
    if (hc->flush_pending) {
        TAILQ_REMOVE(&gate.flushes, hc, flush_link);
        hc->flush_pending = 0;
    }
    if (hc->kick_pending) {
        TAILQ_REMOVE(&gate.kicks, hc, kick_link);
        hc->kick_pending = 0;
    }
    if (hc->out_cb != NULL && hc->conn->bev != NULL) {
        evbuffer_remove_cb_entry(bufferevent_get_output(hc->conn->bev), hc->out_cb);
    }
    hc->out_cb = NULL;
}

/* libevhtp is done with a request on each connection queued here: hand it
 * the next one held, and read again if reading was stopped meanwhile. */
static void http_on_kick(evutil_socket_t fd, short what, void *arg)
{
    struct http_conn *hc;

    PL_UNUSED(fd);
    PL_UNUSED(what);
    PL_UNUSED(arg);
    while ((hc = TAILQ_FIRST(&gate.kicks)) != NULL) {
        TAILQ_REMOVE(&gate.kicks, hc, kick_link);
        hc->kick_pending = 0;
        if (hc->conn->request == NULL && hc->conn->bev != NULL && !(hc->conn->flags & EVHTP_CONN_FLAG_PAUSED)) {
            if (hc->read_stopped) {
                hc->read_stopped = 0;
                bufferevent_enable(hc->conn->bev, EV_READ);
            }
            http_gate_run(hc);      /* may free HC */
        }
    }
}

void http_gate_request_done(evhtp_request_t *req)
{
    struct http_conn *hc;

    if (req->conn == NULL || req->conn->bev == NULL || req->conn->hooks == NULL
        || (hc = req->conn->hooks->on_connection_fini_arg) == NULL) {
        return;
    }
    if (!hc->kick_pending && (evbuffer_get_length(hc->held) > 0 || hc->read_stopped)) {
        hc->kick_pending = 1;
        TAILQ_INSERT_TAIL(&gate.kicks, hc, kick_link);
        event_active(gate.kick_ev, EV_TIMEOUT, 0);
    }
}

void http_gate_release(evhtp_connection_t *conn)
{
    struct http_conn *hc = conn->hooks ? conn->hooks->on_connection_fini_arg : NULL;

    if (hc == NULL) {
        return;
    }
    if (conn->bev != NULL) {
        struct evbuffer *in = bufferevent_get_input(conn->bev);

        evbuffer_unfreeze(in, 0);
        evbuffer_add_buffer(in, hc->held);
        evbuffer_freeze(in, 0);
        bufferevent_enable(conn->bev, EV_WRITE);    /* the stream writes as libevent does */
    }
    http_conn_free(hc);
}

void http_gate_close_idle(void)
{
    struct http_conn *hc, *next;

    /* A connection that has not brought its first request yet is not
     * idle: it is served. */
    for (hc = LIST_FIRST(&gate.conns); hc != NULL; hc = next) {
        next = LIST_NEXT(hc, link);
        if (hc->handed > 0 && hc->conn->request == NULL && hc->request_started_ms == 0
            && evbuffer_get_length(hc->held) == 0) {
            evhtp_connection_free(hc->conn);    /* the fini hook unlinks it */
        }
    }
}

/* A request refused before libevhtp saw it, or one libevhtp could not
 * parse: say why before closing, straight to the socket (nothing else is
 * queued on it).  REASON, when given, replaces the status's usual message. */
static void http_send_rejection(evhtp_connection_t *conn, int status, const char *reason)
{
    static const struct { int status; const char *reason, *code, *message; } why[] = {
        { 400, "Bad Request", "bad_request", "malformed request" },
        { 408, "Request Timeout", "request_timeout", "the request took too long to arrive" },
        { 413, "Payload Too Large", "too_large", "the request body is larger than max_body" },
        { 414, "URI Too Long", "uri_too_long", "the request target is too long" },
        { 431, "Request Header Fields Too Large", "headers_too_large", "the request headers are too large" },
        { 501, "Not Implemented", "not_implemented", "only the chunked transfer coding is supported" },
        { 505, "HTTP Version Not Supported", "http_version_not_supported", "only HTTP/1.0 and HTTP/1.1 are served" },
    };
    char buf[768], id[32];
    int n;

    if (conn->bev == NULL || evbuffer_get_length(bufferevent_get_output(conn->bev)) != 0) {
        return;
    }
    for (size_t i = 0; i < PL_ARRAY_LEN(why); i++) {
        const char *message = reason != NULL ? reason : why[i].message;

        if (why[i].status != status) {
            continue;
        }
        request_id_new(id, sizeof(id));
        n = snprintf(buf, sizeof(buf),
                     "HTTP/1.1 %d %s\r\nContent-Type: application/json\r\nConnection: close\r\n"
                     "X-Request-Id: %s\r\nContent-Length: %zu\r\n\r\n"
                     "{\"error\":{\"code\":\"%s\",\"message\":\"%s\"}}",
                     status, why[i].reason, id,
                     strlen(why[i].code) + strlen(message) + 34, why[i].code, message);
        if (send(bufferevent_getfd(conn->bev), buf, (size_t)n, MSG_DONTWAIT | MSG_NOSIGNAL) < 0) {
            log_debug("event=rejection_not_sent status=%d", status);
        }
        metrics_count_response(status);
        log_info("event=request id=%s status=%d reason=%s", id, status, why[i].code);
    }
}

/* A lingering close after a rejection: closing a socket with unread input
 * resets it, and the reset can destroy the answer before the client reads
 * it (a 413 while the body is still coming).  So a duplicate of the socket
 * stops sending and reads and drops what still arrives, until the client
 * closes or HTTP_LINGER_MS pass. */
#define HTTP_LINGER_MS 2000

struct http_lingerer {
    struct event *ev;
    int64_t until_ms;           /* a trickling client does not extend it */
};

static void http_on_linger(evutil_socket_t fd, short what, void *arg)
{
    struct http_lingerer *l = arg;
    char buf[16384];

    if ((what & EV_READ) && clock_coarse_ms() < l->until_ms) {
        ssize_t n = recv(fd, buf, sizeof(buf), MSG_DONTWAIT);
        if (n > 0 || (n < 0 && (errno == EAGAIN || errno == EINTR))) {
            return;
        }
    }
    event_free(l->ev);
    free(l);
    close(fd);
    accept_conn_add(METRIC_CONN_CLOSING, -1);
}

static void http_linger(evhtp_connection_t *conn)
{
    struct timeval wait = { HTTP_LINGER_MS / 1000, (HTTP_LINGER_MS % 1000) * 1000 };
    struct http_lingerer *l = malloc(sizeof(*l));
    int fd = l != NULL ? dup(bufferevent_getfd(conn->bev)) : -1;

    if (fd < 0) {
        free(l);
        return;                 /* out of memory or descriptors: a plain close */
    }
    shutdown(fd, SHUT_WR);
    l->until_ms = clock_coarse_ms() + HTTP_LINGER_MS;
    l->ev = event_new(conn->evbase, fd, EV_READ | EV_PERSIST, http_on_linger, l);
    if (l->ev == NULL || event_add(l->ev, &wait) != 0) {
        if (l->ev != NULL) {
            event_free(l->ev);
        }
        free(l);
        close(fd);
        return;
    }
    accept_conn_add(METRIC_CONN_CLOSING, 1);    /* a descriptor held like any connection */
}

static void http_conn_free(struct http_conn *hc)
{
    struct evbuffer *buffers[] = { hc->held, hc->head, hc->body };

    http_conn_detach(hc);
    LIST_REMOVE(hc, link);
    for (size_t i = 0; i < PL_ARRAY_LEN(buffers); i++) {
        if (buffers[i] != NULL) {
            evbuffer_free(buffers[i]);
        }
    }
    free(hc);
}

static evhtp_res http_connection_fini(evhtp_connection_t *conn, void *arg)
{
    struct http_conn *hc = arg;
    int status = hc->reject_status;

    if (status == 0 && conn->request != NULL && !(conn->request->flags & EVHTP_REQ_FLAG_FINISHED)
        && conn->parser != NULL && htparser_get_error(conn->parser) != htparse_error_none) {
        status = htparser_get_error(conn->parser) == htparse_error_too_big ? 431 : 400;
    }
    if (status != 0 && conn->bev != NULL) {
        http_send_rejection(conn, status, hc->reject_reason);
        http_linger(conn);
    }
    accept_conn_add(METRIC_CONN_HTTP, -1);
    /* libevhtp frees the connection's request after this hook, and
     * http_request_fini looks the connection's state up through here. */
    conn->hooks->on_connection_fini_arg = NULL;
    http_conn_free(hc);
    return EVHTP_RES_OK;
}

static void http_gate_refuse(struct http_conn *hc, int status, const char *reason)
{
    hc->reject_status = status;
    hc->reject_reason = reason;
    evhtp_connection_free(hc->conn);    /* the fini hook answers */
}

/* Reads the request head; moves on to its body once the head is in. */
static int http_gate_head(struct http_conn *hc)
{
    size_t len = evbuffer_get_length(hc->held);
    size_t look = gate.cfg->max_header_size + HTTP_MAX_REQUEST_LINE + 1;
    int status;

    if (len == 0) {
        return PL_AGAIN;
    }
    if (hc->request_started_ms == 0) {
        /* The whole request, head and body, has a deadline: a head or a
         * body trickled a byte at a time would hold the connection forever. */
        hc->request_started_ms = clock_coarse_ms();
    }
    /* At LOOK bytes a head is over one limit or the other: a verdict. */
    len = len < look ? len : look;
    status = http_head_scan(&hc->scan, (const char *)evbuffer_pullup(hc->held, (ev_ssize_t)len), len,
                            gate.cfg->max_header_size, gate.cfg->max_body);
    if (status != PL_OK) {
        return status;
    }
    evbuffer_drain(hc->held, hc->scan.start);       /* empty lines before the request line */
    hc->head_len = hc->scan.scanned - hc->scan.start;
    if (hc->scan.chunked) {
        evbuffer_remove_buffer(hc->held, hc->head, hc->head_len);
        http_chunked_init(&hc->chunked, gate.cfg->max_body, gate.cfg->max_header_size);
        hc->phase = HTTP_PHASE_CHUNKED;
    } else {
        hc->phase = HTTP_PHASE_LENGTH;
    }
    return PL_AGAIN;
}

/* Decodes what has arrived of a chunked body into hc->body. */
static int http_gate_chunked(struct http_conn *hc)
{
    char out[16384];
    int status = PL_AGAIN;

    while (status == PL_AGAIN && evbuffer_get_length(hc->held) > 0) {
        struct evbuffer_iovec v[8];
        int n = evbuffer_peek(hc->held, -1, NULL, v, (int)PL_ARRAY_LEN(v));
        size_t taken = 0;

        for (int i = 0; i < n && i < (int)PL_ARRAY_LEN(v) && status == PL_AGAIN; i++) {
            for (size_t off = 0; off < v[i].iov_len && status == PL_AGAIN;) {
                size_t piece = v[i].iov_len - off < sizeof(out) ? v[i].iov_len - off : sizeof(out);
                size_t used, outlen;

                status = http_chunked_decode(&hc->chunked, (const char *)v[i].iov_base + off, piece,
                                             &used, out, &outlen);
                evbuffer_add(hc->body, out, outlen);
                off += used;
                taken += used;
            }
        }
        if (taken == 0) {
            break;              /* nothing readable after all: wait */
        }
        evbuffer_drain(hc->held, taken);
    }
    return status;
}

/* Hands libevhtp the request now complete: its head, framed by
 * Content-Length alone, and its body.  Returns PL_ERR when memory ran out
 * (the connection is then closed). */
static int http_gate_hand(struct http_conn *hc)
{
    struct evbuffer *in = bufferevent_get_input(hc->conn->bev);
    struct evbuffer *head = hc->scan.chunked ? hc->head : hc->held;
    struct evbuffer *body = hc->scan.chunked ? hc->body : hc->held;
    uint64_t body_len = hc->scan.chunked ? evbuffer_get_length(hc->body) : hc->scan.length;
    struct evbuffer_iovec v;
    int status = PL_OK;

    /* A socket bufferevent keeps the end of its input for what it reads. */
    evbuffer_unfreeze(in, 0);
    if (hc->scan.framing_fields == 0) {
        evbuffer_remove_buffer(head, in, hc->head_len);
    } else if (evbuffer_reserve_space(in, (ev_ssize_t)(hc->head_len + HTTP_HEAD_REWRITE_EXTRA), &v, 1) < 1) {
        status = PL_ERR;
    } else {
        v.iov_len = http_head_rewrite((const char *)evbuffer_pullup(head, (ev_ssize_t)hc->head_len),
                                      hc->head_len, body_len, v.iov_base);
        evbuffer_commit_space(in, &v, 1);
        evbuffer_drain(head, hc->head_len);
    }
    if (status == PL_OK) {
        evbuffer_remove_buffer(body, in, (size_t)body_len);
    }
    evbuffer_freeze(in, 0);
    hc->phase = HTTP_PHASE_HEAD;
    hc->request_started_ms = 0;
    hc->handed++;
    memset(&hc->scan, 0, sizeof(hc->scan));
    return status;
}

/* Moves the request being read as far as the held bytes allow: refuses
 * it, hands it to libevhtp, or waits for more.  Must be the caller's last
 * use of HC: refusing or handing over may free it. */
static void http_gate_run(struct http_conn *hc)
{
    struct bufferevent *bev = hc->conn->bev;
    int status = PL_AGAIN;

    if (hc->conn->request != NULL) {
        /* libevhtp is busy with the previous request (the kick in
         * http_request_fini resumes here); hold at most about one more. */
        if (evbuffer_get_length(hc->held) > gate.cfg->max_header_size + HTTP_MAX_REQUEST_LINE + gate.cfg->max_body) {
            hc->read_stopped = 1;
            bufferevent_disable(bev, EV_READ);
        }
        return;
    }
    if (hc->phase == HTTP_PHASE_HEAD) {
        status = http_gate_head(hc);
    }
    if (hc->phase == HTTP_PHASE_LENGTH) {
        status = evbuffer_get_length(hc->held) >= hc->head_len + hc->scan.length ? PL_OK : PL_AGAIN;
    } else if (hc->phase == HTTP_PHASE_CHUNKED) {
        status = http_gate_chunked(hc);
    }
    if (status == PL_AGAIN && hc->phase != HTTP_PHASE_HEAD && hc->scan.expect_continue) {
        /* The client waits for a go-ahead before it sends the body. */
        static const char go_ahead[] = "HTTP/1.1 100 Continue\r\n\r\n";

        hc->scan.expect_continue = 0;
        evbuffer_add(bufferevent_get_output(bev), go_ahead, sizeof(go_ahead) - 1);
    }
    if (status == PL_AGAIN) {
        return;
    }
    if (status > 0) {
        http_gate_refuse(hc, status, hc->phase == HTTP_PHASE_CHUNKED ? hc->chunked.reason : hc->scan.reason);
        return;
    }
    if (http_gate_hand(hc) != PL_OK) {
        log_error(ENOMEM, "event=request_dropped");
        evhtp_connection_free(hc->conn);
        return;
    }
    gate.evhtp_read_cb(bev, hc->conn);
}

static void http_on_read(struct bufferevent *bev, void *arg)
{
    struct http_conn *hc = arg;

    evbuffer_add_buffer(hc->held, bufferevent_get_input(bev));
    http_gate_run(hc);
}

static void http_on_write(struct bufferevent *bev, void *arg)
{
    struct http_conn *hc = arg;

    /* All is out: the next answer is written by the gate again (if
     * libevent wrote this one, it has disarmed the write event already). */
    bufferevent_disable(bev, EV_WRITE);
    /* Between requests (after a 100 Continue) libevhtp's write callback
     * would take the missing request for an error and drop the connection. */
    if (hc->conn->request != NULL) {
        gate.evhtp_write_cb(bev, hc->conn);
    }
}

static void http_on_event(struct bufferevent *bev, short what, void *arg)
{
    struct http_conn *hc = arg;

    /* While a request is being answered, the client's end of input (it may
     * half-close after sending) or the idle read timeout (the answer may
     * wait on Redis) does not end it: reading stops until the answer is
     * out, and then the end is seen again (or the idle timer restarts). */
    if (hc->conn->request != NULL && (what & BEV_EVENT_READING) && !(what & BEV_EVENT_ERROR)
        && (what & (BEV_EVENT_EOF | BEV_EVENT_TIMEOUT))) {
        hc->read_stopped = 1;       /* the request's end reads again (http_on_kick) */
        bufferevent_disable(bev, EV_READ);
        return;
    }
    gate.evhtp_event_cb(bev, what, hc->conn);
}

static evhtp_res http_connection_accepted(evhtp_connection_t *conn, void *arg)
{
    struct http_conn *hc = calloc(1, sizeof(*hc));

    PL_UNUSED(arg);
    if (hc == NULL) {
        return EVHTP_RES_ERROR;
    }
    LIST_INSERT_HEAD(&gate.conns, hc, link);
    hc->held = evbuffer_new();
    hc->head = evbuffer_new();
    hc->body = evbuffer_new();
    if (hc->held == NULL || hc->head == NULL || hc->body == NULL) {
        http_conn_free(hc);
        return EVHTP_RES_ERROR;
    }
    hc->conn = conn;
    /* Every write is a whole answer or event, written once: Nagle's
     * algorithm would only hold the next one back until the peer's
     * delayed ACK (up to 40 ms on Linux). */
    setsockopt(bufferevent_getfd(conn->bev), IPPROTO_TCP, TCP_NODELAY, &(int){ 1 }, sizeof(int));
    metrics_add(METRIC_ACCEPTED, 1);
    accept_conn_add(METRIC_CONN_HTTP, 1);
    evhtp_connection_set_hook(conn, evhtp_hook_on_connection_fini, (evhtp_hook)http_connection_fini, hc);
    bufferevent_getcb(conn->bev, &gate.evhtp_read_cb, &gate.evhtp_write_cb, &gate.evhtp_event_cb, NULL);
    bufferevent_setcb(conn->bev, http_on_read, http_on_write, http_on_event, hc);
    hc->out_cb = evbuffer_add_cb(bufferevent_get_output(conn->bev), http_on_output, hc);
    if (hc->out_cb != NULL) {
        bufferevent_disable(conn->bev, EV_WRITE);   /* the gate writes answers (http_on_flush) */
    }
    return EVHTP_RES_OK;
}

/* Slowloris: a head or a body trickled byte by byte keeps resetting a read
 * timeout, so each request gets a deadline of its own. */
static void http_on_sweep(evutil_socket_t fd, short what, void *arg)
{
    int64_t now = clock_coarse_ms();
    struct http_conn *hc, *next;

    PL_UNUSED(fd);
    PL_UNUSED(what);
    PL_UNUSED(arg);
    for (hc = LIST_FIRST(&gate.conns); hc != NULL; hc = next) {
        next = LIST_NEXT(hc, link);
        if (hc->request_started_ms != 0 && now - hc->request_started_ms > gate.cfg->http_header_timeout_ms) {
            hc->reject_status = 408;
            evhtp_connection_free(hc->conn);    /* the fini hook answers and unlinks */
        }
    }
}

int http_gate_init(const struct worker_env *w)
{
    struct timeval tick = { 0, 250 * 1000 };

    gate.cfg = w->cfg;
    TAILQ_INIT(&gate.flushes);
    TAILQ_INIT(&gate.kicks);
    gate.flush_ev = event_new(w->base, -1, 0, http_on_flush, NULL);
    gate.kick_ev = event_new(w->base, -1, 0, http_on_kick, NULL);
    gate.sweep_ev = event_new(w->base, -1, EV_PERSIST, http_on_sweep, NULL);
    return gate.flush_ev != NULL && gate.kick_ev != NULL && gate.sweep_ev != NULL
           && event_add(gate.sweep_ev, &tick) == 0 ? PL_OK : PL_ERR;
}

void http_gate_attach(evhtp_t *htp)
{
    /* The gate collects a body before libevhtp sees its head, so the gate
     * says "100 Continue" (libevhtp would say it too late). */
    htp->flags &= (uint16_t)~EVHTP_FLAG_ENABLE_100_CONT;
    evhtp_set_post_accept_cb(htp, http_connection_accepted, NULL);
}
