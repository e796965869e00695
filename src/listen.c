/* listen.c - SO_REUSEPORT listening socket groups. */
#include "listen.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

void listen_format(const struct sockaddr *sa, char *buf, size_t len)
{
    char host[INET6_ADDRSTRLEN] = "?";

    if (sa->sa_family == AF_INET6) {
        const struct sockaddr_in6 *s6 = (const struct sockaddr_in6 *)sa;
        inet_ntop(AF_INET6, &s6->sin6_addr, host, sizeof(host));
        snprintf(buf, len, "[%s]:%u", host, ntohs(s6->sin6_port));
    } else {
        const struct sockaddr_in *s4 = (const struct sockaddr_in *)sa;
        inet_ntop(AF_INET, &s4->sin_addr, host, sizeof(host));
        snprintf(buf, len, "%s:%u", host, ntohs(s4->sin_port));
    }
}

static int listen_socket(const struct sockaddr *sa, socklen_t salen, int reuseport, int backlog)
{
    int fd, on = 1;

    fd = socket(sa->sa_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0) {
        return -1;
    }
    if (setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &on, sizeof(on)) < 0
        || (reuseport && setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &on, sizeof(on)) < 0)
        || (sa->sa_family == AF_INET6 && setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &on, sizeof(on)) < 0)
        || bind(fd, sa, salen) < 0
        || (backlog > 0 && listen(fd, backlog) < 0)) {
        int saved = errno;
        close(fd);
        errno = saved;
        return -1;
    }
    return fd;
}

int listen_group_open(struct listen_group *g, const struct sockaddr *sa, socklen_t salen,
                      int n, int backlog, char *err, size_t errlen)
{
    socklen_t len = sizeof(g->bound);
    int probe;

    memset(g, 0, sizeof(*g));
    memcpy(&g->want, sa, salen);
    g->wantlen = salen;
    g->backlog = backlog;
    listen_format(sa, g->name, sizeof(g->name));

    /* SO_REUSEPORT would let us silently share a port with another server
     * that also uses it, so first claim the address without it.  The probe
     * also picks the port when the configuration asks for port 0. */
    probe = listen_socket(sa, salen, 0, 0);
    if (probe < 0) {
        snprintf(err, errlen, "cannot listen on %s: %s", g->name, strerror(errno));
        return PL_ERR;
    }
    getsockname(probe, (struct sockaddr *)&g->bound, &len);
    close(probe);
    listen_format((struct sockaddr *)&g->bound, g->name, sizeof(g->name));

    if (listen_group_grow(g, n, err, errlen) != PL_OK) {
        listen_group_close(g);
        return PL_ERR;
    }
    return PL_OK;
}

int listen_group_grow(struct listen_group *g, int n, char *err, size_t errlen)
{
    while (g->nfds < n) {
        int fd = listen_socket((struct sockaddr *)&g->bound, g->wantlen, 1, g->backlog);
        if (fd < 0) {
            snprintf(err, errlen, "cannot listen on %s: %s", g->name, strerror(errno));
            return PL_ERR;
        }
        g->fds[g->nfds++] = fd;
    }
    return PL_OK;
}

int listen_group_matches(const struct listen_group *g, const struct sockaddr *sa, socklen_t salen)
{
    return g->nfds > 0 && g->wantlen == salen && memcmp(&g->want, sa, salen) == 0;
}

void listen_group_close(struct listen_group *g)
{
    for (int i = 0; i < g->nfds; i++) {
        close(g->fds[i]);
    }
    g->nfds = 0;
}
