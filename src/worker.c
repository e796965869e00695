/* worker.c - per-process set-up, signal handling and graceful exit. */
#include "worker.h"

#include <malloc.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/prctl.h>
#include <unistd.h>

#include <event2/event.h>

#include "accept.h"
#include "agent.h"
#include "answer.h"
#include "api.h"
#include "auth.h"
#include "bus.h"
#include "chat.h"
#include "clock.h"
#include "feed.h"
#include "http.h"
#include "log.h"
#include "metrics.h"
#include "ops.h"
#include "outq.h"
#include "parley.h"
#include "presence.h"
#include "sse.h"
#include "sse_answer.h"
#include "store.h"
#include "ws.h"
#include "static.h"

#define WORKER_DRAIN_CHECK_MS 50
#define WORKER_START_CHECK_MS 5
#define WORKER_TRIM_CHECK_MS  10000 /* how often to look whether traffic has calmed down */
#define WORKER_QUIET_EVENTS   100   /* fewer requests and events than this in a look: quiet */

struct worker {
    struct event_base *base;
    const struct conf *cfg;
    struct event *signals[6];
    struct event *drain_timer;
    struct event *start_timer;
    struct event *trim_timer;
    uint64_t traffic_seen;      /* requests and events written, at the last look */
    int busy_since_trim;
    struct timeval drain_started;
    struct timeval started;
    int index;
    int draining;
    int drain_total;            /* long-lived connections when the stop began */
    int drain_closed;           /* of which told to go so far */
};

static struct worker worker;

/* What a worker runs, started in this order: the Redis connection and the
 * bus first (the others use them), the routes in the order they match,
 * the web client's files last (they answer what no route does). */
static int (*const worker_modules[])(const struct worker_env *) = {
    store_init, bus_init, presence_init, http_init, outq_init, auth_init, feed_init, agent_init,
    answer_init, ops_init, api_init, sse_init, sse_answer_init, chat_init, static_init,
};

static long worker_elapsed_ms(const struct timeval *since)
{
    struct timeval now;

    event_base_gettimeofday_cached(worker.base, &now);
    return (now.tv_sec - since->tv_sec) * 1000L + (now.tv_usec - since->tv_usec) / 1000L;
}

/* Says goodbye to the long-lived connections a share at a time, evenly over
 * drain_spread, so that thousands of clients do not reconnect to the other
 * instances in the same second. */
static void worker_drain_spread(long elapsed)
{
    long spread = worker.cfg->drain_spread_ms;
    int due = elapsed >= spread ? worker.drain_total
                                : (int)((long long)worker.drain_total * (elapsed + WORKER_DRAIN_CHECK_MS) / spread);

    while (worker.drain_closed < due) {
        int n = ws_close_some(due - worker.drain_closed);
        n += sse_close_some(due - worker.drain_closed - n);
        if (n == 0) {
            break;              /* fewer left than counted: some went by themselves */
        }
        worker.drain_closed += n;
    }
}

static void worker_drain_check(evutil_socket_t fd, short what, void *arg)
{
    long elapsed = worker_elapsed_ms(&worker.drain_started);
    int busy;

    PL_UNUSED(fd);
    PL_UNUSED(what);
    PL_UNUSED(arg);
    worker_drain_spread(elapsed);
    busy = http_inflight() + ws_count() + sse_count();

    if (busy > 0 && elapsed < worker.cfg->shutdown_timeout_ms) {
        return;
    }
    if (busy > 0) {
        log_warn("event=shutdown_timeout inflight=%d websockets=%d streams=%d", http_inflight(), ws_count(),
                 sse_count());
    }
    event_base_loopbreak(worker.base);
}

static void worker_stop(void)
{
    struct timeval tick = { 0, WORKER_DRAIN_CHECK_MS * 1000 };

    if (worker.draining) {
        return;
    }
    worker.draining = 1;
    accept_stop();              /* the master has closed its copies already */
    log_info("event=draining inflight=%d", http_inflight());
    http_drain();
    event_base_gettimeofday_cached(worker.base, &worker.drain_started);
    worker.drain_total = ws_count() + sse_count();
    worker_drain_spread(0);
    worker.drain_timer = event_new(worker.base, -1, EV_PERSIST, worker_drain_check, NULL);
    event_add(worker.drain_timer, &tick);
}

static void worker_on_signal(evutil_socket_t sig, short what, void *arg)
{
    PL_UNUSED(what);
    PL_UNUSED(arg);
    switch (sig) {
    case SIGTERM:
    case SIGINT:
    case SIGQUIT:
        worker_stop();
        break;
    case SIGUSR1:
        log_reopen();
        break;
    case SIGUSR2:               /* the master respawned the bus */
        bus_resync();
        break;
    default:                    /* SIGHUP: reloads are the master's business */
        break;
    }
}

/* A worker accepts connections only once Redis answers it (or after
 * redis_timeout, to serve in degraded mode): during a reload the old
 * workers keep serving until then, so nobody sees a 503 from a newcomer. */
static void worker_on_start_check(evutil_socket_t fd, short what, void *arg)
{
    int sockets;

    PL_UNUSED(fd);
    PL_UNUSED(what);
    PL_UNUSED(arg);
    if (!(store_is_up() && bus_subscriber_up()) && worker_elapsed_ms(&worker.started) < worker.cfg->redis_timeout_ms) {
        return;
    }
    event_del(worker.start_timer);
    if (worker.draining) {
        return;
    }
    sockets = accept_start(http_attach);
    if (sockets < 0) {
        log_error(0, "event=worker_listen_failed");
        event_base_loopbreak(worker.base);
        return;
    }
    metrics_set_ready();
    log_info("event=worker_ready sockets=%d max_connections=%d redis=%s", sockets, worker.cfg->max_connections,
             store_is_up() && bus_subscriber_up() ? "up" : "down");
}

/* Memory back to the system once traffic has calmed down.  glibc keeps the
 * heap a burst grew to (the buffers of a busy spell are freed but stay
 * mapped), which left idle connections costing twice their memory after
 * traffic.  Trimming once, when a busy spell is over, costs a busy worker
 * nothing. */
static void worker_on_trim_check(evutil_socket_t fd, short what, void *arg)
{
    uint64_t traffic = metrics_local(METRIC_REQUESTS) + metrics_local(METRIC_MESSAGES_OUT);
    uint64_t recent = traffic - worker.traffic_seen;
    int64_t started;

    PL_UNUSED(fd);
    PL_UNUSED(what);
    PL_UNUSED(arg);
    worker.traffic_seen = traffic;
    if (recent >= WORKER_QUIET_EVENTS) {
        worker.busy_since_trim = 1;
    } else if (worker.busy_since_trim) {
        worker.busy_since_trim = 0;
        started = clock_ms();
        malloc_trim(0);
        log_info("event=memory_trimmed ms=%lld", (long long)(clock_ms() - started));
    }
}

static void worker_free(void)
{
    for (size_t i = 0; i < PL_ARRAY_LEN(worker.signals); i++) {
        if (worker.signals[i] != NULL) {
            event_free(worker.signals[i]);
        }
    }
    if (worker.drain_timer != NULL) {
        event_free(worker.drain_timer);
    }
    if (worker.start_timer != NULL) {
        event_free(worker.start_timer);
    }
    if (worker.trim_timer != NULL) {
        event_free(worker.trim_timer);
    }
    accept_free();
    bus_shutdown();
    store_shutdown();
    event_base_free(worker.base);
}

int worker_run(const struct conf *cfg, const struct listen_group *lg, struct bus_zone *bus,
               int index, int nworkers, int slot)
{
    static const int sigs[] = { SIGTERM, SIGINT, SIGQUIT, SIGUSR1, SIGUSR2, SIGHUP };
    pid_t master = getppid();
    struct worker_env env;
    sigset_t unblock;
    char name[32];

    memset(&worker, 0, sizeof(worker));
    worker.cfg = cfg;
    worker.index = index;
    snprintf(name, sizeof(name), "worker.%d", index);
    log_set_proc(name);
    snprintf(name, sizeof(name), "parley-w%d", index);
    prctl(PR_SET_NAME, name);

    /* Do not outlive the master; the check closes the race with its death. */
    prctl(PR_SET_PDEATHSIG, SIGTERM);
    if (getppid() != master) {
        return 0;
    }
    metrics_attach(slot);

    worker.base = event_base_new();
    if (worker.base == NULL) {
        log_error(0, "event=event_base_failed");
        return 1;
    }
    accept_init(worker.base, lg, index, nworkers, cfg->max_connections);
    for (size_t i = 0; i < PL_ARRAY_LEN(sigs); i++) {
        worker.signals[i] = evsignal_new(worker.base, sigs[i], worker_on_signal, NULL);
        event_add(worker.signals[i], NULL);
    }
    /* The master blocks these; pending ones now reach the handlers above. */
    sigemptyset(&unblock);
    sigprocmask(SIG_SETMASK, &unblock, NULL);
    env = (struct worker_env){ worker.base, cfg, bus, index, slot };
    for (size_t i = 0; i < PL_ARRAY_LEN(worker_modules); i++) {
        if (worker_modules[i](&env) != PL_OK) {
            log_error(0, "event=worker_start_failed module=%zu", i);
            worker_free();
            return 1;
        }
    }
    event_base_gettimeofday_cached(worker.base, &worker.started);
    worker.start_timer = event_new(worker.base, -1, EV_PERSIST, worker_on_start_check, NULL);
    event_add(worker.start_timer, &(struct timeval){ 0, WORKER_START_CHECK_MS * 1000 });
    worker.trim_timer = event_new(worker.base, -1, EV_PERSIST, worker_on_trim_check, NULL);
    event_add(worker.trim_timer, &(struct timeval){ WORKER_TRIM_CHECK_MS / 1000, 0 });

    event_base_dispatch(worker.base);

    log_info("event=worker_exit");
    worker_free();
    return 0;
}
