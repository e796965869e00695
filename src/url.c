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

/* VALUE percent-encoded into OUT at *AT; 0 when it does not fit. */
static int url_encode_into(char *out, size_t outlen, size_t *at, const char *value)
{
    static const char hex[] = "0123456789ABCDEF";

    for (const unsigned char *p = (const unsigned char *)value; *p != '\0'; p++) {
        int plain = (*p >= 'A' && *p <= 'Z') || (*p >= 'a' && *p <= 'z') || (*p >= '0' && *p <= '9')
                    || *p == '-' || *p == '.' || *p == '_' || *p == '~';

        if (*at + (plain ? 1 : 3) >= outlen) {
            return 0;
        }
        if (plain) {
            out[(*at)++] = (char)*p;
        } else {
            out[(*at)++] = '%';
            out[(*at)++] = hex[*p >> 4];
            out[(*at)++] = hex[*p & 15];
        }
    }
    return 1;
}

long url_expand(char *out, size_t outlen, const char *template, const char *const *vars)
{
    size_t at = 0;

    for (const char *p = template; *p != '\0'; p++) {
        const char *close, *value = NULL;

        if (*p != '{') {
            if (at + 1 >= outlen) {
                return -1;
            }
            out[at++] = *p;
            continue;
        }
        if ((close = strchr(p, '}')) == NULL) {
            return -1;
        }
        for (const char *const *v = vars; v[0] != NULL; v += 2) {
            if (strlen(v[0]) == (size_t)(close - p - 1) && memcmp(v[0], p + 1, (size_t)(close - p - 1)) == 0) {
                value = v[1];
            }
        }
        if (value == NULL || !url_encode_into(out, outlen, &at, value)) {
            return -1;
        }
        p = close;
    }
    if (at >= outlen) {
        return -1;
    }
    out[at] = '\0';
    return (long)at;
}
