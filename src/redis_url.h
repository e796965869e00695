/* redis_url.h - parse "redis://[:password@]host:port[/db]" and "unix:/path". */
#ifndef PARLEY_REDIS_URL_H
#define PARLEY_REDIS_URL_H

#include <stddef.h>

struct redis_url {
    char host[256];             /* empty for a unix socket */
    int port;
    char path[108];             /* unix socket path, empty for TCP */
    char password[256];         /* empty when none */
    int db;
    char text[1024];            /* the URL as written, for logs (no password) */
};

/* Parses TEXT into URL.  Returns PL_OK, or PL_ERR with a reason in ERR. */
int redis_url_parse(const char *text, struct redis_url *url, char *err, size_t errlen);

#endif
