/* http.c - route table, dispatch, request ids and replies. */
#include "http.h"
#include "clock.h"
#include "http_chunked.h"
#include "http_head.h"

#include <ctype.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/queue.h>
#include <sys/random.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <event2/bufferevent.h>
#include <event2/event.h>
#include <json-c/json.h>

#include "accept.h"
#include "log.h"
#include "metrics.h"
#include "names.h"
#include "netaddr.h"
#include "parley.h"
#include "ws_frame.h"
#include "worker.h"

#define HTTP_MAX_ROUTES 32
#define HTTP_STREAM_SNDBUF (64 * 1024)

struct http_route {
    const char *pattern;
    unsigned methods;
    http_handler_cb handler;
};

static struct http_route routes[HTTP_MAX_ROUTES];
static int nroutes;
static http_handler_cb fallback;
static int inflight;
static int in_dispatch;            /* inside http_dispatch, i.e. evhtp's read callback */
static int draining;
static uint32_t request_prefix;
static uint32_t request_counter;
static const struct conf *http_cfg;
static struct event *sweep_ev;
static struct netaddr_set trusted_proxies;

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
    int read_stopped;               /* reading paused: too much is held while libevhtp is busy */
    int kick_pending;
    uint64_t serial;                /* names it safely in deferred calls */
    LIST_ENTRY(http_conn) link;
};

static uint64_t http_conn_serial;

/* libevhtp's own bufferevent callbacks, called behind the head gate. */
static bufferevent_data_cb evhtp_read_cb, evhtp_write_cb;
static bufferevent_event_cb evhtp_event_cb;

static LIST_HEAD(, http_conn) http_conns = LIST_HEAD_INITIALIZER(http_conns);


void http_route_add(const char *pattern, unsigned methods, http_handler_cb handler)
{
    if (nroutes == HTTP_MAX_ROUTES) {
        log_error(0, "event=too_many_routes pattern=%s", pattern);
        return;
    }
    routes[nroutes++] = (struct http_route){ pattern, methods, handler };
}

void http_set_fallback(http_handler_cb handler)
{
    fallback = handler;
}

int http_inflight(void)
{
    return inflight;
}

void http_drain(void)
{
    struct http_conn *hc, *next;

    draining = 1;
    /* An idle keep-alive connection is closed now, not when the worker
     * exits: a proxy that pooled it learns at once, and does not send a
     * request down it in the instant before it goes.  A connection that
     * has not brought its first request yet is not idle: it is served. */
    for (hc = LIST_FIRST(&http_conns); hc != NULL; hc = next) {
        next = LIST_NEXT(hc, link);
        if (hc->handed > 0 && hc->conn->request == NULL && hc->request_started_ms == 0
            && evbuffer_get_length(hc->held) == 0) {
            evhtp_connection_free(hc->conn);    /* the fini hook unlinks it */
        }
    }
}

static int hexval(int c)
{
    return isdigit(c) ? c - '0' : (tolower(c) >= 'a' && tolower(c) <= 'f') ? tolower(c) - 'a' + 10 : -1;
}

int http_percent_decode(const char *s, size_t len, char *out, size_t outlen)
{
    size_t o = 0;

    for (size_t i = 0; i < len; i++) {
        int c = (unsigned char)s[i];
        if (c == '%') {
            int hi, lo;
            if (i + 2 >= len) {
                return PL_ERR;
            }
            hi = hexval((unsigned char)s[i + 1]);
            lo = hexval((unsigned char)s[i + 2]);
            if (hi < 0 || lo < 0 || (hi == 0 && lo == 0)) {
                return PL_ERR;
            }
            c = hi * 16 + lo;
            i += 2;
        }
        if (o + 1 >= outlen) {
            return PL_ERR;
        }
        out[o++] = (char)c;
    }
    out[o] = '\0';
    return PL_OK;
}

int http_route_match(const char *pattern, const char *path, struct http_params *params)
{
    params->count = 0;
    while (*pattern && *path) {
        if (pattern[0] == '{' && pattern[1] == '}') {
            size_t seg = strcspn(path, "/");
            if (seg == 0) {
                return 0;
            }
            if (params->count == HTTP_MAX_PARAMS
                || http_percent_decode(path, seg, params->value[params->count], HTTP_PARAM_MAX) != PL_OK) {
                return -1;
            }
            params->count++;
            pattern += 2;
            path += seg;
        } else if (*pattern++ != *path++) {
            return 0;
        }
    }
    return *pattern == '\0' && *path == '\0';
}

static unsigned http_method_bit(htp_method m)
{
    switch (m) {
    case htp_method_GET: return HTTP_GET;
    case htp_method_HEAD: return HTTP_HEAD;
    case htp_method_POST: return HTTP_POST;
    case htp_method_OPTIONS: return HTTP_OPTIONS;
    case htp_method_DELETE: return HTTP_DELETE;
    default: return 0;
    }
}

/* The methods a route serves: HEAD wherever GET is (RFC 9110 9.3.2; the
 * handler sees HEAD, and http_reply leaves the body out), unless the route
 * says HTTP_NO_HEAD. */
static unsigned http_route_methods(unsigned methods)
{
    if ((methods & HTTP_GET) && !(methods & HTTP_NO_HEAD)) {
        methods |= HTTP_HEAD;
    }
    return methods & ~(unsigned)HTTP_NO_HEAD;
}

static void http_allow_header(unsigned methods, char *buf, size_t len)
{
    static const char *const names[] = { "GET", "HEAD", "POST", "OPTIONS", "DELETE" };
    size_t n = 0;

    buf[0] = '\0';
    for (size_t i = 0; i < PL_ARRAY_LEN(names); i++) {
        if (methods & (1u << i)) {
            n += (size_t)snprintf(buf + n, len - n, "%s%s", n ? ", " : "", names[i]);
        }
    }
}

/* A client's own X-Request-Id (from a proxy) is kept when it is tame. */
static int http_request_id_acceptable(const char *id)
{
    size_t n = strlen(id);

    if (n == 0 || n > 64) {
        return 0;
    }
    for (size_t i = 0; i < n; i++) {
        if (!isalnum((unsigned char)id[i]) && !strchr("._:-", id[i])) {
            return 0;
        }
    }
    return 1;
}

static void http_assign_request_id(evhtp_request_t *req)
{
    const char *given = evhtp_header_find(req->headers_in, "X-Request-Id");
    char id[32];

    if (given != NULL && http_request_id_acceptable(given)) {
        http_header_set(req, "X-Request-Id", given);
        return;
    }
    snprintf(id, sizeof(id), "%08x%08x", request_prefix, ++request_counter);
    http_header_set(req, "X-Request-Id", id);
}

const char *http_request_id(evhtp_request_t *req)
{
    const char *id = evhtp_header_find(req->headers_out, "X-Request-Id");
    return id ? id : "-";
}

void http_header_set(evhtp_request_t *req, const char *key, const char *value)
{
    evhtp_headers_add_header(req->headers_out, evhtp_header_new(key, value, 1, 1));
}

static void http_gate_run(struct http_conn *hc);
static void http_conn_free(struct http_conn *hc);

static void http_on_kick(evutil_socket_t fd, short what, void *arg)
{
    uint64_t serial = (uint64_t)(uintptr_t)arg;
    struct http_conn *hc;

    PL_UNUSED(fd);
    PL_UNUSED(what);
    LIST_FOREACH(hc, &http_conns, link) {
        if (hc->serial == serial) {
            break;
        }
    }
    if (hc == NULL) {
        return;                 /* the connection is gone */
    }
    hc->kick_pending = 0;
    if (hc->conn->request == NULL && hc->conn->bev != NULL && !(hc->conn->flags & EVHTP_CONN_FLAG_PAUSED)) {
        if (hc->read_stopped) {
            hc->read_stopped = 0;
            bufferevent_enable(hc->conn->bev, EV_READ);
        }
        http_gate_run(hc);
    }
}

static evhtp_res http_request_fini(evhtp_request_t *req, void *arg)
{
    struct http_hold *hold = arg;
    struct bufferevent *bev = req->conn ? req->conn->bev : NULL;

    inflight--;
    if (hold != NULL) {
        hold->req = NULL;
    }
    /* The head gate hands libevhtp one request at a time: once it is done
     * with this one, hand it the next if that is already held (from the
     * loop, not from inside libevhtp's own bookkeeping). */
    if (bev != NULL) {
        struct http_conn *hc = req->conn->hooks ? req->conn->hooks->on_connection_fini_arg : NULL;
        if (hc != NULL && !hc->kick_pending && (evbuffer_get_length(hc->held) > 0 || hc->read_stopped)) {
            hc->kick_pending = 1;
            event_base_once(bufferevent_get_base(bev), -1, EV_TIMEOUT, http_on_kick,
                            (void *)(uintptr_t)hc->serial, NULL);
        }
    }
    return EVHTP_RES_OK;
}

struct http_hold *http_hold(evhtp_request_t *req)
{
    struct http_hold *hold = malloc(sizeof(*hold));

    if (hold == NULL) {
        return NULL;
    }
    hold->req = req;
    evhtp_request_set_hook(req, evhtp_hook_on_request_fini, (evhtp_hook)http_request_fini, hold);
    evhtp_request_pause(req);
    return hold;
}

void http_release(struct http_hold *hold)
{
    evhtp_connection_t *conn;

    if (hold->req != NULL) {
        conn = hold->req->conn;
        evhtp_request_set_hook(hold->req, evhtp_hook_on_request_fini, (evhtp_hook)http_request_fini, NULL);
        if (conn->flags & EVHTP_CONN_FLAG_PAUSED) {
            /* Not evhtp_request_resume(): with pipelined requests queued its
             * resume path parses the next one before the finished request's
             * keep-alive bookkeeping and garbles them.  Unpausing plainly
             * lets the write callback finish this request first; the
             * request-fini kick then reads what is queued. */
            conn->flags &= ~EVHTP_CONN_FLAG_PAUSED;
            hold->req->status = EVHTP_RES_OK;
            if (conn->bev != NULL) {
                bufferevent_enable(conn->bev, EV_READ | EV_WRITE);
            }
        }
    }
    free(hold);
}

struct bufferevent *http_take_over(evhtp_request_t *req, enum metrics_gauge transport)
{
    evhtp_connection_t *conn = req->conn;
    struct bufferevent *bev;

    struct http_conn *hc = conn->hooks ? conn->hooks->on_connection_fini_arg : NULL;

    /* take_ownership drops our hooks, so do here what they would do; bytes
     * the client sent after this request (a WebSocket frame) stay readable. */
    inflight--;
    accept_conn_move(METRIC_CONN_HTTP, transport);
    if (hc != NULL) {
        if (conn->bev != NULL) {
            struct evbuffer *in = bufferevent_get_input(conn->bev);

            evbuffer_unfreeze(in, 0);
            evbuffer_add_buffer(in, hc->held);
            evbuffer_freeze(in, 0);
        }
        http_conn_free(hc);
    }
    bev = evhtp_connection_take_ownership(conn);
    bufferevent_set_timeouts(bev, NULL, NULL);      /* long-lived from now on */
    /* A fixed, modest kernel buffer: without it loopback autotuning would
     * hide megabytes of a slow client's backlog from ws/sse_max_backlog,
     * and 100k streams would pin that much kernel memory. */
    setsockopt(bufferevent_getfd(bev), SOL_SOCKET, SO_SNDBUF, &(int){ HTTP_STREAM_SNDBUF }, sizeof(int));
    if (!in_dispatch) {
        /* Inside a handler evhtp frees the connection itself on return. */
        evhtp_connection_free(conn);
    }
    return bev;
}

enum origin_verdict http_origin(evhtp_request_t *req)
{
    return origin_check(evhtp_header_find(req->headers_in, "Origin"),
                        evhtp_header_find(req->headers_in, "Host"), http_cfg->allowed_origins);
}

/* Every X-Forwarded-For line of REQ joined into one list, in order (RFC
 * 9110 5.3): a proxy adds its own line after the client's, so reading the
 * first line alone would believe the client.  NULL when there is none;
 * the caller frees it. */
static char *http_forwarded_for(evhtp_request_t *req)
{
    evhtp_kv_t *kv;
    size_t total = 0, n = 0;
    char *list;

    TAILQ_FOREACH(kv, req->headers_in, next) {
        total += strcasecmp(kv->key, "X-Forwarded-For") == 0 ? kv->vlen + 1 : 0;
    }
    if (total == 0 || (list = malloc(total)) == NULL) {
        return NULL;
    }
    TAILQ_FOREACH(kv, req->headers_in, next) {
        if (strcasecmp(kv->key, "X-Forwarded-For") == 0) {
            n += (size_t)snprintf(list + n, total - n, "%s%s", n > 0 ? "," : "", kv->val);
        }
    }
    return list;
}

const char *http_client_addr(evhtp_request_t *req, char *buf, size_t len)
{
    char *xff;

    if (req->conn == NULL || req->conn->saddr == NULL) {
        snprintf(buf, len, "-");
        return buf;
    }
    xff = http_forwarded_for(req);
    netaddr_client(req->conn->saddr, xff, &trusted_proxies, buf, len);
    free(xff);
    return buf;
}

int http_room_ok(evhtp_request_t *req, const char *name)
{
    if (name_valid(name)) {
        return 1;
    }
    http_error(req, 400, "bad_request", "invalid room name (1..64 of A-Z a-z 0-9 _ . -)");
    return 0;
}

const char *http_query(evhtp_request_t *req, const char *name, char *buf, size_t len)
{
    const char *raw;

    if (req->uri == NULL || req->uri->query == NULL
        || (raw = evhtp_kv_find(req->uri->query, name)) == NULL) {
        return NULL;
    }
    /* evhtp leaves '+' alone; in a query it means a space. */
    if (http_percent_decode(raw, strlen(raw), buf, len) != PL_OK) {
        return NULL;
    }
    for (char *p = buf; *p; p++) {
        if (*p == '+') {
            *p = ' ';
        }
    }
    return buf;
}

static void http_route(evhtp_request_t *req, const char *path, unsigned bit);

/* CORS for browsers on other origins: an Origin outside allowed_origins is
 * refused (403); an allowed one is echoed (so credentials work) and a
 * preflight is answered here for every path.  Returns 0 when answered. */
/* Answers a browser request from another origin: refused (403), or let in
 * with the CORS headers its verdict allows; preflights end here.  Returns 0
 * when REQ has been answered. */
static int http_cors(evhtp_request_t *req, const char *path)
{
    enum origin_verdict v;

    /* WebSocket handshakes check Origin themselves, at their place in the
     * contract's order (after the method, upgrade, version and key). */
    if (strncmp(path, "/ws/", 4) == 0 || (v = http_origin(req)) == ORIGIN_NONE || v == ORIGIN_SAME) {
        return 1;
    }
    if (v == ORIGIN_REFUSED) {
        http_error(req, 403, "forbidden", "origin not allowed");
        return 0;
    }
    if (v == ORIGIN_ANY) {
        http_header_set(req, "Access-Control-Allow-Origin", "*");   /* never with credentials */
    } else {
        http_header_set(req, "Access-Control-Allow-Origin", evhtp_header_find(req->headers_in, "Origin"));
        http_header_set(req, "Access-Control-Allow-Credentials", "true");
        http_header_set(req, "Vary", "Origin");
    }
    if (req->method == htp_method_OPTIONS
        && evhtp_header_find(req->headers_in, "Access-Control-Request-Method") != NULL) {
        http_header_set(req, "Access-Control-Allow-Methods", "GET, POST, DELETE, OPTIONS");
        http_header_set(req, "Access-Control-Allow-Headers",
                        "Authorization, Content-Type, Last-Event-ID, X-Request-Id");
        http_header_set(req, "Access-Control-Max-Age", "600");
        http_reply(req, 204, NULL, "", 0);
        return 0;
    }
    http_header_set(req, "Access-Control-Expose-Headers", "X-Request-Id, Retry-After");
    return 1;
}

/* Whether the client asked to close after this request: "close" among the
 * tokens of any Connection line, in any case (RFC 9110 7.6.1); libevhtp
 * knows only the exact value "close". */
static int http_wants_close(evhtp_request_t *req)
{
    evhtp_kv_t *kv;

    TAILQ_FOREACH(kv, req->headers_in, next) {
        if (strcasecmp(kv->key, "Connection") == 0 && ws_header_has_token(kv->val, "close")) {
            return 1;
        }
    }
    return 0;
}

/* A field that may appear once but came twice (which one would count is a
 * guess: two Authorizations, two Origins), or NULL. */
static const char *http_repeated_field(evhtp_request_t *req)
{
    static const char *const once[] = {
        "Authorization", "Origin", "Content-Type", "Last-Event-ID", "Sec-WebSocket-Key", "Sec-WebSocket-Version",
    };
    evhtp_kv_t *kv;

    for (size_t i = 0; i < PL_ARRAY_LEN(once); i++) {
        int seen = 0;
        TAILQ_FOREACH(kv, req->headers_in, next) {
            if (strcasecmp(kv->key, once[i]) == 0 && ++seen == 2) {
                return once[i];
            }
        }
    }
    return NULL;
}

static void http_dispatch(evhtp_request_t *req, void *arg)
{
    const char *path = req->uri && req->uri->path ? req->uri->path->full : "/";
    const char *repeated;
    unsigned bit = http_method_bit(req->method);

    PL_UNUSED(arg);
    inflight++;
    evhtp_request_set_hook(req, evhtp_hook_on_request_fini, (evhtp_hook)http_request_fini, NULL);
    metrics_add(METRIC_REQUESTS, 1);
    http_assign_request_id(req);
    if (draining || http_wants_close(req)) {
        /* evhtp_request_set_keepalive(req, 0) does nothing in libevhtp
         * 1.2.18 (it only ever sets the flag): clear it here. */
        req->flags &= ~EVHTP_REQ_FLAG_KEEPALIVE;
    }

    in_dispatch = 1;
    if ((repeated = http_repeated_field(req)) != NULL) {
        http_error(req, 400, "bad_request", "more than one %s header", repeated);
    } else if (http_cors(req, path)) {
        http_route(req, path, bit);
    }
    in_dispatch = 0;
}

static void http_route(evhtp_request_t *req, const char *path, unsigned bit)
{
    struct http_params params;
    unsigned allowed = 0;
    char allow[64];

    for (int i = 0; i < nroutes; i++) {
        int m = http_route_match(routes[i].pattern, path, &params);
        unsigned methods = http_route_methods(routes[i].methods);

        if (m < 0) {
            http_error(req, 400, "bad_request", "malformed percent-encoding in path");
            return;
        }
        if (m == 0) {
            continue;
        }
        if (methods & bit) {
            routes[i].handler(req, &params);
            return;
        }
        allowed |= methods;
    }
    if (allowed != 0) {
        http_allow_header(allowed, allow, sizeof(allow));
        http_header_set(req, "Allow", allow);
        http_error(req, 405, "method_not_allowed", "method not allowed; allowed: %s", allow);
        return;
    }
    if (fallback != NULL) {
        params.count = 0;
        fallback(req, &params);
        return;
    }
    http_error(req, 404, "not_found", "no such resource");
}

/* --- connections: limits that libevhtp does not enforce ------------------ */


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
        snprintf(id, sizeof(id), "%08x%08x", request_prefix, ++request_counter);
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

/* --- the head gate -------------------------------------------------------
 * parley owns HTTP/1.1 framing; libevhtp only parses what it is handed.
 * Every byte read goes to the connection's held buffer.  While libevhtp is
 * idle, the gate checks the next request head whole (http_head_scan),
 * collects its body (Content-Length bytes, or a chunked body decoded by
 * http_chunked_decode), and hands libevhtp exactly that one request with a
 * head that frames it by Content-Length alone, so libevhtp's own chunk
 * parser never runs and both agree where the next request starts.  One
 * request per hand-over also keeps libevhtp off its "pipelined data left"
 * path, which prints ODDITY lines to stderr.  A refused request is answered
 * (http_send_rejection) and the connection closed. */

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
    size_t look = http_cfg->max_header_size + HTTP_MAX_REQUEST_LINE + 1;
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
                            http_cfg->max_header_size, http_cfg->max_body);
    if (status != PL_OK) {
        return status;
    }
    evbuffer_drain(hc->held, hc->scan.start);       /* empty lines before the request line */
    hc->head_len = hc->scan.scanned - hc->scan.start;
    if (hc->scan.chunked) {
        evbuffer_remove_buffer(hc->held, hc->head, hc->head_len);
        http_chunked_init(&hc->chunked, http_cfg->max_body, http_cfg->max_header_size);
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
        if (evbuffer_get_length(hc->held) > http_cfg->max_header_size + HTTP_MAX_REQUEST_LINE + http_cfg->max_body) {
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
    evhtp_read_cb(bev, hc->conn);
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

    /* Between requests (after a 100 Continue) libevhtp's write callback
     * would take the missing request for an error and drop the connection. */
    if (hc->conn->request != NULL) {
        evhtp_write_cb(bev, hc->conn);
    }
}

static void http_on_event(struct bufferevent *bev, short what, void *arg)
{
    evhtp_event_cb(bev, what, ((struct http_conn *)arg)->conn);
}

static evhtp_res http_connection_accepted(evhtp_connection_t *conn, void *arg)
{
    struct http_conn *hc = calloc(1, sizeof(*hc));

    PL_UNUSED(arg);
    if (hc == NULL) {
        return EVHTP_RES_ERROR;
    }
    LIST_INSERT_HEAD(&http_conns, hc, link);
    hc->held = evbuffer_new();
    hc->head = evbuffer_new();
    hc->body = evbuffer_new();
    if (hc->held == NULL || hc->head == NULL || hc->body == NULL) {
        http_conn_free(hc);
        return EVHTP_RES_ERROR;
    }
    hc->conn = conn;
    hc->serial = ++http_conn_serial;
    metrics_add(METRIC_ACCEPTED, 1);
    accept_conn_add(METRIC_CONN_HTTP, 1);
    evhtp_connection_set_hook(conn, evhtp_hook_on_connection_fini, (evhtp_hook)http_connection_fini, hc);
    bufferevent_getcb(conn->bev, &evhtp_read_cb, &evhtp_write_cb, &evhtp_event_cb, NULL);
    bufferevent_setcb(conn->bev, http_on_read, http_on_write, http_on_event, hc);
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
    for (hc = LIST_FIRST(&http_conns); hc != NULL; hc = next) {
        next = LIST_NEXT(hc, link);
        if (hc->request_started_ms != 0 && now - hc->request_started_ms > http_cfg->http_header_timeout_ms) {
            hc->reject_status = 408;
            evhtp_connection_free(hc->conn);    /* the fini hook answers and unlinks */
        }
    }
}

int http_init(const struct worker_env *w)
{
    struct timeval tick = { 0, 250 * 1000 };
    const struct conf *cfg = w->cfg;
    char why[256];

    http_cfg = cfg;
    if (netaddr_set_parse(cfg->trusted_proxies, &trusted_proxies, why, sizeof(why)) != PL_OK) {
        trusted_proxies.n = 0;  /* conf.c validated it: not reached */
    }
    if (getrandom(&request_prefix, sizeof(request_prefix), 0) != sizeof(request_prefix)) {
        request_prefix = (uint32_t)getpid();
    }
    sweep_ev = event_new(w->base, -1, EV_PERSIST, http_on_sweep, NULL);
    return sweep_ev != NULL && event_add(sweep_ev, &tick) == 0 ? PL_OK : PL_ERR;
}

void http_attach(evhtp_t *htp)
{
    struct timeval idle = { http_cfg->http_keepalive_timeout_ms / 1000,
                            (http_cfg->http_keepalive_timeout_ms % 1000) * 1000 };

    evhtp_set_gencb(htp, http_dispatch, NULL);
    /* The head gate collects a body before libevhtp sees its head, so the
     * gate says "100 Continue" (libevhtp would say it too late). */
    htp->flags &= (uint16_t)~EVHTP_FLAG_ENABLE_100_CONT;
    evhtp_set_post_accept_cb(htp, http_connection_accepted, NULL);
    /* libevhtp refuses a body that reaches its limit; max_body itself is fine. */
    evhtp_set_max_body_size(htp, http_cfg->max_body + 1);
    evhtp_set_timeouts(htp, &idle, NULL);
}

void http_log_response(evhtp_request_t *req, int status)
{
    static const char *const methods[] = {
        "GET", "HEAD", "POST", "PUT", "DELETE", "MKCOL", "COPY", "MOVE", "OPTIONS",
        "PROPFIND", "PROPPATCH", "LOCK", "UNLOCK", "TRACE", "CONNECT", "PATCH",
    };
    char path[256], client[NETADDR_TEXT_MAX];

    metrics_count_response(status);
    if (!log_enabled(status >= 500 ? LOG_LEVEL_WARN : LOG_LEVEL_INFO)) {
        return;
    }
    log_value(req->uri && req->uri->path ? req->uri->path->full : "-", 0, path, sizeof(path));
    log_write(status >= 500 ? LOG_LEVEL_WARN : LOG_LEVEL_INFO, 0,
              "event=request id=%s client=%s method=%s path=%s status=%d",
              http_request_id(req), http_client_addr(req, client, sizeof(client)),
              (size_t)req->method < PL_ARRAY_LEN(methods) ? methods[req->method] : "OTHER",
              path, status);
}

void http_reply(evhtp_request_t *req, int status, const char *content_type,
                const void *body, size_t len)
{
    if (content_type != NULL) {
        evhtp_headers_add_header(req->headers_out, evhtp_header_new("Content-Type", content_type, 0, 0));
    }
    if (req->method != htp_method_HEAD) {
        evbuffer_add(req->buffer_out, body, len);
    } else {
        /* The length a GET's body would have, not libevhtp's 0. */
        char n[24];

        snprintf(n, sizeof(n), "%zu", len);
        http_header_set(req, "Content-Length", n);
    }
    http_log_response(req, status);
    evhtp_send_reply(req, (evhtp_res)status);
}

void http_rate_limited(evhtp_request_t *req, long long wait_ms, const char *what)
{
    char retry[24];

    snprintf(retry, sizeof(retry), "%lld", (wait_ms + 999) / 1000);
    http_header_set(req, "Retry-After", retry);
    http_error(req, 429, "rate_limited", "too many %s; retry after %s s", what, retry);
}

void http_error(evhtp_request_t *req, int status, const char *code, const char *fmt, ...)
{
    char message[512];
    json_object *root, *err;
    const char *text;
    va_list ap;

    va_start(ap, fmt);
    vsnprintf(message, sizeof(message), fmt, ap);
    va_end(ap);

    if (status == 401) {
        http_header_set(req, "WWW-Authenticate", "Bearer");
    }
    err = json_object_new_object();
    json_object_object_add(err, "code", json_object_new_string(code));
    json_object_object_add(err, "message", json_object_new_string(message));
    root = json_object_new_object();
    json_object_object_add(root, "error", err);
    text = json_object_to_json_string_ext(root, JSON_C_TO_STRING_PLAIN | JSON_C_TO_STRING_NOSLASHESCAPE);
    http_reply(req, status, "application/json", text, strlen(text));
    json_object_put(root);
}
