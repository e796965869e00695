/* metrics.c - counters in shared memory and their Prometheus rendering. */
#include "metrics.h"

#include <stdio.h>
#include <string.h>
#include <time.h>

#include <event2/buffer.h>

#include "shm.h"

struct metrics_slot {
    pid_t pid;                  /* 0: free */
    int32_t index;              /* worker number, 0..workers-1 */
    uint32_t generation;
    uint32_t ready;             /* serving requests */
    uint32_t retiring;          /* told to stop, draining */
    int32_t max_connections;
    uint64_t counters[METRIC_COUNTERS];
    int64_t gauges[METRIC_GAUGES];
} __attribute__((aligned(64)));   /* one writer per cache line */

struct metrics_zone {
    int64_t start_time;
    int32_t workers_configured;
    int32_t stopping;
    uint64_t restarts[PL_MAX_WORKERS];      /* written by the master only */
    uint64_t retired[METRIC_COUNTERS];      /* written by the master only */
    struct metrics_slot slots[METRICS_SLOTS];
};

#define LOAD(x)     __atomic_load_n(&(x), __ATOMIC_RELAXED)
#define STORE(x, v) __atomic_store_n(&(x), (v), __ATOMIC_RELAXED)

static struct {
    struct metrics_zone *zone;      /* shared by every process of the host */
    struct metrics_slot *self;      /* this worker's slot */
    /* Counts go to a private dummy until a worker attaches, so callers
     * never have to check. */
    struct metrics_slot unattached;
} metrics;

int metrics_zone_create(void)
{
    metrics.zone = shm_zone_create("metrics", sizeof(*metrics.zone));
    if (metrics.zone == NULL) {
        return PL_ERR;
    }
    metrics.zone->start_time = (int64_t)time(NULL);
    metrics.self = &metrics.unattached;
    return PL_OK;
}

int metrics_slot_acquire(int index, unsigned generation)
{
    for (int i = 0; i < METRICS_SLOTS; i++) {
        struct metrics_slot *s = &metrics.zone->slots[i];
        if (LOAD(s->pid) == 0) {
            memset(s, 0, sizeof(*s));
            s->index = index;
            s->generation = generation;
            STORE(s->pid, (pid_t)-1);       /* reserved until the fork */
            return i;
        }
    }
    return -1;
}

void metrics_slot_set_pid(int slot, pid_t pid)
{
    STORE(metrics.zone->slots[slot].pid, pid);
}

void metrics_slot_retire(int slot)
{
    STORE(metrics.zone->slots[slot].retiring, 1);
}

void metrics_slot_release(int slot)
{
    struct metrics_slot *s = &metrics.zone->slots[slot];

    /* Readers skip free slots, so mark it free before folding: a reader may
     * then briefly miss these counts, but never counts them twice. */
    STORE(s->pid, 0);
    for (int c = 0; c < METRIC_COUNTERS; c++) {
        STORE(metrics.zone->retired[c], LOAD(metrics.zone->retired[c]) + LOAD(s->counters[c]));
    }
}

void metrics_count_restart(int index)
{
    STORE(metrics.zone->restarts[index], LOAD(metrics.zone->restarts[index]) + 1);
}

void metrics_set_workers(int configured)
{
    STORE(metrics.zone->workers_configured, configured);
}

void metrics_set_stopping(void)
{
    STORE(metrics.zone->stopping, 1);
}

int metrics_stopping(void)
{
    return LOAD(metrics.zone->stopping);
}

void metrics_attach(int slot)
{
    metrics.self = &metrics.zone->slots[slot];
}

void metrics_set_max_connections(int n)
{
    STORE(metrics.self->max_connections, n);
}

void metrics_set_ready(void)
{
    STORE(metrics.self->ready, 1);
}

int metrics_slot_ready(int slot)
{
    return (int)LOAD(metrics.zone->slots[slot].ready);
}

void metrics_add(enum metrics_counter c, uint64_t n)
{
    STORE(metrics.self->counters[c], LOAD(metrics.self->counters[c]) + n);
}

uint64_t metrics_local(enum metrics_counter c)
{
    return LOAD(metrics.self->counters[c]);
}

void metrics_gauge_add(enum metrics_gauge g, int64_t delta)
{
    STORE(metrics.self->gauges[g], LOAD(metrics.self->gauges[g]) + delta);
}

void metrics_count_response(int status)
{
    if (status >= 200 && status < 600) {
        metrics_add((enum metrics_counter)(METRIC_RESPONSES_2XX + status / 100 - 2), 1);
    }
}

static int metrics_slot_live(const struct metrics_slot *s)
{
    return LOAD(s->pid) > 0;
}

int metrics_workers_serving(void)
{
    int n = 0;

    for (int i = 0; i < METRICS_SLOTS; i++) {
        const struct metrics_slot *s = &metrics.zone->slots[i];
        if (metrics_slot_live(s) && LOAD(s->ready) && !LOAD(s->retiring)) {
            n++;
        }
    }
    return n;
}

struct metrics_desc {
    const char *name;
    const char *type;
    const char *help;
};

static const struct metrics_desc counter_desc[METRIC_COUNTERS] = {
    [METRIC_ACCEPTED]      = { "parley_connections_accepted_total", "counter", "Connections accepted." },
    [METRIC_REQUESTS]      = { "parley_http_requests_total", "counter", "HTTP requests dispatched." },
    [METRIC_RESPONSES_2XX] = { "parley_http_responses_total{class=\"2xx\"}", "counter", "HTTP responses by status class." },
    [METRIC_RESPONSES_3XX] = { "parley_http_responses_total{class=\"3xx\"}", NULL, NULL },
    [METRIC_RESPONSES_4XX] = { "parley_http_responses_total{class=\"4xx\"}", NULL, NULL },
    [METRIC_RESPONSES_5XX] = { "parley_http_responses_total{class=\"5xx\"}", NULL, NULL },
    [METRIC_MESSAGES_IN]   = { "parley_messages_received_total", "counter", "Chat messages received from clients." },
    [METRIC_MESSAGES_OUT]  = { "parley_messages_delivered_total", "counter", "Events delivered to clients." },
    [METRIC_BYTES_IN]      = { "parley_bytes_received_total", "counter", "Bytes received from clients." },
    [METRIC_BYTES_OUT]     = { "parley_bytes_sent_total", "counter", "Bytes sent to clients." },
    [METRIC_SLOW_CLOSED]   = { "parley_slow_consumers_closed_total", "counter", "Connections closed because their unsent backlog passed the limit." },
    [METRIC_BUS_OVERRUNS]  = { "parley_bus_overruns_total", "counter", "Times a worker fell more than the ring behind and caught up from Redis." },
    [METRIC_AGENT_REQUESTS] = { "parley_agent_requests_total", "counter", "Questions the agent took." },
    [METRIC_AGENT_BUSY]    = { "parley_agent_busy_total", "counter", "Questions refused because a worker was at agent_max_concurrent." },
    [METRIC_AGENT_FAILED]  = { "parley_agent_failures_total", "counter", "Agent answers that ended unavailable or timed out." },
    [METRIC_ACCEPT_FULL]   = { "parley_accept_paused_total{reason=\"max_connections\"}", "counter",
                               "Times a worker stopped accepting: at max_connections, or after a failed accept." },
    [METRIC_ACCEPT_FAILED] = { "parley_accept_paused_total{reason=\"accept_error\"}", NULL, NULL },
    [METRIC_WS_COMPRESSED] = { "parley_ws_messages_compressed_total", "counter",
                               "WebSocket messages compressed (permessage-deflate): a room event once per worker, a reply once." },
};

static const char *const gauge_transport[METRIC_GAUGES] = {
    [METRIC_CONN_HTTP] = "http", [METRIC_CONN_WS] = "ws", [METRIC_CONN_SSE] = "sse",
    [METRIC_CONN_CLOSING] = "closing",
};

/* Writes "name{labels} value", merging LABEL into NAME's own labels. */
static void metrics_line(struct evbuffer *out, const char *name, const char *label, long long v)
{
    const char *brace = strchr(name, '{');

    if (label == NULL) {
        evbuffer_add_printf(out, "%s %lld\n", name, v);
    } else if (brace == NULL) {
        evbuffer_add_printf(out, "%s{%s} %lld\n", name, label, v);
    } else {
        evbuffer_add_printf(out, "%.*s{%s,%s %lld\n", (int)(brace - name), name, label, brace + 1, v);
    }
}

static void metrics_header(struct evbuffer *out, const char *name, const char *type, const char *help)
{
    int len = (int)strcspn(name, "{");
    evbuffer_add_printf(out, "# HELP %.*s %s\n# TYPE %.*s %s\n", len, name, help, len, name, type);
}

static long long metrics_slot_max_connections(const struct metrics_slot *s)
{
    return LOAD(s->max_connections);
}

static long long metrics_slot_requests(const struct metrics_slot *s)
{
    return (long long)LOAD(s->counters[METRIC_REQUESTS]);
}

/* One series per live worker, labelled worker and pid, with VALUE of its slot. */
static void metrics_per_worker(struct evbuffer *out, const char *name, const char *type, const char *help,
                               long long (*value)(const struct metrics_slot *s))
{
    char label[64];

    metrics_header(out, name, type, help);
    for (int i = 0; i < METRICS_SLOTS; i++) {
        const struct metrics_slot *s = &metrics.zone->slots[i];
        if (metrics_slot_live(s)) {
            snprintf(label, sizeof(label), "worker=\"%d\",pid=\"%d\"", (int)s->index, (int)LOAD(s->pid));
            metrics_line(out, name, label, value(s));
        }
    }
}

void metrics_render(struct evbuffer *out)
{
    uint64_t total[METRIC_COUNTERS];
    int64_t conns[METRIC_GAUGES] = { 0 };
    char label[64];
    int serving = metrics_workers_serving();

    for (int c = 0; c < METRIC_COUNTERS; c++) {
        total[c] = LOAD(metrics.zone->retired[c]);
    }
    for (int i = 0; i < METRICS_SLOTS; i++) {
        const struct metrics_slot *s = &metrics.zone->slots[i];
        if (!metrics_slot_live(s)) {
            continue;
        }
        for (int c = 0; c < METRIC_COUNTERS; c++) {
            total[c] += LOAD(s->counters[c]);
        }
        for (int g = 0; g < METRIC_GAUGES; g++) {
            conns[g] += LOAD(s->gauges[g]);
        }
    }

    metrics_header(out, "parley_build_info", "gauge", "Build information.");
    evbuffer_add_printf(out, "parley_build_info{version=\"%s\"} 1\n", PACKAGE_VERSION);
    metrics_header(out, "parley_start_time_seconds", "gauge", "Start time of the master, seconds since the epoch.");
    metrics_line(out, "parley_start_time_seconds", NULL, LOAD(metrics.zone->start_time));
    metrics_header(out, "parley_workers", "gauge", "Worker processes configured and serving.");
    metrics_line(out, "parley_workers{state=\"configured\"}", NULL, LOAD(metrics.zone->workers_configured));
    metrics_line(out, "parley_workers{state=\"serving\"}", NULL, serving);

    for (int c = 0; c < METRIC_COUNTERS; c++) {
        if (counter_desc[c].type != NULL) {
            metrics_header(out, counter_desc[c].name, counter_desc[c].type, counter_desc[c].help);
        }
        metrics_line(out, counter_desc[c].name, NULL, (long long)total[c]);
    }
    metrics_header(out, "parley_connections", "gauge", "Open client connections by transport.");
    for (int g = 0; g < METRIC_GAUGES; g++) {
        snprintf(label, sizeof(label), "transport=\"%s\"", gauge_transport[g]);
        metrics_line(out, "parley_connections", label, conns[g]);
    }

    /* Per-worker series show imbalance and which worker restarts. */
    metrics_header(out, "parley_worker_connections", "gauge", "Open connections per worker and transport.");
    for (int i = 0; i < METRICS_SLOTS; i++) {
        const struct metrics_slot *s = &metrics.zone->slots[i];
        if (!metrics_slot_live(s)) {
            continue;
        }
        for (int g = 0; g < METRIC_GAUGES; g++) {
            snprintf(label, sizeof(label), "worker=\"%d\",pid=\"%d\",transport=\"%s\"",
                     (int)s->index, (int)LOAD(s->pid), gauge_transport[g]);
            metrics_line(out, "parley_worker_connections", label, LOAD(s->gauges[g]));
        }
    }
    metrics_per_worker(out, "parley_worker_connections_max", "gauge",
                       "Connections a worker may hold at once (max_connections).", metrics_slot_max_connections);
    metrics_per_worker(out, "parley_worker_http_requests_total", "counter",
                       "HTTP requests per worker process.", metrics_slot_requests);
    metrics_header(out, "parley_worker_restarts_total", "counter", "Workers respawned after an unexpected exit, by worker number.");
    for (int i = 0; i < LOAD(metrics.zone->workers_configured); i++) {
        snprintf(label, sizeof(label), "worker=\"%d\"", i);
        metrics_line(out, "parley_worker_restarts_total", label, (long long)LOAD(metrics.zone->restarts[i]));
    }
}
