/* bus_redis.c - the bus process: Redis pub/sub into the shared ring. */
#include "bus_redis.h"

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

struct bus_channel {
    uint64_t slots[BUS_MASK_WORDS]; /* workers that need it */
    int64_t idle_since_ms;          /* 0 while needed */
    int confirmed;                  /* Redis acknowledged our SUBSCRIBE */
    int lost;                       /* was confirmed when the connection dropped */
};

struct bus {
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

static struct bus bus;

static int bus_mask_empty(const struct bus_channel *ch)
{
    for (int i = 0; i < BUS_MASK_WORDS; i++) {
        if (ch->slots[i] != 0) {
            return 0;
        }
    }
    return 1;
}

static void bus_push(uint32_t type, const char *channel, const char *data, size_t len)
{
    struct iovec iov[2] = {
        { (void *)channel, strlen(channel) + (type == BUS_REC_EVENT) },    /* EVENT keeps the NUL */
        { (void *)data, len },
    };

    if (bus_ring_push(bus.zone->ring, type, iov, data ? 2 : 1) != PL_OK) {
        log_warn("event=bus_record_too_large channel=%s bytes=%zu", channel, len);
        return;
    }
    if (!bus.wake_pending) {
        bus.wake_pending = 1;
        event_active(bus.wake, EV_TIMEOUT, 0);
    }
}

/* Runs once per loop pass after records were appended: one wake-up per
 * worker however many records this pass brought. */
static void bus_on_wake(evutil_socket_t fd, short what, void *arg)
{
    uint64_t one = 1;

    PL_UNUSED(fd);
    PL_UNUSED(what);
    PL_UNUSED(arg);
    bus.wake_pending = 0;
    for (int i = 0; i < METRICS_SLOTS; i++) {
        if (bus.eventfds[i] >= 0 && write(bus.eventfds[i], &one, sizeof(one)) < 0 && errno != EAGAIN) {
            log_error(errno, "event=bus_wake_failed slot=%d", i);
        }
    }
}

static void bus_on_push(redisReply *reply, void *arg)
{
    struct bus_channel *ch;
    const char *kind;

    PL_UNUSED(arg);
    if (reply == NULL || reply->type != REDIS_REPLY_ARRAY || reply->elements < 3
        || reply->element[0]->type != REDIS_REPLY_STRING || reply->element[1]->type != REDIS_REPLY_STRING) {
        return;                 /* connection lost: the state callback handles it */
    }
    kind = reply->element[0]->str;
    if (strcmp(kind, "message") == 0 && reply->element[2]->type == REDIS_REPLY_STRING) {
        bus_push(BUS_REC_EVENT, reply->element[1]->str, reply->element[2]->str, reply->element[2]->len);
    } else if (strcmp(kind, "subscribe") == 0) {
        ch = dict_find(bus.channels, reply->element[1]->str);
        if (ch != NULL) {
            ch->confirmed = 1;
            bus_push(BUS_REC_SUBSCRIBED, reply->element[1]->str, NULL, 0);
            if (ch->lost) {
                /* Messages published while we were not subscribed are in
                 * the rooms' streams: tell the workers to read them. */
                ch->lost = 0;
                bus_push(BUS_REC_GAP, reply->element[1]->str, NULL, 0);
            }
        }
    }
}

static void bus_subscribe(const char *name)
{
    if (redis_conn_pubsub(bus.sub, "SUBSCRIBE", name, bus_on_push, NULL) != PL_OK) {
        log_debug("event=bus_subscribe_deferred channel=%s", name);     /* done on reconnect */
    }
}

static void bus_need(int slot, const char *name)
{
    struct bus_channel *ch = dict_find(bus.channels, name);

    if (ch == NULL) {
        ch = calloc(1, sizeof(*ch));
        if (ch == NULL || dict_add(bus.channels, name, ch) != PL_OK) {
            free(ch);
            log_error(0, "event=bus_out_of_memory channel=%s", name);
            return;
        }
        bus_subscribe(name);
    } else if (ch->confirmed) {
        bus_push(BUS_REC_SUBSCRIBED, name, NULL, 0);    /* the newcomer waits for it */
    }
    ch->slots[slot / 64] |= 1ULL << (slot % 64);
    ch->idle_since_ms = 0;
}

static int bus_is_user_channel(const char *name)
{
    size_t plen = strlen(bus.cfg->redis_prefix);
    return strncmp(name, bus.cfg->redis_prefix, plen) == 0 && strncmp(name + plen, "user:", 5) == 0;
}

/* Drops our subscription to NAME; only once Redis confirmed it, so that an
 * UNSUBSCRIBE never overtakes the SUBSCRIBE it undoes. */
static int bus_drop(const char *name, struct bus_channel *ch)
{
    if (!ch->confirmed && redis_conn_is_up(bus.sub)) {
        return 0;
    }
    if (redis_conn_is_up(bus.sub)) {
        redis_conn_pubsub(bus.sub, "UNSUBSCRIBE", name, bus_on_push, NULL);
    }
    free(dict_delete(bus.channels, name));
    return 1;
}

static void bus_release(const char *name, struct bus_channel *ch, int slot)
{
    ch->slots[slot / 64] &= ~(1ULL << (slot % 64));
    if (ch->idle_since_ms != 0 || !bus_mask_empty(ch)) {
        return;
    }
    /* A user's channel goes at once: PUBLISH counts its subscribers to tell
     * a sender that the user is offline.  Rooms linger a little, so people
     * leaving and rejoining do not churn subscriptions. */
    if (!bus_is_user_channel(name) || !bus_drop(name, ch)) {
        ch->idle_since_ms = clock_ms();
    }
}

static void bus_forget_slot(int slot)
{
    struct dict_iter it;
    const char *name;
    void *value;

    dict_iter_init(&it);
    while (dict_next(bus.channels, &it, &name, &value)) {
        bus_release(name, value, slot);
    }
}

/* A worker is gone for good: take back the presence it held. */
static void bus_release_worker(pid_t pid)
{
    char owner[64];
    const char *argv[] = { bus.presence_key, bus.cfg->redis_prefix, owner };

    snprintf(owner, sizeof(owner), "%s.%ld|", bus.cfg->run_id, (long)pid);
    if (script_run(bus.cmd, SCRIPT_RELEASE, NULL, NULL, 1, 3, argv, NULL) != PL_OK) {
        /* Redis is down: the entries stay until this instance stops or is
         * reaped; a later reap of a dead instance covers them. */
        log_warn("event=presence_release_deferred pid=%ld", (long)pid);
    }
}

static void bus_on_ctl(evutil_socket_t fd, short what, void *arg)
{
    char buf[BUS_CTL_MAX], op, channel[BUS_CTL_MAX];
    int slot, passed;
    long pid;

    PL_UNUSED(fd);
    PL_UNUSED(what);
    PL_UNUSED(arg);
    while (bus_ctl_recv(bus.zone, buf, &passed) >= 0) {
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
            bus_forget_slot(slot);
            if (bus.eventfds[slot] >= 0) {
                close(bus.eventfds[slot]);
            }
            bus.eventfds[slot] = passed;
            if (passed < 0) {
                bus_release_worker((pid_t)pid);
            }
            break;
        case '+':
            bus_need(slot, channel);
            break;
        case '-': {
            struct bus_channel *ch = dict_find(bus.channels, channel);
            if (ch != NULL) {
                bus_release(channel, ch, slot);
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

static void bus_on_sweep(evutil_socket_t fd, short what, void *arg)
{
    int64_t now = clock_ms();
    struct dict_iter it;
    const char *name;
    void *value;

    PL_UNUSED(fd);
    PL_UNUSED(what);
    PL_UNUSED(arg);
    dict_iter_init(&it);
    while (dict_next(bus.channels, &it, &name, &value)) {
        struct bus_channel *ch = value;
        if (ch->idle_since_ms != 0 && (now - ch->idle_since_ms >= BUS_IDLE_GRACE_MS
                                       || bus_is_user_channel(name))) {
            bus_drop(name, ch);
        }
    }
}

static void bus_on_sub_state(struct redis_conn *rc, int up, void *arg)
{
    struct dict_iter it;
    const char *name;
    void *value;

    PL_UNUSED(rc);
    PL_UNUSED(arg);
    __atomic_store_n(&bus.zone->state->redis_up, (uint32_t)up, __ATOMIC_RELAXED);
    dict_iter_init(&it);
    while (dict_next(bus.channels, &it, &name, &value)) {
        struct bus_channel *ch = value;
        ch->lost |= ch->confirmed;
        ch->confirmed = 0;
        if (up) {
            bus_subscribe(name);
        }
    }
}

static void bus_heartbeat_send(void)
{
    char ttl[16], info[64];
    const char *set[] = { "SET", bus.instance_key, info, "EX", ttl };
    const char *sadd[] = { "SADD", bus.instances_key, bus.cfg->instance_id };
    const char *reap[] = { bus.instances_key, bus.cfg->redis_prefix, bus.cfg->instance_id };

    snprintf(ttl, sizeof(ttl), "%d", (bus.cfg->instance_ttl_ms + 999) / 1000);
    snprintf(info, sizeof(info), "pid=%ld", (long)getppid());
    if (redis_conn_command(bus.cmd, NULL, NULL, 5, set, NULL) == PL_OK) {
        redis_conn_command(bus.cmd, NULL, NULL, 3, sadd, NULL);
        script_run(bus.cmd, SCRIPT_REAP, NULL, NULL, 1, 3, reap, NULL);
    }
}

static void bus_on_heartbeat(evutil_socket_t fd, short what, void *arg)
{
    PL_UNUSED(fd);
    PL_UNUSED(what);
    PL_UNUSED(arg);
    bus_heartbeat_send();
}

/* An earlier run of this instance that died without taking its presence
 * back (killed, the machine lost) and was started again under the same
 * instance_id keeps its heartbeat alive through us, so no other instance
 * reaps it: take back whatever presence is not this run's. */
static void bus_release_earlier_runs(void)
{
    char run[sizeof(bus.cfg->run_id) + 1];
    const char *argv[] = { bus.presence_key, bus.cfg->redis_prefix, run, "others" };

    snprintf(run, sizeof(run), "%s.", bus.cfg->run_id);
    script_run(bus.cmd, SCRIPT_RELEASE, NULL, NULL, 1, 4, argv, NULL);
}

static void bus_on_cmd_state(struct redis_conn *rc, int up, void *arg)
{
    PL_UNUSED(arg);
    if (up) {
        scripts_load(rc);
        scripts_load_library(rc, bus.cfg->redis_prefix);
        bus_heartbeat_send();
        bus_release_earlier_runs();
    }
}

static void bus_on_released(redisReply *reply, void *arg)
{
    PL_UNUSED(reply);
    PL_UNUSED(arg);
    event_base_loopbreak(bus.base);
}

/* A graceful stop takes this host's presence and heartbeat back at once,
 * instead of leaving them for other instances to reap.  One script, so that
 * being killed halfway cannot forget the instance but keep its presence. */
static void bus_on_sigterm(evutil_socket_t fd, short what, void *arg)
{
    const char *argv[] = { bus.presence_key, bus.instances_key, bus.instance_key,
                           bus.cfg->redis_prefix, bus.cfg->instance_id };

    PL_UNUSED(fd);
    PL_UNUSED(what);
    PL_UNUSED(arg);
    if (bus.stopping) {
        event_base_loopbreak(bus.base);
        return;
    }
    bus.stopping = 1;
    if (script_run(bus.cmd, SCRIPT_RETIRE, bus_on_released, NULL, 3, 5, argv, NULL) != PL_OK) {
        event_base_loopbreak(bus.base);
    }
}

/* Replaced by a new bus (reload): the workers keep their clients, so the
 * host's presence stays as it is. */
static void bus_on_sigquit(evutil_socket_t fd, short what, void *arg)
{
    PL_UNUSED(fd);
    PL_UNUSED(what);
    PL_UNUSED(arg);
    event_base_loopbreak(bus.base);
}

int bus_redis_run(const struct conf *cfg, struct bus_zone *zone)
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
    memset(&bus, 0, sizeof(bus));
    bus.cfg = cfg;
    bus.zone = zone;
    for (int i = 0; i < METRICS_SLOTS; i++) {
        bus.eventfds[i] = -1;
    }
    key_instance(bus.instance_key, sizeof(bus.instance_key), cfg->redis_prefix, cfg->instance_id);
    key_instance_presence(bus.presence_key, sizeof(bus.presence_key), cfg->redis_prefix, cfg->instance_id);
    key_instances(bus.instances_key, sizeof(bus.instances_key), cfg->redis_prefix);
    scripts_init();

    bus.base = event_base_new();
    bus.channels = dict_create();
    if (bus.base == NULL || bus.channels == NULL) {
        log_error(0, "event=bus_init_failed");
        return 1;
    }
    bus.wake = event_new(bus.base, -1, 0, bus_on_wake, NULL);
    bus.ctl = event_new(bus.base, zone->ctl_bus, EV_READ | EV_PERSIST, bus_on_ctl, NULL);
    bus.sweep = event_new(bus.base, -1, EV_PERSIST, bus_on_sweep, NULL);
    bus.heartbeat = event_new(bus.base, -1, EV_PERSIST, bus_on_heartbeat, NULL);
    bus.sigterm = evsignal_new(bus.base, SIGTERM, bus_on_sigterm, NULL);
    bus.sigquit = evsignal_new(bus.base, SIGQUIT, bus_on_sigquit, NULL);
    event_add(bus.ctl, NULL);
    event_add(bus.sweep, &sweep);
    event_add(bus.heartbeat, &beat);
    event_add(bus.sigterm, NULL);
    event_add(bus.sigquit, NULL);
    sigemptyset(&unblock);
    sigprocmask(SIG_SETMASK, &unblock, NULL);
    signal(SIGINT, SIG_IGN);    /* Ctrl-C reaches the whole group; the master decides */

    bus.sub = redis_conn_new(bus.base, &cfg->redis, "subscriber", cfg->redis_timeout_ms, bus_on_sub_state, NULL);
    bus.cmd = redis_conn_new(bus.base, &cfg->redis, "bus", cfg->redis_timeout_ms, bus_on_cmd_state, NULL);

    /* Workers resend their interests when they read this (the master also
     * nudges them with SIGUSR2 when it respawns the bus). */
    epoch = __atomic_add_fetch(&zone->state->epoch, 1, __ATOMIC_RELAXED);
    __atomic_store_n(&zone->state->pid, getpid(), __ATOMIC_RELAXED);
    bus_push(BUS_REC_HELLO, "", (const char *)&epoch, sizeof(epoch));
    log_info("event=bus_ready epoch=%u instance=%s", epoch, cfg->instance_id);

    event_base_dispatch(bus.base);

    __atomic_store_n(&zone->state->redis_up, 0, __ATOMIC_RELAXED);
    redis_conn_free(bus.sub);
    redis_conn_free(bus.cmd);
    log_info("event=bus_exit");
    return 0;
}
