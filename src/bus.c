/* bus.c - the worker's side of the bus: interests, ring reading, delivery
 * to local subscribers, and catching up rooms after a gap. */
#include "bus.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include <event2/event.h>

#include "dict.h"
#include "event.h"
#include "log.h"
#include "metrics.h"
#include "store.h"
#include "worker_env.h"

#define BUS_RETRY_MS      200       /* resend interests after a full socket */
#define BUS_CATCHUP_RETRY_MS 1000
#define BUS_POLL_MS       1000      /* safety net if a wake-up is ever missed */
#define BUS_QUEUE_MAX     100000    /* live events held while a room catches up */

struct bus_chan {
    TAILQ_HEAD(, bus_sub) subs;
    char *name;                     /* the dict's key */
    char room[PL_NAME_MAX + 2];     /* set for room channels (and private scopes, "~user") */
    int confirmed;
    int delivering;                 /* inside a delivery loop: do not free */
    int needs_catchup;
    int catching_up;
    char last_id[EVENT_ID_MAX];       /* newest stored id delivered (catch-up starts here) */
    struct event_id last_sid;       /* the same, parsed */
    struct bus_event **queue;       /* live events held during a catch-up */
    int nqueue;
    int cap;
};

static struct {
    struct event_base *base;
    const struct conf *cfg;
    struct bus_zone *zone;
    int slot;
    int efd;
    struct bus_ring_reader rd;
    char *buf;
    size_t buflen;
    uint32_t epoch;
    struct dict *chans;
    struct event *ev_wake;
    struct event *ev_poll;
    struct event *ev_retry;
    struct event *ev_ready;
    TAILQ_HEAD(, bus_sub) ready;    /* subs whose on_ready is due */
} bus;

static void bus_catchup_start(struct bus_chan *ch);
static void bus_chan_release_if_unused(struct bus_chan *ch);

/* --- events ------------------------------------------------------------- */

static struct bus_event *bus_event_new(const char *type, const char *id, const char *user,
                                       const char *json, size_t len)
{
    struct bus_event *ev = calloc(1, sizeof(*ev) + len + 1);

    if (ev == NULL) {
        return NULL;
    }
    ev->refs = 1;
    snprintf(ev->type, sizeof(ev->type), "%s", type);
    snprintf(ev->id, sizeof(ev->id), "%s", strcmp(id, "-") == 0 ? "" : id);
    snprintf(ev->user, sizeof(ev->user), "%s", strcmp(user, "-") == 0 ? "" : user);
    memcpy((char *)(ev + 1), json, len);
    ((char *)(ev + 1))[len] = '\0';
    ev->json = (const char *)(ev + 1);
    ev->json_len = len;
    /* Worked out once here, not for every subscriber it goes to. */
    ev->stored = (strcmp(ev->type, "message") == 0 || strcmp(ev->type, "ai_chunk") == 0)
                 && event_id_parse(ev->id, &ev->sid) == 0;
    ev->private_to_others = strcmp(ev->type, "presence") == 0 || strcmp(ev->type, "typing") == 0;
    return ev;
}

struct bus_event *bus_event_parse(const char *payload, size_t len)
{
    const char *nl = memchr(payload, '\n', len);
    char type[16], id[EVENT_ID_MAX], user[PL_NAME_MAX + 1], head[128];
    size_t hlen;

    if (nl == NULL || (hlen = (size_t)(nl - payload)) >= sizeof(head)) {
        log_warn("event=malformed_bus_message bytes=%zu", len);
        return NULL;
    }
    memcpy(head, payload, hlen);
    head[hlen] = '\0';
    if (sscanf(head, "%15s %31s %64s", type, id, user) != 3) {
        log_warn("event=malformed_bus_message header=\"%.60s\"", head);
        return NULL;
    }
    return bus_event_new(type, id, user, nl + 1, len - hlen - 1);
}

void bus_event_ref(struct bus_event *ev)
{
    ev->refs++;
}

int bus_held_push(struct bus_held *h, struct bus_event *ev)
{
    if (h->n == h->cap) {
        int cap = h->cap ? h->cap * 2 : 16;
        struct bus_event **grown = realloc(h->ev, (size_t)cap * sizeof(*grown));
        if (grown == NULL) {
            return PL_ERR;
        }
        h->ev = grown;
        h->cap = cap;
    }
    bus_event_ref(ev);
    h->ev[h->n++] = ev;
    return PL_OK;
}

void bus_held_clear(struct bus_held *h)
{
    for (int i = 0; i < h->n; i++) {
        bus_event_unref(h->ev[i]);
    }
    free(h->ev);
    h->ev = NULL;
    h->n = h->cap = 0;
}

void bus_event_unref(struct bus_event *ev)
{
    if (ev != NULL && --ev->refs == 0) {
        for (int i = 0; i < BUS_CACHE_SLOTS; i++) {
            if (ev->cache[i] != NULL) {
                ev->cache_free[i](ev->cache[i]);
            }
        }
        free(ev);
    }
}

void *bus_event_cache(struct bus_event *ev, int slot, void *(*encode)(struct bus_event *),
                      void (*free_fn)(void *))
{
    if (ev->cache[slot] == NULL) {
        ev->cache[slot] = encode(ev);
        ev->cache_free[slot] = free_fn;
    }
    return ev->cache[slot];
}

int bus_subscriber_up(void)
{
    return bus.zone != NULL && __atomic_load_n(&bus.zone->state->redis_up, __ATOMIC_RELAXED);
}

/* --- interests ---------------------------------------------------------- */

static void bus_schedule_resync(void)
{
    struct timeval tv = { 0, BUS_RETRY_MS * 1000 };

    if (!evtimer_pending(bus.ev_retry, NULL)) {
        evtimer_add(bus.ev_retry, &tv);
    }
}

static void bus_ctl(char op, const char *channel)
{
    if (bus_ctl_send(bus.zone, bus.slot, getpid(), op, channel, op == 'R' ? bus.efd : -1) != PL_OK) {
        bus_schedule_resync();      /* the full state goes again later */
    }
}

void bus_resync(void)
{
    struct dict_iter it;
    const char *name;
    void *value;

    bus_ctl('R', NULL);
    dict_iter_init(&it);
    while (dict_next(bus.chans, &it, &name, &value)) {
        bus_ctl('+', name);
    }
}

static void bus_on_retry(evutil_socket_t fd, short what, void *arg)
{
    PL_UNUSED(fd);
    PL_UNUSED(what);
    PL_UNUSED(arg);
    bus_resync();
}

/* --- subscriptions ------------------------------------------------------ */

static void bus_on_ready_due(evutil_socket_t fd, short what, void *arg)
{
    struct bus_sub *sub;

    PL_UNUSED(fd);
    PL_UNUSED(what);
    PL_UNUSED(arg);
    struct bus_sub *next;

    /* on_ready may add or remove subscribers: restart from the head after
     * each call instead of trusting a saved next pointer. */
    for (sub = TAILQ_FIRST(&bus.ready); sub != NULL; sub = next) {
        next = TAILQ_NEXT(sub, link);
        if (!sub->chan->confirmed) {
            continue;
        }
        TAILQ_REMOVE(&bus.ready, sub, link);
        TAILQ_INSERT_TAIL(&sub->chan->subs, sub, link);
        sub->ready = 1;
        if (sub->on_ready != NULL) {
            sub->on_ready(sub);
        }
        next = TAILQ_FIRST(&bus.ready);
    }
}

static void bus_chan_set_last(struct bus_chan *ch, const char *id)
{
    snprintf(ch->last_id, sizeof(ch->last_id), "%s", id);
    event_id_parse(id, &ch->last_sid);
}

/* A room channel needs a starting point for catching up even before its
 * first message: the stream's newest id when the subscription went live. */
static void bus_on_start_id(enum store_status st, const char *id, void *arg)
{
    char *channel = arg;
    struct bus_chan *ch = dict_find(bus.chans, channel);

    if (st == STORE_OK && ch != NULL && ch->last_id[0] == '\0') {
        bus_chan_set_last(ch, id[0] ? id : "0-0");
    }
    free(channel);
}

/* Subscribers wait on bus.ready until their channel is confirmed; the call
 * comes from the loop, never from inside the caller of bus_sub_add. */
static void bus_chan_confirm(struct bus_chan *ch)
{
    struct bus_sub *sub, *next;
    char *channel;

    ch->confirmed = 1;
    if (ch->room[0] != '\0' && ch->last_id[0] == '\0' && (channel = strdup(ch->name)) != NULL
        && store_last_id(ch->room, bus_on_start_id, channel) != PL_OK) {
        free(channel);
    }
    for (sub = TAILQ_FIRST(&bus.ready); sub != NULL; sub = next) {
        next = TAILQ_NEXT(sub, link);
        if (sub->chan == ch) {
            event_active(bus.ev_ready, EV_TIMEOUT, 0);
        }
    }
    if (ch->needs_catchup) {
        bus_catchup_start(ch);
    }
}

static struct bus_chan *bus_chan_get(const char *channel)
{
    struct bus_chan *ch = dict_find(bus.chans, channel);
    const char *room_prefix;
    size_t plen;

    if (ch != NULL) {
        return ch;
    }
    ch = calloc(1, sizeof(*ch));
    if (ch == NULL || dict_add(bus.chans, channel, ch) != PL_OK) {
        free(ch);
        return NULL;
    }
    TAILQ_INIT(&ch->subs);
    ch->name = strdup(channel);
    room_prefix = bus.cfg->redis_prefix;
    plen = strlen(room_prefix);
    if (strncmp(channel, room_prefix, plen) == 0 && strncmp(channel + plen, "room:", 5) == 0) {
        snprintf(ch->room, sizeof(ch->room), "%s", channel + plen + 5);
    }
    bus_ctl('+', channel);
    return ch;
}

int bus_sub_add(struct bus_sub *sub, const char *channel)
{
    struct bus_chan *ch = bus_chan_get(channel);

    if (ch == NULL) {
        return PL_ERR;
    }
    sub->chan = ch;
    sub->ready = 0;
    TAILQ_INSERT_TAIL(&bus.ready, sub, link);
    if (ch->confirmed) {
        event_active(bus.ev_ready, EV_TIMEOUT, 0);
    }
    return PL_OK;
}

static int bus_chan_unused(const struct bus_chan *ch)
{
    const struct bus_sub *sub;

    if (!TAILQ_EMPTY(&ch->subs)) {
        return 0;
    }
    TAILQ_FOREACH(sub, &bus.ready, link) {
        if (sub->chan == ch) {
            return 0;
        }
    }
    return 1;
}

static void bus_chan_free(struct bus_chan *ch)
{
    for (int i = 0; i < ch->nqueue; i++) {
        bus_event_unref(ch->queue[i]);
    }
    free(ch->queue);
    free(ch->name);
    free(ch);
}

void bus_sub_remove(struct bus_sub *sub)
{
    struct bus_chan *ch = sub->chan;

    if (ch == NULL) {
        return;
    }
    if (sub->ready) {
        TAILQ_REMOVE(&ch->subs, sub, link);
    } else {
        TAILQ_REMOVE(&bus.ready, sub, link);
    }
    sub->chan = NULL;
    bus_chan_release_if_unused(ch);
}

/* --- delivery ----------------------------------------------------------- */

static void bus_chan_release_if_unused(struct bus_chan *ch)
{
    if (!ch->delivering && bus_chan_unused(ch)) {
        bus_ctl('-', ch->name);
        dict_delete(bus.chans, ch->name);
        bus_chan_free(ch);
    }
}

static void bus_deliver(struct bus_chan *ch, struct bus_event *ev)
{
    struct bus_sub *sub, *next;
    int outer = ch->delivering;

    if (ev->stored) {
        if (ch->last_id[0] != '\0' && event_id_order(&ev->sid, &ch->last_sid) <= 0) {
            return;                 /* already delivered (catch-up overlap) */
        }
        bus_chan_set_last(ch, ev->id);
    }
    ch->delivering = 1;
    for (sub = TAILQ_FIRST(&ch->subs); sub != NULL; sub = next) {
        next = TAILQ_NEXT(sub, link);
        sub->on_event(sub, ev);
    }
    ch->delivering = outer;
    bus_chan_release_if_unused(ch);
}

static void bus_queue(struct bus_chan *ch, struct bus_event *ev)
{
    if (ch->nqueue == ch->cap) {
        int cap = ch->cap ? ch->cap * 2 : 64;
        struct bus_event **q = cap <= BUS_QUEUE_MAX ? realloc(ch->queue, (size_t)cap * sizeof(*q)) : NULL;
        if (q == NULL) {
            log_warn("event=catchup_queue_full channel=%s", ch->name);
            return;
        }
        ch->queue = q;
        ch->cap = cap;
    }
    bus_event_ref(ev);
    ch->queue[ch->nqueue++] = ev;
}

struct bus_catchup {
    char channel[256];
};

static void bus_catchup_retry(evutil_socket_t fd, short what, void *arg);

static void bus_on_catchup(enum store_status st, const struct store_events *evs, void *arg)
{
    struct bus_catchup *cu = arg;
    struct bus_chan *ch = dict_find(bus.chans, cu->channel);
    struct timeval tv = { BUS_CATCHUP_RETRY_MS / 1000, 0 };

    if (ch == NULL) {
        free(cu);
        return;                     /* everybody left meanwhile */
    }
    if (st != STORE_OK) {
        event_base_once(bus.base, -1, EV_TIMEOUT, bus_catchup_retry, cu, &tv);
        return;
    }
    free(cu);
    log_info("event=room_caught_up room=%s recovered=%d held=%d", ch->room, evs->count, ch->nqueue);
    ch->delivering = 1;             /* the channel must outlive both loops */
    for (int i = 0; i < evs->count; i++) {
        struct bus_event *ev = bus_event_new(evs->items[i].type, evs->items[i].id, "-",
                                             evs->items[i].json, evs->items[i].len);
        if (ev != NULL) {
            bus_deliver(ch, ev);
            bus_event_unref(ev);
        }
    }
    ch->catching_up = 0;
    for (int i = 0; i < ch->nqueue; i++) {
        bus_deliver(ch, ch->queue[i]);
        bus_event_unref(ch->queue[i]);
    }
    ch->nqueue = 0;
    ch->delivering = 0;
    bus_chan_release_if_unused(ch);
}

static void bus_catchup_send(struct bus_catchup *cu)
{
    struct bus_chan *ch = dict_find(bus.chans, cu->channel);
    struct timeval tv = { BUS_CATCHUP_RETRY_MS / 1000, 0 };

    if (ch == NULL) {
        free(cu);
        return;
    }
    if (store_history(ch->room, ch->last_id, NULL, bus.cfg->history_length, 1, bus_on_catchup, cu) != PL_OK) {
        event_base_once(bus.base, -1, EV_TIMEOUT, bus_catchup_retry, cu, &tv);
    }
}

static void bus_catchup_retry(evutil_socket_t fd, short what, void *arg)
{
    PL_UNUSED(fd);
    PL_UNUSED(what);
    bus_catchup_send(arg);
}

/* A user's channel keeps nothing to catch up from, but a gap in it may have
 * swallowed a "revoked" event: its subscribers check their sessions as if
 * one had come. */
static void bus_user_gap(struct bus_chan *ch)
{
    static const char revoked[] = "{\"type\":\"revoked\"}";
    struct bus_event *ev = bus_event_new("revoked", "-", "-", revoked, sizeof(revoked) - 1);

    if (ev != NULL) {
        bus_deliver(ch, ev);
        bus_event_unref(ev);
    }
}

/* Re-reads a room's stream after its last delivered id, holding live events
 * meanwhile, so a gap in the ring costs no stored message. */
static void bus_catchup_start(struct bus_chan *ch)
{
    struct bus_catchup *cu;

    ch->needs_catchup = 0;
    if (ch->room[0] == '\0') {
        bus_user_gap(ch);
        return;
    }
    if (ch->last_id[0] == '\0' || ch->catching_up) {
        return;                     /* nothing delivered yet: nothing to miss */
    }
    cu = calloc(1, sizeof(*cu));
    if (cu == NULL) {
        return;
    }
    snprintf(cu->channel, sizeof(cu->channel), "%s", ch->name);
    ch->catching_up = 1;
    bus_catchup_send(cu);
}

static void bus_mark_gap(int resubscribing)
{
    struct dict_iter it;
    const char *name;
    void *value;

    dict_iter_init(&it);
    while (dict_next(bus.chans, &it, &name, &value)) {
        struct bus_chan *ch = value;
        if (resubscribing) {
            ch->confirmed = 0;
            ch->needs_catchup = 1;  /* once the new bus confirms */
        } else {
            bus_catchup_start(ch);
        }
    }
}

static void bus_on_record(uint32_t type, char *data, size_t len)
{
    struct bus_chan *ch;
    struct bus_event *ev;
    size_t clen;
    uint32_t epoch;

    switch (type) {
    case BUS_REC_EVENT:
        clen = strnlen(data, len);
        if (clen == len || (ch = dict_find(bus.chans, data)) == NULL) {
            return;                 /* for another worker */
        }
        ev = bus_event_parse(data + clen + 1, len - clen - 1);
        if (ev == NULL) {
            return;
        }
        if (ch->catching_up) {
            bus_queue(ch, ev);
        } else {
            bus_deliver(ch, ev);
        }
        bus_event_unref(ev);
        break;
    case BUS_REC_SUBSCRIBED:
        data[len] = '\0';
        ch = dict_find(bus.chans, data);
        if (ch != NULL && !ch->confirmed) {
            bus_chan_confirm(ch);
        }
        break;
    case BUS_REC_GAP:
        data[len] = '\0';
        ch = dict_find(bus.chans, data);
        if (ch != NULL) {
            bus_catchup_start(ch);
        }
        break;
    case BUS_REC_HELLO:
        if (len == sizeof(epoch)) {
            memcpy(&epoch, data, sizeof(epoch));
            if (epoch != bus.epoch) {
                bus.epoch = epoch;
                log_info("event=bus_restarted epoch=%u", epoch);
                bus_mark_gap(1);
                bus_resync();
            }
        }
        break;
    default:
        break;
    }
}

static void bus_drain(void)
{
    static struct log_every overrun_log;
    uint32_t type;
    size_t len;
    unsigned times;
    int rc;

    while ((rc = bus_ring_read(bus.zone->ring, &bus.rd, &type, bus.buf, bus.buflen - 1, &len)) != PL_AGAIN) {
        if (rc == BUS_RING_OVERRUN) {
            if (log_every_due(&overrun_log, &times)) {
                log_warn("event=bus_overrun action=catch_up rooms=%zu times=%u", dict_size(bus.chans), times);
            }
            metrics_add(METRIC_BUS_OVERRUNS, 1);
            bus_mark_gap(0);
            continue;
        }
        if (rc != PL_OK) {
            break;
        }
        bus_on_record(type, bus.buf, len);
    }
}

static void bus_on_wake(evutil_socket_t fd, short what, void *arg)
{
    uint64_t n;

    PL_UNUSED(what);
    PL_UNUSED(arg);
    if (fd >= 0 && read(fd, &n, sizeof(n)) < 0 && errno != EAGAIN) {
        log_error(errno, "event=bus_wake_read_failed");
    }
    bus_drain();
}

int bus_init(const struct worker_env *w)
{
    struct timeval poll = { BUS_POLL_MS / 1000, 0 };
    struct event_base *base = w->base;
    struct bus_zone *zone = w->bus;

    memset(&bus, 0, sizeof(bus));
    bus.base = base;
    bus.cfg = w->cfg;
    bus.zone = zone;
    bus.slot = w->slot;
    TAILQ_INIT(&bus.ready);
    bus.buflen = bus_ring_max_record(zone->ring) + 1;
    bus.buf = malloc(bus.buflen);
    bus.chans = dict_create();
    bus.efd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
    if (bus.buf == NULL || bus.chans == NULL || bus.efd < 0) {
        log_error(errno, "event=bus_init_failed");
        return PL_ERR;
    }
    bus_ring_reader_init(zone->ring, &bus.rd);
    bus.epoch = __atomic_load_n(&zone->state->epoch, __ATOMIC_RELAXED);
    bus.ev_wake = event_new(base, bus.efd, EV_READ | EV_PERSIST, bus_on_wake, NULL);
    bus.ev_poll = event_new(base, -1, EV_PERSIST, bus_on_wake, NULL);
    bus.ev_retry = evtimer_new(base, bus_on_retry, NULL);
    bus.ev_ready = event_new(base, -1, 0, bus_on_ready_due, NULL);
    event_add(bus.ev_wake, NULL);
    event_add(bus.ev_poll, &poll);
    bus_resync();
    return PL_OK;
}

void bus_shutdown(void)
{
    struct dict_iter it;
    const char *name;
    void *value;

    if (bus.chans == NULL) {
        return;
    }
    dict_iter_init(&it);
    while (dict_next(bus.chans, &it, &name, &value)) {
        bus_chan_free(value);
    }
    event_free(bus.ev_wake);
    event_free(bus.ev_poll);
    event_free(bus.ev_retry);
    event_free(bus.ev_ready);
    dict_free(bus.chans);
    free(bus.buf);
    close(bus.efd);
    bus.chans = NULL;
}
