/* url.c - the server part of a URL, split (see url.h). */
#include "url.h"

#include <string.h>

#include "parley.h"

static int url_fail(const char **why, const char *reason)
{
    *why = reason;
    return PL_ERR;
}

/* LEN digits at S as a port, 1..65535; 0 when they are not one. */
static int url_port(const char *s, size_t len)
{
    long n = 0;

    for (size_t i = 0; i < len; i++) {
        if (s[i] < '0' || s[i] > '9' || (n = n * 10 + (s[i] - '0')) > 65535) {
            return 0;
        }
    }
    return (int)n;
}

int url_parse(const char *text, struct url *u, const char **why)
{
    const char *at = strrchr(text, '@'), *auth, *end, *host, *host_end, *port;

    memset(u, 0, sizeof(*u));
    if (at != NULL) {
        u->userinfo = text;
        u->userinfo_len = (size_t)(at - text);
    }
    auth = at != NULL ? at + 1 : text;
    end = auth + strcspn(auth, "/");
    u->authority = auth;
    u->authority_len = (size_t)(end - auth);
    u->path = end;
    if (auth[0] == '[') {
        host = auth + 1;
        host_end = memchr(host, ']', (size_t)(end - host));
        if (host_end == NULL || (host_end + 1 < end && host_end[1] != ':')) {
            return url_fail(why, "expected [IPv6 address]");
        }
        port = host_end + 1 < end ? host_end + 2 : NULL;
    } else {
        host = auth;
        host_end = memchr(auth, ':', (size_t)(end - auth));
        port = host_end != NULL ? host_end + 1 : NULL;
        host_end = host_end != NULL ? host_end : end;
    }
    if (host_end == host || (size_t)(host_end - host) > URL_HOST_MAX) {
        return url_fail(why, "missing or too long host");
    }
    memcpy(u->host, host, (size_t)(host_end - host));
    if (port != NULL && (u->port = url_port(port, (size_t)(end - port))) == 0) {
        return url_fail(why, "invalid port (1..65535)");
    }
    return PL_OK;
}
