/* bus_zone.c - the shared ring, bus state and control socket. */
#include "bus_zone.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>

#include "log.h"
#include "parley.h"
#include "shm.h"

int bus_zone_create(struct bus_zone *zone, size_t ring_size)
{
    int sv[2];
    int sndbuf = 1 << 20;

    zone->state = shm_zone_create("bus_state", sizeof(*zone->state));
    void *mem = shm_zone_create("bus_ring", bus_ring_zone_size(ring_size));
    if (zone->state == NULL || mem == NULL) {
        return PL_ERR;
    }
    zone->ring = bus_ring_init(mem, ring_size);
    if (socketpair(AF_UNIX, SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0, sv) < 0) {
        log_error(errno, "event=bus_socketpair_failed");
        return PL_ERR;
    }
    /* Room for bursts of joins while the bus is busy or restarting. */
    setsockopt(sv[0], SOL_SOCKET, SO_RCVBUF, &sndbuf, sizeof(sndbuf));
    setsockopt(sv[1], SOL_SOCKET, SO_SNDBUF, &sndbuf, sizeof(sndbuf));
    zone->ctl_bus = sv[0];
    zone->ctl_peer = sv[1];
    return PL_OK;
}

int bus_ctl_send(const struct bus_zone *zone, int slot, pid_t pid, char op,
                 const char *channel, int fd)
{
    char buf[BUS_CTL_MAX];
    char cmsgbuf[CMSG_SPACE(sizeof(int))];
    struct iovec iov;
    struct msghdr msg;
    int n;

    n = snprintf(buf, sizeof(buf), "%d %ld %c %s", slot, (long)pid, op, channel ? channel : "");
    if (n < 0 || (size_t)n >= sizeof(buf)) {
        return PL_ERR;
    }
    iov.iov_base = buf;
    iov.iov_len = (size_t)n;
    memset(&msg, 0, sizeof(msg));
    msg.msg_iov = &iov;
    msg.msg_iovlen = 1;
    if (fd >= 0) {
        struct cmsghdr *cm;
        memset(cmsgbuf, 0, sizeof(cmsgbuf));
        msg.msg_control = cmsgbuf;
        msg.msg_controllen = sizeof(cmsgbuf);
        cm = CMSG_FIRSTHDR(&msg);
        cm->cmsg_level = SOL_SOCKET;
        cm->cmsg_type = SCM_RIGHTS;
        cm->cmsg_len = CMSG_LEN(sizeof(int));
        memcpy(CMSG_DATA(cm), &fd, sizeof(int));
    }
    if (sendmsg(zone->ctl_peer, &msg, MSG_DONTWAIT | MSG_NOSIGNAL) < 0) {
        return (errno == EAGAIN || errno == ENOBUFS) ? PL_AGAIN : PL_ERR;
    }
    return PL_OK;
}

ssize_t bus_ctl_recv(const struct bus_zone *zone, char *buf, int *fd)
{
    char cmsgbuf[CMSG_SPACE(sizeof(int))];
    struct iovec iov = { buf, BUS_CTL_MAX - 1 };
    struct msghdr msg;
    struct cmsghdr *cm;
    ssize_t n;

    memset(&msg, 0, sizeof(msg));
    msg.msg_iov = &iov;
    msg.msg_iovlen = 1;
    msg.msg_control = cmsgbuf;
    msg.msg_controllen = sizeof(cmsgbuf);
    *fd = -1;
    n = recvmsg(zone->ctl_bus, &msg, MSG_DONTWAIT | MSG_CMSG_CLOEXEC);
    if (n < 0) {
        return -1;
    }
    buf[n] = '\0';
    for (cm = CMSG_FIRSTHDR(&msg); cm != NULL; cm = CMSG_NXTHDR(&msg, cm)) {
        if (cm->cmsg_level == SOL_SOCKET && cm->cmsg_type == SCM_RIGHTS) {
            memcpy(fd, CMSG_DATA(cm), sizeof(int));
        }
    }
    return n;
}
