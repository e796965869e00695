/* token.h - session tokens and HS256 JWTs.
 *
 * Session tokens are opaque: 32 bytes from the OS CSPRNG, base64url without
 * padding (43 characters).  parley stores them in Redis; this module only
 * makes them and checks their shape before anyone asks Redis.
 *
 * JWTs let an application backend mint tokens without calling parley:
 * header {"alg":"HS256","typ":"JWT"} (typ optional), claims with "sub" (the
 * user name, which must be a valid name) and "exp" (required, seconds since
 * the epoch), signed with HMAC-SHA256 under the configured secret. */
#ifndef PARLEY_TOKEN_H
#define PARLEY_TOKEN_H

#include <stddef.h>
#include <stdint.h>

#include "parley.h"

#define TOKEN_SESSION_LEN 43

/* Makes a new session token into OUT (TOKEN_SESSION_LEN + 1 bytes).
 * Returns PL_OK, or PL_ERR if the CSPRNG failed. */
int token_session_new(char *out);

/* Non-zero when TOKEN has the shape of a session token. */
int token_session_shape(const char *token);

/* Non-zero when TOKEN has the shape of a JWT (three base64url parts). */
int token_is_jwt(const char *token);

/* Checks a JWT at time NOW (seconds).  On success copies "sub" into USER
 * (PL_NAME_MAX + 1 bytes) and returns PL_OK; otherwise returns PL_ERR with a
 * short reason in ERR: "malformed" (also for JSON that json_strict.h
 * refuses), "unsupported alg", "unsupported crit header" (any "crit"),
 * "bad signature", "expired", "not yet valid", "missing exp" or "bad sub". */
int token_jwt_verify(const char *jwt, const char *secret, int64_t now,
                     char *user, char *err, size_t errlen);

/* The "exp" of a JWT that token_jwt_verify accepted (seconds), or 0. */
int64_t token_jwt_expiry(const char *jwt);

/* Signs CLAIMS (a JSON object text) into a JWT in OUT.  For tests and tools.
 * Returns PL_OK, or PL_ERR when OUTLEN is too small. */
int token_jwt_sign(const char *claims, const char *secret, char *out, size_t outlen);

#endif
