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
} acceptor;

void accept_init(struct event_base *base, const struct listen_group *lg, int index, int nworkers,
                 int max_connections)
{
    acceptor.base = base;
    acceptor.max = max_connections;
    acceptor.pause_ms = ACCEPT_PAUSE_MIN_MS;
    /* Another worker's socket held open here would keep taking connections
     * nobody answers while this worker drains. */
    for (int j = 0; j < lg->nfds; j++) {
        if (j % nworkers == index) {
            acceptor.fds[acceptor.nfds++] = lg->fds[j];
        } else {
            close(lg->fds[j]);
        }
    }
    metrics_set_max_connections(max_connections);
}

static void accept_set_enabled(int on)
{
    for (int i = 0; i < acceptor.nhtp; i++) {
        if (on) {
            evconnlistener_enable(acceptor.htp[i]->server);
        } else {
            evconnlistener_disable(acceptor.htp[i]->server);
        }
    }
    acceptor.enabled = on;
}

/* Accept while there is room and no failure to wait out. */
static void accept_update(void)
{
    int want = acceptor.nhtp > 0 && !acceptor.stopped && !acceptor.backing_off && acceptor.held < acceptor.max;
    unsigned times;

    if (want == acceptor.enabled) {
        return;
    }
    accept_set_enabled(want);
    if (!want && !acceptor.backing_off) {
        metrics_add(METRIC_ACCEPT_FULL, 1);
        if (log_every_due(&acceptor.full_log, &times)) {
            log_warn("event=connection_limit connections=%d max_connections=%d times=%u",
                     acceptor.held, acceptor.max, times);
        }
    }
}

void accept_conn_add(enum metrics_gauge transport, int delta)
{
    metrics_gauge_add(transport, delta);
    acceptor.held += delta;
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
    acceptor.backing_off = 0;
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
    if (now - acceptor.failed_ms > 2 * ACCEPT_PAUSE_MAX_MS) {
        acceptor.pause_ms = ACCEPT_PAUSE_MIN_MS;   /* a new episode */
    }
    acceptor.failed_ms = now;
    acceptor.backing_off = 1;
    accept_update();
    event_add(acceptor.resume_ev, &(struct timeval){ acceptor.pause_ms / 1000, (acceptor.pause_ms % 1000) * 1000 });
    if (log_every_due(&acceptor.failed_log, &times)) {
        log_write(LOG_LEVEL_ERROR, err, "event=accept_failed connections=%d times=%u pause_ms=%d",
                  acceptor.held, times, acceptor.pause_ms);
    }
    acceptor.pause_ms = acceptor.pause_ms * 2 > ACCEPT_PAUSE_MAX_MS ? ACCEPT_PAUSE_MAX_MS : acceptor.pause_ms * 2;
}

int accept_start(void (*attach)(evhtp_t *htp))
{
    acceptor.resume_ev = evtimer_new(acceptor.base, accept_on_resume, NULL);
    if (acceptor.resume_ev == NULL) {
        return PL_ERR;
    }
    for (int i = 0; i < acceptor.nfds; i++) {
        evhtp_t *htp = evhtp_new(acceptor.base, NULL);
        if (htp == NULL) {
            return PL_ERR;
        }
        attach(htp);
        /* A backlog of 0 keeps the master's listen() as it is. */
        if (evhtp_accept_socket(htp, acceptor.fds[i], 0) != 0) {
            log_error(errno, "event=accept_socket_failed fd=%d", acceptor.fds[i]);
            evhtp_free(htp);
            return PL_ERR;
        }
        evconnlistener_set_error_cb(htp->server, accept_on_error);
        acceptor.htp[acceptor.nhtp++] = htp;
    }
    acceptor.enabled = 1;              /* as evconnlistener_new leaves them */
    accept_update();
    return acceptor.nhtp;
}

void accept_stop(void)
{
    if (acceptor.stopped) {
        return;
    }
    acceptor.stopped = 1;
    acceptor.enabled = 0;
    for (int i = 0; i < acceptor.nfds; i++) {
        if (i < acceptor.nhtp) {
            evhtp_unbind_socket(acceptor.htp[i]);      /* closes the socket */
        } else {
            close(acceptor.fds[i]);
        }
    }
}

void accept_free(void)
{
    accept_stop();
    for (int i = 0; i < acceptor.nhtp; i++) {
        evhtp_free(acceptor.htp[i]);
    }
    acceptor.nhtp = 0;
    if (acceptor.resume_ev != NULL) {
        event_free(acceptor.resume_ev);
        acceptor.resume_ev = NULL;
    }
}
