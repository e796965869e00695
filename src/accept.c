/* accept.c - a worker's listeners, its connection cap, and pausing them. */
#include "accept.h"

#include <errno.h>
#include <time.h>
#include <unistd.h>

#include <event2/event.h>
#include <event2/listener.h>

#include "clock.h"
#include "log.h"
#include "parley.h"

#define ACCEPT_PAUSE_MIN_MS   100
#define ACCEPT_PAUSE_MAX_MS  1000

static struct {
    struct event_base *base;
    int fds[PL_MAX_WORKERS];    /* this worker's share of the listening sockets */
    int nfds;
    evhtp_t *htp[PL_MAX_WORKERS];   /* one per socket once accepting */
    int nhtp;
    int stopped;                /* the sockets are closed */
    int held;                   /* connections held now */
    int max;                    /* max_connections */
    int enabled;                /* the listeners are enabled */
    int backing_off;            /* an accept failed: waiting for resume_ev */
    int pause_ms;               /* the next back-off */
    int64_t failed_ms;          /* when an accept last failed */
    struct event *resume_ev;
    struct log_every full_log, failed_log;
} A;

void accept_init(struct event_base *base, const struct listen_group *lg, int index, int nworkers,
                 int max_connections)
{
    A.base = base;
    A.max = max_connections;
    A.pause_ms = ACCEPT_PAUSE_MIN_MS;
    /* Another worker's socket held open here would keep taking connections
     * nobody answers while this worker drains. */
    for (int j = 0; j < lg->nfds; j++) {
        if (j % nworkers == index) {
            A.fds[A.nfds++] = lg->fds[j];
        } else {
            close(lg->fds[j]);
        }
    }
    metrics_set_max_connections(max_connections);
}

static void accept_set_enabled(int on)
{
    for (int i = 0; i < A.nhtp; i++) {
        if (on) {
            evconnlistener_enable(A.htp[i]->server);
        } else {
            evconnlistener_disable(A.htp[i]->server);
        }
    }
    A.enabled = on;
}

/* Accept while there is room and no failure to wait out. */
static void accept_update(void)
{
    int want = A.nhtp > 0 && !A.stopped && !A.backing_off && A.held < A.max;
    unsigned times;

    if (want == A.enabled) {
        return;
    }
    accept_set_enabled(want);
    if (!want && !A.backing_off) {
        metrics_add(METRIC_ACCEPT_FULL, 1);
        if (log_every_due(&A.full_log, &times)) {
            log_warn("event=connection_limit connections=%d max_connections=%d times=%u",
                     A.held, A.max, times);
        }
    }
}

void accept_conn_add(enum metrics_gauge transport, int delta)
{
    metrics_gauge_add(transport, delta);
    A.held += delta;
    accept_update();
}

void accept_conn_move(enum metrics_gauge from, enum metrics_gauge to)
{
    metrics_gauge_add(from, -1);
    metrics_gauge_add(to, 1);
}

static void accept_on_resume(evutil_socket_t fd, short what, void *arg)
{
    PL_UNUSED(fd);
    PL_UNUSED(what);
    PL_UNUSED(arg);
    A.backing_off = 0;
    accept_update();
}

/* Libevent calls this when accept() fails other than "try again"; the
 * socket stays readable, so retrying at once would spin.  A pause lets
 * connections close (or memory come back) first. */
static void accept_on_error(struct evconnlistener *lev, void *arg)
{
    int err = EVUTIL_SOCKET_ERROR();
    int64_t now = clock_coarse_ms();
    unsigned times;

    PL_UNUSED(lev);
    PL_UNUSED(arg);
    metrics_add(METRIC_ACCEPT_FAILED, 1);
    if (now - A.failed_ms > 2 * ACCEPT_PAUSE_MAX_MS) {
        A.pause_ms = ACCEPT_PAUSE_MIN_MS;   /* a new episode */
    }
    A.failed_ms = now;
    A.backing_off = 1;
    accept_update();
    event_add(A.resume_ev, &(struct timeval){ A.pause_ms / 1000, (A.pause_ms % 1000) * 1000 });
    if (log_every_due(&A.failed_log, &times)) {
        log_write(LOG_LEVEL_ERROR, err, "event=accept_failed connections=%d times=%u pause_ms=%d",
                  A.held, times, A.pause_ms);
    }
    A.pause_ms = A.pause_ms * 2 > ACCEPT_PAUSE_MAX_MS ? ACCEPT_PAUSE_MAX_MS : A.pause_ms * 2;
}

int accept_start(void (*attach)(evhtp_t *htp))
{
    A.resume_ev = evtimer_new(A.base, accept_on_resume, NULL);
    if (A.resume_ev == NULL) {
        return PL_ERR;
    }
    for (int i = 0; i < A.nfds; i++) {
        evhtp_t *htp = evhtp_new(A.base, NULL);
        if (htp == NULL) {
            return PL_ERR;
        }
        attach(htp);
        /* A backlog of 0 keeps the master's listen() as it is. */
        if (evhtp_accept_socket(htp, A.fds[i], 0) != 0) {
            log_error(errno, "event=accept_socket_failed fd=%d", A.fds[i]);
            evhtp_free(htp);
            return PL_ERR;
        }
        evconnlistener_set_error_cb(htp->server, accept_on_error);
        A.htp[A.nhtp++] = htp;
    }
    A.enabled = 1;              /* as evconnlistener_new leaves them */
    accept_update();
    return A.nhtp;
}

void accept_stop(void)
{
    if (A.stopped) {
        return;
    }
    A.stopped = 1;
    A.enabled = 0;
    for (int i = 0; i < A.nfds; i++) {
        if (i < A.nhtp) {
            evhtp_unbind_socket(A.htp[i]);      /* closes the socket */
        } else {
            close(A.fds[i]);
        }
    }
}

void accept_free(void)
{
    accept_stop();
    for (int i = 0; i < A.nhtp; i++) {
        evhtp_free(A.htp[i]);
    }
    A.nhtp = 0;
    if (A.resume_ev != NULL) {
        event_free(A.resume_ev);
        A.resume_ev = NULL;
    }
}
