/* origin.c - same-origin and allowed_origins checks. */
#include "origin.h"

#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "parley.h"

/* An authority "host[:port]" split in place: HOST and HLEN, PORT (0 when
 * none is written).  A bracketed IPv6 host keeps its brackets. */
static int origin_authority(const char *s, size_t len, const char **host, size_t *hlen, long *port)
{
    const char *colon = NULL;
    char *end;

    if (len > 0 && s[0] == '[') {
        const char *close = memchr(s, ']', len);
        if (close == NULL) {
            return PL_ERR;
        }
        colon = close + 1 < s + len ? close + 1 : NULL;
        if (colon != NULL && *colon != ':') {
            return PL_ERR;
        }
    } else {
        colon = memchr(s, ':', len);
    }
    *host = s;
    *hlen = colon != NULL ? (size_t)(colon - s) : len;
    *port = 0;
    if (colon != NULL) {
        if (colon + 1 == s + len || colon[1] < '0' || colon[1] > '9') {
            return PL_ERR;
        }
        *port = strtol(colon + 1, &end, 10);
        if (end != s + len || *port < 1 || *port > 65535) {
            return PL_ERR;
        }
    }
    return *hlen > 0 ? PL_OK : PL_ERR;
}

/* Whether ORIGIN ("http[s]://host[:port]") names the same host and port as
 * HOST; a Host without a port matches the origin scheme's default port. */
static int origin_same(const char *origin, const char *host)
{
    const char *oh, *hh, *rest;
    size_t ohlen, hhlen;
    long oport, hport, def;

    if (host == NULL) {
        return 0;
    }
    if (strncasecmp(origin, "http://", 7) == 0) {
        rest = origin + 7;
        def = 80;
    } else if (strncasecmp(origin, "https://", 8) == 0) {
        rest = origin + 8;
        def = 443;
    } else {
        return 0;               /* "null", file:, extensions... */
    }
    if (origin_authority(rest, strlen(rest), &oh, &ohlen, &oport) != PL_OK
        || origin_authority(host, strlen(host), &hh, &hhlen, &hport) != PL_OK) {
        return 0;
    }
    oport = oport ? oport : def;
    hport = hport ? hport : def;
    return ohlen == hhlen && strncasecmp(oh, hh, ohlen) == 0 && oport == hport;
}

static int origin_listed(const char *origin, const char *allowed)
{
    size_t olen = strlen(origin), n;
    const char *item;

    while ((item = pl_list_next(&allowed, &n)) != NULL) {
        if (n == olen && strncasecmp(item, origin, n) == 0) {
            return 1;
        }
    }
    return 0;
}

enum origin_verdict origin_check(const char *origin, const char *host, const char *allowed)
{
    if (origin == NULL) {
        return ORIGIN_NONE;
    }
    if (origin_same(origin, host)) {
        return ORIGIN_SAME;
    }
    if (strcmp(allowed, "*") == 0) {
        return ORIGIN_ANY;
    }
    return origin_listed(origin, allowed) ? ORIGIN_LISTED : ORIGIN_REFUSED;
}
