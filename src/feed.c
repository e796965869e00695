/* feed.c - a room's events and a user's, joined without a gap, for every
 * transport. */
#include "feed.h"

#include <stdio.h>
#include <string.h>

#include <event2/event.h>

#include "chunk.h"
#include "clock.h"
#include "presence.h"
#include "store.h"
#include "worker_env.h"

_Static_assert(FEED_SLOTS <= BUS_CACHE_SLOTS, "a cache slot per transport");

static struct {
    const struct conf *cfg;
    LIST_HEAD(, feed) all;
    struct event *sweep;
} feeds;

/* The feed is over for its client: the transport says goodbye (and closes
 * the feed) - once. */
static void feed_end(struct feed *f, enum feed_end why)
{
    if (f->st == FEED_ENDED) {
        return;
    }
    f->st = FEED_ENDED;
    f->ops->end(f, why);
}

void feed_revoked(struct feed *f)
{
    feed_end(f, FEED_REVOKED);
}

static void feed_deliver(struct feed *f, struct bus_event *ev)
{
    if (!bus_event_for(ev, f->who.user)) {
        return;                 /* nobody gets their own presence or typing */
    }
    if (ev->stored) {
        if (event_id_order(&ev->sid, &f->last) <= 0) {
            return;             /* the client has it already (history) */
        }
        f->last = ev->sid;
    }
    f->ops->deliver(f, bus_event_cache(ev, f->ops->slot, f->ops->encode, f->ops->free_encoded), ev);
}

static void feed_on_event(struct feed *f, struct bus_event *ev)
{
    if (f->st == FEED_LIVE) {
        feed_deliver(f, ev);
    } else if (f->st != FEED_ENDED && bus_held_push(&f->held, ev) != PL_OK) {
        feed_end(f, FEED_NO_MEMORY);    /* rather than a silent gap */
    }
}

static void feed_on_rechecked(enum auth_verdict v, void *arg)
{
    struct feed *f = arg;

    if (!f->ops->unpin(f)) {
        return;                 /* the client is gone */
    }
    if (v == AUTH_REVOKED) {
        feed_end(f, FEED_REVOKED);
    } else if (v == AUTH_UNANSWERED) {
        f->recheck_due = 1;     /* the sweep asks again once Redis is back */
    }
}

/* Asks whether the session still exists (nothing to ask for a JWT).  A
 * question Redis cannot take now is asked again by the sweep: a session
 * lost with a Redis restart must still end its connections. */
static void feed_recheck(struct feed *f)
{
    if (f->st == FEED_ENDED || f->who.session[0] == '\0') {
        return;
    }
    if (auth_recheck(&f->who, feed_on_rechecked, f) == PL_OK) {
        f->ops->pin(f);
    } else {
        f->recheck_due = 1;
    }
}

static void feed_on_room_event(struct bus_sub *sub, struct bus_event *ev)
{
    feed_on_event(PL_CONTAINER_OF(sub, struct feed, room_sub), ev);
}

static void feed_on_user_event(struct bus_sub *sub, struct bus_event *ev)
{
    struct feed *f = PL_CONTAINER_OF(sub, struct feed, user_sub);

    if (strcmp(ev->type, "revoked") == 0) {
        feed_recheck(f);        /* a control event, never shown */
        return;
    }
    feed_on_event(f, ev);
}

/* Both channels are subscribed: from now on nothing published is missed,
 * so this is the moment to count the user in and read what came before. */
static void feed_on_ready(struct feed *f)
{
    if (!f->room_sub.ready || !f->user_sub.ready || f->st != FEED_JOINING) {
        return;
    }
    f->st = FEED_CUTTING;
    presence_join(f->room, f->who.user);
    f->joined = 1;
    /* A revocation published before the user's channel was subscribed
     * never came: ask once now. */
    feed_recheck(f);
    f->ops->ready(f);
}

static void feed_on_room_ready(struct bus_sub *sub)
{
    feed_on_ready(PL_CONTAINER_OF(sub, struct feed, room_sub));
}

static void feed_on_user_ready(struct bus_sub *sub)
{
    feed_on_ready(PL_CONTAINER_OF(sub, struct feed, user_sub));
}

int feed_open(struct feed *f, const struct feed_ops *ops, const struct auth_identity *who, const char *room)
{
    char channel[256];

    memset(f, 0, sizeof(*f));
    f->ops = ops;
    f->who = *who;
    snprintf(f->room, sizeof(f->room), "%s", room);
    f->opened_ms = clock_coarse_ms();
    f->room_sub.on_event = feed_on_room_event;
    f->room_sub.on_ready = feed_on_room_ready;
    f->user_sub.on_event = feed_on_user_event;
    f->user_sub.on_ready = feed_on_user_ready;
    if (bus_sub_add(&f->room_sub, store_room_channel(room, channel, sizeof(channel))) != PL_OK) {
        return PL_ERR;
    }
    if (bus_sub_add(&f->user_sub, store_user_channel(who->user, channel, sizeof(channel))) != PL_OK) {
        bus_sub_remove(&f->room_sub);
        return PL_ERR;
    }
    LIST_INSERT_HEAD(&feeds.all, f, link);
    f->listed = 1;
    return PL_OK;
}

void feed_mark(struct feed *f, const struct event_id *sid)
{
    if (event_id_order(sid, &f->last) > 0) {
        f->last = *sid;
    }
}

void feed_go_live(struct feed *f)
{
    if (f->st != FEED_CUTTING) {
        return;
    }
    f->st = FEED_LIVE;
    for (int i = 0; i < f->held.n && f->st == FEED_LIVE; i++) {
        if (f->ops->still_news == NULL || f->ops->still_news(f, f->held.ev[i])) {
            feed_deliver(f, f->held.ev[i]);
        }
    }
    bus_held_clear(&f->held);
}

void feed_close(struct feed *f)
{
    if (!f->listed) {
        return;                 /* never opened, or closed already */
    }
    f->listed = 0;
    LIST_REMOVE(f, link);
    bus_sub_remove(&f->room_sub);
    bus_sub_remove(&f->user_sub);
    if (f->joined) {
        presence_leave(f->room, f->who.user);
        f->joined = 0;
    }
    bus_held_clear(&f->held);
    f->st = FEED_ENDED;         /* its pins still come back (ops->unpin) */
}

/* Once a second: tokens that have run out, feeds that could not be joined
 * in time (Redis down or not answering) rather than left waiting, and
 * session checks Redis could not answer, asked again. */
static void feed_on_sweep(evutil_socket_t fd, short what, void *arg)
{
    int64_t now = clock_coarse_ms(), wall = clock_wall_ms() / 1000;
    struct feed *f, *next;

    PL_UNUSED(fd);
    PL_UNUSED(what);
    PL_UNUSED(arg);
    for (f = LIST_FIRST(&feeds.all); f != NULL; f = next) {
        next = LIST_NEXT(f, link);
        if (f->who.expires != 0 && wall >= f->who.expires) {
            feed_end(f, FEED_EXPIRED);
        } else if (f->st != FEED_LIVE && now - f->opened_ms > 2 * feeds.cfg->redis_timeout_ms) {
            feed_end(f, FEED_UNAVAILABLE);
        } else if (f->recheck_due && store_is_up()) {
            f->recheck_due = 0;
            feed_recheck(f);
        }
    }
}

int feed_init(const struct worker_env *w)
{
    struct timeval tick = { 1, 0 };

    feeds.cfg = w->cfg;
    LIST_INIT(&feeds.all);
    feeds.sweep = event_new(w->base, -1, EV_PERSIST, feed_on_sweep, NULL);
    return feeds.sweep != NULL && event_add(feeds.sweep, &tick) == 0 ? PL_OK : PL_ERR;
}
