/* worker.h - one worker process: an event loop serving HTTP on its sockets.
 *
 * A worker accepts on its share of the master's listening sockets, serves
 * until told to stop (SIGTERM, SIGINT or SIGQUIT), then stops accepting,
 * lets modules say goodbye to long-lived clients, waits for requests in
 * flight and exits 0 - or exits anyway once shutdown_timeout has passed.
 * It also stops if the master dies. */
#ifndef PARLEY_WORKER_H
#define PARLEY_WORKER_H

#include "conf.h"
#include "bus_zone.h"
#include "listen.h"

/* What a worker hands each module it starts: every module a worker runs
 * has one start-up function, int MODULE_init(const struct worker_env *),
 * called in worker.c's order; PL_ERR stops the worker. */
struct worker_env {
    struct event_base *base;
    const struct conf *cfg;
    struct bus_zone *bus;       /* the host's bus zone */
    int index;                  /* this worker's number */
    int slot;                   /* its metrics slot */
};

/* Runs worker INDEX of NWORKERS with metrics SLOT, reading the host's bus
 * zone BUS; returns the exit code. */
int worker_run(const struct conf *cfg, const struct listen_group *lg, struct bus_zone *bus,
               int index, int nworkers, int slot);

#endif
