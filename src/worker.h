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
#include "worker_env.h"

/* Runs worker INDEX of NWORKERS with metrics SLOT, reading the host's bus
 * zone BUS; returns the exit code. */
int worker_run(const struct conf *cfg, const struct listen_group *lg, struct bus_zone *bus,
               int index, int nworkers, int slot);

#endif
