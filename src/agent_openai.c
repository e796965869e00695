/* agent_openai.c - the agent as any OpenAI-compatible chat completions stream.
 *
 * Each question is one POST {agent_url}/v1/chat/completions with "stream":
 * true: the system prompt, the room's last agent_context_messages messages
 * (people's as "user" with "name: text", the agent's own as "assistant"),
 * then the question (the JSON is openai_proto's).  The answer arrives on a
 * libevent bufferevent and goes through http_response (status line,
 * headers, then a chunked, Content-Length or close-delimited body), whose
 * body bytes go through sse_parse: every event's choices[0].delta.content
 * is a chunk; "[DONE]", or the end of the stream after a finish_reason,
 * ends the answer.  A server that answers with one application/json
 * completion instead of a stream is understood too.  This file does the
 * I/O, the timers and the call's life; those three modules are pure.
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
#define OPENAI_ERROR_MAX   (64 * 1024)      /* of an error body, kept for its message */
#define OPENAI_JSON_MAX    (1024 * 1024)    /* a completion that is not streamed */
#define OPENAI_MESSAGE_MAX 512
#define OPENAI_KEY_MAX     1024

struct openai_url {
    char host[URL_HOST_MAX + 1];    /* without the brackets of an IPv6 address */
    char port[8];
    char authority[300];        /* HOST[:PORT] as written, for the Host header */
    char target[600];           /* the prefix, then OPENAI_PATH */
};

/* The worker's endpoint, set up once by openai_init(). */
static struct {
    int ready;
    struct openai_url url;
    struct sockaddr_storage addr;   /* when the host is an address */
    int addrlen;
    struct evdns_base *dns;         /* when it is a name */
    char key[OPENAI_KEY_MAX];       /* "" for none; never logged */
} openai;

enum openai_phase {
    OPENAI_CONTEXT,             /* reading the room's last messages */
    OPENAI_CONNECTING,
    OPENAI_HEAD,                /* connected, reading the response's head */
    OPENAI_BODY,
};

enum openai_deadline {
    OPENAI_DEADLINE_TOTAL,
    OPENAI_DEADLINE_FIRST_TOKEN,
    OPENAI_DEADLINE_CONNECT,
};

/* One question in flight.  The read loop, a pending store call and a
 * pending name resolution hold it: when the request ends or is cancelled
 * meanwhile, req becomes NULL and they free it. */
struct openai_call {
    struct agent_request *req;  /* NULL once ended or cancelled */
    struct bufferevent *bev;
    struct event *timer;        /* the start, then the nearest deadline */
    enum openai_phase phase;
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
 * prefix is accepted too, as OpenAI SDKs write base URLs. */
static int openai_url_parse(const char *text, struct openai_url *u, char *why, size_t whylen)
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
        if ((unsigned char)*p <= ' ' || *p == 0x7f || *p == '?' || *p == '#' || *p == '@') {
            snprintf(why, whylen, "expected http://HOST[:PORT][/PREFIX], without spaces, user, query or fragment");
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

static int openai_check(const struct conf *cfg, char *err, size_t errlen)
{
    struct openai_url u;
    char where[1100], why[256];

    if (cfg->agent_url[0] == '\0') {
        conf_where(cfg, "agent", where, sizeof(where));
        snprintf(err, errlen, "%s: agent = openai needs agent_url (the endpoint's base URL, "
                 "e.g. http://127.0.0.1:8081)", where);
        return PL_ERR;
    }
    if (openai_url_parse(cfg->agent_url, &u, why, sizeof(why)) != PL_OK) {
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

static int openai_init(void)
{
    const struct conf *cfg = agent_conf();
    char why[256], hostport[300];

    memset(&openai, 0, sizeof(openai));
    secret_load(cfg->agent_api_key_file, cfg->agent_api_key_env, "agent_api_key", openai.key,
                sizeof(openai.key));
    if (openai_url_parse(cfg->agent_url, &openai.url, why, sizeof(why)) != PL_OK) {
        log_error(0, "event=agent_bad_url url=\"%s\" reason=\"%s\"", cfg->agent_url, why);
        return PL_ERR;
    }
    snprintf(hostport, sizeof(hostport), strchr(openai.url.host, ':') ? "[%s]:%s" : "%s:%s",
             openai.url.host, openai.url.port);
    openai.addrlen = (int)sizeof(openai.addr);
    if (evutil_parse_sockaddr_port(hostport, (struct sockaddr *)&openai.addr, &openai.addrlen) != 0) {
        /* A name: resolve it for each request, without blocking the loop. */
        openai.dns = evdns_base_new(agent_loop(), EVDNS_BASE_INITIALIZE_NAMESERVERS
                                                  | EVDNS_BASE_DISABLE_WHEN_INACTIVE);
        if (openai.dns == NULL) {
            log_error(0, "event=agent_dns_failed host=%s", openai.url.host);
            return PL_ERR;
        }
    }
    openai.ready = 1;
    log_info("event=agent_backend backend=openai url=%s model=\"%s\"", cfg->agent_url, cfg->agent_model);
    return PL_OK;
}

/* --- a call's life ------------------------------------------------------ */

static void openai_free(struct openai_call *c)
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
static void openai_detach(struct openai_call *c)
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
        openai_free(c);
    }
}

static void openai_end(struct openai_call *c, enum agent_status st, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* Ends the request with ST and a message (the result of FMT). */
static void openai_end(struct openai_call *c, enum agent_status st, const char *fmt, ...)
{
    struct agent_request *r = c->req;
    char msg[OPENAI_MESSAGE_MAX];
    va_list ap;

    if (r == NULL) {
        return;
    }
    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    openai_proto_clean(msg, openai.key);
    openai_detach(c);
    agent_finish(r, st, msg);
}

static void openai_succeed(struct openai_call *c)
{
    openai_end(c, AGENT_OK, "%s", "");
}

static void openai_cancel(struct agent_request *r)
{
    if (r->state != NULL) {
        openai_detach(r->state);
    }
}

/* The nearest deadline of C, and which one it is. */
static int64_t openai_deadline(const struct openai_call *c, enum openai_deadline *which)
{
    const struct conf *cfg = agent_conf();
    int64_t d = c->started_ms + cfg->agent_total_timeout_ms;

    *which = OPENAI_DEADLINE_TOTAL;
    if (!c->got_token && c->started_ms + cfg->agent_first_token_timeout_ms < d) {
        d = c->started_ms + cfg->agent_first_token_timeout_ms;
        *which = OPENAI_DEADLINE_FIRST_TOKEN;
    }
    if (c->phase == OPENAI_CONNECTING && c->connect_ms + cfg->agent_connect_timeout_ms < d) {
        d = c->connect_ms + cfg->agent_connect_timeout_ms;
        *which = OPENAI_DEADLINE_CONNECT;
    }
    return d;
}

static void openai_arm(struct openai_call *c)
{
    enum openai_deadline which;
    int64_t left = openai_deadline(c, &which) - clock_ms();
    struct timeval tv;

    if (left < 0) {
        left = 0;
    }
    tv.tv_sec = (time_t)(left / 1000);
    tv.tv_usec = (long)(left % 1000) * 1000;
    evtimer_add(c->timer, &tv);
}

/* --- the answer --------------------------------------------------------- */

static int openai_ok(const struct openai_call *c)
{
    return c->http.status >= 200 && c->http.status < 300;
}

/* Passes a piece of the answer on, as UTF-8 whatever the agent sent (the
 * chunks go into WebSocket text frames). */
static void openai_emit(struct openai_call *c, const char *text, size_t len)
{
    char *copy;

    if (len == 0) {
        return;
    }
    if (!c->got_token) {
        c->got_token = 1;
        openai_arm(c);
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

/* One event of the stream. */
static void openai_event(struct openai_call *c, const struct sse_event *ev)
{
    json_object *obj, *choice;
    const char *text, *error;
    size_t len;
    int n;

    if (strcmp(ev->type, "message") != 0 && strcmp(ev->type, "error") != 0) {
        return;                 /* an extension this client does not know */
    }
    if (strcmp(ev->type, "message") == 0 && strcmp(ev->data, "[DONE]") == 0) {
        openai_succeed(c);
        return;
    }
    obj = openai_proto_parse(ev->data, ev->len);
    error = openai_proto_error(obj);
    if (error != NULL || strcmp(ev->type, "error") == 0) {
        openai_end(c, AGENT_UNAVAILABLE, "the agent reported an error: %.300s", error != NULL ? error : ev->data);
    } else if (obj == NULL) {
        openai_end(c, AGENT_UNAVAILABLE, "the agent sent an event that is not a JSON object: %.60s", ev->data);
    } else if ((n = openai_proto_choice(obj, &choice)) < 0) {
        openai_end(c, AGENT_UNAVAILABLE, "the agent sent an event without choices");
    } else if (n > 0) {
        c->got_finish |= openai_proto_finished(choice);
        if ((text = openai_proto_text(choice, "delta", &len)) != NULL) {
            openai_emit(c, text, len);
        }
    }
    json_object_put(obj);
}

/* The body is complete (or the server closed a body without a length). */
static void openai_body_end(struct openai_call *c)
{
    json_object *obj, *choice;
    const char *text, *error;
    size_t len;

    if (openai_ok(c) && !c->http.json) {
        if (c->got_finish) {
            openai_succeed(c);
        } else {
            openai_end(c, AGENT_UNAVAILABLE, "the agent's answer ended before it was complete");
        }
        return;
    }
    obj = openai_proto_parse((const char *)evbuffer_pullup(c->saved, -1), evbuffer_get_length(c->saved));
    if (!openai_ok(c)) {
        error = openai_proto_error(obj);
        openai_end(c, AGENT_UNAVAILABLE, "the agent answered HTTP %d%s%.300s", c->http.status,
                   error != NULL ? ": " : " ", error != NULL ? error : c->http.reason);
    } else if (obj == NULL || openai_proto_choice(obj, &choice) <= 0) {
        openai_end(c, AGENT_UNAVAILABLE, "the agent's answer has no choices");
    } else {
        if ((text = openai_proto_text(choice, "message", &len)) != NULL) {
            openai_emit(c, text, len);
        }
        openai_succeed(c);
    }
    json_object_put(obj);
}

/* Bytes of the body: the event stream, or an error or completion kept
 * whole (bounded). */
static void openai_data(struct openai_call *c, const char *p, size_t n)
{
    struct sse_event ev;
    size_t used;

    if (!openai_ok(c) || c->http.json) {
        size_t have = evbuffer_get_length(c->saved), max = c->http.json ? OPENAI_JSON_MAX : OPENAI_ERROR_MAX;
        if (have + n > max) {
            if (openai_ok(c)) {
                openai_end(c, AGENT_UNAVAILABLE, "the agent's answer is longer than %zu bytes", max);
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
            openai_end(c, AGENT_UNAVAILABLE, "the agent sent an event longer than %d bytes", SSE_PARSE_MAX_DEFAULT);
            return;
        }
        openai_event(c, &ev);
    }
}

/* The response is broken: says how. */
static void openai_http_error(struct openai_call *c)
{
    switch (c->http.error) {
    case HTTP_RESPONSE_BAD_STATUS:
        openai_end(c, AGENT_UNAVAILABLE, "the agent does not speak HTTP/1.x: '%.40s'", c->http.line);
        break;
    case HTTP_RESPONSE_LONG_LINE:
        openai_end(c, AGENT_UNAVAILABLE, "the agent sent a line longer than %d bytes", HTTP_RESPONSE_LINE_MAX);
        break;
    case HTTP_RESPONSE_LONG_HEAD:
        openai_end(c, AGENT_UNAVAILABLE, "the agent's response headers are longer than %d bytes",
                   HTTP_RESPONSE_HEAD_MAX);
        break;
    case HTTP_RESPONSE_BAD_CHUNK:
        openai_end(c, AGENT_UNAVAILABLE, "the agent sent a malformed chunked body: %s", c->http.chunks.reason);
        break;
    case HTTP_RESPONSE_CUT:
        openai_end(c, AGENT_UNAVAILABLE, "the agent closed the connection in the middle of the answer");
        break;
    }
}

/* Everything that arrived goes through the response reader at once (it
 * keeps a partial line itself); the buffer is drained unless the call
 * ended meanwhile, which freed the connection. */
static void openai_on_read(struct bufferevent *bev, void *arg)
{
    struct openai_call *c = arg;
    struct evbuffer *in = bufferevent_get_input(bev);
    size_t len = evbuffer_get_length(in), off = 0, used, n;
    char *buf = (char *)evbuffer_pullup(in, -1);
    enum http_response_event ev;
    const char *data;

    if (len == 0 || (c->phase != OPENAI_HEAD && c->phase != OPENAI_BODY)) {
        return;
    }
    c->busy = 1;
    do {
        ev = http_response_feed(&c->http, buf + off, len - off, &used, &data, &n);
        off += used;
        if (ev == HTTP_RESPONSE_HEAD) {
            c->phase = OPENAI_BODY;
        } else if (ev == HTTP_RESPONSE_DATA) {
            openai_data(c, data, n);
        } else if (ev == HTTP_RESPONSE_END) {
            openai_body_end(c);
        } else if (ev == HTTP_RESPONSE_ERROR) {
            openai_http_error(c);
        }
    } while (c->req != NULL && ev != HTTP_RESPONSE_AGAIN);
    if (c->req != NULL) {
        evbuffer_drain(in, off);
    }
    c->busy = 0;
    if (c->req == NULL) {
        openai_free(c);         /* ended or cancelled meanwhile */
    }
}

static void openai_on_eof(struct openai_call *c)
{
    if (c->phase != OPENAI_BODY) {
        openai_end(c, AGENT_UNAVAILABLE, "the agent closed the connection without answering");
    } else if (http_response_eof(&c->http) == HTTP_RESPONSE_END || !openai_ok(c)) {
        openai_body_end(c);
    } else if (!c->http.json && c->got_finish) {
        openai_succeed(c);
    } else {
        openai_http_error(c);
    }
}

static int openai_connect_next(struct openai_call *c);

static void openai_on_event(struct bufferevent *bev, short what, void *arg)
{
    struct openai_call *c = arg;
    int err = EVUTIL_SOCKET_ERROR();

    PL_UNUSED(bev);
    if (what & BEV_EVENT_CONNECTED) {
        c->phase = OPENAI_HEAD;
        openai_arm(c);
    } else if (c->phase == OPENAI_CONNECTING) {
        if (openai_connect_next(c) != PL_OK) {
            openai_end(c, AGENT_UNAVAILABLE, "cannot connect to the agent at %s: %s", openai.url.authority,
                       err != 0 ? strerror(err) : "connection failed");
        }
    } else if (what & BEV_EVENT_EOF) {
        openai_on_eof(c);
    } else if (c->phase == OPENAI_BODY && openai_ok(c) && !c->http.json && c->got_finish) {
        openai_succeed(c);    /* a reset after the last word */
    } else {
        openai_end(c, AGENT_UNAVAILABLE, "the connection to the agent failed: %s",
                   err != 0 ? strerror(err) : "unknown error");
    }
}

/* --- the request -------------------------------------------------------- */

/* Connects to the address being tried (the configured one, or the next
 * one the name resolved to) and sends the request; the answer comes to
 * openai_on_read.  Callbacks are deferred, so a connect that fails at once
 * reports it from the loop, never from inside this function. */
static void openai_connect(struct openai_call *c)
{
    const struct sockaddr *sa = c->addr != NULL ? c->addr->ai_addr : (const struct sockaddr *)&openai.addr;
    int salen = c->addr != NULL ? (int)c->addr->ai_addrlen : openai.addrlen;

    c->bev = bufferevent_socket_new(agent_loop(), -1, BEV_OPT_CLOSE_ON_FREE | BEV_OPT_DEFER_CALLBACKS);
    if (c->bev == NULL) {
        openai_end(c, AGENT_UNAVAILABLE, "out of memory");
        return;
    }
    bufferevent_setcb(c->bev, openai_on_read, NULL, openai_on_event, c);
    bufferevent_enable(c->bev, EV_READ | EV_WRITE);
    evbuffer_add(bufferevent_get_output(c->bev), evbuffer_pullup(c->request, -1), evbuffer_get_length(c->request));
    if (bufferevent_socket_connect(c->bev, (struct sockaddr *)sa, salen) != 0) {
        openai_end(c, AGENT_UNAVAILABLE, "cannot connect to the agent at %s: %s", openai.url.authority,
                   errno != 0 ? strerror(errno) : "connection failed");
    }
}

/* A connection attempt failed: the next address, if the name had more. */
static int openai_connect_next(struct openai_call *c)
{
    if (c->addr == NULL || c->addr->ai_next == NULL) {
        return PL_ERR;
    }
    bufferevent_free(c->bev);
    c->addr = c->addr->ai_next;
    openai_connect(c);
    return PL_OK;
}

static void openai_on_resolved(int result, struct evutil_addrinfo *res, void *arg)
{
    struct openai_call *c = arg;

    c->resolving = NULL;
    if (c->req == NULL) {
        /* Cancelled, or timed out (RESULT is EVUTIL_EAI_CANCEL). */
        if (res != NULL) {
            evutil_freeaddrinfo(res);
        }
        openai_free(c);
        return;
    }
    if (result != 0 || res == NULL) {
        openai_end(c, AGENT_UNAVAILABLE, "cannot resolve %s: %s", openai.url.host,
                   evutil_gai_strerror(result != 0 ? result : EVUTIL_EAI_NONAME));
        return;
    }
    c->addrs = c->addr = res;
    openai_connect(c);
}

/* Builds the request, then resolves the name (without blocking the loop)
 * or connects to the address. */
static void openai_request(struct openai_call *c, const struct store_events *evs)
{
    const struct conf *cfg = agent_conf();
    struct evdns_getaddrinfo_request *q;
    struct evutil_addrinfo hints;
    json_object *body;
    const char *text;
    size_t len;

    if (!openai.ready) {
        openai_end(c, AGENT_UNAVAILABLE, "the agent is not set up (see the log at start-up)");
        return;
    }
    if ((body = openai_proto_request(cfg->agent_model, cfg->agent_system_prompt, cfg->agent_name, evs,
                                     c->req->query)) == NULL || (c->request = evbuffer_new()) == NULL) {
        json_object_put(body);
        openai_end(c, AGENT_UNAVAILABLE, "out of memory");
        return;
    }
    text = json_object_to_json_string_ext(body, JSON_C_TO_STRING_PLAIN | JSON_C_TO_STRING_NOSLASHESCAPE);
    len = strlen(text);
    evbuffer_add_printf(c->request, "POST %s HTTP/1.1\r\nHost: %s\r\nUser-Agent: parley/%s\r\n"
                        "Content-Type: application/json\r\nAccept: text/event-stream\r\n"
                        "Content-Length: %zu\r\nConnection: close\r\n",
                        openai.url.target, openai.url.authority, PACKAGE_VERSION, len);
    if (openai.key[0] != '\0') {
        evbuffer_add_printf(c->request, "Authorization: Bearer %s\r\n", openai.key);
    }
    evbuffer_add(c->request, "\r\n", 2);
    evbuffer_add(c->request, text, len);
    json_object_put(body);

    c->phase = OPENAI_CONNECTING;
    c->connect_ms = clock_ms();
    openai_arm(c);
    if (openai.dns == NULL) {
        openai_connect(c);
        return;
    }
    memset(&hints, 0, sizeof(hints));
    hints.ai_family = AF_UNSPEC;
    hints.ai_socktype = SOCK_STREAM;
    hints.ai_protocol = IPPROTO_TCP;
    hints.ai_flags = EVUTIL_AI_ADDRCONFIG;
    q = evdns_getaddrinfo(openai.dns, openai.url.host, openai.url.port, &hints, openai_on_resolved, c);
    if (q != NULL) {
        c->resolving = q;
    }
    /* Else the answer came at once (a number, /etc/hosts): C may be gone. */
}

static void openai_on_context(enum store_status st, const struct store_events *evs, void *arg)
{
    struct openai_call *c = arg;

    c->store_pending = 0;
    if (c->req == NULL) {
        openai_free(c);         /* cancelled or timed out meanwhile */
        return;
    }
    if (st != STORE_OK) {
        log_debug("event=agent_context_unavailable room=%s", c->req->room);
    }
    openai_request(c, st == STORE_OK ? evs : NULL);
}

/* The timer: first the start (without context to read), then deadlines. */
static void openai_on_timer(evutil_socket_t fd, short what, void *arg)
{
    struct openai_call *c = arg;
    const struct conf *cfg = agent_conf();
    enum openai_deadline which;

    PL_UNUSED(fd);
    PL_UNUSED(what);
    if (c->phase == OPENAI_CONTEXT && !c->store_pending) {
        openai_request(c, NULL);
        return;
    }
    openai_deadline(c, &which);
    switch (which) {
    case OPENAI_DEADLINE_CONNECT:
        openai_end(c, AGENT_TIMEOUT, "could not connect to the agent at %s within %d ms",
                   openai.url.authority, cfg->agent_connect_timeout_ms);
        break;
    case OPENAI_DEADLINE_FIRST_TOKEN:
        openai_end(c, AGENT_TIMEOUT, "the agent did not start answering within %d ms",
                   cfg->agent_first_token_timeout_ms);
        break;
    case OPENAI_DEADLINE_TOTAL:
        openai_end(c, AGENT_TIMEOUT, "the agent did not finish its answer within %d ms",
                   cfg->agent_total_timeout_ms);
        break;
    }
}

static int openai_start(struct agent_request *r)
{
    const struct conf *cfg = agent_conf();
    struct openai_call *c = calloc(1, sizeof(*c));

    if (c == NULL || (c->saved = evbuffer_new()) == NULL
        || (c->timer = evtimer_new(agent_loop(), openai_on_timer, c)) == NULL) {
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
    c->phase = OPENAI_CONTEXT;
    r->state = c;
    if (r->room[0] != '\0' && cfg->agent_context_messages > 0
        && store_history(r->room, NULL, NULL, cfg->agent_context_messages, 0, openai_on_context, c) == PL_OK) {
        c->store_pending = 1;
        openai_arm(c);
    } else {
        event_active(c->timer, EV_TIMEOUT, 0);  /* start from the loop */
    }
    return PL_OK;
}

const struct agent_backend agent_openai = {
    .check = openai_check,
    .init = openai_init,
    .start = openai_start,
    .cancel = openai_cancel,
};
