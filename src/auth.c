/* auth.c - tokens from headers, query or cookie; JWT or Redis session. */
#include "auth.h"

#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include "http.h"
#include "parley.h"
#include "store.h"
#include "token.h"

#define AUTH_TOKEN_MAX 4096

static const struct conf *cfg;

void auth_init(const struct conf *c)
{
    cfg = c;
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
    h = evhtp_header_find(req->headers_in, "Cookie");
    return h ? auth_cookie(h, buf, len) : NULL;
}

struct auth_call {
    struct http_hold *hold;
    auth_cb cb;
    void *arg;
};

static void auth_on_session(enum store_status st, const char *user, void *arg)
{
    struct auth_call *call = arg;
    evhtp_request_t *req = call->hold->req;

    if (req != NULL && st == STORE_OK) {
        call->cb(call->hold, user, call->arg);      /* hands the hold on */
        free(call);
        return;
    }
    if (req != NULL) {
        if (st == STORE_NOT_FOUND) {
            http_error(req, 401, "unauthorized", "unknown or expired session token");
        } else {
            http_error(req, 503, "redis_unavailable", "the session store is unavailable");
        }
    }
    http_release(call->hold);
    free(call);
}

int auth_request(evhtp_request_t *req, auth_cb cb, void *arg)
{
    char token[AUTH_TOKEN_MAX], user[PL_NAME_MAX + 1], why[64];
    struct auth_call *call;
    struct http_hold *hold;

    if (auth_token(req, token, sizeof(token)) == NULL) {
        http_error(req, 401, "unauthorized", "a token is required (Authorization: Bearer, ?token= or cookie parley_token)");
        return PL_ERR;
    }
    if (token_is_jwt(token)) {
        if (cfg->jwt_secret[0] == '\0') {
            http_error(req, 401, "unauthorized", "JWTs are not accepted by this server");
        } else if (token_jwt_verify(token, cfg->jwt_secret, (int64_t)time(NULL), user, why, sizeof(why)) != PL_OK) {
            http_error(req, 401, "unauthorized", "invalid token: %s", why);
        } else if ((hold = http_hold(req)) == NULL) {
            http_error(req, 503, "unavailable", "out of memory");
        } else {
            hold->auth_expires = token_jwt_expiry(token);
            cb(hold, user, arg);
            return PL_OK;
        }
        return PL_ERR;
    }
    if (!token_session_shape(token)) {
        http_error(req, 401, "unauthorized", "malformed token");
        return PL_ERR;
    }
    call = calloc(1, sizeof(*call));
    if (call == NULL || (call->hold = http_hold(req)) == NULL) {
        free(call);
        http_error(req, 503, "unavailable", "out of memory");
        return PL_ERR;
    }
    call->cb = cb;
    call->arg = arg;
    if (store_session_lookup(token, auth_on_session, call) != PL_OK) {
        http_error(req, 503, "redis_unavailable", "the session store is unavailable");
        http_release(call->hold);
        free(call);
        return PL_ERR;
    }
    return PL_OK;
}
