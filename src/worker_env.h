/* worker_env.h - what a worker hands each module it starts.
 *
 * Every module a worker runs has one start-up function,
 * int MODULE_init(const struct worker_env *), called in worker.c's order;
 * PL_ERR stops the worker.  A header of its own, so that a module knows
 * the worker's environment without depending on the worker itself. */
#ifndef PARLEY_WORKER_ENV_H
#define PARLEY_WORKER_ENV_H

struct event_base;
struct conf;
struct bus_zone;

struct worker_env {
    struct event_base *base;
    const struct conf *cfg;
    struct bus_zone *bus;       /* the host's bus zone */
    int index;                  /* this worker's number */
    int slot;                   /* its metrics slot */
};

#endif
