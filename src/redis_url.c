/* redis_url.c - parse the "redis" setting. */
#include "redis_url.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "parley.h"

static int redis_url_fail(char *err, size_t errlen, const char *why)
{
    snprintf(err, errlen, "%s (expected redis://[:password@]host:port[/db] or unix:/path)", why);
    return PL_ERR;
}

static int redis_url_number(const char *s, size_t len, long max, int *out)
{
    char buf[16];
    char *end;
    long v;

    if (len == 0 || len >= sizeof(buf)) {
        return PL_ERR;
    }
    memcpy(buf, s, len);
    buf[len] = '\0';
    v = strtol(buf, &end, 10);
    if (*end != '\0' || buf[0] == '-' || buf[0] == '+' || v > max) {
        return PL_ERR;
    }
    *out = (int)v;
    return PL_OK;
}

int redis_url_parse(const char *text, struct redis_url *url, char *err, size_t errlen)
{
    const char *p, *at, *slash, *colon;
    size_t hostlen;

    memset(url, 0, sizeof(*url));
    if (strncmp(text, "unix:", 5) == 0) {
        p = text + 5;
        if (p[0] != '/') {
            return redis_url_fail(err, errlen, "unix socket path must be absolute");
        }
        if (strlen(p) >= sizeof(url->path)) {
            return redis_url_fail(err, errlen, "unix socket path too long");
        }
        snprintf(url->path, sizeof(url->path), "%s", p);
        snprintf(url->text, sizeof(url->text), "%s", text);
        return PL_OK;
    }
    if (strncmp(text, "redis://", 8) != 0) {
        return redis_url_fail(err, errlen, "unknown scheme");
    }
    p = text + 8;
    at = strrchr(p, '@');
    if (at != NULL) {
        /* Only the password form ":secret@" is meaningful to Redis < 6. */
        if (p[0] != ':' || (size_t)(at - p - 1) >= sizeof(url->password)) {
            return redis_url_fail(err, errlen, "bad password part");
        }
        memcpy(url->password, p + 1, (size_t)(at - p - 1));
        p = at + 1;
    }
    slash = strchr(p, '/');
    if (slash != NULL && redis_url_number(slash + 1, strlen(slash + 1), 1000000, &url->db) != PL_OK) {
        return redis_url_fail(err, errlen, "bad database number");
    }
    hostlen = slash ? (size_t)(slash - p) : strlen(p);
    colon = memrchr(p, ':', hostlen);
    if (colon == NULL) {
        url->port = 6379;
    } else {
        if (redis_url_number(colon + 1, hostlen - (size_t)(colon + 1 - p), 65535, &url->port) != PL_OK
            || url->port == 0) {
            return redis_url_fail(err, errlen, "bad port");
        }
        hostlen = (size_t)(colon - p);
    }
    if (hostlen > 1 && p[0] == '[' && p[hostlen - 1] == ']') {
        p++;                                    /* [::1] */
        hostlen -= 2;
    }
    if (hostlen == 0 || hostlen >= sizeof(url->host)) {
        return redis_url_fail(err, errlen, "bad host");
    }
    memcpy(url->host, p, hostlen);
    url->host[hostlen] = '\0';
    snprintf(url->text, sizeof(url->text), "redis://%s%s:%d/%d",
             url->password[0] ? ":***@" : "", url->host, url->port, url->db);
    return PL_OK;
}
