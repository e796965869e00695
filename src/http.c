/* http.c - route table, dispatch, request ids and replies. */
#include "http.h"

#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/queue.h>
#include <sys/socket.h>

#include <event2/bufferevent.h>
#include <event2/event.h>
#include <json-c/json.h>

#include "accept.h"
#include "http_gate.h"
#include "log.h"
#include "metrics.h"
#include "names.h"
#include "netaddr.h"
#include "parley.h"
#include "request_id.h"
#include "ws_frame.h"
#include "worker_env.h"

#define HTTP_MAX_ROUTES 32
#define HTTP_STREAM_SNDBUF (64 * 1024)

struct http_route {
    const char *pattern;
    unsigned methods;
    http_handler_cb handler;
};

static struct {
    const struct conf *cfg;
    struct http_route routes[HTTP_MAX_ROUTES];
    int nroutes;
    http_handler_cb fallback;
    int inflight;
    int in_dispatch;            /* inside http_dispatch, i.e. evhtp's read callback */
    int draining;
    struct netaddr_set trusted_proxies;
} http;



void http_route_add(const char *pattern, unsigned methods, http_handler_cb handler)
{
    if (http.nroutes == HTTP_MAX_ROUTES) {
        log_error(0, "event=too_many_routes pattern=%s", pattern);
        return;
    }
    http.routes[http.nroutes++] = (struct http_route){ pattern, methods, handler };
}

void http_set_fallback(http_handler_cb handler)
{
    http.fallback = handler;
}

int http_inflight(void)
{
    return http.inflight;
}

void http_drain(void)
{
    http.draining = 1;
    http_gate_close_idle();
}

static int hexval(int c)
{
    return isdigit(c) ? c - '0' : (tolower(c) >= 'a' && tolower(c) <= 'f') ? tolower(c) - 'a' + 10 : -1;
}

int http_percent_decode(const char *s, size_t len, char *out, size_t outlen, int plus_space)
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
        } else if (c == '+' && plus_space) {
            c = ' ';
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
                || http_percent_decode(path, seg, params->value[params->count], HTTP_PARAM_MAX, 0) != PL_OK) {
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

static void http_assign_request_id(evhtp_request_t *req)
{
    const char *given = evhtp_header_find(req->headers_in, "X-Request-Id");
    char id[32];

    if (given != NULL && request_id_acceptable(given)) {
        http_header_set(req, "X-Request-Id", given);
        return;
    }
    request_id_new(id, sizeof(id));
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

static evhtp_res http_request_fini(evhtp_request_t *req, void *arg)
{
    struct http_hold *hold = arg;

    http.inflight--;
    if (hold != NULL) {
        hold->req = NULL;
    }
    http_gate_request_done(req);
    return EVHTP_RES_OK;
}

struct http_hold *http_hold(evhtp_request_t *req)
{
    struct http_hold *hold = malloc(sizeof(*hold));

    if (hold == NULL) {
        return NULL;
    }
    hold->req = req;
    /* Not evhtp_request_pause(): the gate already hands libevhtp nothing
     * more until this request is done, and pausing costs two epoll_ctl
     * calls a request (reading off, then on again); the gate keeps a
     * client's end of input from ending the request early. */
    evhtp_request_set_hook(req, evhtp_hook_on_request_fini, (evhtp_hook)http_request_fini, hold);
    return hold;
}

void http_release(struct http_hold *hold)
{
    if (hold->req != NULL) {
        evhtp_request_set_hook(hold->req, evhtp_hook_on_request_fini, (evhtp_hook)http_request_fini, NULL);
    }
    free(hold);
}

struct bufferevent *http_take_over(evhtp_request_t *req, enum metrics_gauge transport)
{
    evhtp_connection_t *conn = req->conn;
    struct bufferevent *bev;

    /* take_ownership drops our hooks, so do here what they would do. */
    http.inflight--;
    accept_conn_move(METRIC_CONN_HTTP, transport);
    http_gate_release(conn);
    bev = evhtp_connection_take_ownership(conn);
    bufferevent_set_timeouts(bev, NULL, NULL);      /* long-lived from now on */
    /* A fixed, modest kernel buffer: without it loopback autotuning would
     * hide megabytes of a slow client's backlog from ws/sse_max_backlog,
     * and 100k streams would pin that much kernel memory. */
    setsockopt(bufferevent_getfd(bev), SOL_SOCKET, SO_SNDBUF, &(int){ HTTP_STREAM_SNDBUF }, sizeof(int));
    if (!http.in_dispatch) {
        /* Inside a handler evhtp frees the connection itself on return. */
        evhtp_connection_free(conn);
    }
    return bev;
}

enum origin_verdict http_origin(evhtp_request_t *req)
{
    return origin_check(evhtp_header_find(req->headers_in, "Origin"),
                        evhtp_header_find(req->headers_in, "Host"), http.cfg->allowed_origins);
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
    netaddr_client(req->conn->saddr, xff, &http.trusted_proxies, buf, len);
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
    if (http_percent_decode(raw, strlen(raw), buf, len, 1) != PL_OK) {
        return NULL;
    }
    return buf;
}

int http_query_has(evhtp_request_t *req, const char *name)
{
    return req->uri != NULL && req->uri->query != NULL && evhtp_kv_find(req->uri->query, name) != NULL;
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
    http.inflight++;
    evhtp_request_set_hook(req, evhtp_hook_on_request_fini, (evhtp_hook)http_request_fini, NULL);
    metrics_add(METRIC_REQUESTS, 1);
    http_assign_request_id(req);
    if (http.draining || http_wants_close(req)) {
        /* evhtp_request_set_keepalive(req, 0) does nothing in libevhtp
         * 1.2.18 (it only ever sets the flag): clear it here. */
        req->flags &= ~EVHTP_REQ_FLAG_KEEPALIVE;
    }

    http.in_dispatch = 1;
    if ((repeated = http_repeated_field(req)) != NULL) {
        http_error(req, 400, "bad_request", "more than one %s header", repeated);
    } else if (http_cors(req, path)) {
        http_route(req, path, bit);
    }
    http.in_dispatch = 0;
}

static void http_route(evhtp_request_t *req, const char *path, unsigned bit)
{
    struct http_params params;
    unsigned allowed = 0;
    char allow[64];

    for (int i = 0; i < http.nroutes; i++) {
        int m = http_route_match(http.routes[i].pattern, path, &params);
        unsigned methods = http_route_methods(http.routes[i].methods);

        if (m < 0) {
            http_error(req, 400, "bad_request", "malformed percent-encoding in path");
            return;
        }
        if (m == 0) {
            continue;
        }
        if (methods & bit) {
            http.routes[i].handler(req, &params);
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
    if (http.fallback != NULL) {
        params.count = 0;
        http.fallback(req, &params);
        return;
    }
    http_error(req, 404, "not_found", "no such resource");
}

int http_init(const struct worker_env *w)
{
    const struct conf *cfg = w->cfg;
    char why[256];

    http.cfg = cfg;
    if (netaddr_set_parse(cfg->trusted_proxies, &http.trusted_proxies, why, sizeof(why)) != PL_OK) {
        http.trusted_proxies.n = 0;  /* conf.c validated it: not reached */
    }
    request_id_init();
    return http_gate_init(w);
}

void http_attach(evhtp_t *htp)
{
    struct timeval idle = { http.cfg->http_keepalive_timeout_ms / 1000,
                            (http.cfg->http_keepalive_timeout_ms % 1000) * 1000 };

    evhtp_set_gencb(htp, http_dispatch, NULL);
    http_gate_attach(htp);
    /* libevhtp refuses a body that reaches its limit; max_body itself is fine. */
    evhtp_set_max_body_size(htp, http.cfg->max_body + 1);
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
