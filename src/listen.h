/* listen.h - the listening sockets, opened by the master before forking.
 *
 * The master keeps one SO_REUSEPORT socket per worker number, all bound to
 * the same address, so the kernel spreads new connections evenly over the
 * workers.  The master holds every socket for its whole life: a worker that
 * dies or is replaced leaves its queue of pending connections to the next
 * one instead of resetting them.  Worker i of n accepts on every socket j
 * with j % n == i, so sockets left over after a reload to fewer workers are
 * still served, and closes the others (accept.h). */
#ifndef PARLEY_LISTEN_H
#define PARLEY_LISTEN_H

#include <stddef.h>
#include <sys/socket.h>

#include "parley.h"

struct listen_group {
    int fds[PL_MAX_WORKERS];
    int nfds;
    int backlog;
    struct sockaddr_storage want;   /* address as configured (port may be 0) */
    socklen_t wantlen;
    struct sockaddr_storage bound;  /* address actually bound */
    char name[80];                  /* "127.0.0.1:8080", for logs */
};

/* Binds N sockets to SA.  Fails with "Address already in use" when another
 * process holds the address, even one using SO_REUSEPORT itself.  Returns
 * PL_OK, or PL_ERR with the reason in ERR; nothing stays open on failure. */
int listen_group_open(struct listen_group *g, const struct sockaddr *sa, socklen_t salen,
                      int n, int backlog, char *err, size_t errlen);

/* Adds sockets until the group has N. */
int listen_group_grow(struct listen_group *g, int n, char *err, size_t errlen);

/* Non-zero when the group was opened for address SA. */
int listen_group_matches(const struct listen_group *g, const struct sockaddr *sa, socklen_t salen);

void listen_group_close(struct listen_group *g);

/* Formats SA as "host:port" or "[v6]:port". */
void listen_format(const struct sockaddr *sa, char *buf, size_t len);

#endif
