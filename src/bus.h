/* bus.h - publish and subscribe, as seen by the code that serves clients.
 *
 * Inside a worker, a client that wants a room's (or a user's) events adds a
 * bus_sub for that channel.  The worker tells the bus process which channels
 * it needs, reads the shared ring when woken, and hands every event to each
 * local subscriber of its channel: one bus_event, parsed once per worker and
 * shared by reference, so a transport can also encode it once (see
 * bus_event_cache) and send the same bytes to all its clients.
 *
 * A subscription is ready when Redis has confirmed it: from then on nothing
 * published on the channel is missed, which is what makes "read history,
 * then go live" gap-free.  If the worker falls behind the ring, or the bus
 * restarts, room channels are caught up from the room's stream, so stored
 * messages are never lost silently; live-only events in the gap are. */
#ifndef PARLEY_BUS_H
#define PARLEY_BUS_H

#include <stddef.h>
#include <string.h>
#include <sys/queue.h>

#include "bus_zone.h"
#include "conf.h"
#include "event.h"
#include "parley.h"

struct worker_env;

struct event_base;
struct bus_chan;

#define BUS_CACHE_SLOTS 2       /* one encoded form per transport */

/* One event from the ring, shared by all local subscribers.  Keep a
 * reference with bus_event_ref() to use it after the callback returns. */
struct bus_event {
    int refs;
    char type[16];              /* "message", "presence", "typing", ... */
    char id[EVENT_ID_MAX];        /* stream id, "" for live-only events */
    char user[PL_NAME_MAX + 1]; /* the user the event is about, "" if none */
    int stored;                 /* a message or answer chunk from a room's stream: it has
                                 * its place in the room's order (sid); other ids
                                 * (direct) do not */
    struct event_id sid;        /* the stream id, parsed, when stored */
    int private_to_others;      /* presence or typing: not for its own user */
    const char *json;           /* the event, one line of JSON */
    size_t json_len;
    void *cache[BUS_CACHE_SLOTS];
    void (*cache_free[BUS_CACHE_SLOTS])(void *);
};

struct bus_sub;
typedef void (*bus_event_cb)(struct bus_sub *sub, struct bus_event *ev);
typedef void (*bus_ready_cb)(struct bus_sub *sub);

/* Embedded in a client.  Set the callbacks, then bus_sub_add(). */
struct bus_sub {
    bus_event_cb on_event;
    bus_ready_cb on_ready;      /* called once, from the event loop */
    struct bus_chan *chan;
    int ready;
    TAILQ_ENTRY(bus_sub) link;
};

/* Worker start-up: connect to the ring and the bus.  SLOT is the worker's
 * metrics slot.  Returns PL_OK or PL_ERR (logged). */
int bus_init(const struct worker_env *w);
void bus_shutdown(void);

/* Subscribes SUB to CHANNEL (a full Redis channel name). */
int bus_sub_add(struct bus_sub *sub, const char *channel);
void bus_sub_remove(struct bus_sub *sub);

/* Whether EV is for USER: nobody gets their own presence or typing. */
static inline int bus_event_for(const struct bus_event *ev, const char *user)
{
    return !ev->private_to_others || strcmp(ev->user, user) != 0;
}

/* Makes an event from a ring or pub/sub payload ("TYPE ID USER\nJSON").
 * Returns NULL on a malformed payload (logged). */
struct bus_event *bus_event_parse(const char *payload, size_t len);

void bus_event_ref(struct bus_event *ev);
void bus_event_unref(struct bus_event *ev);

/* Events a subscriber keeps, in arrival order, until it can deliver them
 * (before a WebSocket's welcome, during an SSE replay).  Zeroed to start;
 * each kept event holds a reference. */
struct bus_held {
    struct bus_event **ev;
    int n, cap;
};

/* Keeps EV.  PL_ERR when out of memory: the caller must not go on as if
 * the event had been kept (a gap), but close the stream. */
int bus_held_push(struct bus_held *h, struct bus_event *ev);

/* Drops the kept events (after delivering them) and the memory. */
void bus_held_clear(struct bus_held *h);

/* The transport's encoded form of EV in SLOT, made by ENCODE on first use. */
void *bus_event_cache(struct bus_event *ev, int slot, void *(*encode)(struct bus_event *),
                      void (*free_fn)(void *));

/* Whether the host's Redis subscriber connection is up. */
int bus_subscriber_up(void);

/* The bus was restarted: say again what this worker needs (SIGUSR2). */
void bus_resync(void);

#endif
