/* auth.c - tokens from headers, query or cookie; JWT or Redis session;
 * the session key; reserved names. */
#include "auth.h"

#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include <openssl/crypto.h>
#include <openssl/sha.h>

#include "log.h"
#include "parley.h"
#include "secret.h"
#include "store.h"
#include "worker_env.h"

#define AUTH_TOKEN_MAX 4096
#define AUTH_KEY_MAX 1024

static struct {
    const struct conf *cfg;
    unsigned char session_key_digest[SHA256_DIGEST_LENGTH];
    int have_session_key;
    char reserved[sizeof(((struct conf *)0)->reserved_names) + PL_NAME_MAX + 4];
} auth;

/* auth_name_reserved()'s names as " a b ", lower case, for Redis scripts. */
static void auth_reserved_list(void)
{
    const char *cursor = auth.cfg->reserved_names, *item;
    size_t used, len;

    used = (size_t)snprintf(auth.reserved, sizeof(auth.reserved), " %s ", auth.cfg->agent_name);
    while ((item = pl_list_next(&cursor, &len)) != NULL && used + len + 1 < sizeof(auth.reserved)) {
        memcpy(auth.reserved + used, item, len);
        used += len;
        auth.reserved[used++] = ' ';
        auth.reserved[used] = '\0';
    }
    for (char *p = auth.reserved; *p; p++) {
        *p = (char)tolower((unsigned char)*p);
    }
}

const char *auth_reserved_names(void)
{
    return auth.reserved;
}

int auth_init(const struct worker_env *w)
{
    char key[AUTH_KEY_MAX];

    auth.cfg = w->cfg;
    auth_reserved_list();
    auth.have_session_key = 0;
    if (secret_load(auth.cfg->session_key_file, auth.cfg->session_key_env, "session_key", key, sizeof(key)) == PL_OK
        && key[0] != '\0') {
        /* Only a digest stays: compared in constant time, whatever its length. */
        SHA256((const unsigned char *)key, strlen(key), auth.session_key_digest);
        auth.have_session_key = 1;
    }
    OPENSSL_cleanse(key, sizeof(key));
    return PL_OK;
}

int auth_has_session_key(evhtp_request_t *req)
{
    const char *h = evhtp_header_find(req->headers_in, "Authorization");
    unsigned char given[SHA256_DIGEST_LENGTH];

    if (!auth.have_session_key || h == NULL || strncasecmp(h, "Bearer ", 7) != 0) {
        return 0;
    }
    h += 7 + strspn(h + 7, " ");
    SHA256((const unsigned char *)h, strlen(h), given);
    return CRYPTO_memcmp(given, auth.session_key_digest, sizeof(given)) == 0;
}

int auth_name_reserved(const char *name)
{
    const char *cursor = auth.cfg->reserved_names, *item;
    size_t n = strlen(name), len;

    if (strcasecmp(name, auth.cfg->agent_name) == 0) {
        return 1;
    }
    while ((item = pl_list_next(&cursor, &len)) != NULL) {
        if (len == n && strncasecmp(item, name, n) == 0) {
            return 1;
        }
    }
    return 0;
}

static const char *auth_cookie(const char *cookies, char *buf, size_t len)
{
    const char *p = cookies;

    while (p != NULL && *p) {
        p += strspn(p, " ;");
        if (strncmp(p, "parley_token=", 13) == 0) {
            size_t n = strcspn(p + 13, ";");
            if (n == 0 || n >= len) {
                return NULL;
            }
            memcpy(buf, p + 13, n);
            buf[n] = '\0';
            return buf;
        }
        p = strchr(p, ';');
    }
    return NULL;
}

const char *auth_token(evhtp_request_t *req, char *buf, size_t len)
{
    const char *h = evhtp_header_find(req->headers_in, "Authorization");
    const char *t;

    if (h != NULL) {
        if (strncasecmp(h, "Bearer ", 7) != 0 || strlen(h + 7) >= len) {
            return NULL;
        }
        h += 7 + strspn(h + 7, " ");
        memcpy(buf, h, strlen(h) + 1);
        return buf[0] ? buf : NULL;
    }
    if ((t = http_query(req, "token", buf, len)) != NULL && t[0] != '\0') {
        return t;
    }
    /* A page of another site may not act with a visitor's cookie. */
    h = evhtp_header_find(req->headers_in, "Cookie");
    return h != NULL && origin_credentials_ok(http_origin(req)) ? auth_cookie(h, buf, len) : NULL;
}

struct auth_call {
    struct http_hold *hold;
    auth_cb cb;
    void *arg;
    struct auth_identity who;
};

/* Hands a known user on, unless the name is one nobody may hold (a session
 * made before the name was reserved, a JWT an application minted). */
static int auth_accept(struct http_hold *hold, const struct auth_identity *who, auth_cb cb, void *arg)
{
    if (auth_name_reserved(who->user)) {
        auth_refuse(hold->req, 1, who->user);
        http_release(hold);
        return PL_ERR;
    }
    cb(hold, who, arg);         /* hands the hold on */
    return PL_OK;
}

/* Ends a lookup in Redis: hands call->who on, or answers why not (UNKNOWN
 * says what was not found). */
static void auth_finish(struct auth_call *call, enum store_status st, const char *unknown)
{
    evhtp_request_t *req = call->hold->req;

    if (req != NULL && st == STORE_OK) {
        auth_accept(call->hold, &call->who, call->cb, call->arg);
        free(call);
        return;
    }
    if (req != NULL && st == STORE_NOT_FOUND) {
        http_error(req, 401, "unauthorized", "%s", unknown);
    } else if (req != NULL) {
        http_error(req, 503, "redis_unavailable", "the session store is unavailable");
    }
    http_release(call->hold);
    free(call);
}

void auth_refuse(evhtp_request_t *req, int reserved, const char *user)
{
    if (reserved) {
        http_error(req, 403, "forbidden", "the name \"%s\" is reserved", user);
    } else {
        http_error(req, 401, "unauthorized", "unknown or expired session token");
    }
}

static void auth_on_session(enum store_status st, const char *user, int64_t expires, void *arg)
{
    struct auth_call *call = arg;

    if (st == STORE_OK) {
        snprintf(call->who.user, sizeof(call->who.user), "%s", user);
        call->who.expires = expires;
    }
    auth_finish(call, st, "unknown or expired session token");
}

static int auth_jwt(evhtp_request_t *req, const char *token, auth_cb cb, void *arg)
{
    struct auth_identity who = { .session = "" };
    struct http_hold *hold;
    char why[64];

    if (auth.cfg->jwt_secret[0] == '\0') {
        http_error(req, 401, "unauthorized", "JWTs are not accepted by this server");
    } else if (token_jwt_verify(token, auth.cfg->jwt_secret, (int64_t)time(NULL), who.user, why, sizeof(why)) != PL_OK) {
        http_error(req, 401, "unauthorized", "invalid token: %s", why);
    } else if ((hold = http_hold(req)) == NULL) {
        http_error(req, 503, "unavailable", "out of memory");
    } else {
        who.expires = token_jwt_expiry(token);
        return auth_accept(hold, &who, cb, arg);
    }
    return PL_ERR;
}

static void auth_on_ticket(enum store_status st, const char *user, const char *session, int64_t expires,
                           void *arg)
{
    struct auth_call *call = arg;

    if (st == STORE_OK) {
        snprintf(call->who.user, sizeof(call->who.user), "%s", user);
        snprintf(call->who.session, sizeof(call->who.session), "%s", session);
        call->who.expires = expires;
    }
    auth_finish(call, st, "unknown, used or expired ticket");
}

/* Starts a lookup in Redis for REQ: LOOKUP runs with the call, whose
 * callback finishes it. */
static int auth_ask_store(evhtp_request_t *req, const char *what, auth_cb cb, void *arg,
                          int (*lookup)(const char *what, struct auth_call *call))
{
    struct auth_call *call = calloc(1, sizeof(*call));

    if (call == NULL || (call->hold = http_hold(req)) == NULL) {
        free(call);
        http_error(req, 503, "unavailable", "out of memory");
        return PL_ERR;
    }
    call->cb = cb;
    call->arg = arg;
    if (lookup(what, call) != PL_OK) {
        http_error(req, 503, "redis_unavailable", "the session store is unavailable");
        http_release(call->hold);
        free(call);
        return PL_ERR;
    }
    return PL_OK;
}

static int auth_lookup_session(const char *token, struct auth_call *call)
{
    memcpy(call->who.session, token, TOKEN_SESSION_LEN + 1);
    return store_session_lookup(token, auth_on_session, call);
}

static int auth_lookup_ticket(const char *ticket, struct auth_call *call)
{
    return store_ticket_redeem(ticket, auth_on_ticket, call);
}

/* A ticket (?ticket=, from POST /api/tickets) stands in for the token of
 * whoever asked for it, once: browsers cannot put a token in a WebSocket's
 * or an EventSource's headers, and a token in a URL ends up in logs. */
static const char *auth_ticket(evhtp_request_t *req, char *buf, size_t len)
{
    const char *t;

    if (evhtp_header_find(req->headers_in, "Authorization") != NULL
        || ((t = http_query(req, "token", buf, len)) != NULL && t[0] != '\0')) {
        return NULL;
    }
    t = http_query(req, "ticket", buf, len);
    return t != NULL && t[0] != '\0' ? t : NULL;
}

const char *auth_session_token(evhtp_request_t *req, char *buf, size_t len)
{
    char token[AUTH_TOKEN_MAX];

    if (auth_ticket(req, token, sizeof(token)) != NULL || auth_token(req, token, sizeof(token)) == NULL
        || token_is_jwt(token) || !token_session_shape(token) || strlen(token) >= len) {
        return NULL;
    }
    return memcpy(buf, token, strlen(token) + 1);
}

int auth_request(evhtp_request_t *req, auth_cb cb, void *arg)
{
    char token[AUTH_TOKEN_MAX];

    if (auth_ticket(req, token, sizeof(token)) != NULL) {
        if (!token_session_shape(token)) {
            http_error(req, 401, "unauthorized", "malformed ticket");
            return PL_ERR;
        }
        return auth_ask_store(req, token, cb, arg, auth_lookup_ticket);
    }
    if (auth_token(req, token, sizeof(token)) == NULL) {
        http_error(req, 401, "unauthorized", "a token is required (Authorization: Bearer, ?token= or cookie parley_token)");
        return PL_ERR;
    }
    if (token_is_jwt(token)) {
        return auth_jwt(req, token, cb, arg);
    }
    if (!token_session_shape(token)) {
        http_error(req, 401, "unauthorized", "malformed token");
        return PL_ERR;
    }
    return auth_ask_store(req, token, cb, arg, auth_lookup_session);
}

struct auth_verify_call {
    auth_verify_cb cb;
    void *arg;
    char session[TOKEN_SESSION_LEN + 1];
};

static void auth_on_verified(enum store_status st, const char *user, int64_t expires, void *arg)
{
    struct auth_verify_call *v = arg;
    struct auth_identity who = { .expires = expires };

    if (st == STORE_OK) {
        snprintf(who.user, sizeof(who.user), "%s", user);
        snprintf(who.session, sizeof(who.session), "%s", v->session);
    }
    v->cb(st, &who, "unknown or expired session token", v->arg);
    free(v);
}

void auth_token_verify(const char *token, auth_verify_cb cb, void *arg)
{
    struct auth_identity who = { .session = "" };
    struct auth_verify_call *v;
    char why[64];

    if (token_is_jwt(token)) {
        if (auth.cfg->jwt_secret[0] == '\0') {
            cb(STORE_NOT_FOUND, NULL, "JWTs are not accepted by this server", arg);
        } else if (token_jwt_verify(token, auth.cfg->jwt_secret, (int64_t)time(NULL), who.user, why,
                                    sizeof(why)) != PL_OK) {
            cb(STORE_NOT_FOUND, NULL, why, arg);
        } else {
            who.expires = token_jwt_expiry(token);
            cb(STORE_OK, &who, NULL, arg);
        }
        return;
    }
    if (!token_session_shape(token)) {
        cb(STORE_NOT_FOUND, NULL, "malformed token", arg);
        return;
    }
    if ((v = calloc(1, sizeof(*v))) == NULL) {
        cb(STORE_UNAVAILABLE, NULL, NULL, arg);
        return;
    }
    v->cb = cb;
    v->arg = arg;
    snprintf(v->session, sizeof(v->session), "%s", token);
    if (store_session_lookup(token, auth_on_verified, v) != PL_OK) {
        free(v);
        cb(STORE_UNAVAILABLE, NULL, NULL, arg);
    }
}

struct auth_recheck_call {
    void (*cb)(enum auth_verdict v, void *arg);
    void *arg;
};

static void auth_on_recheck(enum store_status st, long long exists, void *arg)
{
    struct auth_recheck_call *r = arg;

    r->cb(st != STORE_OK ? AUTH_UNANSWERED : exists == 0 ? AUTH_REVOKED : AUTH_STILL_VALID, r->arg);
    free(r);
}

int auth_recheck(const struct auth_identity *who, void (*cb)(enum auth_verdict v, void *arg), void *arg)
{
    struct auth_recheck_call *r;

    if (who->session[0] == '\0' || (r = malloc(sizeof(*r))) == NULL) {
        return PL_ERR;
    }
    r->cb = cb;
    r->arg = arg;
    if (store_session_exists(who->session, auth_on_recheck, r) != PL_OK) {
        free(r);
        return PL_ERR;
    }
    return PL_OK;
}
