/* origin.h - which browser pages may use this server.
 *
 * Browsers name the page a request comes from in its Origin header.  With
 * allowed_origins empty (the default) only the server's own pages may
 * call it: an Origin whose host and port are those of the request's Host
 * header.  Listed origins may call it too, credentials (the parley_token
 * cookie) included; "*" lets any page call it, but never with
 * credentials, so a page elsewhere cannot act with a visitor's cookie.
 * A request without Origin does not come from another site's page (a
 * same-origin navigation or a non-browser client) and is allowed.  Pure
 * code: no I/O. */
#ifndef PARLEY_ORIGIN_H
#define PARLEY_ORIGIN_H

enum origin_verdict {
    ORIGIN_NONE,                /* no Origin header */
    ORIGIN_SAME,                /* the server's own origin */
    ORIGIN_LISTED,              /* in allowed_origins */
    ORIGIN_ANY,                 /* another origin, allowed by "*" (no credentials) */
    ORIGIN_REFUSED,
};

/* Judges ORIGIN (the header's value, or NULL) of a request whose Host
 * header is HOST (or NULL) against ALLOWED (allowed_origins: "", "*", or a
 * list separated by commas or spaces, matched exactly, any case). */
enum origin_verdict origin_check(const char *origin, const char *host, const char *allowed);

/* Whether a request so judged may authenticate with the cookie. */
static inline int origin_credentials_ok(enum origin_verdict v)
{
    return v == ORIGIN_NONE || v == ORIGIN_SAME || v == ORIGIN_LISTED;
}

#endif
