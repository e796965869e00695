/* url.h - the server part of a URL, "[USERINFO@]HOST[:PORT][/PATH]", split.
 *
 * The one reader of URLs that name a server, for the "redis" setting
 * (redis_url.c) and for agent_url (agent_http.c).  Each caller checks its
 * own "SCHEME://" and hands over what follows it:
 *
 *   USERINFO  everything before the last "@" of the text, so that a password
 *             may hold "/" and "@" as they are (Redis passwords do)
 *   HOST      a name or IPv4 address, without ":" (that starts the port), or
 *             an IPv6 address in brackets, "[::1]", kept without them
 *   PORT      1..65535, decimal digits only; 0 in the result when absent
 *   PATH      the rest, from the first "/" after the host ("" when none)
 *
 * Nothing is percent-decoded, and what a userinfo or a path means is the
 * caller's business.  url_expand fills a URL template's "{name}"s (the
 * agent's agent_url with agent = sse).  Pure code: no I/O. */
#ifndef PARLEY_URL_H
#define PARLEY_URL_H

#include <stddef.h>

#define URL_HOST_MAX 255

struct url {
    const char *userinfo;       /* in the text, not terminated; NULL when none */
    size_t userinfo_len;
    const char *authority;      /* HOST[:PORT] as written (brackets and all), in the text */
    size_t authority_len;
    char host[URL_HOST_MAX + 1];    /* without the brackets of an IPv6 address */
    int port;                   /* 0 when the URL gives none */
    const char *path;           /* in the text: "" or starting with "/" */
};

/* Splits TEXT, what follows "SCHEME://", into U (whose pointers point into
 * TEXT).  Returns PL_OK, or PL_ERR with *WHY set to one of "missing or too
 * long host", "expected [IPv6 address]" and "invalid port (1..65535)". */
int url_parse(const char *text, struct url *u, const char **why);

/* Writes TEMPLATE into OUT (OUTLEN bytes, NUL-terminated) with each
 * "{NAME}" replaced by its value, percent-encoded but for RFC 3986's
 * unreserved characters; VARS holds NAME, VALUE pairs, then NULL.  Returns
 * the length written, or -1 when OUT is too small or TEMPLATE names an
 * unknown "{...}" or leaves one open. */
long url_expand(char *out, size_t outlen, const char *template, const char *const *vars);

#endif
