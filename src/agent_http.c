/* agent_http.c - the agent as a streaming HTTP service: any OpenAI-compatible
 * chat completions endpoint (agent = openai), or any service that streams
 * its answers as ai_chunk events (agent = sse).
 *
 * openai: each question is one POST {agent_url}/v1/chat/completions with
 * "stream": true: the system prompt, the room's last agent_context_messages
 * messages (people's as "user" with "name: text", the agent's own as
 * "assistant"), then the question (the JSON is openai_proto's).  Every
 * event's choices[0].delta.content is a chunk; "[DONE]", or the end of the
 * stream after a finish_reason, ends the answer.  A server that answers
 * with one application/json completion instead of a stream is understood
 * too.
 *
 * sse: agent_url is a template, http://HOST[:PORT]/PATH?...{query}...,
 * whose {query}, {room} and {user} are filled in (percent-encoded) for a
 * GET; the service answers with "event: ai_chunk" / "data:
 * {"content":"...",...}" events and ends with {"done":true} (as FastAPI's
 * EventSourceResponse, Pydantic AI or LangChain services commonly do).
 * Other events (pings, comments) are skipped; an "error" event, or a data
 * object with "error", fails the answer.
 *
 * Either way the answer arrives on a libevent bufferevent and goes through
 * http_response (status line, headers, then a chunked, Content-Length or
 * close-delimited body), whose body bytes go through sse_parse.  This file
 * does the I/O, the timers and the call's life; those modules are pure.
 *
 * Why not libevent's own HTTP client (evhttp_make_request with a chunked
 * callback)?  It streams all three body framings and may be cancelled from
 * its chunk callback, but in libevent 2.1 (Debian 12) it cannot keep what
 * this backend promises (tried against a fake upstream, and read):
 *   - a refused connection reaches the request callback as a response
 *     with code 0, no error callback, errno ENOTCONN: "cannot connect to
 *     the agent at HOST:PORT: Connection refused" cannot be said;
 *   - it reports no "connected" moment (evhttp_connection_set_connect_
 *     timeout_tv is 2.2), so agent_connect_timeout cannot be told apart
 *     from agent_first_token_timeout;
 *   - a name is resolved by bufferevent_socket_connect_hostname, which
 *     tries only the first address (a to-do in libevent's own source); this
 *     backend tries each in turn (localhost as ::1, then 127.0.0.1);
 *   - a chunk with an extension ("5;x=y", RFC 9112 7.1.1) fails the
 *     request, reported as EVREQ_HTTP_DATA_TOO_LONG;
 *   - idle reads time out after 50 s unless every request sets its own.
 * So the client stays small and hand-written, with the protocol in pure
 * modules (fuzzed) and only the I/O here.
 *
 * Plain HTTP only, on purpose (no TLS library): for an https endpoint, run a
 * TLS proxy such as stunnel next to parleyd and point agent_url at it.
 *
 * Every failure ends the request with a readable message: connection
 * errors, HTTP 4xx/5xx (with the upstream's own error message when it sent
 * JSON) and anything that is not the expected stream are AGENT_UNAVAILABLE;
 * the connect, first-token and total timeouts are AGENT_TIMEOUT.  Cancelling
 * closes the upstream connection at once.  The API key is only ever written
 * into the Authorization header: it is never logged, and is blanked out of
 * upstream error messages that echo it. */
#include <errno.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <unistd.h>

#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/dns.h>
#include <event2/event.h>
#include <event2/util.h>
#include <json-c/json.h>

#include "agent.h"
#include "clock.h"
#include "http_response.h"
#include "log.h"
#include "openai_proto.h"
#include "parley.h"
#include "secret.h"
#include "sse_parse.h"
#include "store.h"
#include "url.h"
#include "utf8.h"

#define OPENAI_PATH        "/v1/chat/completions"
#define UPSTREAM_ERROR_MAX   (64 * 1024)      /* of an error body, kept for its message */
#define UPSTREAM_JSON_MAX    (1024 * 1024)    /* a completion that is not streamed */
#define UPSTREAM_MESSAGE_MAX 512
#define UPSTREAM_KEY_MAX     1024

struct upstream_url {
    char host[URL_HOST_MAX + 1];    /* without the brackets of an IPv6 address */
    char port[8];
    char authority[300];        /* HOST[:PORT] as written, for the Host header */
    char target[600];           /* openai: the prefix, then OPENAI_PATH; sse: the
                                 * path and query, a template */
};

struct upstream_call;
struct sse_event;

/* What differs between the two kinds of upstream. */
struct upstream_dialect {
    const char *name;           /* the value of "agent" */
    int templated;              /* agent_url is a template with {query} */
    int context;                /* the room's last messages go with the question */
    /* The request's bytes into c->request, but its connection headers. */
    int (*request)(struct upstream_call *c, const struct store_events *evs);
    void (*event)(struct upstream_call *c, const struct sse_event *ev);
};

static const struct upstream_dialect *upstream_dialect_of(const struct conf *cfg);

/* The worker's endpoint, set up once by upstream_init(). */
static struct {
    int ready;
    const struct upstream_dialect *dialect;
    struct upstream_url url;
    struct sockaddr_storage addr;   /* when the host is an address */
    int addrlen;
    struct evdns_base *dns;         /* when it is a name */
    char key[UPSTREAM_KEY_MAX];       /* "" for none; never logged */
} upstream;

enum upstream_phase {
    UPSTREAM_CONTEXT,             /* reading the room's last messages */
    UPSTREAM_CONNECTING,
    UPSTREAM_HEAD,                /* connected, reading the response's head */
    UPSTREAM_BODY,
};

enum upstream_deadline {
    UPSTREAM_DEADLINE_TOTAL,
    UPSTREAM_DEADLINE_FIRST_TOKEN,
    UPSTREAM_DEADLINE_CONNECT,
};

/* One question in flight.  The read loop, a pending store call and a
 * pending name resolution hold it: when the request ends or is cancelled
 * meanwhile, req becomes NULL and they free it. */
struct upstream_call {
    struct agent_request *req;  /* NULL once ended or cancelled */
    struct bufferevent *bev;
    struct event *timer;        /* the start, then the nearest deadline */
    enum upstream_phase phase;
    int64_t started_ms, connect_ms;
    struct http_response http;  /* what the agent answers */
    struct evbuffer *request;   /* the request's bytes, for each address tried */
    struct evdns_getaddrinfo_request *resolving;   /* its callback is due */
    struct evutil_addrinfo *addrs, *addr;   /* what the name resolved to; the one tried */
    struct evbuffer *saved;     /* an error body, or a completion not streamed */
    struct sse_parser sse;
    int got_token;              /* the first piece of content arrived */
    int got_finish;             /* a choice had a finish_reason */
    int store_pending;
    int busy;                   /* inside the read callback */
};

/* --- the endpoint ------------------------------------------------------ */

/* Splits "http://HOST[:PORT][/PREFIX]" into U.  A trailing "/v1" in the
 * prefix is accepted too, as OpenAI SDKs write base URLs.  TEMPLATED:
 * "http://HOST[:PORT]/PATH?QUERY" naming {query}, kept whole as U's
 * target. */
static int upstream_url_parse(const char *text, int templated, struct upstream_url *u, char *why, size_t whylen)
{
    struct url url;
    const char *reason, *path;
    size_t path_len;

    memset(u, 0, sizeof(*u));
    if (strncasecmp(text, "https://", 8) == 0) {
        snprintf(why, whylen, "https is not supported: run a TLS proxy such as stunnel and give its http:// address");
        return PL_ERR;
    }
    if (strncasecmp(text, "http://", 7) != 0) {
        snprintf(why, whylen, "expected http://HOST[:PORT][/PREFIX]");
        return PL_ERR;
    }
    for (const char *p = text; *p != '\0'; p++) {
        if ((unsigned char)*p <= ' ' || *p == 0x7f || *p == '#' || *p == '@' || (*p == '?' && !templated)) {
            snprintf(why, whylen, templated ? "expected http://HOST[:PORT]/PATH?...{query}..., without spaces, "
                                              "user or fragment"
                                            : "expected http://HOST[:PORT][/PREFIX], without spaces, user, query "
                                              "or fragment");
            return PL_ERR;
        }
    }
    if (url_parse(text + 7, &url, &reason) != PL_OK) {
        snprintf(why, whylen, "%s", reason);
        return PL_ERR;
    }
    if (url.authority_len >= sizeof(u->authority)) {
        snprintf(why, whylen, "missing or too long host");
        return PL_ERR;
    }
    memcpy(u->authority, url.authority, url.authority_len);
    snprintf(u->host, sizeof(u->host), "%s", url.host);
    snprintf(u->port, sizeof(u->port), "%d", url.port != 0 ? url.port : 80);
    path = url.path;
    path_len = strlen(path);
    if (templated) {
        const char *vars[] = { "query", "q", "room", "r", "user", "u", NULL };
        char probe[sizeof(u->target)];

        if (strstr(path, "{query}") == NULL) {
            snprintf(why, whylen, "the template must name {query} (and may name {room} and {user})");
            return PL_ERR;
        }
        if (path_len >= sizeof(u->target) || url_expand(probe, sizeof(probe), path, vars) < 0) {
            snprintf(why, whylen, "names something but {query}, {room} and {user}, or is too long");
            return PL_ERR;
        }
        memcpy(u->target, path, path_len + 1);
        return PL_OK;
    }
    while (path_len > 0 && path[path_len - 1] == '/') {
        path_len--;
    }
    if (path_len >= 3 && memcmp(path + path_len - 3, "/v1", 3) == 0) {
        path_len -= 3;
    }
    if (path_len + sizeof(OPENAI_PATH) > sizeof(u->target)) {
        snprintf(why, whylen, "path too long");
        return PL_ERR;
    }
    memcpy(u->target, path, path_len);
    memcpy(u->target + path_len, OPENAI_PATH, sizeof(OPENAI_PATH));
    return PL_OK;
}

static int upstream_check(const struct conf *cfg, char *err, size_t errlen)
{
    struct upstream_url u;
    char where[1100], why[256];

    if (cfg->agent_url[0] == '\0') {
        conf_where(cfg, "agent", where, sizeof(where));
        snprintf(err, errlen, "%s: agent = %s needs agent_url (%s)", where, cfg->agent,
                 strcmp(cfg->agent, "sse") == 0 ? "the service's URL with {query}, e.g. "
                                                  "http://127.0.0.1:8000/chat/stream?query={query}"
                                                : "the endpoint's base URL, e.g. http://127.0.0.1:8081");
        return PL_ERR;
    }
    if (upstream_url_parse(cfg->agent_url, strcmp(cfg->agent, "sse") == 0, &u, why, sizeof(why)) != PL_OK) {
        conf_where(cfg, "agent_url", where, sizeof(where));
        snprintf(err, errlen, "%s: invalid value '%s' for 'agent_url': %s", where, cfg->agent_url, why);
        return PL_ERR;
    }
    if (cfg->agent_api_key_file[0] != '\0' && access(cfg->agent_api_key_file, R_OK) != 0) {
        conf_where(cfg, "agent_api_key_file", where, sizeof(where));
        snprintf(err, errlen, "%s: cannot read agent_api_key_file '%s': %s", where,
                 cfg->agent_api_key_file, strerror(errno));
        return PL_ERR;
    }
    return PL_OK;
}

static int upstream_init(void)
{
    const struct conf *cfg = agent_conf();
    char why[256], hostport[300];

    memset(&upstream, 0, sizeof(upstream));
    upstream.dialect = upstream_dialect_of(cfg);
    secret_load(cfg->agent_api_key_file, cfg->agent_api_key_env, "agent_api_key", upstream.key,
                sizeof(upstream.key));
    if (upstream_url_parse(cfg->agent_url, upstream.dialect->templated, &upstream.url, why, sizeof(why)) != PL_OK) {
        log_error(0, "event=agent_bad_url url=\"%s\" reason=\"%s\"", cfg->agent_url, why);
        return PL_ERR;
    }
    snprintf(hostport, sizeof(hostport), strchr(upstream.url.host, ':') ? "[%s]:%s" : "%s:%s",
             upstream.url.host, upstream.url.port);
    upstream.addrlen = (int)sizeof(upstream.addr);
    if (evutil_parse_sockaddr_port(hostport, (struct sockaddr *)&upstream.addr, &upstream.addrlen) != 0) {
        /* A name: resolve it for each request, without blocking the loop. */
        upstream.dns = evdns_base_new(agent_loop(), EVDNS_BASE_INITIALIZE_NAMESERVERS
                                                  | EVDNS_BASE_DISABLE_WHEN_INACTIVE);
        if (upstream.dns == NULL) {
            log_error(0, "event=agent_dns_failed host=%s", upstream.url.host);
            return PL_ERR;
        }
    }
    upstream.ready = 1;
    log_info("event=agent_backend backend=%s url=%s model=\"%s\"", upstream.dialect->name, cfg->agent_url,
             upstream.dialect->context ? cfg->agent_model : "");
    return PL_OK;
}

/* --- a call's life ------------------------------------------------------ */

static void upstream_free(struct upstream_call *c)
{
    sse_parser_free(&c->sse);
    if (c->addrs != NULL) {
        evutil_freeaddrinfo(c->addrs);
    }
    if (c->request != NULL) {
        evbuffer_free(c->request);
    }
    if (c->saved != NULL) {
        evbuffer_free(c->saved);
    }
    free(c);
}

/* Detaches C from its request and closes the connection (its socket is
 * closed as the loop turns); frees C unless the read loop, a store call or
 * a name resolution still holds it. */
static void upstream_detach(struct upstream_call *c)
{
    if (c->req != NULL) {
        c->req->state = NULL;
        c->req = NULL;
    }
    if (c->resolving != NULL) {
        evdns_getaddrinfo_cancel(c->resolving);     /* its callback frees C */
    }
    if (c->bev != NULL) {
        bufferevent_free(c->bev);
        c->bev = NULL;
    }
    if (c->timer != NULL) {
        event_free(c->timer);
        c->timer = NULL;
    }
    if (!c->store_pending && !c->busy && c->resolving == NULL) {
        upstream_free(c);
    }
}

static void upstream_end(struct upstream_call *c, enum agent_status st, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* Ends the request with ST and a message (the result of FMT). */
static void upstream_end(struct upstream_call *c, enum agent_status st, const char *fmt, ...)
{
    struct agent_request *r = c->req;
    char msg[UPSTREAM_MESSAGE_MAX];
    va_list ap;

    if (r == NULL) {
        return;
    }
    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    openai_proto_clean(msg, upstream.key);
    upstream_detach(c);
    agent_finish(r, st, msg);
}

static void upstream_succeed(struct upstream_call *c)
{
    upstream_end(c, AGENT_OK, "%s", "");
}

static void upstream_cancel(struct agent_request *r)
{
    if (r->state != NULL) {
        upstream_detach(r->state);
    }
}

/* The nearest deadline of C, and which one it is. */
static int64_t upstream_deadline(const struct upstream_call *c, enum upstream_deadline *which)
{
    const struct conf *cfg = agent_conf();
    int64_t d = c->started_ms + cfg->agent_total_timeout_ms;

    *which = UPSTREAM_DEADLINE_TOTAL;
    if (!c->got_token && c->started_ms + cfg->agent_first_token_timeout_ms < d) {
        d = c->started_ms + cfg->agent_first_token_timeout_ms;
        *which = UPSTREAM_DEADLINE_FIRST_TOKEN;
    }
    if (c->phase == UPSTREAM_CONNECTING && c->connect_ms + cfg->agent_connect_timeout_ms < d) {
        d = c->connect_ms + cfg->agent_connect_timeout_ms;
        *which = UPSTREAM_DEADLINE_CONNECT;
    }
    return d;
}

static void upstream_arm(struct upstream_call *c)
{
    enum upstream_deadline which;
    int64_t left = upstream_deadline(c, &which) - clock_ms();
    struct timeval tv;

    if (left < 0) {
        left = 0;
    }
    tv.tv_sec = (time_t)(left / 1000);
    tv.tv_usec = (long)(left % 1000) * 1000;
    evtimer_add(c->timer, &tv);
}

/* --- the answer --------------------------------------------------------- */

static int upstream_ok(const struct upstream_call *c)
{
    return c->http.status >= 200 && c->http.status < 300;
}

/* Passes a piece of the answer on, as UTF-8 whatever the agent sent (the
 * chunks go into WebSocket text frames). */
static void upstream_emit(struct upstream_call *c, const char *text, size_t len)
{
    char *copy;

    if (len == 0) {
        return;
    }
    if (!c->got_token) {
        c->got_token = 1;
        upstream_arm(c);
    }
    if (utf8_valid((const uint8_t *)text, len)) {
        agent_emit(c->req, text, len);
        return;
    }
    if ((copy = malloc(len)) == NULL) {
        return;
    }
    memcpy(copy, text, len);
    openai_proto_ascii(copy, len);
    agent_emit(c->req, copy, len);
    free(copy);
}

/* EV's data as a JSON object; NULL when the event reports an error or is
 * not one: the call has been ended then. */
static json_object *upstream_event_object(struct upstream_call *c, const struct sse_event *ev)
{
    json_object *obj = openai_proto_parse(ev->data, ev->len);
    const char *error = openai_proto_error(obj);

    if (error != NULL || strcmp(ev->type, "error") == 0) {
        upstream_end(c, AGENT_UNAVAILABLE, "the agent reported an error: %.300s", error != NULL ? error : ev->data);
    } else if (obj == NULL) {
        upstream_end(c, AGENT_UNAVAILABLE, "the agent sent an event that is not a JSON object: %.60s", ev->data);
    } else {
        return obj;
    }
    json_object_put(obj);
    return NULL;
}

/* One event of an OpenAI stream. */
static void upstream_openai_event(struct upstream_call *c, const struct sse_event *ev)
{
    json_object *obj, *choice;
    const char *text;
    size_t len;
    int n;

    if (strcmp(ev->type, "message") != 0 && strcmp(ev->type, "error") != 0) {
        return;                 /* an extension this client does not know */
    }
    if (strcmp(ev->type, "message") == 0 && strcmp(ev->data, "[DONE]") == 0) {
        upstream_succeed(c);
        return;
    }
    if ((obj = upstream_event_object(c, ev)) == NULL) {
        return;
    }
    if ((n = openai_proto_choice(obj, &choice)) < 0) {
        upstream_end(c, AGENT_UNAVAILABLE, "the agent sent an event without choices");
    } else if (n > 0) {
        c->got_finish |= openai_proto_finished(choice);
        if ((text = openai_proto_text(choice, "delta", &len)) != NULL) {
            upstream_emit(c, text, len);
        }
    }
    json_object_put(obj);
}

/* One event of an ai_chunk stream: {"content":"..."} pieces, then
 * {"done":true} (which may carry the last piece). */
static void upstream_sse_event(struct upstream_call *c, const struct sse_event *ev)
{
    json_object *obj, *v = NULL;

    if (strcmp(ev->type, "ai_chunk") != 0 && strcmp(ev->type, "ai_done") != 0 && strcmp(ev->type, "message") != 0
        && strcmp(ev->type, "error") != 0) {
        return;                 /* pings and the like */
    }
    if ((obj = upstream_event_object(c, ev)) == NULL) {
        return;
    }
    if (json_object_object_get_ex(obj, "content", &v) && json_object_is_type(v, json_type_string)) {
        upstream_emit(c, json_object_get_string(v), (size_t)json_object_get_string_len(v));
    } else if (v != NULL && !json_object_is_type(v, json_type_null)) {
        upstream_end(c, AGENT_UNAVAILABLE, "the agent sent a \"content\" that is not a string");
    }
    if (c->req != NULL && json_object_object_get_ex(obj, "done", &v) && json_object_get_boolean(v)) {
        upstream_succeed(c);
    }
    json_object_put(obj);
}

/* The body is complete (or the server closed a body without a length). */
static void upstream_body_end(struct upstream_call *c)
{
    json_object *obj, *choice;
    const char *text, *error;
    size_t len;

    if (upstream_ok(c) && !c->http.json) {
        if (c->got_finish) {
            upstream_succeed(c);
        } else {
            upstream_end(c, AGENT_UNAVAILABLE, "the agent's answer ended before it was complete");
        }
        return;
    }
    obj = openai_proto_parse((const char *)evbuffer_pullup(c->saved, -1), evbuffer_get_length(c->saved));
    if (upstream_ok(c) && upstream.dialect->templated) {
        upstream_end(c, AGENT_UNAVAILABLE, "the agent answered with JSON, not an event stream");
    } else if (!upstream_ok(c)) {
        error = openai_proto_error(obj);
        upstream_end(c, AGENT_UNAVAILABLE, "the agent answered HTTP %d%s%.300s", c->http.status,
                   error != NULL ? ": " : " ", error != NULL ? error : c->http.reason);
    } else if (obj == NULL || openai_proto_choice(obj, &choice) <= 0) {
        upstream_end(c, AGENT_UNAVAILABLE, "the agent's answer has no choices");
    } else {
        if ((text = openai_proto_text(choice, "message", &len)) != NULL) {
            upstream_emit(c, text, len);
        }
        upstream_succeed(c);
    }
    json_object_put(obj);
}

/* Bytes of the body: the event stream, or an error or completion kept
 * whole (bounded). */
static void upstream_data(struct upstream_call *c, const char *p, size_t n)
{
    struct sse_event ev;
    size_t used;

    if (!upstream_ok(c) || c->http.json) {
        size_t have = evbuffer_get_length(c->saved), max = c->http.json ? UPSTREAM_JSON_MAX : UPSTREAM_ERROR_MAX;
        if (have + n > max) {
            if (upstream_ok(c)) {
                upstream_end(c, AGENT_UNAVAILABLE, "the agent's answer is longer than %zu bytes", max);
                return;
            }
            n = max - have;     /* the start of an error says enough */
        }
        evbuffer_add(c->saved, p, n);
        return;
    }
    while (n > 0 && c->req != NULL) {
        int rc = sse_parse_feed(&c->sse, p, n, &used, &ev);

        p += used;
        n -= used;
        if (rc == PL_AGAIN) {
            return;
        }
        if (rc == PL_ERR) {
            upstream_end(c, AGENT_UNAVAILABLE, "the agent sent an event longer than %d bytes", SSE_PARSE_MAX_DEFAULT);
            return;
        }
        upstream.dialect->event(c, &ev);
    }
}

/* The response is broken: says how. */
static void upstream_http_error(struct upstream_call *c)
{
    switch (c->http.error) {
    case HTTP_RESPONSE_BAD_STATUS:
        upstream_end(c, AGENT_UNAVAILABLE, "the agent does not speak HTTP/1.x: '%.40s'", c->http.line);
        break;
    case HTTP_RESPONSE_LONG_LINE:
        upstream_end(c, AGENT_UNAVAILABLE, "the agent sent a line longer than %d bytes", HTTP_RESPONSE_LINE_MAX);
        break;
    case HTTP_RESPONSE_LONG_HEAD:
        upstream_end(c, AGENT_UNAVAILABLE, "the agent's response headers are longer than %d bytes",
                   HTTP_RESPONSE_HEAD_MAX);
        break;
    case HTTP_RESPONSE_BAD_CHUNK:
        upstream_end(c, AGENT_UNAVAILABLE, "the agent sent a malformed chunked body: %s", c->http.chunks.reason);
        break;
    case HTTP_RESPONSE_CUT:
        upstream_end(c, AGENT_UNAVAILABLE, "the agent closed the connection in the middle of the answer");
        break;
    }
}

/* Everything that arrived goes through the response reader at once (it
 * keeps a partial line itself); the buffer is drained unless the call
 * ended meanwhile, which freed the connection. */
static void upstream_on_read(struct bufferevent *bev, void *arg)
{
    struct upstream_call *c = arg;
    struct evbuffer *in = bufferevent_get_input(bev);
    size_t len = evbuffer_get_length(in), off = 0, used, n;
    char *buf = (char *)evbuffer_pullup(in, -1);
    enum http_response_event ev;
    const char *data;

    if (len == 0 || (c->phase != UPSTREAM_HEAD && c->phase != UPSTREAM_BODY)) {
        return;
    }
    c->busy = 1;
    do {
        ev = http_response_feed(&c->http, buf + off, len - off, &used, &data, &n);
        off += used;
        if (ev == HTTP_RESPONSE_HEAD) {
            c->phase = UPSTREAM_BODY;
        } else if (ev == HTTP_RESPONSE_DATA) {
            upstream_data(c, data, n);
        } else if (ev == HTTP_RESPONSE_END) {
            upstream_body_end(c);
        } else if (ev == HTTP_RESPONSE_ERROR) {
            upstream_http_error(c);
        }
    } while (c->req != NULL && ev != HTTP_RESPONSE_AGAIN);
    if (c->req != NULL) {
        evbuffer_drain(in, off);
    }
    c->busy = 0;
    if (c->req == NULL) {
        upstream_free(c);         /* ended or cancelled meanwhile */
    }
}

static void upstream_on_eof(struct upstream_call *c)
{
    if (c->phase != UPSTREAM_BODY) {
        upstream_end(c, AGENT_UNAVAILABLE, "the agent closed the connection without answering");
    } else if (http_response_eof(&c->http) == HTTP_RESPONSE_END || !upstream_ok(c)) {
        upstream_body_end(c);
    } else if (!c->http.json && c->got_finish) {
        upstream_succeed(c);
    } else {
        upstream_http_error(c);
    }
}

static int upstream_connect_next(struct upstream_call *c);

static void upstream_on_event(struct bufferevent *bev, short what, void *arg)
{
    struct upstream_call *c = arg;
    int err = EVUTIL_SOCKET_ERROR();

    PL_UNUSED(bev);
    if (what & BEV_EVENT_CONNECTED) {
        c->phase = UPSTREAM_HEAD;
        upstream_arm(c);
    } else if (c->phase == UPSTREAM_CONNECTING) {
        if (upstream_connect_next(c) != PL_OK) {
            upstream_end(c, AGENT_UNAVAILABLE, "cannot connect to the agent at %s: %s", upstream.url.authority,
                       err != 0 ? strerror(err) : "connection failed");
        }
    } else if (what & BEV_EVENT_EOF) {
        upstream_on_eof(c);
    } else if (c->phase == UPSTREAM_BODY && upstream_ok(c) && !c->http.json && c->got_finish) {
        upstream_succeed(c);    /* a reset after the last word */
    } else {
        upstream_end(c, AGENT_UNAVAILABLE, "the connection to the agent failed: %s",
                   err != 0 ? strerror(err) : "unknown error");
    }
}

/* --- the request -------------------------------------------------------- */

/* Connects to the address being tried (the configured one, or the next
 * one the name resolved to) and sends the request; the answer comes to
 * upstream_on_read.  Callbacks are deferred, so a connect that fails at once
 * reports it from the loop, never from inside this function. */
static void upstream_connect(struct upstream_call *c)
{
    const struct sockaddr *sa = c->addr != NULL ? c->addr->ai_addr : (const struct sockaddr *)&upstream.addr;
    int salen = c->addr != NULL ? (int)c->addr->ai_addrlen : upstream.addrlen;

    c->bev = bufferevent_socket_new(agent_loop(), -1, BEV_OPT_CLOSE_ON_FREE | BEV_OPT_DEFER_CALLBACKS);
    if (c->bev == NULL) {
        upstream_end(c, AGENT_UNAVAILABLE, "out of memory");
        return;
    }
    bufferevent_setcb(c->bev, upstream_on_read, NULL, upstream_on_event, c);
    bufferevent_enable(c->bev, EV_READ | EV_WRITE);
    evbuffer_add(bufferevent_get_output(c->bev), evbuffer_pullup(c->request, -1), evbuffer_get_length(c->request));
    if (bufferevent_socket_connect(c->bev, (struct sockaddr *)sa, salen) != 0) {
        upstream_end(c, AGENT_UNAVAILABLE, "cannot connect to the agent at %s: %s", upstream.url.authority,
                   errno != 0 ? strerror(errno) : "connection failed");
    }
}

/* A connection attempt failed: the next address, if the name had more. */
static int upstream_connect_next(struct upstream_call *c)
{
    if (c->addr == NULL || c->addr->ai_next == NULL) {
        return PL_ERR;
    }
    bufferevent_free(c->bev);
    c->addr = c->addr->ai_next;
    upstream_connect(c);
    return PL_OK;
}

static void upstream_on_resolved(int result, struct evutil_addrinfo *res, void *arg)
{
    struct upstream_call *c = arg;

    c->resolving = NULL;
    if (c->req == NULL) {
        /* Cancelled, or timed out (RESULT is EVUTIL_EAI_CANCEL). */
        if (res != NULL) {
            evutil_freeaddrinfo(res);
        }
        upstream_free(c);
        return;
    }
    if (result != 0 || res == NULL) {
        upstream_end(c, AGENT_UNAVAILABLE, "cannot resolve %s: %s", upstream.url.host,
                   evutil_gai_strerror(result != 0 ? result : EVUTIL_EAI_NONAME));
        return;
    }
    c->addrs = c->addr = res;
    upstream_connect(c);
}

/* The head's common lines: Host, User-Agent, the key, Accept. */
static void upstream_head(struct upstream_call *c)
{
    evbuffer_add_printf(c->request, "Host: %s\r\nUser-Agent: parley/%s\r\nAccept: text/event-stream\r\n"
                        "Connection: close\r\n", upstream.url.authority, PACKAGE_VERSION);
    if (upstream.key[0] != '\0') {
        evbuffer_add_printf(c->request, "Authorization: Bearer %s\r\n", upstream.key);
    }
}

/* POST /v1/chat/completions with the JSON. */
static int upstream_openai_request(struct upstream_call *c, const struct store_events *evs)
{
    const struct conf *cfg = agent_conf();
    json_object *body = openai_proto_request(cfg->agent_model, cfg->agent_system_prompt, cfg->agent_name, evs,
                                             c->req->query);
    const char *text;
    size_t len;

    if (body == NULL) {
        return PL_ERR;
    }
    text = json_object_to_json_string_ext(body, JSON_C_TO_STRING_PLAIN | JSON_C_TO_STRING_NOSLASHESCAPE);
    len = strlen(text);
    evbuffer_add_printf(c->request, "POST %s HTTP/1.1\r\n", upstream.url.target);
    upstream_head(c);
    evbuffer_add_printf(c->request, "Content-Type: application/json\r\nContent-Length: %zu\r\n\r\n", len);
    evbuffer_add(c->request, text, len);
    json_object_put(body);
    return PL_OK;
}

/* GET agent_url, its {query}, {room} and {user} filled in. */
static int upstream_sse_request(struct upstream_call *c, const struct store_events *evs)
{
    const char *vars[] = { "query", c->req->query, "room", c->req->room, "user", c->req->user, NULL };
    char target[sizeof(upstream.url.target) + 3 * HTTP_MAX_REQUEST_LINE];

    PL_UNUSED(evs);
    if (url_expand(target, sizeof(target), upstream.url.target, vars) < 0) {
        return PL_ERR;
    }
    evbuffer_add_printf(c->request, "GET %s HTTP/1.1\r\n", target);
    upstream_head(c);
    evbuffer_add(c->request, "\r\n", 2);
    return PL_OK;
}

static const struct upstream_dialect upstream_openai = {
    .name = "openai",
    .context = 1,
    .request = upstream_openai_request,
    .event = upstream_openai_event,
};

static const struct upstream_dialect upstream_sse = {
    .name = "sse",
    .templated = 1,
    .request = upstream_sse_request,
    .event = upstream_sse_event,
};

static const struct upstream_dialect *upstream_dialect_of(const struct conf *cfg)
{
    return strcmp(cfg->agent, "sse") == 0 ? &upstream_sse : &upstream_openai;
}

/* Builds the request, then resolves the name (without blocking the loop)
 * or connects to the address. */
static void upstream_request(struct upstream_call *c, const struct store_events *evs)
{
    struct evdns_getaddrinfo_request *q;
    struct evutil_addrinfo hints;

    if (!upstream.ready) {
        upstream_end(c, AGENT_UNAVAILABLE, "the agent is not set up (see the log at start-up)");
        return;
    }
    if ((c->request = evbuffer_new()) == NULL || upstream.dialect->request(c, evs) != PL_OK) {
        upstream_end(c, AGENT_UNAVAILABLE, "the question does not fit the agent's request");
        return;
    }

    c->phase = UPSTREAM_CONNECTING;
    c->connect_ms = clock_ms();
    upstream_arm(c);
    if (upstream.dns == NULL) {
        upstream_connect(c);
        return;
    }
    memset(&hints, 0, sizeof(hints));
    hints.ai_family = AF_UNSPEC;
    hints.ai_socktype = SOCK_STREAM;
    hints.ai_protocol = IPPROTO_TCP;
    hints.ai_flags = EVUTIL_AI_ADDRCONFIG;
    q = evdns_getaddrinfo(upstream.dns, upstream.url.host, upstream.url.port, &hints, upstream_on_resolved, c);
    if (q != NULL) {
        c->resolving = q;
    }
    /* Else the answer came at once (a number, /etc/hosts): C may be gone. */
}

static void upstream_on_context(enum store_status st, const struct store_events *evs, void *arg)
{
    struct upstream_call *c = arg;

    c->store_pending = 0;
    if (c->req == NULL) {
        upstream_free(c);         /* cancelled or timed out meanwhile */
        return;
    }
    if (st != STORE_OK) {
        log_debug("event=agent_context_unavailable room=%s", c->req->room);
    }
    upstream_request(c, st == STORE_OK ? evs : NULL);
}

/* The timer: first the start (without context to read), then deadlines. */
static void upstream_on_timer(evutil_socket_t fd, short what, void *arg)
{
    struct upstream_call *c = arg;
    const struct conf *cfg = agent_conf();
    enum upstream_deadline which;

    PL_UNUSED(fd);
    PL_UNUSED(what);
    if (c->phase == UPSTREAM_CONTEXT && !c->store_pending) {
        upstream_request(c, NULL);
        return;
    }
    upstream_deadline(c, &which);
    switch (which) {
    case UPSTREAM_DEADLINE_CONNECT:
        upstream_end(c, AGENT_TIMEOUT, "could not connect to the agent at %s within %d ms",
                   upstream.url.authority, cfg->agent_connect_timeout_ms);
        break;
    case UPSTREAM_DEADLINE_FIRST_TOKEN:
        upstream_end(c, AGENT_TIMEOUT, "the agent did not start answering within %d ms",
                   cfg->agent_first_token_timeout_ms);
        break;
    case UPSTREAM_DEADLINE_TOTAL:
        upstream_end(c, AGENT_TIMEOUT, "the agent did not finish its answer within %d ms",
                   cfg->agent_total_timeout_ms);
        break;
    }
}

static int upstream_start(struct agent_request *r)
{
    const struct conf *cfg = agent_conf();
    struct upstream_call *c = calloc(1, sizeof(*c));

    if (c == NULL || (c->saved = evbuffer_new()) == NULL
        || (c->timer = evtimer_new(agent_loop(), upstream_on_timer, c)) == NULL) {
        if (c != NULL && c->saved != NULL) {
            evbuffer_free(c->saved);
        }
        free(c);
        return PL_ERR;
    }
    sse_parser_init(&c->sse, 0);
    http_response_init(&c->http);
    c->req = r;
    c->started_ms = clock_ms();
    c->phase = UPSTREAM_CONTEXT;
    r->state = c;
    if (upstream.dialect->context && r->room[0] != '\0' && cfg->agent_context_messages > 0
        && store_history(r->room, NULL, NULL, cfg->agent_context_messages, 0, upstream_on_context, c) == PL_OK) {
        c->store_pending = 1;
        upstream_arm(c);
    } else {
        event_active(c->timer, EV_TIMEOUT, 0);  /* start from the loop */
    }
    return PL_OK;
}

const struct agent_backend agent_http = {
    .check = upstream_check,
    .init = upstream_init,
    .start = upstream_start,
    .cancel = upstream_cancel,
};

