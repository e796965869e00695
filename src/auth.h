/* auth.h - who is calling: the token of a request, checked.
 *
 * The token comes from "Authorization: Bearer <t>", "?token=<t>" or the
 * cookie "parley_token", in that order.  An HS256 JWT is checked locally
 * (when jwt_secret is set); anything else must be a live session in Redis.
 * The module answers failures itself - 401 with WWW-Authenticate, or 503
 * redis_unavailable - and calls back only with a known user. */
#ifndef PARLEY_AUTH_H
#define PARLEY_AUTH_H

#include <evhtp.h>

#include "conf.h"
#include "http.h"

/* HOLD (see http.h) keeps the paused request, hold->req is alive; the
 * callback owns HOLD and must http_release() it when done. */
typedef void (*auth_cb)(struct http_hold *hold, const char *user, void *arg);

void auth_init(const struct conf *cfg);

/* Authenticates REQ.  Returns PL_OK when CB has run or will run (ARG is then
 * CB's), or PL_ERR when the reply (401, 503) was sent and CB never runs.
 * The request stays paused until the callback releases the hold. */
int auth_request(evhtp_request_t *req, auth_cb cb, void *arg);

/* Copies the token of REQ into BUF; NULL when there is none. */
const char *auth_token(evhtp_request_t *req, char *buf, size_t len);

#endif
