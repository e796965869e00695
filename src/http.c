/* http.c - route table, dispatch, request ids and replies. */
#include "http.h"

#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/random.h>
#include <unistd.h>

#include <json-c/json.h>

#include "log.h"
#include "metrics.h"
#include "parley.h"

#define HTTP_MAX_ROUTES 32

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

void http_set_draining(int on)
{
    draining = on;
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
    default: return 0;
    }
}

static void http_allow_header(unsigned methods, char *buf, size_t len)
{
    static const char *const names[] = { "GET", "HEAD", "POST", "OPTIONS" };
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
    if (request_prefix == 0 && getrandom(&request_prefix, sizeof(request_prefix), 0) != sizeof(request_prefix)) {
        request_prefix = (uint32_t)getpid();
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

static evhtp_res http_request_fini(evhtp_request_t *req, void *arg)
{
    struct http_hold *hold = arg;

    PL_UNUSED(req);
    inflight--;
    if (hold != NULL) {
        hold->req = NULL;
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
    if (hold->req != NULL) {
        evhtp_request_set_hook(hold->req, evhtp_hook_on_request_fini, (evhtp_hook)http_request_fini, NULL);
        if (hold->req->conn->flags & EVHTP_CONN_FLAG_PAUSED) {
            evhtp_request_resume(hold->req);    /* after the reply, as evhtp wants */
        }
    }
    free(hold);
}

struct bufferevent *http_take_over(evhtp_request_t *req)
{
    evhtp_connection_t *conn = req->conn;
    struct bufferevent *bev;

    /* take_ownership drops our hooks, so account for what they would do. */
    inflight--;
    metrics_gauge_add(METRIC_CONN_HTTP, -1);
    bev = evhtp_connection_take_ownership(conn);
    if (!in_dispatch) {
        /* Inside a handler evhtp frees the connection itself on return. */
        evhtp_connection_free(conn);
    }
    return bev;
}

int http_origin_allowed(evhtp_request_t *req, const char *allowed)
{
    const char *origin = evhtp_header_find(req->headers_in, "Origin");
    size_t olen;
    const char *p = allowed;

    if (origin == NULL || allowed[0] == '\0' || strcmp(allowed, "*") == 0) {
        return 1;
    }
    olen = strlen(origin);
    while (*p) {
        size_t n;
        p += strspn(p, ", ");
        n = strcspn(p, ", ");
        if (n == olen && strncasecmp(p, origin, n) == 0) {
            return 1;
        }
        p += n;
    }
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

static void http_dispatch(evhtp_request_t *req, void *arg)
{
    const char *path = req->uri && req->uri->path ? req->uri->path->full : "/";
    unsigned bit = http_method_bit(req->method);

    PL_UNUSED(arg);
    inflight++;
    evhtp_request_set_hook(req, evhtp_hook_on_request_fini, (evhtp_hook)http_request_fini, NULL);
    metrics_add(METRIC_REQUESTS, 1);
    http_assign_request_id(req);
    if (draining) {
        evhtp_request_set_keepalive(req, 0);
    }

    in_dispatch = 1;
    http_route(req, path, bit);
    in_dispatch = 0;
}

static void http_route(evhtp_request_t *req, const char *path, unsigned bit)
{
    struct http_params params;
    unsigned allowed = 0;
    char allow[64];

    for (int i = 0; i < nroutes; i++) {
        int m = http_route_match(routes[i].pattern, path, &params);
        if (m < 0) {
            http_error(req, 400, "bad_request", "malformed percent-encoding in path");
            return;
        }
        if (m == 0) {
            continue;
        }
        if (routes[i].methods & bit) {
            routes[i].handler(req, &params);
            return;
        }
        allowed |= routes[i].methods;
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

static evhtp_res http_connection_fini(evhtp_connection_t *conn, void *arg)
{
    PL_UNUSED(conn);
    PL_UNUSED(arg);
    metrics_gauge_add(METRIC_CONN_HTTP, -1);
    return EVHTP_RES_OK;
}

static evhtp_res http_connection_accepted(evhtp_connection_t *conn, void *arg)
{
    PL_UNUSED(arg);
    metrics_add(METRIC_ACCEPTED, 1);
    metrics_gauge_add(METRIC_CONN_HTTP, 1);
    evhtp_connection_set_hook(conn, evhtp_hook_on_connection_fini, (evhtp_hook)http_connection_fini, NULL);
    return EVHTP_RES_OK;
}

void http_attach(evhtp_t *htp)
{
    evhtp_set_gencb(htp, http_dispatch, NULL);
    evhtp_set_post_accept_cb(htp, http_connection_accepted, NULL);
}

void http_log_response(evhtp_request_t *req, int status)
{
    static const char *const methods[] = {
        "GET", "HEAD", "POST", "PUT", "DELETE", "MKCOL", "COPY", "MOVE", "OPTIONS",
        "PROPFIND", "PROPPATCH", "LOCK", "UNLOCK", "TRACE", "CONNECT", "PATCH",
    };
    char path[256];

    metrics_count_response(status);
    if (!log_enabled(status >= 500 ? LOG_LEVEL_WARN : LOG_LEVEL_INFO)) {
        return;
    }
    log_value(req->uri && req->uri->path ? req->uri->path->full : "-", 0, path, sizeof(path));
    log_write(status >= 500 ? LOG_LEVEL_WARN : LOG_LEVEL_INFO, 0,
              "event=request id=%s method=%s path=%s status=%d",
              http_request_id(req),
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
    }
    http_log_response(req, status);
    evhtp_send_reply(req, (evhtp_res)status);
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
