/* master.c - prefork supervision: spawn, reap, respawn, reload, stop. */
#include "master.h"

#include <ctype.h>
#include <errno.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "clock.h"
#include "busd.h"
#include "listen.h"
#include "log.h"
#include "metrics.h"
#include "notify.h"
#include "parley.h"
#include "worker.h"

#define MASTER_YOUNG_MS        2000     /* a worker dying younger is "failing" */
#define MASTER_BACKOFF_MIN_MS   250
#define MASTER_BACKOFF_MAX_MS 30000
#define MASTER_READY_WAIT_MS  10000     /* new workers' time to start serving */
#define MASTER_KILL_GRACE_MS   1000     /* after shutdown_timeout, before SIGKILL */

struct master_proc {
    pid_t pid;                  /* 0: unused entry */
    int index;
    unsigned generation;
    int slot;                   /* metrics slot */
    int64_t started_ms;
    int stopping;               /* asked to stop: its exit is expected */
};

struct master_respawn {
    int failures;               /* consecutive deaths of young workers */
    int64_t due_ms;             /* 0: nothing scheduled */
};

struct master_bus {
    pid_t pid;
    int64_t started_ms;
    int failures;
    int64_t due_ms;             /* 0: nothing scheduled */
    int stopping;
};

struct master {
    struct conf *cfg;
    struct bus_zone zone;
    struct master_bus bus;
    const struct cli_options *opts;
    struct listen_group listen;
    struct listen_group old_listen;     /* previous address, until old workers go */
    struct master_proc procs[METRICS_SLOTS];
    struct master_respawn respawn[PL_MAX_WORKERS];
    unsigned generation;
    int nworkers;
    int announced;              /* READY=1 sent for this generation */
    int64_t generation_started_ms;
    int stopping;
    int64_t stop_deadline_ms;
    int killed;
    sigset_t sigs;
};

static void master_describe_status(int status, char *buf, size_t len)
{
    if (WIFEXITED(status)) {
        snprintf(buf, len, "exit %d", WEXITSTATUS(status));
    } else if (WIFSIGNALED(status)) {
        snprintf(buf, len, "signal %d (%s)%s", WTERMSIG(status), strsignal(WTERMSIG(status)),
                 WCOREDUMP(status) ? ", core dumped" : "");
    } else {
        snprintf(buf, len, "status %d", status);
    }
}

static struct master_proc *master_free_proc(struct master *m)
{
    for (size_t i = 0; i < PL_ARRAY_LEN(m->procs); i++) {
        if (m->procs[i].pid == 0) {
            return &m->procs[i];
        }
    }
    return NULL;
}

static void master_spawn(struct master *m, int index)
{
    struct master_proc *p = master_free_proc(m);
    int slot = metrics_slot_acquire(index, m->generation);
    pid_t pid;

    if (p == NULL || slot < 0) {
        log_error(0, "event=spawn_failed worker=%d reason=\"no free slot\"", index);
        return;
    }
    pid = fork();
    if (pid < 0) {
        log_error(errno, "event=spawn_failed worker=%d", index);
        metrics_slot_release(slot);
        m->respawn[index].due_ms = clock_ms() + MASTER_BACKOFF_MIN_MS;
        return;
    }
    if (pid == 0) {
        /* Workers must not hold a previous address open after a reload. */
        listen_group_close(&m->old_listen);
        _exit(worker_run(m->cfg, &m->listen, &m->zone, index, m->nworkers, slot));
    }
    metrics_slot_set_pid(slot, pid);
    *p = (struct master_proc){ pid, index, m->generation, slot, clock_ms(), 0 };
    log_info("event=worker_started worker=%d pid=%ld generation=%u", index, (long)pid, m->generation);
}

static void master_signal_procs(struct master *m, int sig, int older_only);

static int64_t master_backoff(int failures)
{
    int64_t delay = 0;

    if (failures > 1) {
        delay = MASTER_BACKOFF_MIN_MS << (failures - 2 < 7 ? failures - 2 : 7);
        delay = delay > MASTER_BACKOFF_MAX_MS ? MASTER_BACKOFF_MAX_MS : delay;
    }
    return delay;
}

static void master_spawn_bus(struct master *m)
{
    pid_t pid = fork();

    if (pid < 0) {
        log_error(errno, "event=spawn_failed process=bus");
        m->bus.due_ms = clock_ms() + MASTER_BACKOFF_MIN_MS;
        return;
    }
    if (pid == 0) {
        listen_group_close(&m->listen);
        listen_group_close(&m->old_listen);
        _exit(busd_run(m->cfg, &m->zone));
    }
    m->bus.pid = pid;
    m->bus.started_ms = clock_ms();
    m->bus.stopping = 0;
    log_info("event=bus_started pid=%ld", (long)pid);
    /* Workers resend their interests to the new bus at once. */
    master_signal_procs(m, SIGUSR2, 0);
}

static void master_signal_procs(struct master *m, int sig, int older_only)
{
    for (size_t i = 0; i < PL_ARRAY_LEN(m->procs); i++) {
        struct master_proc *p = &m->procs[i];
        if (p->pid <= 0 || (older_only && p->generation == m->generation)) {
            continue;
        }
        if (sig == SIGTERM && !p->stopping) {
            p->stopping = 1;
            metrics_slot_retire(p->slot);
        }
        kill(p->pid, sig);
    }
}

static int master_children(const struct master *m)
{
    int n = m->bus.pid > 0;

    for (size_t i = 0; i < PL_ARRAY_LEN(m->procs); i++) {
        n += m->procs[i].pid > 0;
    }
    return n;
}

static void master_schedule_respawn(struct master *m, const struct master_proc *p, int64_t now)
{
    struct master_respawn *r = &m->respawn[p->index];
    int64_t delay;

    r->failures = (now - p->started_ms < MASTER_YOUNG_MS) ? r->failures + 1 : 1;
    delay = master_backoff(r->failures);
    r->due_ms = now + delay;
    metrics_count_restart(p->index);
    log_info("event=worker_respawn worker=%d delay_ms=%lld failures=%d",
             p->index, (long long)delay, r->failures);
}

static void master_reap_bus(struct master *m, int status, int64_t now)
{
    char how[96];

    master_describe_status(status, how, sizeof(how));
    m->bus.pid = 0;
    __atomic_store_n(&m->zone.state->redis_up, 0, __ATOMIC_RELAXED);
    if (m->bus.stopping || m->stopping) {
        log_info("event=bus_stopped status=\"%s\"", how);
        if (!m->stopping) {
            master_spawn_bus(m);    /* replaced on reload */
        }
        return;
    }
    log_error(0, "event=bus_died status=\"%s\"", how);
    m->bus.failures = (now - m->bus.started_ms < MASTER_YOUNG_MS) ? m->bus.failures + 1 : 1;
    m->bus.due_ms = now + master_backoff(m->bus.failures);
}

static void master_reap(struct master *m)
{
    int64_t now = clock_ms();
    char how[96];
    int status;
    pid_t pid;

    while ((pid = waitpid(-1, &status, WNOHANG)) > 0) {
        if (pid == m->bus.pid) {
            master_reap_bus(m, status, now);
            continue;
        }
        for (size_t i = 0; i < PL_ARRAY_LEN(m->procs); i++) {
            struct master_proc *p = &m->procs[i];
            if (p->pid != pid) {
                continue;
            }
            master_describe_status(status, how, sizeof(how));
            metrics_slot_release(p->slot);
            /* The bus forgets the worker and takes back its presence. */
            bus_ctl_send(&m->zone, p->slot, pid, 'R', NULL, -1);
            if (p->stopping || m->stopping) {
                log_info("event=worker_stopped worker=%d pid=%ld status=\"%s\"", p->index, (long)pid, how);
            } else {
                log_error(0, "event=worker_died worker=%d pid=%ld status=\"%s\"", p->index, (long)pid, how);
                if (p->generation == m->generation && p->index < m->nworkers) {
                    master_schedule_respawn(m, p, now);
                }
            }
            p->pid = 0;
            break;
        }
    }
}

static void master_run_respawns(struct master *m, int64_t now)
{
    if (m->bus.due_ms != 0 && m->bus.due_ms <= now) {
        m->bus.due_ms = 0;
        master_spawn_bus(m);
    }
    for (int i = 0; i < m->nworkers; i++) {
        if (m->respawn[i].due_ms != 0 && m->respawn[i].due_ms <= now) {
            m->respawn[i].due_ms = 0;
            master_spawn(m, i);
        }
    }
}

static int master_generation_ready(const struct master *m)
{
    int ready = 0;

    for (size_t i = 0; i < PL_ARRAY_LEN(m->procs); i++) {
        const struct master_proc *p = &m->procs[i];
        if (p->pid > 0 && p->generation == m->generation && metrics_slot_ready(p->slot)) {
            ready++;
        }
    }
    return ready;
}

/* Once the current generation serves, the previous one may go: this is what
 * makes a reload refuse no connection. */
static void master_check_ready(struct master *m, int64_t now)
{
    int ready = master_generation_ready(m);

    if (m->announced || m->stopping) {
        return;
    }
    if (ready < m->nworkers && now - m->generation_started_ms < MASTER_READY_WAIT_MS) {
        return;
    }
    if (ready < m->nworkers) {
        log_warn("event=workers_slow_to_start ready=%d workers=%d", ready, m->nworkers);
    }
    m->announced = 1;
    master_signal_procs(m, SIGTERM, 1);
    listen_group_close(&m->old_listen);
    notify_send("READY=1\nSTATUS=serving on %s with %d workers", m->listen.name, m->nworkers);
    log_info("event=ready listen=%s workers=%d generation=%u", m->listen.name, m->nworkers, m->generation);
}

static void master_start_generation(struct master *m)
{
    m->generation++;
    m->announced = 0;
    m->generation_started_ms = clock_ms();
    memset(m->respawn, 0, sizeof(m->respawn));
    metrics_set_workers(m->nworkers);
    for (int i = 0; i < m->nworkers; i++) {
        master_spawn(m, i);
    }
}

static uint64_t master_random(void)
{
    uint64_t r;

    if (getrandom(&r, sizeof(r), 0) != sizeof(r)) {
        r = ((uint64_t)getpid() << 32) ^ (uint64_t)time(NULL) ^ (uint64_t)clock_ms();
    }
    return r;
}

/* Names this run of the master, PREVIOUS across reloads.  An instance that
 * died without taking its presence back and starts again under the same
 * instance_id (before its heartbeat expires, nobody reaps it) recognises
 * the presence of its earlier run by this, whatever the processes' PIDs
 * (a container's are the same each time). */
static void master_run_id(struct conf *cfg, const char *previous)
{
    if (previous[0] != '\0') {
        snprintf(cfg->run_id, sizeof(cfg->run_id), "%s", previous);
    } else {
        snprintf(cfg->run_id, sizeof(cfg->run_id), "%016llx", (unsigned long long)master_random());
    }
}

/* Names this host in Redis: the configured instance_id, the one generated
 * earlier (kept across reloads), or a new "hostname-random". */
static void master_instance_id(struct conf *cfg, const char *previous)
{
    char host[40] = "parley";

    if (cfg->instance_id[0] != '\0') {
        return;
    }
    if (previous[0] != '\0') {
        snprintf(cfg->instance_id, sizeof(cfg->instance_id), "%s", previous);
        return;
    }
    gethostname(host, sizeof(host) - 1);
    for (char *p = host; *p; p++) {
        if (!(isalnum((unsigned char)*p) || *p == '-' || *p == '_')) {
            *p = '_';
        }
    }
    snprintf(cfg->instance_id, sizeof(cfg->instance_id), "%.40s-%08x", host, (uint32_t)master_random());
}

/* Each connection is a descriptor, so the soft limit is raised to the hard
 * one, as servers such as nginx let their users expect. */
static void master_raise_nofile(void)
{
    struct rlimit rl;
    rlim_t was;

    if (getrlimit(RLIMIT_NOFILE, &rl) != 0 || rl.rlim_cur >= rl.rlim_max) {
        return;
    }
    was = rl.rlim_cur;
    rl.rlim_cur = rl.rlim_max;
    if (setrlimit(RLIMIT_NOFILE, &rl) != 0) {
        log_write(LOG_LEVEL_WARN, errno, "event=nofile_not_raised nofile=%llu hard=%llu",
                  (unsigned long long)was, (unsigned long long)rl.rlim_max);
        return;
    }
    log_info("event=nofile_raised from=%llu to=%llu", (unsigned long long)was, (unsigned long long)rl.rlim_max);
}

/* Settles max_connections in CFG for workers serving SOCKETS sockets each:
 * what the descriptor limit allows when it is 0, and never more. */
static void master_limit_connections(struct conf *cfg, int sockets)
{
    struct rlimit rl;
    long long nofile = INT_MAX;
    int allowed;

    if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur != RLIM_INFINITY && rl.rlim_cur < INT_MAX) {
        nofile = (long long)rl.rlim_cur;
    }
    allowed = conf_connections_allowed(cfg, nofile, sockets);
    if (cfg->max_connections > allowed) {
        log_warn("event=max_connections_lowered configured=%d max_connections=%d nofile=%lld "
                 "reason=\"the descriptor limit allows no more\"", cfg->max_connections, allowed, nofile);
    }
    if (cfg->max_connections == 0 || cfg->max_connections > allowed) {
        cfg->max_connections = allowed;
    }
    log_info("event=limits nofile=%lld max_connections=%d", nofile, cfg->max_connections);
}

static void master_reload_failed(const char *why)
{
    char reason[CONF_ERR_LEN];

    log_error(0, "event=reload_failed reason=\"%s\" action=\"kept running configuration\"",
              log_value(why, 1, reason, sizeof(reason)));
    notify_send("READY=1\nSTATUS=reload failed: %s", why);
}

static void master_reload(struct master *m)
{
    static struct conf next;  /* large: keep it off the stack */
    struct listen_group fresh;
    char err[CONF_ERR_LEN], where[1100], why[CONF_ERR_LEN];
    int n, moved, restart_bus;

    notify_send("RELOADING=1");
    log_info("event=reloading path=%s", m->cfg->path[0] ? m->cfg->path : "-");
    if (cli_load_config(m->opts, &next, err, sizeof(err)) != PL_OK) {
        master_reload_failed(err);
        return;
    }
    if (strcmp(next.log_file, m->cfg->log_file) != 0 && log_open(next.log_file, why, sizeof(why)) != PL_OK) {
        conf_where(&next, "log_file", where, sizeof(where));
        snprintf(err, sizeof(err), "%s: %s", where, why);
        master_reload_failed(err);
        return;
    }
    n = conf_worker_count(&next);
    moved = !listen_group_matches(&m->listen, (struct sockaddr *)&next.listen_addr, next.listen_addrlen);
    if (moved ? listen_group_open(&fresh, (struct sockaddr *)&next.listen_addr, next.listen_addrlen,
                                  n, next.backlog, why, sizeof(why))
              : listen_group_grow(&m->listen, n, why, sizeof(why))) {
        conf_where(&next, "listen", where, sizeof(where));
        snprintf(err, sizeof(err), "%s: %s", where, why);
        master_reload_failed(err);
        return;
    }
    if (moved) {
        listen_group_close(&m->old_listen);
        m->old_listen = m->listen;
        m->listen = fresh;
        log_info("event=listening addr=%s", m->listen.name);
    }
    master_instance_id(&next, m->cfg->instance_id);
    master_run_id(&next, m->cfg->run_id);
    master_limit_connections(&next, (m->listen.nfds + n - 1) / n);
    restart_bus = strcmp(next.redis.text, m->cfg->redis.text) != 0
                  || strcmp(next.redis.password, m->cfg->redis.password) != 0
                  || strcmp(next.redis_prefix, m->cfg->redis_prefix) != 0
                  || strcmp(next.instance_id, m->cfg->instance_id) != 0
                  || next.instance_ttl_ms != m->cfg->instance_ttl_ms
                  || next.redis_timeout_ms != m->cfg->redis_timeout_ms;
    if (next.bus_ring_size != m->cfg->bus_ring_size) {
        log_warn("event=reload_partial key=bus_ring_size reason=\"takes effect after a restart\"");
        next.bus_ring_size = m->cfg->bus_ring_size;
    }
    *m->cfg = next;
    log_set_level(m->cfg->log_level);
    if (restart_bus && m->bus.pid > 0) {
        m->bus.stopping = 1;
        kill(m->bus.pid, SIGQUIT);  /* respawned with the new settings when reaped */
    }
    m->nworkers = n;
    master_start_generation(m);
}

/* The bus goes last: it takes back whatever presence the workers left, which
 * only makes sense once they are gone. */
static void master_stop_bus_when_alone(struct master *m)
{
    if (m->stopping && m->bus.pid > 0 && !m->bus.stopping && master_children(m) == 1) {
        m->bus.stopping = 1;
        kill(m->bus.pid, SIGTERM);
    }
}

static void master_stop(struct master *m, int sig)
{
    if (m->stopping) {
        /* A second request to stop does not wait for anybody. */
        log_warn("event=fast_stop signal=%d", sig);
        master_signal_procs(m, SIGKILL, 0);
        if (m->bus.pid > 0) {
            kill(m->bus.pid, SIGKILL);
        }
        m->killed = 1;
        return;
    }
    m->stopping = 1;
    metrics_set_stopping();
    m->stop_deadline_ms = clock_ms() + m->cfg->shutdown_timeout_ms + MASTER_KILL_GRACE_MS;
    notify_send("STOPPING=1");
    log_info("event=stopping signal=%d workers=%d", sig, master_children(m));
    listen_group_close(&m->listen);
    listen_group_close(&m->old_listen);
    master_signal_procs(m, SIGTERM, 0);
    master_stop_bus_when_alone(m);
}

static void master_wait_signal(struct master *m)
{
    int64_t now = clock_ms(), wait = 1000;
    struct timespec ts;
    int sig;

    for (int i = 0; i < m->nworkers; i++) {
        if (m->respawn[i].due_ms != 0 && m->respawn[i].due_ms - now < wait) {
            wait = m->respawn[i].due_ms - now;
        }
    }
    if (!m->announced && wait > 5) {
        wait = 5;               /* poll new workers' readiness */
    }
    if (m->stopping && !m->killed && m->stop_deadline_ms - now < wait) {
        wait = m->stop_deadline_ms - now;
    }
    wait = wait < 0 ? 0 : wait;
    ts.tv_sec = wait / 1000;
    ts.tv_nsec = (wait % 1000) * 1000000;

    sig = sigtimedwait(&m->sigs, NULL, &ts);
    switch (sig) {
    case SIGCHLD:
        master_reap(m);
        break;
    case SIGTERM:
    case SIGINT:
    case SIGQUIT:
        master_stop(m, sig);
        break;
    case SIGHUP:
        if (!m->stopping) {
            master_reload(m);
        }
        break;
    case SIGUSR1:
        log_reopen();
        master_signal_procs(m, SIGUSR1, 0);
        break;
    default:                    /* timeout or EINTR */
        break;
    }
}

int master_run(struct conf *cfg, const struct cli_options *opts)
{
    static struct master m;     /* large: keep it off the stack */
    static const int handled[] = { SIGCHLD, SIGTERM, SIGINT, SIGQUIT, SIGHUP, SIGUSR1 };
    char err[CONF_ERR_LEN], where[1100];

    memset(&m, 0, sizeof(m));
    m.cfg = cfg;
    m.opts = opts;
    m.nworkers = conf_worker_count(cfg);
    log_set_proc("master");

    sigemptyset(&m.sigs);
    for (size_t i = 0; i < PL_ARRAY_LEN(handled); i++) {
        sigaddset(&m.sigs, handled[i]);
    }
    sigprocmask(SIG_BLOCK, &m.sigs, NULL);

    if (listen_group_open(&m.listen, (struct sockaddr *)&cfg->listen_addr, cfg->listen_addrlen,
                          m.nworkers, cfg->backlog, err, sizeof(err)) != PL_OK) {
        conf_where(cfg, "listen", where, sizeof(where));
        fprintf(stderr, "%s: %s\n", where, err);
        return 2;
    }
    if (metrics_zone_create() != PL_OK || bus_zone_create(&m.zone, cfg->bus_ring_size) != PL_OK) {
        fprintf(stderr, "parleyd: cannot create shared memory\n");
        return 2;
    }
    master_instance_id(cfg, "");
    master_run_id(cfg, "");
    master_raise_nofile();
    master_limit_connections(cfg, 1);
    log_info("event=listening addr=%s", m.listen.name);
    log_info("event=starting version=%s workers=%d instance=%s run=%s", PACKAGE_VERSION, m.nworkers,
             cfg->instance_id, cfg->run_id);
    master_spawn_bus(&m);
    master_start_generation(&m);

    while (!m.stopping || master_children(&m) > 0) {
        int64_t now;

        master_wait_signal(&m);
        now = clock_ms();
        if (m.stopping && !m.killed && now >= m.stop_deadline_ms) {
            log_warn("event=stop_timeout killing=%d", master_children(&m));
            master_signal_procs(&m, SIGKILL, 0);
            if (m.bus.pid > 0) {
                kill(m.bus.pid, SIGKILL);
            }
            m.killed = 1;
        }
        master_stop_bus_when_alone(&m);
        if (!m.stopping) {
            master_run_respawns(&m, now);
            master_check_ready(&m, now);
        }
    }
    log_info("event=stopped");
    return 0;
}
