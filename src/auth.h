/* auth.h - who is calling: the token of a request, checked.
 *
 * The token comes from "Authorization: Bearer <t>", "?token=<t>" or the
 * cookie "parley_token", in that order (the cookie only from the server's
 * own pages and listed origins, see origin.h).  An HS256 JWT is checked
 * locally (when jwt_secret is set); anything else must be a live session
 * in Redis.  The module answers failures itself - 401 with
 * WWW-Authenticate, 403 for a reserved name, or 503 redis_unavailable -
 * and calls back only with a known user.
 *
 * It also knows the application backend's session key (session_key_file /
 * session_key_env), which only POST /api/sessions accepts, and the names
 * nobody may take (agent_name and reserved_names). */
#ifndef PARLEY_AUTH_H
#define PARLEY_AUTH_H

#include <stdint.h>

#include <evhtp.h>

#include "conf.h"
#include "http.h"
#include "store.h"
#include "token.h"

struct worker_env;

/* Who a request authenticated as. */
struct auth_identity {
    char user[PL_NAME_MAX + 1];
    char session[TOKEN_SESSION_LEN + 1];    /* the session token, "" for a JWT */
    int64_t expires;            /* when the token ends (s since the epoch), 0: unknown */
};

/* HOLD (see http.h) keeps the paused request, hold->req is alive; the
 * callback owns HOLD and must http_release() it when done.  WHO is valid
 * during the call only. */
typedef void (*auth_cb)(struct http_hold *hold, const struct auth_identity *who, void *arg);

/* Loads the session key.  Call once per worker. */
int auth_init(const struct worker_env *w);

/* Authenticates REQ.  Returns PL_OK when CB has run or will run (ARG is then
 * CB's), or PL_ERR when the reply (401, 403, 503) was sent and CB never
 * runs.  The request stays paused until the callback releases the hold. */
int auth_request(evhtp_request_t *req, auth_cb cb, void *arg);

/* The session token REQ carries, copied into BUF (TOKEN_SESSION_LEN + 1
 * bytes at least), for a handler that has Redis check it in the same round
 * trip as its own work (publishing); NULL when REQ has none (a JWT, a
 * ticket, nothing, a malformed token): then use auth_request(). */
const char *auth_session_token(evhtp_request_t *req, char *buf, size_t len);

/* Answers REQ for a session Redis did not find (401) or whose USER is a
 * reserved name (403), as auth_request() does. */
void auth_refuse(evhtp_request_t *req, int reserved, const char *user);

/* Copies the token of REQ into BUF; NULL when there is none. */
const char *auth_token(evhtp_request_t *req, char *buf, size_t len);

/* Whether REQ carries "Authorization: Bearer <the session key>" (compared
 * in constant time); 0 as well when no key is configured. */
int auth_has_session_key(evhtp_request_t *req);

/* Whether NAME may not be taken: the agent's or a reserved name, in any
 * letter case. */
int auth_name_reserved(const char *name);

/* The same names as " a b ", in lower case, for a Redis script to check. */
const char *auth_reserved_names(void);

/* What auth_token_verify found: ST is STORE_OK with WHO, STORE_NOT_FOUND
 * with WHY (readable), or STORE_UNAVAILABLE (Redis). */
typedef void (*auth_verify_cb)(enum store_status st, const struct auth_identity *who, const char *why,
                               void *arg);

/* Checks TOKEN (a JWT or a session token, as a client sends it) as
 * auth_request would.  CB runs exactly once - at once for a JWT or a
 * malformed token, after asking Redis for a session. */
void auth_token_verify(const char *token, auth_verify_cb cb, void *arg);

/* What asking Redis about a session found. */
enum auth_verdict {
    AUTH_STILL_VALID,
    AUTH_REVOKED,
    AUTH_UNANSWERED,            /* Redis down or not answering: ask again later */
};

/* For a "revoked" event of a user: checks whether WHO's session still
 * exists and calls CB with the verdict.  PL_OK means CB will run, once,
 * later; PL_ERR that nothing was asked (a JWT has nothing to ask, and
 * Redis may be down). */
int auth_recheck(const struct auth_identity *who, void (*cb)(enum auth_verdict v, void *arg), void *arg);

#endif
