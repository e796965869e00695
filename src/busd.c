/* busd.c - the bus process (busd): Redis pub/sub into the shared ring. */
#include "busd.h"

#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <time.h>
#include <unistd.h>

#include <event2/event.h>

#include "clock.h"
#include "dict.h"
#include "log.h"
#include "metrics.h"
#include "names.h"
#include "parley.h"
#include "redis_conn.h"
#include "scripts.h"

#define BUS_SWEEP_MS      1000
#define BUS_IDLE_GRACE_MS 2000      /* keep an unneeded channel this long */
#define BUS_MASK_WORDS    (METRICS_SLOTS / 64)

struct busd_channel {
    uint64_t slots[BUS_MASK_WORDS]; /* workers that need it */
    int64_t idle_since_ms;          /* 0 while needed */
    int confirmed;                  /* Redis acknowledged our SUBSCRIBE */
    int lost;                       /* was confirmed when the connection dropped */
};

struct busd {
    const struct conf *cfg;
    struct bus_zone *zone;
    struct event_base *base;
    struct redis_conn *sub;         /* the host's one SUBSCRIBE connection */
    struct redis_conn *cmd;         /* heartbeat and presence scripts */
    struct dict *channels;
    int eventfds[METRICS_SLOTS];
    int wake_pending;
    struct event *wake;
    struct event *ctl;
    struct event *sweep;
    struct event *heartbeat;
    struct event *sigterm;
    struct event *sigquit;
    int stopping;
    char instance_key[256];
    char presence_key[256];
    char instances_key[256];
};

static struct busd busd;

static int busd_mask_empty(const struct busd_channel *ch)
{
    for (int i = 0; i < BUS_MASK_WORDS; i++) {
        if (ch->slots[i] != 0) {
            return 0;
        }
    }
    return 1;
}

static void busd_push(uint32_t type, const char *channel, const char *data, size_t len)
{
    struct iovec iov[2] = {
        { (void *)channel, strlen(channel) + (type == BUS_REC_EVENT) },    /* EVENT keeps the NUL */
        { (void *)data, len },
    };

    if (bus_ring_push(busd.zone->ring, type, iov, data ? 2 : 1) != PL_OK) {
        log_warn("event=bus_record_too_large channel=%s bytes=%zu", channel, len);
        return;
    }
    if (!busd.wake_pending) {
        busd.wake_pending = 1;
        event_active(busd.wake, EV_TIMEOUT, 0);
    }
}

/* Runs once per loop pass after records were appended: one wake-up per
 * worker however many records this pass brought. */
static void busd_on_wake(evutil_socket_t fd, short what, void *arg)
{
    uint64_t one = 1;

    PL_UNUSED(fd);
    PL_UNUSED(what);
    PL_UNUSED(arg);
    busd.wake_pending = 0;
    for (int i = 0; i < METRICS_SLOTS; i++) {
        if (busd.eventfds[i] >= 0 && write(busd.eventfds[i], &one, sizeof(one)) < 0 && errno != EAGAIN) {
            log_error(errno, "event=bus_wake_failed slot=%d", i);
        }
    }
}

static void busd_on_push(redisReply *reply, void *arg)
{
    struct busd_channel *ch;
    const char *kind;

    PL_UNUSED(arg);
    if (reply == NULL || reply->type != REDIS_REPLY_ARRAY || reply->elements < 3
        || reply->element[0]->type != REDIS_REPLY_STRING || reply->element[1]->type != REDIS_REPLY_STRING) {
        return;                 /* connection lost: the state callback handles it */
    }
    kind = reply->element[0]->str;
    if (strcmp(kind, "message") == 0 && reply->element[2]->type == REDIS_REPLY_STRING) {
        busd_push(BUS_REC_EVENT, reply->element[1]->str, reply->element[2]->str, reply->element[2]->len);
    } else if (strcmp(kind, "subscribe") == 0) {
        ch = dict_find(busd.channels, reply->element[1]->str);
        if (ch != NULL) {
            ch->confirmed = 1;
            busd_push(BUS_REC_SUBSCRIBED, reply->element[1]->str, NULL, 0);
            if (ch->lost) {
                /* Messages published while we were not subscribed are in
                 * the rooms' streams: tell the workers to read them. */
                ch->lost = 0;
                busd_push(BUS_REC_GAP, reply->element[1]->str, NULL, 0);
            }
        }
    }
}

static void busd_subscribe(const char *name)
{
    if (redis_conn_pubsub(busd.sub, "SUBSCRIBE", name, busd_on_push, NULL) != PL_OK) {
        log_debug("event=bus_subscribe_deferred channel=%s", name);     /* done on reconnect */
    }
}

static void busd_need(int slot, const char *name)
{
    struct busd_channel *ch = dict_find(busd.channels, name);

    if (ch == NULL) {
        ch = calloc(1, sizeof(*ch));
        if (ch == NULL || dict_add(busd.channels, name, ch) != PL_OK) {
            free(ch);
            log_error(0, "event=bus_out_of_memory channel=%s", name);
            return;
        }
        busd_subscribe(name);
    } else if (ch->confirmed) {
        busd_push(BUS_REC_SUBSCRIBED, name, NULL, 0);    /* the newcomer waits for it */
    }
    ch->slots[slot / 64] |= 1ULL << (slot % 64);
    ch->idle_since_ms = 0;
}

static int busd_is_user_channel(const char *name)
{
    size_t plen = strlen(busd.cfg->redis_prefix);
    return strncmp(name, busd.cfg->redis_prefix, plen) == 0 && strncmp(name + plen, "user:", 5) == 0;
}

/* Drops our subscription to NAME; only once Redis confirmed it, so that an
 * UNSUBSCRIBE never overtakes the SUBSCRIBE it undoes. */
static int busd_drop(const char *name, struct busd_channel *ch)
{
    if (!ch->confirmed && redis_conn_is_up(busd.sub)) {
        return 0;
    }
    if (redis_conn_is_up(busd.sub)) {
        redis_conn_pubsub(busd.sub, "UNSUBSCRIBE", name, busd_on_push, NULL);
    }
    free(dict_delete(busd.channels, name));
    return 1;
}

static void busd_release(const char *name, struct busd_channel *ch, int slot)
{
    ch->slots[slot / 64] &= ~(1ULL << (slot % 64));
    if (ch->idle_since_ms != 0 || !busd_mask_empty(ch)) {
        return;
    }
    /* A user's channel goes at once: PUBLISH counts its subscribers to tell
     * a sender that the user is offline.  Rooms linger a little, so people
     * leaving and rejoining do not churn subscriptions. */
    if (!busd_is_user_channel(name) || !busd_drop(name, ch)) {
        ch->idle_since_ms = clock_ms();
    }
}

static void busd_forget_slot(int slot)
{
    struct dict_iter it;
    const char *name;
    void *value;

    dict_iter_init(&it);
    while (dict_next(busd.channels, &it, &name, &value)) {
        busd_release(name, value, slot);
    }
}

/* A worker is gone for good: take back the presence it held. */
static void busd_release_worker(pid_t pid)
{
    char owner[64];
    const char *argv[] = { busd.presence_key, busd.cfg->redis_prefix, owner };

    snprintf(owner, sizeof(owner), "%s.%ld|", busd.cfg->run_id, (long)pid);
    if (script_run(busd.cmd, SCRIPT_RELEASE, NULL, NULL, 1, 3, argv, NULL) != PL_OK) {
        /* Redis is down: the entries stay until this instance stops or is
         * reaped; a later reap of a dead instance covers them. */
        log_warn("event=presence_release_deferred pid=%ld", (long)pid);
    }
}

static void busd_on_ctl(evutil_socket_t fd, short what, void *arg)
{
    char buf[BUS_CTL_MAX], op, channel[BUS_CTL_MAX];
    int slot, passed;
    long pid;

    PL_UNUSED(fd);
    PL_UNUSED(what);
    PL_UNUSED(arg);
    while (bus_ctl_recv(busd.zone, buf, &passed) >= 0) {
        channel[0] = '\0';
        if (sscanf(buf, "%d %ld %c %511s", &slot, &pid, &op, channel) < 3
            || slot < 0 || slot >= METRICS_SLOTS) {
            log_warn("event=bus_bad_control message=\"%.80s\"", buf);
            if (passed >= 0) {
                close(passed);
            }
            continue;
        }
        switch (op) {
        case 'R':
            busd_forget_slot(slot);
            if (busd.eventfds[slot] >= 0) {
                close(busd.eventfds[slot]);
            }
            busd.eventfds[slot] = passed;
            if (passed < 0) {
                busd_release_worker((pid_t)pid);
            }
            break;
        case '+':
            busd_need(slot, channel);
            break;
        case '-': {
            struct busd_channel *ch = dict_find(busd.channels, channel);
            if (ch != NULL) {
                busd_release(channel, ch, slot);
            }
            break;
        }
        default:
            log_warn("event=bus_bad_control message=\"%.80s\"", buf);
            break;
        }
        if (op != 'R' && passed >= 0) {
            close(passed);
        }
    }
}

static void busd_on_sweep(evutil_socket_t fd, short what, void *arg)
{
    int64_t now = clock_ms();
    struct dict_iter it;
    const char *name;
    void *value;

    PL_UNUSED(fd);
    PL_UNUSED(what);
    PL_UNUSED(arg);
    dict_iter_init(&it);
    while (dict_next(busd.channels, &it, &name, &value)) {
        struct busd_channel *ch = value;
        if (ch->idle_since_ms != 0 && (now - ch->idle_since_ms >= BUS_IDLE_GRACE_MS
                                       || busd_is_user_channel(name))) {
            busd_drop(name, ch);
        }
    }
}

static void busd_on_sub_state(struct redis_conn *rc, int up, void *arg)
{
    struct dict_iter it;
    const char *name;
    void *value;

    PL_UNUSED(rc);
    PL_UNUSED(arg);
    __atomic_store_n(&busd.zone->state->redis_up, (uint32_t)up, __ATOMIC_RELAXED);
    dict_iter_init(&it);
    while (dict_next(busd.channels, &it, &name, &value)) {
        struct busd_channel *ch = value;
        ch->lost |= ch->confirmed;
        ch->confirmed = 0;
        if (up) {
            busd_subscribe(name);
        }
    }
}

static void busd_heartbeat_send(void)
{
    char ttl[16], info[64];
    const char *set[] = { "SET", busd.instance_key, info, "EX", ttl };
    const char *sadd[] = { "SADD", busd.instances_key, busd.cfg->instance_id };
    const char *reap[] = { busd.instances_key, busd.cfg->redis_prefix, busd.cfg->instance_id };

    snprintf(ttl, sizeof(ttl), "%d", (busd.cfg->instance_ttl_ms + 999) / 1000);
    snprintf(info, sizeof(info), "pid=%ld", (long)getppid());
    if (redis_conn_command(busd.cmd, NULL, NULL, 5, set, NULL) == PL_OK) {
        redis_conn_command(busd.cmd, NULL, NULL, 3, sadd, NULL);
        script_run(busd.cmd, SCRIPT_REAP, NULL, NULL, 1, 3, reap, NULL);
    }
}

static void busd_on_heartbeat(evutil_socket_t fd, short what, void *arg)
{
    PL_UNUSED(fd);
    PL_UNUSED(what);
    PL_UNUSED(arg);
    busd_heartbeat_send();
}

/* An earlier run of this instance that died without taking its presence
 * back (killed, the machine lost) and was started again under the same
 * instance_id keeps its heartbeat alive through us, so no other instance
 * reaps it: take back whatever presence is not this run's. */
static void busd_release_earlier_runs(void)
{
    char run[sizeof(busd.cfg->run_id) + 1];
    const char *argv[] = { busd.presence_key, busd.cfg->redis_prefix, run, "others" };

    snprintf(run, sizeof(run), "%s.", busd.cfg->run_id);
    script_run(busd.cmd, SCRIPT_RELEASE, NULL, NULL, 1, 4, argv, NULL);
}

static void busd_on_cmd_state(struct redis_conn *rc, int up, void *arg)
{
    PL_UNUSED(arg);
    if (up) {
        scripts_load(rc);
        scripts_load_library(rc, busd.cfg->redis_prefix);
        busd_heartbeat_send();
        busd_release_earlier_runs();
    }
}

static void busd_on_released(redisReply *reply, void *arg)
{
    PL_UNUSED(reply);
    PL_UNUSED(arg);
    event_base_loopbreak(busd.base);
}

/* A graceful stop takes this host's presence and heartbeat back at once,
 * instead of leaving them for other instances to reap.  One script, so that
 * being killed halfway cannot forget the instance but keep its presence. */
static void busd_on_sigterm(evutil_socket_t fd, short what, void *arg)
{
    const char *argv[] = { busd.presence_key, busd.instances_key, busd.instance_key,
                           busd.cfg->redis_prefix, busd.cfg->instance_id };

    PL_UNUSED(fd);
    PL_UNUSED(what);
    PL_UNUSED(arg);
    if (busd.stopping) {
        event_base_loopbreak(busd.base);
        return;
    }
    busd.stopping = 1;
    if (script_run(busd.cmd, SCRIPT_RETIRE, busd_on_released, NULL, 3, 5, argv, NULL) != PL_OK) {
        event_base_loopbreak(busd.base);
    }
}

/* Replaced by a new bus (reload): the workers keep their clients, so the
 * host's presence stays as it is. */
static void busd_on_sigquit(evutil_socket_t fd, short what, void *arg)
{
    PL_UNUSED(fd);
    PL_UNUSED(what);
    PL_UNUSED(arg);
    event_base_loopbreak(busd.base);
}

int busd_run(const struct conf *cfg, struct bus_zone *zone)
{
    struct timeval sweep = { BUS_SWEEP_MS / 1000, (BUS_SWEEP_MS % 1000) * 1000 };
    struct timeval beat = { cfg->instance_ttl_ms / 3000, (cfg->instance_ttl_ms / 3 % 1000) * 1000 };
    pid_t master = getppid();
    sigset_t unblock;
    uint32_t epoch;

    log_set_proc("bus");
    prctl(PR_SET_NAME, "parley-bus");
    prctl(PR_SET_PDEATHSIG, SIGTERM);
    if (getppid() != master) {
        return 0;
    }
    memset(&busd, 0, sizeof(busd));
    busd.cfg = cfg;
    busd.zone = zone;
    for (int i = 0; i < METRICS_SLOTS; i++) {
        busd.eventfds[i] = -1;
    }
    key_instance(busd.instance_key, sizeof(busd.instance_key), cfg->redis_prefix, cfg->instance_id);
    key_instance_presence(busd.presence_key, sizeof(busd.presence_key), cfg->redis_prefix, cfg->instance_id);
    key_instances(busd.instances_key, sizeof(busd.instances_key), cfg->redis_prefix);
    scripts_init();

    busd.base = event_base_new();
    busd.channels = dict_create();
    if (busd.base == NULL || busd.channels == NULL) {
        log_error(0, "event=bus_init_failed");
        return 1;
    }
    busd.wake = event_new(busd.base, -1, 0, busd_on_wake, NULL);
    busd.ctl = event_new(busd.base, zone->ctl_bus, EV_READ | EV_PERSIST, busd_on_ctl, NULL);
    busd.sweep = event_new(busd.base, -1, EV_PERSIST, busd_on_sweep, NULL);
    busd.heartbeat = event_new(busd.base, -1, EV_PERSIST, busd_on_heartbeat, NULL);
    busd.sigterm = evsignal_new(busd.base, SIGTERM, busd_on_sigterm, NULL);
    busd.sigquit = evsignal_new(busd.base, SIGQUIT, busd_on_sigquit, NULL);
    event_add(busd.ctl, NULL);
    event_add(busd.sweep, &sweep);
    event_add(busd.heartbeat, &beat);
    event_add(busd.sigterm, NULL);
    event_add(busd.sigquit, NULL);
    sigemptyset(&unblock);
    sigprocmask(SIG_SETMASK, &unblock, NULL);
    signal(SIGINT, SIG_IGN);    /* Ctrl-C reaches the whole group; the master decides */

    busd.sub = redis_conn_new(busd.base, &cfg->redis, "subscriber", cfg->redis_timeout_ms, busd_on_sub_state, NULL);
    busd.cmd = redis_conn_new(busd.base, &cfg->redis, "bus", cfg->redis_timeout_ms, busd_on_cmd_state, NULL);

    /* Workers resend their interests when they read this (the master also
     * nudges them with SIGUSR2 when it respawns the bus). */
    epoch = __atomic_add_fetch(&zone->state->epoch, 1, __ATOMIC_RELAXED);
    __atomic_store_n(&zone->state->pid, getpid(), __ATOMIC_RELAXED);
    busd_push(BUS_REC_HELLO, "", (const char *)&epoch, sizeof(epoch));
    log_info("event=bus_ready epoch=%u instance=%s", epoch, cfg->instance_id);

    event_base_dispatch(busd.base);

    __atomic_store_n(&zone->state->redis_up, 0, __ATOMIC_RELAXED);
    redis_conn_free(busd.sub);
    redis_conn_free(busd.cmd);
    log_info("event=bus_exit");
    return 0;
}
