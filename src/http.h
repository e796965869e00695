/* http.h - routing, request ids, replies and the one JSON error format.
 *
 * Every module registers its routes here at worker start-up.  A pattern is
 * a path whose "{}" segments match one non-empty segment each; the matched
 * segments are handed to the handler percent-decoded.  A path that matches
 * no pattern gets 404, a path that matches with the wrong method 405 with
 * Allow.  Every response carries X-Request-Id, and is logged once with it. */
#ifndef PARLEY_HTTP_H
#define PARLEY_HTTP_H

#include <stdarg.h>
#include <stdint.h>
#include <stddef.h>

#include <evhtp.h>

#include "conf.h"
#include "metrics.h"
#include "origin.h"

struct worker_env;

#define HTTP_MAX_PARAMS 2
#define HTTP_PARAM_MAX  256

enum http_method_bit {
    HTTP_GET = 1 << 0,
    HTTP_HEAD = 1 << 1,
    HTTP_POST = 1 << 2,
    HTTP_OPTIONS = 1 << 3,
    HTTP_DELETE = 1 << 4,
    HTTP_NO_HEAD = 1 << 5,      /* a GET route that does not serve HEAD */
};

struct http_params {
    char value[HTTP_MAX_PARAMS][HTTP_PARAM_MAX];   /* percent-decoded "{}" segments */
    int count;
};

typedef void (*http_handler_cb)(evhtp_request_t *req, const struct http_params *params);

/* Adds a route; call before http_attach().  METHODS is a mask of
 * enum http_method_bit.  A route that serves GET serves HEAD too (unless
 * HTTP_NO_HEAD): its handler sees a HEAD request, http_reply sends the
 * GET's headers without the body, and a handler that would start a stream
 * answers its headers and ends instead. */
void http_route_add(const char *pattern, unsigned methods, http_handler_cb handler);

/* Handles every path that no route matches (instead of a plain 404). */
void http_set_fallback(http_handler_cb handler);

/* Decodes %XX escapes in the LEN bytes at S into OUT (NUL-terminated).
 * Fails on a bad escape, an encoded NUL or an OUT too small.  With
 * PLUS_SPACE (a query), a literal '+' is a space (an encoded one, %2B, is
 * a '+'). */
int http_percent_decode(const char *s, size_t len, char *out, size_t outlen, int plus_space);

/* Matches PATH against PATTERN.  Returns 1 on a match (PARAMS filled), 0 on
 * no match, -1 when a "{}" segment is not valid percent-encoding. */
int http_route_match(const char *pattern, const char *path, struct http_params *params);

/* Worker start-up: limits from CFG, and the timer that enforces the
 * header deadline (http_header_timeout). */
int http_init(const struct worker_env *w);

/* Makes HTP dispatch through the route table, count its connections and
 * enforce max_body, max_header_size and http_keepalive_timeout. */
void http_attach(evhtp_t *htp);

/* Requests whose response has not been finished yet. */
int http_inflight(void);

/* The worker is stopping: idle keep-alive connections close now, and
 * every response from here on asks the client to close its connection. */
void http_drain(void);

/* The request id given to REQ (also sent as X-Request-Id). */
const char *http_request_id(evhtp_request_t *req);

/* Adds a header; both strings are copied. */
void http_header_set(evhtp_request_t *req, const char *key, const char *value);

/* Sends a complete response with BODY (copied) and logs it. */
void http_reply(evhtp_request_t *req, int status, const char *content_type,
                const void *body, size_t len);

/* Sends {"error":{"code":CODE,"message":...}} with status STATUS. */
void http_error(evhtp_request_t *req, int status, const char *code, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

/* Answers 429 rate_limited with Retry-After: WAIT_MS rounded up to whole
 * seconds; WHAT names what came too often ("messages"). */
void http_rate_limited(evhtp_request_t *req, long long wait_ms, const char *what);

/* A request whose answer comes later (after Redis replies).  http_hold
 * pauses REQ; when the answer is ready, check hold->req: NULL means the
 * request died meanwhile.  Reply (or not), then http_release. */
struct http_hold {
    evhtp_request_t *req;
};
struct http_hold *http_hold(evhtp_request_t *req);
void http_release(struct http_hold *hold);

/* Takes the connection of REQ away from libevhtp for a long-lived stream:
 * returns its bufferevent (no callbacks, reading disabled), now owned by
 * the caller, and forgets the request.  The connection is counted as
 * TRANSPORT from now on: the caller says accept_conn_add(TRANSPORT, -1)
 * when it goes.  Works both inside a handler and from a later callback. */
struct bufferevent *http_take_over(evhtp_request_t *req, enum metrics_gauge transport);

/* How REQ's Origin stands against allowed_origins (see origin.h). */
enum origin_verdict http_origin(evhtp_request_t *req);

/* REQ's client address as text in BUF: the peer, or the address a trusted
 * proxy passed on in X-Forwarded-For (see netaddr.h).  Returns BUF. */
const char *http_client_addr(evhtp_request_t *req, char *buf, size_t len);

/* Whether NAME is a valid room name; if not, answers 400 bad_request. */
int http_room_ok(evhtp_request_t *req, const char *name);

/* A query parameter of REQ (percent-decoded into BUF), or NULL: absent,
 * or malformed (a bad escape, an encoded NUL, longer than BUF). */
const char *http_query(evhtp_request_t *req, const char *name, char *buf, size_t len);

/* Whether REQ's query names NAME at all (well-formed or not). */
int http_query_has(evhtp_request_t *req, const char *name);

/* Logs a response that the caller sends itself (streams, upgrades). */
void http_log_response(evhtp_request_t *req, int status);

#endif
