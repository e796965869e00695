/* accept.h - a worker's listening sockets and the connections it holds.
 *
 * Worker I of N keeps only its share of the master's listening sockets
 * (every j with j % N == I, see listen.h) and closes the others as it
 * starts, so that once every worker has closed its share on a stop, the
 * port refuses new connections at once.
 *
 * Every connection the worker holds is counted here, whatever carries it:
 * plain HTTP, WebSocket and event streams taken over from libevhtp, and
 * lingering closes.  At max_connections the worker stops accepting, and
 * starts again as soon as one goes; new connections wait meanwhile in its
 * sockets' queues (the kernel does not hand them to another worker).  An
 * accept that fails (no descriptor left: EMFILE, ENFILE; no memory) pauses
 * accepting for 100 ms, doubling up to 1 s while failures go on, instead
 * of retrying at once.  Both are logged at most once a second, with a
 * count, and counted in /metrics. */
#ifndef PARLEY_ACCEPT_H
#define PARLEY_ACCEPT_H

#include <evhtp.h>

#include "listen.h"
#include "metrics.h"

struct event_base;

/* Takes worker INDEX of NWORKERS's share of LG, closing the rest; this
 * worker will hold at most MAX_CONNECTIONS connections. */
void accept_init(struct event_base *base, const struct listen_group *lg, int index, int nworkers,
                 int max_connections);

/* Starts accepting on the sockets kept, one evhtp each, set up by ATTACH.
 * Returns the number of sockets, or PL_ERR. */
int accept_start(void (*attach)(evhtp_t *htp));

/* Closes this worker's sockets, whether it accepts on them yet or not. */
void accept_stop(void);

void accept_free(void);

/* Counts DELTA connections of TRANSPORT opening (> 0) or going (< 0). */
void accept_conn_add(enum metrics_gauge transport, int delta);

/* A connection goes on as another transport (an upgrade). */
void accept_conn_move(enum metrics_gauge from, enum metrics_gauge to);

#endif
