/* metrics.h - per-worker counters in shared memory, Prometheus exposition.
 *
 * The master creates one zone before forking.  It holds a slot per running
 * worker (old and new generations side by side during a reload).  A worker
 * is the only writer of its own slot, so counting is a plain relaxed store,
 * never a lock; any worker can read every slot to answer GET /metrics.
 * When a worker exits the master folds its counters into "retired" so that
 * totals never go backwards. */
#ifndef PARLEY_METRICS_H
#define PARLEY_METRICS_H

#include <stdint.h>
#include <sys/types.h>

#include "parley.h"

struct evbuffer;

enum metrics_counter {
    METRIC_ACCEPTED,            /* connections accepted */
    METRIC_REQUESTS,            /* HTTP requests dispatched */
    METRIC_RESPONSES_2XX,
    METRIC_RESPONSES_3XX,
    METRIC_RESPONSES_4XX,
    METRIC_RESPONSES_5XX,
    METRIC_MESSAGES_IN,         /* chat messages received from clients */
    METRIC_MESSAGES_OUT,        /* events delivered to clients */
    METRIC_BYTES_IN,
    METRIC_BYTES_OUT,
    METRIC_SLOW_CLOSED,         /* connections cut off for a full backlog */
    METRIC_BUS_OVERRUNS,        /* times this worker fell a ring behind */
    METRIC_AGENT_REQUESTS,      /* questions the agent took */
    METRIC_AGENT_BUSY,          /* questions refused: too many at once */
    METRIC_AGENT_FAILED,        /* answers that ended unavailable or timed out */
    METRIC_ACCEPT_FULL,         /* times accepting stopped at max_connections */
    METRIC_ACCEPT_FAILED,       /* accepts that failed (no descriptor or memory) */
    METRIC_WS_COMPRESSED,       /* WebSocket messages compressed (once per event per worker) */
    METRIC_COUNTERS
};

enum metrics_gauge {
    METRIC_CONN_HTTP,           /* open plain HTTP connections */
    METRIC_CONN_WS,             /* open WebSocket connections */
    METRIC_CONN_SSE,            /* open event streams */
    METRIC_CONN_CLOSING,        /* lingering closes */
    METRIC_GAUGES
};

#define METRICS_SLOTS (2 * PL_MAX_WORKERS)

/* Creates the zone (master, before any fork).  Returns PL_OK or PL_ERR. */
int metrics_zone_create(void);

/* Master side: reserve a slot for worker INDEX of GENERATION before forking;
 * record its pid after; release it when the worker has been reaped. */
int metrics_slot_acquire(int index, unsigned generation);
void metrics_slot_set_pid(int slot, pid_t pid);
void metrics_slot_retire(int slot);         /* told to stop: no longer counted as serving */
void metrics_slot_release(int slot);
void metrics_count_restart(int index);
void metrics_set_workers(int configured);

/* The whole instance is stopping (not just a worker replaced by a reload):
 * /healthz then answers 503 so load balancers drain it. */
void metrics_set_stopping(void);
int metrics_stopping(void);

/* Worker side: bind this process to its slot, say how many connections it
 * may hold, then mark it ready to serve. */
void metrics_attach(int slot);
void metrics_set_max_connections(int n);
void metrics_set_ready(void);
int metrics_slot_ready(int slot);

void metrics_add(enum metrics_counter c, uint64_t n);
/* This worker's own count of C so far. */
uint64_t metrics_local(enum metrics_counter c);
void metrics_gauge_add(enum metrics_gauge g, int64_t delta);
void metrics_count_response(int status);

/* Workers of the current configuration that are up and serving. */
int metrics_workers_serving(void);

/* Appends the Prometheus text exposition of every slot to OUT. */
void metrics_render(struct evbuffer *out);

#endif
