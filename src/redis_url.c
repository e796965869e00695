/* redis_url.c - parse the "redis" setting. */
#include "redis_url.h"

#include <stdio.h>
#include <string.h>

#include "parley.h"
#include "url.h"

static int redis_url_fail(char *err, size_t errlen, const char *why)
{
    snprintf(err, errlen, "%s (expected redis://[:password@]host:port[/db] or unix:/path)", why);
    return PL_ERR;
}

/* The database number after the "/" of PATH (if any): 0..1000000, digits. */
static int redis_url_db(const char *path, int *db)
{
    long v = 0;

    if (path[0] == '\0') {
        return PL_OK;
    }
    if (path[1] == '\0') {
        return PL_ERR;
    }
    for (const char *p = path + 1; *p != '\0'; p++) {
        if (*p < '0' || *p > '9' || (v = v * 10 + (*p - '0')) > 1000000) {
            return PL_ERR;
        }
    }
    *db = (int)v;
    return PL_OK;
}

int redis_url_parse(const char *text, struct redis_url *url, char *err, size_t errlen)
{
    struct url u;
    const char *why;
    int rc;

    memset(url, 0, sizeof(*url));
    if (strncmp(text, "unix:", 5) == 0) {
        if (text[5] != '/') {
            return redis_url_fail(err, errlen, "unix socket path must be absolute");
        }
        if (strlen(text + 5) >= sizeof(url->path)) {
            return redis_url_fail(err, errlen, "unix socket path too long");
        }
        snprintf(url->path, sizeof(url->path), "%s", text + 5);
        snprintf(url->text, sizeof(url->text), "%s", text);
        return PL_OK;
    }
    if (strncmp(text, "redis://", 8) != 0) {
        return redis_url_fail(err, errlen, "unknown scheme");
    }
    rc = url_parse(text + 8, &u, &why);
    /* Only the password form ":secret@" is meaningful to Redis < 6. */
    if (u.userinfo != NULL) {
        if (u.userinfo[0] != ':' || u.userinfo_len - 1 >= sizeof(url->password)) {
            return redis_url_fail(err, errlen, "bad password part");
        }
        memcpy(url->password, u.userinfo + 1, u.userinfo_len - 1);
    }
    if (redis_url_db(u.path, &url->db) != PL_OK) {
        return redis_url_fail(err, errlen, "bad database number");
    }
    if (rc != PL_OK) {
        return redis_url_fail(err, errlen, why);
    }
    snprintf(url->host, sizeof(url->host), "%s", u.host);
    url->port = u.port != 0 ? u.port : 6379;
    snprintf(url->text, sizeof(url->text), "redis://%s%s:%d/%d",
             url->password[0] ? ":***@" : "", url->host, url->port, url->db);
    return PL_OK;
}
