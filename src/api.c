/* api.c - sessions, publishing and history over HTTP + JSON. */
#include "api.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include <event2/buffer.h>
#include <json-c/json.h>

#include "answer.h"
#include "auth.h"
#include "event.h"
#include "http.h"
#include "json_field.h"
#include "json_strict.h"
#include "log.h"
#include "metrics.h"
#include "names.h"
#include "netaddr.h"
#include "parley.h"
#include "store.h"
#include "worker_env.h"

#define API_HISTORY_DEFAULT 50
#define API_HISTORY_MAX     200
#define API_CMID_MAX        128

static const struct conf *cfg;

/* Reads REQ's body as a JSON object.  On failure answers 415 or 400 and
 * returns NULL; the caller owns (json_object_put) what it gets. */
static json_object *api_json_body(evhtp_request_t *req)
{
    const char *ctype = evhtp_header_find(req->headers_in, "Content-Type");
    size_t len = evbuffer_get_length(req->buffer_in);
    json_object *obj;
    char why[160];

    if (ctype == NULL || strncasecmp(ctype, "application/json", 16) != 0
        || (ctype[16] != '\0' && ctype[16] != ';' && ctype[16] != ' ')) {
        http_error(req, 415, "unsupported_media_type", "the body must be application/json");
        return NULL;
    }
    obj = json_strict_parse((const char *)evbuffer_pullup(req->buffer_in, -1), len, "the body", why, sizeof(why));
    if (obj == NULL) {
        http_error(req, 400, "invalid_json", "%s", why);
    }
    return obj;
}

static void api_reply_json(evhtp_request_t *req, int status, struct evbuffer *body)
{
    http_reply(req, status, "application/json", evbuffer_pullup(body, -1), evbuffer_get_length(body));
}

/* --- POST /api/sessions ------------------------------------------------- */

#define API_TTL_MAX (365 * 86400)

struct api_session {
    struct http_hold *hold;
    struct store_session spec;
    char user[PL_NAME_MAX + 1];
    char addr[NETADDR_TEXT_MAX];
    char limit_key[NETADDR_TEXT_MAX];
};

static void api_session_free(struct api_session *s)
{
    http_release(s->hold);
    free(s);
}

static void api_on_session(enum store_status st, const char *token, long long detail, void *arg)
{
    struct api_session *s = arg;
    evhtp_request_t *req = s->hold->req;
    char body[256];

    if (req == NULL) {
        /* The client left; the session ends with its TTL. */
    } else if (st == STORE_LIMITED) {
        http_rate_limited(req, detail, "sign-ins from this address");
    } else if (st == STORE_TAKEN) {
        http_error(req, 409, "name_taken", "the name \"%s\" is in use; pick another", s->user);
    } else if (st != STORE_OK) {
        http_error(req, 503, "redis_unavailable", "the session store is unavailable");
    } else {
        snprintf(body, sizeof(body), "{\"token\":\"%s\",\"user\":\"%s\",\"expires_in\":%d}",
                 token, s->user, s->spec.ttl_s);
        http_header_set(req, "Cache-Control", "no-store");
        http_reply(req, 201, "application/json", body, strlen(body));
        log_info("event=session_created user=%s mode=%s client=%s ttl=%d", s->user,
                 s->spec.open ? "open" : "key", s->addr, s->spec.ttl_s);
    }
    api_session_free(s);
}

/* The session's lifetime: the backend's "ttl", or session_ttl.  Returns -1
 * after answering 400. */
static int api_session_ttl(evhtp_request_t *req, json_object *body, int open)
{
    json_object *v;
    int64_t ttl;

    if (!json_object_object_get_ex(body, "ttl", &v) || json_object_is_type(v, json_type_null)) {
        return cfg->session_ttl_s;
    }
    if (open) {
        http_error(req, 400, "bad_request", "\"ttl\" is chosen by the application backend (with the session key)");
        return -1;
    }
    if (!json_object_is_type(v, json_type_int) || (ttl = json_object_get_int64(v)) < 1 || ttl > API_TTL_MAX) {
        http_error(req, 400, "bad_request", "\"ttl\" must be whole seconds, 1..%d", API_TTL_MAX);
        return -1;
    }
    return (int)ttl;
}

/* Checks the body and asks Redis for the session. */
static void api_session_make(struct api_session *s)
{
    evhtp_request_t *req = s->hold->req;
    json_object *body = api_json_body(req);
    const char *user;
    int bad = 0;

    if (body == NULL) {
        api_session_free(s);
        return;
    }
    user = json_field_string(body, "user", NULL, &bad);
    if (user == NULL || !name_valid(user)) {
        http_error(req, 400, "bad_request", "\"user\" must be 1..64 of A-Z a-z 0-9 _ . -");
    } else if (auth_name_reserved(user)) {
        http_error(req, 403, "forbidden", "the name \"%s\" is reserved", user);
    } else if ((s->spec.ttl_s = api_session_ttl(req, body, s->spec.open)) > 0) {
        snprintf(s->user, sizeof(s->user), "%s", user);
        s->spec.user = s->user;
        if (store_session_create(&s->spec, api_on_session, s) == PL_OK) {
            json_object_put(body);
            return;
        }
        http_error(req, 503, "redis_unavailable", "the session store is unavailable");
    }
    json_object_put(body);
    api_session_free(s);
}

/* A wrong key counts against the address like an open sign-in, so that
 * guessing the key is as slow as the limit. */
static void api_on_signin_counted(enum store_status st, long long wait_ms, void *arg)
{
    struct api_session *s = arg;
    evhtp_request_t *req = s->hold->req;

    if (req != NULL && st == STORE_OK && wait_ms > 0) {
        http_rate_limited(req, wait_ms, "sign-ins from this address");
    } else if (req != NULL) {
        http_error(req, 401, "unauthorized", "invalid session key");
    }
    api_session_free(s);
}

static void api_sessions(evhtp_request_t *req, const struct http_params *params)
{
    int keyed = auth_has_session_key(req);
    const char *authz = evhtp_header_find(req->headers_in, "Authorization");
    struct api_session *s;

    PL_UNUSED(params);
    if (!keyed && authz == NULL && !cfg->open_sessions) {
        http_error(req, 401, "unauthorized", "sessions are made by the application backend "
                   "(Authorization: Bearer <session key>); open sign-in is off");
        return;
    }
    if ((s = calloc(1, sizeof(*s))) == NULL || (s->hold = http_hold(req)) == NULL) {
        free(s);
        http_error(req, 503, "unavailable", "out of memory");
        return;
    }
    http_client_addr(req, s->addr, sizeof(s->addr));
    netaddr_limit_key(s->addr, s->limit_key, sizeof(s->limit_key));
    s->spec.addr = s->addr;
    s->spec.limit_key = s->limit_key;
    s->spec.open = !keyed;
    if (keyed || authz == NULL) {
        api_session_make(s);
    } else if (store_signin_take(s->limit_key, api_on_signin_counted, s) != PL_OK) {
        http_error(req, 503, "redis_unavailable", "the session store is unavailable");
        api_session_free(s);
    }
}

/* --- GET /api/sessions/current, GET /api/config ------------------------- */

static void api_whoami_as(struct http_hold *hold, const struct auth_identity *who, void *arg)
{
    char body[256];
    long long left = who->expires != 0 ? (long long)who->expires - (long long)time(NULL) : -1;

    PL_UNUSED(arg);
    snprintf(body, sizeof(body), "{\"user\":\"%s\",\"kind\":\"%s\",\"expires_in\":%lld}", who->user,
             who->session[0] ? "session" : "jwt", left < 0 ? 0 : left);
    http_header_set(hold->req, "Cache-Control", "no-store");
    http_reply(hold->req, 200, "application/json", body, strlen(body));
    http_release(hold);
}

static void api_whoami(evhtp_request_t *req, const struct http_params *params)
{
    PL_UNUSED(params);
    auth_request(req, api_whoami_as, NULL);
}

static void api_on_logged_out(enum store_status st, long long n, void *arg)
{
    struct http_hold *hold = arg;

    PL_UNUSED(n);
    if (hold->req != NULL && st != STORE_OK) {
        http_error(hold->req, 503, "redis_unavailable", "the session store is unavailable");
    } else if (hold->req != NULL) {
        http_reply(hold->req, 204, NULL, "", 0);
    }
    http_release(hold);
}

static void api_logout_as(struct http_hold *hold, const struct auth_identity *who, void *arg)
{
    PL_UNUSED(arg);
    if (who->session[0] == '\0') {
        http_error(hold->req, 400, "bad_request", "a JWT ends at its \"exp\"; only sessions are ended here");
    } else if (store_session_revoke(who->session, api_on_logged_out, hold) == PL_OK) {
        return;
    } else {
        http_error(hold->req, 503, "redis_unavailable", "the session store is unavailable");
    }
    http_release(hold);
}

/* DELETE /api/sessions/current: signing out ends the session everywhere. */
static void api_logout(evhtp_request_t *req, const struct http_params *params)
{
    PL_UNUSED(params);
    auth_request(req, api_logout_as, NULL);
}

/* --- POST /api/tickets -------------------------------------------------- */

#define API_TICKET_TTL_MS 30000

static void api_on_ticket(enum store_status st, const char *ticket, void *arg)
{
    struct http_hold *hold = arg;
    char body[128];

    if (hold->req != NULL && st != STORE_OK) {
        http_error(hold->req, 503, "redis_unavailable", "the session store is unavailable");
    } else if (hold->req != NULL) {
        snprintf(body, sizeof(body), "{\"ticket\":\"%s\",\"expires_in\":%d}", ticket, API_TICKET_TTL_MS / 1000);
        http_header_set(hold->req, "Cache-Control", "no-store");
        http_reply(hold->req, 201, "application/json", body, strlen(body));
    }
    http_release(hold);
}

static void api_ticket_as(struct http_hold *hold, const struct auth_identity *who, void *arg)
{
    PL_UNUSED(arg);
    if (store_ticket_create(who->user, who->session, who->expires, API_TICKET_TTL_MS, api_on_ticket, hold)
        != PL_OK) {
        http_error(hold->req, 503, "redis_unavailable", "the session store is unavailable");
        http_release(hold);
    }
}

/* A single-use stand-in for the caller's token, for URLs (see auth.c). */
static void api_ticket(evhtp_request_t *req, const struct http_params *params)
{
    PL_UNUSED(params);
    auth_request(req, api_ticket_as, NULL);
}

static void api_config(evhtp_request_t *req, const struct http_params *params)
{
    struct evbuffer *b = evbuffer_new();

    PL_UNUSED(params);
    if (b == NULL) {
        http_error(req, 503, "unavailable", "out of memory");
        return;
    }
    evbuffer_add_printf(b, "{\"open_sessions\":%s,\"agent_name\":\"%s\",\"max_content\":%zu,"
                        "\"ws_max_message\":%zu,\"rate_limit\":%d,\"rate_burst\":%d}",
                        cfg->open_sessions ? "true" : "false", cfg->agent_name, cfg->max_content,
                        cfg->ws_max_message, cfg->rate_limit, cfg->rate_burst);
    http_header_set(req, "Cache-Control", "no-store");
    api_reply_json(req, 200, b);
    evbuffer_free(b);
}

/* --- POST /api/rooms/{room}/messages ------------------------------------ */

struct api_publish {
    struct http_hold *hold;
    json_object *body;
    struct store_message m;
    char room[PL_NAME_MAX + 1];
    char session[TOKEN_SESSION_LEN + 1];
    char from[PL_NAME_MAX + 1];
};

static void api_publish_free(struct api_publish *p)
{
    if (p->hold != NULL) {
        http_release(p->hold);
    }
    json_object_put(p->body);
    free(p);
}

static void api_on_published(enum store_status st, const char *id, long detail, void *arg)
{
    struct api_publish *p = arg;
    evhtp_request_t *req = p->hold->req;
    char body[96];

    if (req != NULL && st == STORE_LIMITED) {
        http_rate_limited(req, detail, "messages");
    } else if (req != NULL && (st == STORE_NOT_FOUND || st == STORE_RESERVED)) {
        auth_refuse(req, st == STORE_RESERVED, id);
    } else if (req != NULL && st != STORE_OK) {
        http_error(req, 503, "redis_unavailable", "the message could not be stored");
    } else if (req != NULL) {
        if (detail == 1) {
            metrics_add(METRIC_MESSAGES_IN, 1);
        }
        snprintf(body, sizeof(body), "{\"id\":\"%s\"}", id);
        http_reply(req, 201, "application/json", body, strlen(body));
    }
    api_publish_free(p);
}

/* Reads and checks the request's body into P->m; answers 400/413 itself. */
static int api_publish_read(struct api_publish *p, evhtp_request_t *req)
{
    size_t cmid_len = 0;
    int bad = 0;

    if ((p->body = api_json_body(req)) == NULL) {
        return PL_ERR;
    }
    p->m.content = json_field_string(p->body, "content", &p->m.len, &bad);
    p->m.cmid = json_field_string(p->body, "client_msg_id", &cmid_len, &bad);
    if (bad || p->m.content == NULL || p->m.len == 0) {
        http_error(req, 400, "bad_request", "\"content\" must be a non-empty string; \"client_msg_id\" a string");
    } else if (p->m.len > cfg->max_content) {
        http_error(req, 413, "too_large", "\"content\" is longer than %zu bytes", cfg->max_content);
    } else if (p->m.cmid != NULL && (cmid_len == 0 || cmid_len > API_CMID_MAX)) {
        http_error(req, 400, "bad_request", "\"client_msg_id\" must be 1..%d bytes", API_CMID_MAX);
    } else {
        return PL_OK;
    }
    return PL_ERR;
}

/* Hands P->m to the store, which answers through api_on_published. */
static void api_publish_send(struct api_publish *p)
{
    if (store_message_publish(&p->m, api_on_published, p) != PL_OK) {
        http_error(p->hold->req, 503, "redis_unavailable", "the message store is unavailable");
        api_publish_free(p);
    }
}

static void api_publish_as(struct http_hold *hold, const struct auth_identity *who, void *arg)
{
    struct api_publish *p = arg;

    p->hold = hold;
    if (api_publish_read(p, hold->req) != PL_OK) {
        api_publish_free(p);
        return;
    }
    snprintf(p->from, sizeof(p->from), "%s", who->user);        /* outlives WHO */
    p->m.from = p->from;
    if (who->session[0] != '\0') {
        /* A ticket's session: checked again in the publish itself. */
        snprintf(p->session, sizeof(p->session), "%s", who->session);
        p->m.session = p->session;
    }
    api_publish_send(p);
}

/* A session token is checked by the publish script itself (one round trip
 * instead of two); anything else is authenticated first. */
static void api_publish(evhtp_request_t *req, const struct http_params *params)
{
    struct api_publish *p;

    if (!http_room_ok(req, params->value[0])) {
        return;
    }
    p = calloc(1, sizeof(*p));
    if (p == NULL) {
        http_error(req, 503, "unavailable", "out of memory");
        return;
    }
    snprintf(p->room, sizeof(p->room), "%s", params->value[0]);
    p->m.room = p->room;
    p->m.limited = 1;
    if (auth_session_token(req, p->session, sizeof(p->session)) == NULL) {
        if (auth_request(req, api_publish_as, p) != PL_OK) {
            free(p);
        }
        return;
    }
    p->m.session = p->session;
    p->m.reserved = auth_reserved_names();      /* auth_request would have checked */
    if (api_publish_read(p, req) != PL_OK) {
        api_publish_free(p);
    } else if ((p->hold = http_hold(req)) == NULL) {
        http_error(req, 503, "unavailable", "out of memory");
        api_publish_free(p);
    } else {
        api_publish_send(p);
    }
}

/* --- GET /api/rooms/{room}/messages ------------------------------------- */

struct api_history {
    char room[PL_NAME_MAX + 1];
    char after[EVENT_ID_MAX];
    char before[EVENT_ID_MAX];
    int limit;
    struct http_hold *hold;
};

static void api_on_history(enum store_status st, const struct store_events *evs, void *arg)
{
    struct api_history *h = arg;
    evhtp_request_t *req = h->hold->req;
    struct evbuffer *out;

    if (req != NULL && st != STORE_OK) {
        http_error(req, 503, "redis_unavailable", "the history store is unavailable");
    } else if (req != NULL && (out = evbuffer_new()) != NULL) {
        evbuffer_add(out, "{\"messages\":[", 13);
        for (int i = 0; i < evs->count; i++) {
            if (i > 0) {
                evbuffer_add(out, ",", 1);
            }
            evbuffer_add(out, evs->items[i].json, evs->items[i].len);
        }
        evbuffer_add(out, "]}", 2);
        api_reply_json(req, 200, out);
        evbuffer_free(out);
    }
    http_release(h->hold);
    free(h);
}

static void api_history_as(struct http_hold *hold, const struct auth_identity *who, void *arg)
{
    struct api_history *h = arg;

    PL_UNUSED(who);
    h->hold = hold;
    if (store_history(h->room, h->after[0] ? h->after : NULL, h->before[0] ? h->before : NULL,
                      h->limit, 0, api_on_history, h) != PL_OK) {
        http_error(hold->req, 503, "redis_unavailable", "the history store is unavailable");
        http_release(hold);
        free(h);
    }
}

static void api_history(evhtp_request_t *req, const struct http_params *params)
{
    char after[64], before[64], limit[32];
    const char *a, *b, *l;
    struct api_history *h;
    char *end;
    long n = API_HISTORY_DEFAULT;

    if (!http_room_ok(req, params->value[0])) {
        return;
    }
    a = http_query(req, "after", after, sizeof(after));
    b = http_query(req, "before", before, sizeof(before));
    l = http_query(req, "limit", limit, sizeof(limit));
    if ((a != NULL && !event_id_valid(a)) || (b != NULL && !event_id_valid(b))) {
        http_error(req, 400, "bad_request", "\"after\" and \"before\" must be stream ids like 1700000000000-0");
        return;
    }
    if (l != NULL) {
        n = strtol(l, &end, 10);
        if (*end != '\0' || end == l || n < 1) {
            http_error(req, 400, "bad_request", "\"limit\" must be a positive integer (at most %d)", API_HISTORY_MAX);
            return;
        }
        n = n > API_HISTORY_MAX ? API_HISTORY_MAX : n;
    }
    h = calloc(1, sizeof(*h));
    if (h == NULL) {
        http_error(req, 503, "unavailable", "out of memory");
        return;
    }
    snprintf(h->room, sizeof(h->room), "%s", params->value[0]);
    snprintf(h->after, sizeof(h->after), "%s", a ? a : "");
    snprintf(h->before, sizeof(h->before), "%s", b ? b : "");
    h->limit = (int)n;
    if (auth_request(req, api_history_as, h) != PL_OK) {
        free(h);
    }
}

/* --- DELETE /api/rooms/{room}/answers/{request_id} ---------------------- */
/* --- DELETE /api/chat/answers/{request_id} (the asker's own) ------------- */

struct api_cancel {
    char room[ANSWER_SCOPE_MAX];    /* "": the asker's private scope */
    char rid[ANSWER_ID_LEN + 1];
    struct http_hold *hold;
};

static void api_on_cancelled(enum store_status st, long long n, void *arg)
{
    struct api_cancel *c = arg;
    evhtp_request_t *req = c->hold->req;
    char body[96];

    if (req != NULL && st != STORE_OK) {
        http_error(req, 503, "redis_unavailable", "the answer could not be stopped now");
    } else if (req != NULL && n < 0) {
        http_error(req, 403, "forbidden", "only the user who asked can stop an answer");
    } else if (req != NULL && n == 0) {
        http_error(req, 404, "not_found", "no answer with that request_id is in progress %s",
                   c->room[0] == '~' ? "for you" : "in this room");
    } else if (req != NULL) {
        int len = snprintf(body, sizeof(body), "{\"request_id\":\"%s\",\"status\":\"cancelled\"}", c->rid);
        http_reply(req, 200, "application/json", body, (size_t)len);
    }
    http_release(c->hold);
    free(c);
}

static void api_cancel_as(struct http_hold *hold, const struct auth_identity *who, void *arg)
{
    struct api_cancel *c = arg;

    c->hold = hold;
    if (c->room[0] == '\0') {
        answer_private_scope(who->user, c->room);
    }
    if (store_answer_cancel(c->room, c->rid, who->user, api_on_cancelled, c) != PL_OK) {
        http_error(hold->req, 503, "redis_unavailable", "the answer could not be stopped now");
        http_release(hold);
        free(c);
    }
}

/* The asker stops an answer in progress; every viewer gets ai_done
 * "cancelled" and the partial text is stored as such.  PARAMS: the room
 * and the request id, or the request id alone (a private answer). */
static void api_cancel(evhtp_request_t *req, const struct http_params *params)
{
    const char *rid = params->value[params->count - 1];
    struct api_cancel *c;

    if (params->count == 2 && !http_room_ok(req, params->value[0])) {
        return;
    }
    if (!answer_id_valid(rid)) {
        http_error(req, 404, "not_found", "no answer with that request_id is in progress");
        return;
    }
    if ((c = calloc(1, sizeof(*c))) == NULL) {
        http_error(req, 503, "unavailable", "out of memory");
        return;
    }
    snprintf(c->room, sizeof(c->room), "%s", params->count == 2 ? params->value[0] : "");
    snprintf(c->rid, sizeof(c->rid), "%s", rid);
    if (auth_request(req, api_cancel_as, c) != PL_OK) {
        free(c);
    }
}

int api_init(const struct worker_env *w)
{
    cfg = w->cfg;
    http_route_add("/api/sessions", HTTP_POST, api_sessions);
    http_route_add("/api/sessions/current", HTTP_GET, api_whoami);
    http_route_add("/api/sessions/current", HTTP_DELETE, api_logout);
    http_route_add("/api/config", HTTP_GET, api_config);
    http_route_add("/api/tickets", HTTP_POST, api_ticket);
    http_route_add("/api/rooms/{}/messages", HTTP_POST, api_publish);
    http_route_add("/api/rooms/{}/messages", HTTP_GET, api_history);
    http_route_add("/api/rooms/{}/answers/{}", HTTP_DELETE, api_cancel);
    http_route_add("/api/chat/answers/{}", HTTP_DELETE, api_cancel);
    return PL_OK;
}
