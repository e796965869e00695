/* bus_zone.h - what the bus process and the workers share.
 *
 * The master creates it before forking anything and keeps it for its life:
 *  - the ring, written only by the bus process, read by every worker;
 *  - a small state block (bus pid, epoch, whether its Redis subscriber
 *    connection is up) that /healthz reads;
 *  - a datagram socket pair for control messages from the workers (and the
 *    master) to the bus.  Because the master holds both ends, a respawned
 *    bus or worker inherits them and nothing has to be re-plumbed.
 *
 * Control datagrams are text, "SLOT PID OP CHANNEL":
 *   R  reset: forget every interest of SLOT; may carry the worker's eventfd
 *      (SCM_RIGHTS), which the bus writes to after appending records.  The
 *      master sends R without an fd when it reaps a worker: the bus then
 *      also removes the presence that worker left behind.
 *   +  SLOT needs CHANNEL (the bus subscribes if nobody on the host did, and
 *      confirms with a BUS_REC_SUBSCRIBED record once Redis has).
 *   -  SLOT no longer needs CHANNEL. */
#ifndef PARLEY_BUS_ZONE_H
#define PARLEY_BUS_ZONE_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "bus_ring.h"

#define BUS_CTL_MAX 512         /* largest control datagram */

/* Ring record types. */
enum bus_record {
    BUS_REC_EVENT = 1,          /* "CHANNEL\0HEADER\nJSON", a message from Redis */
    BUS_REC_SUBSCRIBED = 2,     /* "CHANNEL": Redis confirmed the subscription */
    BUS_REC_HELLO = 3,          /* a (re)started bus: workers must resend interests */
    BUS_REC_GAP = 4,            /* "CHANNEL": resubscribed after losing Redis; catch up */
};

struct bus_state {
    pid_t pid;                  /* the bus process, 0 while none runs */
    uint32_t epoch;             /* bumped by each bus start */
    uint32_t redis_up;          /* the subscriber connection is up */
};

struct bus_zone {
    struct bus_state *state;
    struct bus_ring *ring;
    int ctl_bus;                /* the bus reads control datagrams here */
    int ctl_peer;               /* workers and the master send here */
};

/* Creates the zone with a ring of RING_SIZE bytes.  Returns PL_OK or PL_ERR. */
int bus_zone_create(struct bus_zone *zone, size_t ring_size);

/* Sends one control datagram; FD >= 0 is passed along (SCM_RIGHTS).
 * Returns PL_OK, PL_AGAIN when the bus is not reading fast enough (the
 * socket buffer is full), or PL_ERR. */
int bus_ctl_send(const struct bus_zone *zone, int slot, pid_t pid, char op,
                 const char *channel, int fd);

/* Receives one control datagram into BUF (BUS_CTL_MAX bytes); *FD gets a
 * passed descriptor or -1.  Returns the length, or -1 (errno set). */
ssize_t bus_ctl_recv(const struct bus_zone *zone, char *buf, int *fd);

#endif
